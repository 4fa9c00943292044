"""The realism objective: train a score-based decoder so that what its sampler returns looks real.

A decoder trained only by regression (v- or velocity-MSE) predicts the conditional *mean* of
the detail at each noise level, and a few-step sampler driven by a mean returns one: blur.
This objective judges instead the whole decode a sampler step reports, the estimate
x̂(z_t, t, x_ae) of flow_estimate / diffusion_estimate, with

    L_G = w_adv · softplus(−D(x̂, x_ae))              a conditional patch GAN (non-saturating)
        + w_perceptual · ST-LPIPS(x̂, x)               a perceptual distance to the original
        + w_low · ‖pool₄(x̂) − pool₄(x)‖²              faithful where the bits were spent
        + w_mse · ‖x̂ − x‖²                            a little of the full error, as HiFiC keeps

    L_D = softplus(−D(x, x_ae)) + softplus(D(x̂, x_ae))

The low-pass term (4×4 means) leaves the finest octaves, the ones the autoencoder could not
afford, to the discriminator and the perceptual term, and pins the rest (colours, shading,
structure) to the original, so PSNR stays close to the autoencoder's; the small full-band
error term keeps the invented texture from outgrowing the original's energy. Pairs are flipped and turned alike before D sees them
(engine/training/discriminator.py); the adversarial weight ramps up over the first steps while D
learns. The decoder's sampler, steps, shift, sampler noise and seed keep their meaning: only
what the network predicts at each step changes, from a mean to a sample.

Like the post-filter and the decoders' regression, it trains on (x_ae, x) pairs made on the
fly by the frozen autoencoder (and post-filter), at rates drawn from ``rate_range``."""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from functools import partial
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from engine.codec.autoencoder import HyperpriorAutoencoder
from engine.decoders.diffusion import diffusion_estimate, sample_diffusion
from engine.decoders.flow import flow_estimate, sample_flow
from engine.decoders.post_filter import PostFilter
from engine.decoders.score_decoder import TrainedFacts
from engine.errors import SettingsError
from engine.training.discriminator import PatchDiscriminator, augment_pairs
from engine.training.pairs import make_pairs

LOW_PASS = 4  # side of the mean filter that defines "low frequencies" (the finest 2 octaves are free)


