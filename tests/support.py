"""Helpers shared by the test packages: a synthetic image with photo-like statistics (smooth
shading, edges, fine texture), so codec and metric tests need no photo folder; tiny photo sets
and training configurations; a single-thread fixture."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from engine.data.photos import PhotoSet
from engine.errors import BitstreamError
from engine.training.loop import TrainConfig


def photo_like(height: int = 192, width: int = 256, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width] / max(height, width)
    shading = np.stack([0.5 + 0.4 * np.sin(3 * x + 1), 0.4 + 0.3 * np.cos(4 * y), 0.3 + 0.3 * x * y], axis=-1)
    disc = ((x - 0.6) ** 2 + (y - 0.4) ** 2 < 0.04)[..., None] * np.array([0.3, -0.2, 0.1])
    # Texture: white noise blurred a little, with a 1/f-ish mix of two scales.
    noise = rng.standard_normal((height, width, 3))
    coarse = np.repeat(np.repeat(rng.standard_normal((height // 4 + 1, width // 4 + 1, 3)), 4, 0), 4, 1)
    texture = 0.05 * noise + 0.08 * coarse[:height, :width]
    image = np.clip(shading + disc + texture, 0, 1)
    return (image * 255 + 0.5).astype(np.uint8)


@pytest.fixture(autouse=True, scope="module")
def single_thread():
    """Many small torch ops: on a loaded 2-core machine, OpenMP threads spinning against a
    background job make them 100× slower. Import this fixture into a test module to use it."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def tiny_photos(n: int = 3) -> PhotoSet:
    """``n`` random 80×96 photos: enough for a training step on 64² crops."""
    rng = np.random.default_rng(0)
    return PhotoSet([rng.integers(0, 256, (80, 96, 3), dtype=np.uint8) for _ in range(n)], [])


def tiny_train_config(out_dir, steps: int) -> TrainConfig:
    """A CPU, fp32 run of ``steps`` steps on 2 × 64² crops that logs and checkpoints often."""
    return TrainConfig(out_dir=out_dir, steps=steps, batch=2, crop=64, warmup=2, log_every=1,
                       checkpoint_every=2, bf16=False, device="cpu")


def matches(crc: int):
    """A ``check_symbols`` for ``decode_latents`` that wants the symbols' CRC32 (ẑ then ŷ) to be ``crc``."""
    def check(_y_crc: int, found: int) -> None:
        if found != crc:
            raise BitstreamError("payload checksum mismatch")
    return check


def sleep_then(value, seconds: float):
    """``value`` after ``seconds``: a slow call, importable by a child process."""
    import time

    time.sleep(seconds)
    return value
