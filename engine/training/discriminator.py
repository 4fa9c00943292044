"""The conditional patch discriminator of the realism objective (engine/training/realism_objective.py).

    [image | x_ae] (6ch) ─ conv 4×4/2 ─ conv 4×4/2 ─ conv 4×4/2 ─ conv 4×4/1 ─ conv 4×4/1 ─ logits (1ch, H/8 × W/8)

It judges ~70-px patches of an image *together with* the autoencoder decode it was made
from, so "real" means "a photo that x_ae could have come from": texture of the right kind
where x_ae is smooth, and no change to what x_ae already fixes. Spectral norm on every layer
keeps it Lipschitz, which with ~200 training photos matters more than capacity; it is kept
small (0.7 M parameters) so the generator's step rate on a CPU barely drops.

``augment_pairs`` turns (image, x_ae) pairs by one of the eight flips and 90° rotations,
the same for both halves of a pair and drawn per pair. Real and fake pairs go through it
alike (DiffAugment's rule), so the augmentation cannot leak into what the generator learns."""
from __future__ import annotations

from typing import Optional

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm


class PatchDiscriminator(nn.Module):
    """Logits per ~70-px patch for N×3×H×W images and their N×3×H×W condition, both in [-1, 1]."""

    def __init__(self, width: int = 32, condition_channels: int = 3) -> None:
        super().__init__()
        w = width

        def conv(cin: int, cout: int, stride: int) -> nn.Module:
            return spectral_norm(nn.Conv2d(cin, cout, 4, stride, padding=1 if stride == 2 else "same"))

        self.layers = nn.Sequential(
            conv(3 + condition_channels, w, 2), nn.LeakyReLU(0.2),
            conv(w, 2 * w, 2), nn.LeakyReLU(0.2),
            conv(2 * w, 4 * w, 2), nn.LeakyReLU(0.2),
            conv(4 * w, 4 * w, 1), nn.LeakyReLU(0.2),
            conv(4 * w, 1, 1),
        )

    def forward(self, image: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
        return self.layers(torch.cat([image, condition], dim=1))


def augment_pairs(image: torch.Tensor, condition: torch.Tensor,
                  generator: Optional[torch.Generator] = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Apply one of the 8 symmetries of the square to each (image, condition) pair (N×C×H×W, H = W)."""
    n = image.shape[0]
    draws = torch.randint(0, 8, (n,), generator=generator).tolist()
    out_image, out_condition = [], []
    for i, d in enumerate(draws):
        a, b = image[i], condition[i]
        if d >= 4:
            a, b = a.flip(-1), b.flip(-1)
        a, b = torch.rot90(a, d % 4, (-2, -1)), torch.rot90(b, d % 4, (-2, -1))
        out_image.append(a)
        out_condition.append(b)
    return torch.stack(out_image), torch.stack(out_condition)
