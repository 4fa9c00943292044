"""Encoder-side latent optimisation: per image, search for latents that the unchanged decoder
turns into a better rate–distortion trade than the analysis transform's (Campos et al. 2019;
Yang et al. 2020, "Improving inference for neural image compression").

The analysis transform g_a is amortised: one network guesses good latents for every image, and
an undertrained one leaves bits on the table. Starting from its guess, gradient descent on this
image's own loss, bits + λ(rate)·255²·MSE (the loss the model was trained with, at its λ), finds
latents that cost fewer bits for the same quality. Decoding is untouched, so files stay
ordinary `.hfd` files any decoder of these weights reads.

Rounding has no gradient. The y latents use stochastic Gumbel annealing (SGA): each value is a
Gumbel-softmax blend of its two neighbouring integers (relative to its predicted mean), sharper
as the temperature falls, so the loss sees the discreteness coming. The hyper-latents z, few
and coarse, round in the forward pass with a straight-through gradient. Because the relaxed
loss is only a proxy, the true (hard-rounded) loss is measured as the search goes and the best
latents seen are kept: the result is never worse than the starting point by that measure."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor

from engine.codec.autoencoder import HyperpriorAutoencoder, coded_region
from engine.codec.context_model import anchor_mask

DEFAULT_STEPS = 100  # measured on the validation photos (git history: reports/validation-all-optimise100)
LEARNING_RATE = 0.01  # Adam, cosine-decayed to 0; in units of one quantisation bin
TEMPERATURE = (0.5, 0.1)  # SGA temperature, annealed geometrically from the first to the second
CHECK_EVERY = 5  # steps between measurements of the true (hard-rounded) loss

ProgressCallback = Callable[[int, int], None]  # (steps done, steps in all)


@dataclass
class OptimisedLatents:
    """Gain-applied y (continuous: the coder rounds it) and the integer ẑ to code with it."""

    y: Tensor
    z_symbols: Tensor
    start_cost: float  # the true loss (bits per pixel + λ·255²·MSE) of the analysis transform's latents
    cost: float  # the same for the latents returned


def _sga_round(offset: Tensor, temperature: float, generator: torch.Generator) -> Tensor:
    """A Gumbel-softmax blend of ⌊offset⌋ and ⌈offset⌉, weighted by closeness (atanh of the
    distance, so a value at an integer picks it surely); tends to rounding as temperature → 0."""
    floor = torch.floor(offset)
    eps = 1e-5
    to_floor = torch.atanh((offset - floor).clamp(eps, 1 - eps))
    to_ceil = torch.atanh((floor + 1 - offset).clamp(eps, 1 - eps))
    logits = torch.stack([-to_floor, -to_ceil], dim=-1) / temperature
    uniform = torch.rand(logits.shape, generator=generator, device=logits.device)
    gumbel = -torch.log(-torch.log(uniform.clamp(1e-10, 1.0)))
    weight = torch.softmax((logits + gumbel) / temperature, dim=-1)
    return floor + weight[..., 1]


class _Objective:
    """Bits per pixel + λ·255²·MSE of latents (y gained, z gained) for one image at one rate,
    computed as the codec codes them: ẑ rounded, y rounded about its means, anchors first and
    the rest with the context model's refined means, only the symbols that cover the image."""

    def __init__(self, model: HyperpriorAutoencoder, x: Tensor, image_hw: tuple[int, int], rate: float) -> None:
        self.model, self.x, self.hw = model, x, image_hw
        r = torch.tensor([rate], device=x.device)
        self.inv_gain = model._interp(model.log_inv_gain.float(), r)
        self.inv_hgain = model._interp(model.log_inv_hgain.float(), r)
        self.lmbda = float(model.lmbda(torch.tensor(rate)))
        self.pixels = image_hw[0] * image_hw[1]

    def __call__(self, y: Tensor, z: Tensor, rounding: Callable[[Tensor], Tensor]) -> Tensor:
        """The loss; ``rounding`` maps an offset from the mean to its coded value."""
        m, (h, w) = self.model, self.hw
        z_hat = z + (torch.round(z) - z).detach()
        z_bits = -torch.log2(m.z_prior.likelihood(z_hat)).sum()
        means, scales = m.h_s(z_hat * self.inv_hgain).float().chunk(2, dim=1)
        scales = scales.clamp_min(m.y_model.scale_min)
        region = coded_region(y.shape, self.hw).to(y.device)
        y_hat = rounding(y - means) + means
        if m.context is not None:
            anchor = anchor_mask(*y.shape[-2:], device=y.device)
            means, scales = m.context(y_hat * anchor, means, scales)
            y_hat = torch.where(anchor, y_hat, rounding(y - means) + means)
        y_hat = torch.where(region, y_hat, means)  # the decoder puts the means outside the image
        y_bits = -(torch.log2(m.y_model.likelihood(y_hat, means, scales)) * region).sum()
        x_hat = m.g_s(y_hat * self.inv_gain).float()[..., :h, :w]
        bpp = (y_bits + z_bits) / self.pixels
        return bpp + self.lmbda * 255 ** 2 * torch.mean((x_hat - self.x[..., :h, :w]) ** 2)


