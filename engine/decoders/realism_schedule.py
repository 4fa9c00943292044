"""A decoder's default realism as a function of the rate a file was coded at.

Realism blends the refined image with the autoencoder's decode (0 = the autoencoder's,
post-filtered where the model has a post-filter; 1 = fully refined). How much refinement pays
depends on how much the quantiser left out: at low rates a strong blend beats the autoencoder
on every perceptual measure, at high ones only a light blend comes close (so it was for the
regression-trained decoders; the realism-trained flow ships one value). So a default can be a
curve through measured points, keyed on the rate in the file's header (the quantiser's coarseness, which the
decoders are conditioned on) rather than on its bits per pixel: a flat photo coded at the
model's top rate has a low bpp but almost nothing left for the decoder to restore.

    RealismSchedule.from_json([[0.55, 1.0], [0.75, 0.5]]).at(0.65)   # -> 0.75

Between points it is linear in the rate (λ is log-linear in it); outside them it holds the
nearest point's value. A plain number is a constant schedule."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from engine.errors import SettingsError

# Realism is shown and reported to this many decimals; resolving to it keeps a decode
# reproducible from what the user sees.
DECIMALS = 3


@dataclass(frozen=True)
class RealismSchedule:
    """(rate, realism) points, rates strictly increasing within [0, 1]."""

    points: tuple[tuple[float, float], ...]

    def __post_init__(self) -> None:
        if not self.points:
            raise SettingsError("a realism schedule needs at least one (rate, realism) point")
        for rate, realism in self.points:
            if not 0.0 <= rate <= 1.0:
                raise SettingsError(f"realism schedule rates must be in [0, 1], got {rate!r}")
            if not 0.0 <= realism <= 1.0:
                raise SettingsError(f"realism must be in [0, 1], got {realism!r}")
        if any(a[0] >= b[0] for a, b in zip(self.points, self.points[1:])):
            raise SettingsError(f"realism schedule rates must increase: {[p[0] for p in self.points]}")

    @classmethod
    def constant(cls, realism: float) -> "RealismSchedule":
        return cls(((0.0, float(realism)),))

    @property
    def varies(self) -> bool:
        return len({realism for _, realism in self.points}) > 1

    def at(self, rate: float) -> float:
        """The realism for a file coded at ``rate``."""
        if not (math.isfinite(rate) and 0.0 <= rate <= 1.0):
            raise SettingsError(f"the rate must be in [0, 1] to pick a realism, got {rate!r}")
        rates, values = zip(*self.points)
        if rate <= rates[0]:
            return values[0]
        if rate >= rates[-1]:
            return values[-1]
        return round(float(np.interp(rate, rates, values)), DECIMALS)

    def to_json(self) -> float | list[list[float]]:
        return self.points[0][1] if len(self.points) == 1 else [list(p) for p in self.points]

    @classmethod
    def from_json(cls, value: Any) -> "RealismSchedule":
        """A number (constant) or a list of [rate, realism] pairs."""
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return cls.constant(float(value))
        try:
            points = tuple((float(rate), float(realism)) for rate, realism in value)
        except (TypeError, ValueError) as exc:
            raise SettingsError(f"a realism default must be a number or [[rate, realism], ...], got {value!r}") from exc
        return cls(points)

    def describe(self) -> str:
        """"1 up to rate 0.55, 0.5 from rate 0.75 (linear between)", or "0.5"."""
        if not self.varies:
            return f"{self.points[0][1]:g}"
        (first_rate, first), *middle, (last_rate, last) = self.points
        parts = [f"{first:g} up to rate {first_rate:g}"]
        parts += [f"{realism:g} at rate {rate:g}" for rate, realism in middle]
        parts.append(f"{last:g} from rate {last_rate:g}")
        return ", ".join(parts) + " (linear between)"
