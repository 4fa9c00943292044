"""Noise schedules of the diffusion decoder: the cosine logSNR schedule, shifted toward
less noise.

λ(t) = -2 log tan(πt/2) runs from +∞ (clean, t=0) to -∞ (pure noise, t=1). It is clipped
to [LOGSNR_MIN, LOGSNR_MAX] by squeezing t into the matching sub-interval of the tangent
(as in VDM / simple diffusion) rather than by clamping λ: a clamp would leave flat ends
where sampler steps change nothing. At both limits the image is effectively clean
(σ ≈ 5.5e-4, under 0.1 of an 8-bit level) or effectively noise (α ≈ 5.5e-4).

The shift adds 2s to every λ: s > 0 spends the steps at lower noise, where the detail
that the autoencoder blurred lives; its coarse structure needs no re-generating."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Optional

import torch

from engine.errors import SettingsError

LOGSNR_MIN = -15.0
LOGSNR_MAX = 15.0

# The squeezed tangent argument: t=0 maps to λ = LOGSNR_MAX, t=1 to λ = LOGSNR_MIN.
_ANGLE_LO = math.atan(math.exp(-LOGSNR_MAX / 2))
_ANGLE_HI = math.atan(math.exp(-LOGSNR_MIN / 2))


def logsnr(t: torch.Tensor, shift: float | torch.Tensor = 0.0) -> torch.Tensor:
    """Clipped cosine logSNR at time ``t`` ∈ [0, 1], plus ``2·shift`` (+ = less noise)."""
    angle = _ANGLE_LO + t * (_ANGLE_HI - _ANGLE_LO)
    return -2.0 * torch.log(torch.tan(angle)) + 2.0 * shift


def alpha_sigma(lam: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Signal and noise scales of a variance-preserving process: α² = sigmoid(λ), σ² = sigmoid(-λ)."""
    return torch.sigmoid(lam).sqrt(), torch.sigmoid(-lam).sqrt()


@dataclass(frozen=True)
class ShiftRange:
    """A range of schedule shifts; by default the ones a diffusion decoder was trained on:
    each training sample draws its shift uniformly from [low, high], so the network has seen
    every logSNR in [LOGSNR_MIN + 2·low, LOGSNR_MAX + 2·high] and can be sampled with any shift
    inside. (The flow's step-time shifts are flow.FLOW_SHIFT_RANGE.) ``name`` says in errors
    what the range is."""

    low: float = 0.0
    high: float = 3.0
    name: str = field(default="the trained range", compare=False)

    def __post_init__(self) -> None:
        if not self.low <= self.high:
            raise SettingsError(f"shift range [{self.low}, {self.high}] is empty")

    @property
    def bounds(self) -> tuple[float, float]:
        return self.low, self.high

    def check(self, shift: float) -> None:
        """Raise SettingsError unless ``shift`` lies in the range."""
        if not self.low <= shift <= self.high:
            raise SettingsError(f"schedule shift {shift:g} is outside {self.name} [{self.low:g}, {self.high:g}]")

    def sample(self, n: int, generator: Optional[torch.Generator] = None,
               device: torch.device | str = "cpu") -> torch.Tensor:
        """``n`` shifts drawn uniformly from the range (on the generator's device, then moved)."""
        u = torch.rand(n, generator=generator, device=generator.device if generator else device)
        return (self.low + (self.high - self.low) * u).to(device)


def sample_times(n: int, generator: Optional[torch.Generator] = None,
                 device: torch.device | str = "cpu") -> torch.Tensor:
    """``n`` training times in [0, 1), stratified: one uniform offset, then evenly spaced
    (VDM's low-discrepancy sampler). Each time is still U(0, 1); the batch's loss has
    lower variance than with independent draws."""
    u = torch.rand((), generator=generator, device=generator.device if generator else device)
    return ((u + torch.arange(n, device=u.device) / n) % 1.0).to(device)
