"""The rectified-flow decoder's maths: straight paths from the noised autoencoder output to the original.

    x_0 = x_ae + σ ε,   x_1 = x,   z_t = (1 − t) x_0 + t x_1,   v(z_t, t, x_ae) ≈ x_1 − x_0

The little noise σ lets the one-to-many map produce varied detail. Images enter and
leave in [0, 1]; the paths run in [-1, 1]. At any point the predicted endpoint is
z_t + (1 − t) v, which is what the sampler reports each step.

As in diffusion.py, the network predicts the correction to a prior velocity: the exact
E[x_1 − x_0 | z_t] if x were Gaussian around x_ae with std ``residual_sigma`` (linear in
z_t − x_ae, finite for all t). With it an untrained network's one Euler step lands on
x_ae, and training learns only the detail."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Literal, Optional

import torch

from engine.decoders.diffusion import DEFAULT_RESIDUAL_SIGMA
from engine.decoders.schedules import ShiftRange, sample_times
from engine.decoders.unet import NetworkFn
from engine.errors import SettingsError
from engine.progress import CancelToken, check_cancel

# σ of the start noise, in the [-1, 1] domain: about the size of the texture the
# autoencoder removes at low rates, so the start distribution covers plausible details.
DEFAULT_FLOW_SIGMA = 0.25

Solver = Literal["euler", "heun"]

# The flow trained on every t in [0, 1), so any shift of its step times is in distribution; at
# |s| = 3 a step count of 8 already spends ~3/4 of the path in its first or last step.
FLOW_SHIFT_RANGE = ShiftRange(-3.0, 3.0, name="the flow's range")


@dataclass(frozen=True)
class StartNoise:
    """The start-noise σ as a function of the rate r ∈ [0, 1] that x_ae was coded at: log-linear
    from ``at_rate_0`` to ``at_rate_1`` (equal ends: one σ at every rate). The autoencoder's
    error falls with the rate (RMS 0.12 at 0.1 bpp, 0.06 at 0.8 bpp on the validation photos),
    so one σ is either far above it at high rates, where the decode is then mostly left-over
    noise, or below it at low rates, where the start no longer covers the missing detail."""

    at_rate_0: float
    at_rate_1: float

    def __post_init__(self) -> None:
        for value in (self.at_rate_0, self.at_rate_1):
            if not 0 < value <= 1:
                raise SettingsError(f"flow start noise σ must be in (0, 1], got {value:g}")

    @classmethod
    def constant(cls, sigma: float) -> "StartNoise":
        return cls(sigma, sigma)

    @classmethod
    def parse(cls, text: str) -> "StartNoise":
        """"S" (one σ) or "S0,S1" (σ at rate 0, at rate 1)."""
        try:
            values = [float(v) for v in text.split(",")]
        except ValueError:
            values = []
        if len(values) not in (1, 2):
            raise SettingsError(f"expected S or S0,S1 (σ at rate 0, at rate 1), got {text!r}")
        return cls(values[0], values[-1])

    @property
    def varies(self) -> bool:
        return self.at_rate_0 != self.at_rate_1

    def at(self, rate: torch.Tensor | float) -> torch.Tensor | float:
        """σ at ``rate`` (a float, or a tensor of rates for one σ each); equal ends give ratio 1,
        so one σ at every rate."""
        ratio = self.at_rate_1 / self.at_rate_0
        clamped = rate.clamp(0, 1) if isinstance(rate, torch.Tensor) else min(max(float(rate), 0.0), 1.0)
        return self.at_rate_0 * ratio ** clamped

    def describe(self) -> str:
        if not self.varies:
            return f"{self.at_rate_0:g}"
        return f"{self.at_rate_0:g} at rate 0 to {self.at_rate_1:g} at rate 1 (log-linear)"

    def to_json(self) -> Any:
        return self.at_rate_0 if not self.varies else [self.at_rate_0, self.at_rate_1]

    @classmethod
    def from_json(cls, data: Any) -> "StartNoise":
        if isinstance(data, (int, float)):
            return cls.constant(float(data))
        low, high = data
        return cls(float(low), float(high))


def prior_velocity(z: torch.Tensor, cond: torch.Tensor, t: torch.Tensor | float, sigma: torch.Tensor | float,
                   residual_sigma: float) -> torch.Tensor:
    """E[x_1 − x_0 | z_t] for x_0 ~ N(cond, σ²), x_1 ~ N(cond, s²) independent:
    Cov(x_1 − x_0, z_t) / Var(z_t) · (z_t − cond) = (t s² − (1−t) σ²) / ((1−t)² σ² + t² s²) · (z_t − cond)."""
    if residual_sigma == 0:
        return torch.zeros_like(z)
    s2, o2 = residual_sigma ** 2, sigma ** 2
    return (t * s2 - (1 - t) * o2) / ((1 - t) ** 2 * o2 + t ** 2 * s2) * (z - cond)


def _training_point(x: torch.Tensor, x_ae: torch.Tensor, t: torch.Tensor, sigma: float | torch.Tensor,
                    generator: Optional[torch.Generator]) -> tuple[Any, ...]:
    """(z_t, condition, x_0, x_1, σ shaped to broadcast) for originals and decodes in [0, 1] and
    times ``t`` (N×1×1×1)."""
    device = x.device
    gen_device = generator.device if generator is not None else device
    cond = 2 * x_ae - 1
    if isinstance(sigma, torch.Tensor):
        sigma = sigma.to(device, torch.float32)[:, None, None, None]
    x0 = cond + sigma * torch.randn(x.shape, generator=generator, device=gen_device).to(device)
    x1 = 2 * x - 1
    return (1 - t) * x0 + t * x1, cond, x0, x1, sigma


def flow_loss(net: NetworkFn, x: torch.Tensor, x_ae: torch.Tensor, sigma: float | torch.Tensor = DEFAULT_FLOW_SIGMA,
              generator: Optional[torch.Generator] = None,
              residual_sigma: float = DEFAULT_RESIDUAL_SIGMA) -> torch.Tensor:
    """Mean squared error on the velocity x_1 − x_0 for a batch of (original, autoencoder) pairs in [0, 1];
    ``sigma``: the start noise, one for the batch or one per sample (N,).

    t ~ U(0, 1), stratified over the batch. Uniform rather than logit-normal because the
    few-step samplers this decoder is for evaluate the ends: 1-step Euler uses t = 0 only."""
    t = sample_times(x.shape[0], generator, x.device)[:, None, None, None]
    z, cond, x0, x1, sigma = _training_point(x, x_ae, t, sigma, generator)
    v = prior_velocity(z, cond, t, sigma, residual_sigma) + net(z, cond, t.flatten()).float()
    return torch.mean((v - (x1 - x0)) ** 2)


def flow_estimate(net: NetworkFn, x: torch.Tensor, x_ae: torch.Tensor, sigma: float | torch.Tensor,
                  generator: Optional[torch.Generator] = None, first_step_share: float = 0.5,
                  residual_sigma: float = DEFAULT_RESIDUAL_SIGMA, rollout_share: float = 0.0) -> torch.Tensor:
    """The endpoint estimate z_t + (1 − t)·v that an Euler step from a training point reports, in
    [-1, 1], with gradients: what the realism objective judges (engine/training/realism_objective.py).

    A share ``first_step_share`` of the batch sits at t = 0, where every sampler starts (and
    where the 1-step decode ends); the rest at t ~ U(0, 1), where later steps land. Each
    estimate is the whole decode a sampler would return if it stopped there, so training every
    one of them to look real is what keeps more steps from making the decode worse.

    A share ``rollout_share`` of the later points is built as the sampler builds them: from the
    network's own first-step decode x̂₀ (no gradient through it) instead of the original,
    z_t = (1 − t)·x₀ + t·x̂₀, with x₀ the start noise it came from (the ODE, sampler noise 0) or
    a fresh draw (sampler noise 1), half each. Without them a later step only ever sees the
    original's texture in z_t, and at sampling time adds texture on top of its own."""
    n, device = x.shape[0], x.device
    gen_device = generator.device if generator is not None else device
    u = torch.rand(3, n, generator=generator, device=gen_device).to(device)
    t = torch.where(u[0] < first_step_share, torch.zeros_like(u[1]), u[1])[:, None, None, None]
    z, cond, x0, _, sigma = _training_point(x, x_ae, t, sigma, generator)

    def estimate(z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        v = prior_velocity(z, cond, t, sigma, residual_sigma) + net(z, cond, t.flatten()).float()
        return z + (1 - t) * v

    rollout = ((u[2] < rollout_share) & (t.flatten() > 0))[:, None, None, None]
    if rollout.any():  # the whole batch, so a rate-conditioned net keeps its per-sample rates
        with torch.no_grad():
            first = estimate(x0, torch.zeros_like(t))
        fresh = cond + sigma * torch.randn(x.shape, generator=generator, device=gen_device).to(device)
        coin = torch.rand(n, generator=generator, device=gen_device).to(device)[:, None, None, None] < 0.5
        z = torch.where(rollout, (1 - t) * torch.where(coin, x0, fresh) + t * first, z)
    return estimate(z, t)


def flow_times(steps: int, shift: float = 0.0) -> list[float]:
    """The sampler's ``steps + 1`` times from 0 to 1: uniform, then shifted by ``shift``, which adds
    2·shift to each time's log signal-to-noise ratio 2·log(t / (1 − t)), as the diffusion
    schedule's shift adds it to its logSNR: t ↦ e^s t / (1 + (e^s − 1) t). s > 0 takes a long first
    step and spends the rest near t = 1 (less noise), where the finest detail is drawn; s < 0 the
    reverse."""
    gain = math.exp(shift)
    # written so that u = 0 and u = 1 land exactly on 0 and 1: the last step must end at t = 1
    return [gain * u / (gain * u + (1 - u)) for u in (i / steps for i in range(steps + 1))]


@torch.no_grad()
def sample_flow(velocity: NetworkFn, x_ae: torch.Tensor, steps: int, sigma: float | torch.Tensor = DEFAULT_FLOW_SIGMA,
                renoise: float = 0.0, solver: Solver = "euler",
                generator: Optional[torch.Generator] = None,
                on_step: Optional[Callable[[int, int, torch.Tensor], None]] = None,
                cancel: Optional[CancelToken] = None,
                residual_sigma: float = DEFAULT_RESIDUAL_SIGMA, shift: float = 0.0) -> torch.Tensor:
    """Integrate the flow from x_ae + σ·ε at t=0 to t=1; returns N×3×H×W in [0, 1].

    ``velocity(z, cond, t)`` predicts the velocity minus the prior (see prior_velocity) and
    sees z and the condition in [-1, 1]; ``sigma`` and ``residual_sigma`` must be what it
    was trained with. Euler costs one network call per step, Heun two (its corrector
    evaluates the end of each step, t = 1 included).

    ``renoise`` γ ∈ [0, 1] is the sampler noise, the flow's counterpart of DDIM → DDPM: each
    step moves to the next time on the straight path from x_0 = x_ae + σ·ε̂ to the current
    endpoint estimate, where ε̂ is the start noise the current z implies, with a fraction γ of
    its variance drawn afresh (√(1−γ)·ε̂ + √γ·ξ). γ = 0 is the plain ODE step (the same line
    through z); γ = 1 restarts from fresh start noise each step, so every network call sees
    a point of the kind it was trained on, whatever the errors of earlier steps. Noise is
    drawn from ``generator`` on its own device, so a CPU generator gives the same result on
    any device.

    ``shift`` moves the step times (``flow_times``); 0 = uniform steps. ``sigma`` may be one per
    image (N×1×1×1) for a batch coded at several rates."""
    if solver not in ("euler", "heun"):
        raise SettingsError(f"unknown flow solver {solver!r}; use 'euler' or 'heun'")
    if not 0.0 <= renoise <= 1.0:
        raise SettingsError(f"flow sampler noise must be in [0, 1], got {renoise:g}")
    device = x_ae.device
    gen_device = generator.device if generator is not None else device
    cond = 2 * x_ae - 1
    n = x_ae.shape[0]

    def randn() -> torch.Tensor:
        return torch.randn(x_ae.shape, generator=generator, device=gen_device).to(device)

    z = cond + sigma * randn()
    times = flow_times(steps, shift)

    def field(z: torch.Tensor, t: float) -> torch.Tensor:
        level = torch.full((n,), t, device=device)
        return prior_velocity(z, cond, t, sigma, residual_sigma) + velocity(z, cond, level).float()

    for i in range(steps):
        check_cancel(cancel)
        t, t_next = times[i], times[i + 1]
        v = field(z, t)
        if solver == "heun":
            v = (v + field(z + (t_next - t) * v, t_next)) / 2
        estimate = z + (1 - t) * v  # equals the new z on the last step
        if renoise > 0 and i + 1 < steps:
            implied = (z - (1 - t) * cond - t * estimate) / ((1 - t) * sigma)
            start = cond + sigma * ((1 - renoise) ** 0.5 * implied + renoise ** 0.5 * randn())
            z = (1 - t_next) * start + t_next * estimate
        else:
            z = z + (t_next - t) * v
        if on_step is not None:
            on_step(i + 1, steps, ((estimate + 1) / 2).clamp(0.0, 1.0))
    return ((z + 1) / 2).clamp(0.0, 1.0)
