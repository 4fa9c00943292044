"""A synthetic image with photo-like statistics (smooth shading, edges, fine texture), so codec and
metric tests do not depend on any photo folder."""
from __future__ import annotations

import numpy as np
import pytest
import torch


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
