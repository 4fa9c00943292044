"""Checkerboard context model (He et al. 2021) on top of the mean-scale hyperprior.

Half the latent positions, the anchors ((row + column) even), are coded with the hyperprior's
means and scales alone. The other half are coded second, with means and scales refined from
the decoded anchors around them (which the decoder has by then) and the hyperprior's own
parameters. Two passes instead of Minnen 2018's position-by-position context, so decoding
stays two convolutions more than the hyperprior alone.

The refinement's last layer starts at zero: added to a trained autoencoder, the model starts
exactly at the hyperprior's rate and training can only take bits away."""
from __future__ import annotations

import torch
from torch import Tensor, nn


def anchor_mask(height: int, width: int, device: torch.device | str | None = None) -> Tensor:
    """(1, 1, height, width) bool, True at the anchors ((row + column) even)."""
    rows = torch.arange(height, device=device)[:, None]
    cols = torch.arange(width, device=device)[None, :]
    return ((rows + cols) % 2 == 0)[None, None]


class CheckerboardContext(nn.Module):
    """Refines (means, scales) at the non-anchor positions from the anchors' decoded values."""

    def __init__(self, channels: int, hidden: int = 320, kernel: int = 5) -> None:
        super().__init__()
        # Reads the anchor map only (non-anchors are zero in its input), so at a non-anchor
        # position it sees exactly what the decoder knows there.
        self.spatial = nn.Conv2d(channels, channels, kernel, padding=kernel // 2)
        self.fuse = nn.Sequential(nn.Conv2d(3 * channels, hidden, 1), nn.LeakyReLU(inplace=True),
                                  nn.Conv2d(hidden, hidden, 1), nn.LeakyReLU(inplace=True),
                                  nn.Conv2d(hidden, 2 * channels, 1))
        nn.init.zeros_(self.fuse[-1].weight)
        nn.init.zeros_(self.fuse[-1].bias)

    def forward(self, anchors: Tensor, means: Tensor, scales: Tensor) -> tuple[Tensor, Tensor]:
        """``anchors``: ŷ with every non-anchor position zeroed; ``means``/``scales``: the
        hyperprior's (scales positive). Returns the parameters to code with: the hyperprior's
        at the anchors, refined ones elsewhere."""
        anchor = anchor_mask(*anchors.shape[-2:], device=anchors.device)
        features = torch.cat([self.spatial(anchors * anchor), means, scales.log()], dim=1)
        delta_mean, delta_log_scale = self.fuse(features).chunk(2, dim=1)
        return (torch.where(anchor, means, means + delta_mean),
                torch.where(anchor, scales, scales * torch.exp(delta_log_scale)))