@dataclass(frozen=True)
class RealismConfig:
    """Weights and settings of the realism objective (a recipe's ``[objective]`` table)."""

    adversarial: float = 0.15
    perceptual: float = 1.0
    low_frequency: float = 100.0  # on the [-1, 1] domain's squared error of 4×4 means
    distortion: float = 10.0  # on the [-1, 1] domain's squared error of the whole image
    adversarial_warmup: int = 500  # steps over which the adversarial weight ramps up from 0
    first_step_share: float = 0.5  # share of estimates at the sampler's first step (t = 0 flow, t = 1 diffusion)
    rollout_share: float = 0.5  # share of later-step estimates made from the network's own first step
    discriminator_width: int = 32
    discriminator_lr: float = 1e-4
    rate_range: tuple[float, float] = (0.15, 0.8)  # rates the pairs are coded at (~0.03 to ~1 bpp)
    crop_min_scale: float = 0.5  # training crops are shrunk by a random factor in [this, 1] (PhotoSet.crops)

    def __post_init__(self) -> None:
        for name in ("adversarial", "perceptual", "low_frequency", "distortion"):
            if getattr(self, name) < 0:
                raise SettingsError(f"realism objective weight {name} must be ≥ 0, got {getattr(self, name)}")
        for name in ("first_step_share", "rollout_share"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise SettingsError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        low, high = self.rate_range
        if not 0.0 <= low <= high <= 1.0:
            raise SettingsError(f"rate_range must lie in [0, 1] and not be empty, got {self.rate_range}")

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "rate_range": list(self.rate_range)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "RealismConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise SettingsError(f"unknown realism objective settings {unknown}; known: {sorted(known)}")
        values = dict(data)
        if "rate_range" in values:
            values["rate_range"] = tuple(float(r) for r in values["rate_range"])
        return cls(**values)


def low_pass(x: Tensor) -> Tensor:
    return F.avg_pool2d(x, LOW_PASS)


class RealismObjective:
    """The generator loss (``__call__``, the Trainer's loss function) and the discriminator's
    update (``after_step``), which uses the batch of the last generator loss."""

    def __init__(self, kind: str, ae: HyperpriorAutoencoder, facts: TrainedFacts,
                 config: RealismConfig = RealismConfig(), post_filter: PostFilter | None = None,
                 perceptual: nn.Module | None = None) -> None:
        self.kind, self.ae, self.facts, self.config, self.post_filter = kind, ae, facts, config, post_filter
        self.discriminator = PatchDiscriminator(config.discriminator_width)
        self.optimizer = torch.optim.Adam(self.discriminator.parameters(), lr=config.discriminator_lr,
                                          betas=(0.5, 0.9))
        self.perceptual = perceptual.eval().requires_grad_(False) if perceptual is not None else None
        self.steps = 0  # discriminator updates so far: drives the adversarial warm-up
        self._last: tuple[Tensor, Tensor, Tensor] | None = None

    # ---- set-up the Trainer drives -------------------------------------------------------------
    def to(self, device: torch.device) -> "RealismObjective":
        self.ae.to(device)
        self.discriminator.to(device)
        for module in (self.post_filter.net if self.post_filter else None, self.perceptual):
            if module is not None:
                module.to(device)
        return self

    def state_dict(self) -> dict[str, Any]:
        return {"discriminator": self.discriminator.state_dict(), "optimizer": self.optimizer.state_dict(),
                "steps": self.steps}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.discriminator.load_state_dict(state["discriminator"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.steps = int(state["steps"])

    # ---- the two losses ------------------------------------------------------------------------
    def estimate(self, net: nn.Module, x: Tensor, x_ae: Tensor, rate: Tensor,
                 generator: torch.Generator | None = None) -> Tensor:
        """The decoder's sampler-step estimate x̂ ∈ [-1, 1] for originals ``x`` and decodes ``x_ae``."""
        network = partial(net, rate=rate)
        share, sigma, rollout = self.config.first_step_share, self.facts.residual_sigma, self.config.rollout_share
        if self.kind == "diffusion":
            return diffusion_estimate(network, x, x_ae, self.facts.shift_range, generator, share, sigma, rollout)
        return flow_estimate(network, x, x_ae, self.facts.flow_sigma.at(rate), generator, share, sigma, rollout)

    def adversarial_weight(self) -> float:
        ramp = min(1.0, self.steps / self.config.adversarial_warmup) if self.config.adversarial_warmup else 1.0
        return self.config.adversarial * ramp

    def generator_terms(self, net: nn.Module, x: Tensor, generator: torch.Generator | None = None
                        ) -> tuple[dict[str, Tensor], Tensor, Tensor, Tensor]:
        """({adversarial, perceptual, low_frequency}, fake, real, condition), all in [-1, 1]."""
        x_ae, rate = make_pairs(self.ae, x, generator, self.post_filter, self.config.rate_range)
        fake = self.estimate(net, x, x_ae, rate, generator)
        real, cond = 2 * x - 1, 2 * x_ae - 1
        self.discriminator.requires_grad_(False)  # the generator's loss must not train D
        try:
            logits = self.discriminator(*augment_pairs(fake, cond, generator))
        finally:
            self.discriminator.requires_grad_(True)
        terms = {"adversarial": F.softplus(-logits.float()).mean(),
                 "low_frequency": torch.mean((low_pass(fake) - low_pass(real)) ** 2),
                 "distortion": torch.mean((fake - real) ** 2)}
        if self.perceptual is not None:
            terms["perceptual"] = self.perceptual(fake, real).float().mean()
        return terms, fake, real, cond

    def __call__(self, net: nn.Module, x: Tensor) -> tuple[Tensor, dict[str, float]]:
        terms, fake, real, cond = self.generator_terms(net, x)
        weights = {"adversarial": self.adversarial_weight(), "perceptual": self.config.perceptual,
                   "low_frequency": self.config.low_frequency, "distortion": self.config.distortion}
        loss = sum(weights[name] * value for name, value in terms.items())
        self._last = (real.detach(), fake.detach(), cond.detach())
        return loss, {f"g_{name}": float(value.detach()) for name, value in terms.items()}

    def discriminator_loss(self, real: Tensor, fake: Tensor, cond: Tensor,
                           generator: torch.Generator | None = None) -> tuple[Tensor, dict[str, float]]:
        real_logits = self.discriminator(*augment_pairs(real, cond, generator)).float()
        fake_logits = self.discriminator(*augment_pairs(fake, cond, generator)).float()
        loss = F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()
        return loss, {"d_loss": float(loss.detach()), "d_real": float(real_logits.mean().detach()),
                      "d_fake": float(fake_logits.mean().detach())}

    def after_step(self) -> dict[str, float]:
        """One discriminator update on the last generator batch (real vs. the generator's estimates)."""
        if self._last is None:
            return {}
        real, fake, cond = self._last
        self._last = None
        loss, metrics = self.discriminator_loss(real, fake, cond)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            world = torch.distributed.get_world_size()  # one discriminator for all ranks, as DDP keeps the decoder
            for p in self.discriminator.parameters():
                torch.distributed.all_reduce(p.grad)
                p.grad /= world
        self.optimizer.step()
        self.steps += 1
        return metrics


@torch.no_grad()
def sample_batch(kind: str, net: nn.Module, x_ae: Tensor, rate: Tensor, facts: TrainedFacts, steps: int,
                 noise: float, generator: torch.Generator | None = None) -> Tensor:
    """Decode a batch of ``x_ae`` (N×3×H×W in [0, 1], coded at ``rate``, N) with ``steps`` steps at
    sampler noise ``noise`` (diffusion: shift 0; flow: Euler); returns [0, 1]."""
    def network(z: Tensor, cond: Tensor, level: Tensor) -> Tensor:
        return net(z, cond, level, rate=rate).float()

    if kind == "diffusion":
        return sample_diffusion(network, x_ae, steps, 0.0, noise, generator, residual_sigma=facts.residual_sigma)
    sigma = facts.flow_sigma.at(rate)[:, None, None, None]
    return sample_flow(network, x_ae, steps, sigma, noise, generator=generator, residual_sigma=facts.residual_sigma)


def _to_uint8(x: Tensor) -> list[np.ndarray]:
    return list((x.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy())


VALIDATION_SAMPLERS = ((1, 0.0), (4, 0.0), (4, 1.0))  # (steps, sampler noise) decoded at each checkpoint


@torch.no_grad()
def realism_validation(objective: RealismObjective, net: nn.Module, batches: list[Tensor],
                       samplers: tuple[tuple[int, float], ...] = VALIDATION_SAMPLERS) -> dict[str, float]:
    """The held-out signal of a realism run, on fixed validation crops, rates and noise: for each
    (steps, sampler noise), PSNR, ST-LPIPS and the top-octave log10 power ratio against the
    original (0 = the right amount of fine detail; the autoencoder's own as ``ae_top_octave``),
    and the discriminator's mean logit on validation originals and 1-step decodes. A ``d_real_val``
    falling below the training ``d_real`` while ``d_fake_val`` stays apart is D memorising."""
    from engine.evaluation.metrics import psnr, top_octave_log_power_ratio

    device = next(net.parameters()).device
    rates = torch.Generator().manual_seed(0)  # apart from the noise, so both kinds see the same pairs
    noise = torch.Generator().manual_seed(1)
    sums: dict[str, float] = {}
    count = 0

    def add(name: str, value: float) -> None:
        sums[name] = sums.get(name, 0.0) + value

    for x in batches:
        x = x.to(device)
        x_ae, rate = make_pairs(objective.ae, x, rates, objective.post_filter, objective.config.rate_range)
        originals = _to_uint8(x)
        decodes = {"ae": x_ae}
        names = [f"{steps}step" + (f"_noise{sampler_noise:g}" if sampler_noise else "") for steps, sampler_noise in samplers]
        for name, (steps, sampler_noise) in zip(names, samplers):
            decodes[name] = sample_batch(objective.kind, net, x_ae, rate, objective.facts, steps, sampler_noise, noise)
        for name, decoded in decodes.items():
            images = _to_uint8(decoded)
            add(f"{name}_psnr", sum(map(psnr, originals, images)))
            add(f"{name}_top_octave", sum(map(top_octave_log_power_ratio, originals, images)))
            if objective.perceptual is not None and name != "ae":
                add(f"{name}_st_lpips", float(objective.perceptual(2 * decoded - 1, 2 * x - 1).float().sum()))
        cond = 2 * x_ae - 1
        first = decodes[names[0]]
        add("d_real_val", float(objective.discriminator(2 * x - 1, cond).float().mean(dim=(1, 2, 3)).sum()))
        add("d_fake_val", float(objective.discriminator(2 * first - 1, cond).float().mean(dim=(1, 2, 3)).sum()))
        count += x.shape[0]
    return {name: value / count for name, value in sums.items()}