def optimise_latents(model: HyperpriorAutoencoder, x_padded: Tensor, y: Tensor, rate: float,
                     image_hw: tuple[int, int], steps: int = DEFAULT_STEPS, seed: int = 0,
                     on_step: ProgressCallback | None = None) -> OptimisedLatents:
    """Refine the analysis output ``y`` (from ``model.analyze(x_padded)``) of an ``image_hw`` image
    for coding at ``rate``. Deterministic for a given seed, device and thread count. The model's
    weights are not changed (nor need gradients)."""
    if steps < 1:
        raise ValueError(f"latent optimisation needs at least one step, got {steps}")
    # Gradients are needed even when the caller runs in inference mode; the arguments may be
    # inference tensors, which autograd refuses, so the search works on clones.
    with torch.inference_mode(False), torch.enable_grad():
        with torch.no_grad():
            x, y = x_padded.float().clone(), y.float().clone()
        params = [p for p in model.parameters() if p.requires_grad]
        for p in params:
            p.requires_grad_(False)
        try:
            return _search(model, x, y, rate, image_hw, steps, seed, on_step)
        finally:
            for p in params:
                p.requires_grad_(True)


def _search(model: HyperpriorAutoencoder, x: Tensor, y: Tensor, rate: float, image_hw: tuple[int, int],
            steps: int, seed: int, on_step: ProgressCallback | None) -> OptimisedLatents:
    objective = _Objective(model, x, image_hw, rate)
    with torch.no_grad():
        y, z = model.gained_latents(y, rate)
    y, z = y.requires_grad_(True), z.requires_grad_(True)

    def measure() -> float:
        with torch.no_grad():
            return float(objective(y, z, torch.round))

    start_cost = measure()
    best = (start_cost, y.detach().clone(), z.detach().clone())
    generator = torch.Generator(device=x.device).manual_seed(seed)
    optimiser = torch.optim.Adam([y, z], lr=LEARNING_RATE)
    first, last = TEMPERATURE
    for step in range(steps):
        temperature = first * (last / first) ** (step / steps)
        for group in optimiser.param_groups:
            group["lr"] = LEARNING_RATE * 0.5 * (1 + math.cos(math.pi * step / steps))
        loss = objective(y, z, lambda offset: _sga_round(offset, temperature, generator))
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        if (step + 1) % CHECK_EVERY == 0 or step + 1 == steps:
            cost = measure()
            if cost < best[0]:
                best = (cost, y.detach().clone(), z.detach().clone())
        if on_step is not None:
            on_step(step + 1, steps)
    return OptimisedLatents(best[1], torch.round(best[2]), start_cost, best[0])
