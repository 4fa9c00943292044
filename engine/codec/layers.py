"""Building blocks of the autoencoder's transforms."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class SimplifiedGDN(nn.Module):
    """Divisive normalisation y = x / (β + γ·|x|) (Johnston et al. 2019's simplified GDN);
    ``inverse=True`` multiplies instead (IGDN) for the synthesis transform."""

    def __init__(self, channels: int, inverse: bool = False) -> None:
        super().__init__()
        self.inverse = inverse
        self.beta = nn.Parameter(torch.ones(channels))
        self.gamma = nn.Parameter(0.1 * torch.eye(channels).view(channels, channels, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        # β ≥ 1e-3 and γ ≥ 0 keep the normaliser positive and the transform invertible-ish.
        norm = F.conv2d(x.abs(), self.gamma.clamp_min(0).to(x.dtype), self.beta.clamp_min(1e-3).to(x.dtype))
        return x * norm if self.inverse else x / norm


def conv(cin: int, cout: int, kernel: int = 5, stride: int = 2) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, kernel, stride=stride, padding=kernel // 2)


def deconv(cin: int, cout: int, kernel: int = 5, stride: int = 2) -> nn.ConvTranspose2d:
    return nn.ConvTranspose2d(cin, cout, kernel, stride=stride, padding=kernel // 2,
                              output_padding=stride - 1)
