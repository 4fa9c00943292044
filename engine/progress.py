"""Per-step progress reports and cooperative cancellation for long decodes.

The samplers call ``on_step`` once per step and check the token before each step, so a
cancel takes effect within one step. Neither type knows about threads or Qt."""
from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np

from engine.errors import Cancelled


@dataclass(frozen=True)
class StepInfo:
    """What a sampler reports after finishing step ``index`` (1-based) of ``total``."""

    index: int
    total: int
    estimate: np.ndarray  # uint8 h×w×3: the current clean-image estimate (x̂0 / endpoint) ...
    elapsed_s: float  # wall time since the decode started
    # ... and where it sits in the image (top, left): the whole image for a decode in one tile,
    # else the tile being decoded (the tiles before it are finished).
    region: tuple[int, int] = (0, 0)


StepCallback = Callable[[StepInfo], None]


class CancelToken:
    """Thread-safe flag; ``check()`` raises Cancelled once ``cancel()`` was called."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def check(self) -> None:
        if self._event.is_set():
            raise Cancelled("decode cancelled")


def check_cancel(token: Optional[CancelToken]) -> None:
    """Raise Cancelled if ``token`` is set; a missing token never cancels."""
    if token is not None:
        token.check()
