"""Learned entropy models of the hyperprior autoencoder (Ballé et al. 2018; Minnen et
al. 2018 mean-scale).

Both models give differentiable likelihoods for training (uniform-noise relaxation) and
integer probability tables for the real coder. Tables are buffers built once by
``update_tables()`` and stored with the weights, so encoder and decoder share them."""
from __future__ import annotations

import copy
import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

LIKELIHOOD_BOUND = 1e-9
# Integer counts per table row: the range coder's own 24-bit precision. Every symbol of a
# row holds at least one count, so a near-certain symbol costs at least −log2(1 − 130/total)
# bits: 3·10⁻³ at 16 bits, which the mostly near-certain latents of a 0.1 bpp file added up
# to ~10 % of it; 10⁻⁵ at 24.
TABLE_TOTAL = 1 << 24


def _to_counts(pmf: Tensor, tail: Tensor) -> Tensor:
    """Float pmf rows (+ tail mass as escape) → int32 counts, every symbol at least 1."""
    probs = torch.cat([pmf, tail.unsqueeze(-1)], dim=-1).clamp_min(0).double()
    probs = probs / probs.sum(-1, keepdim=True)
    return (probs * (TABLE_TOTAL - probs.shape[-1])).floor().to(torch.int32) + 1


class FactorizedPrior(nn.Module):
    """Per-channel learned density for the hyper-latent z (Ballé 2018, appendix 6.1)."""

    def __init__(self, channels: int, radius: int = 48, filters: tuple[int, ...] = (3, 3, 3),
                 init_scale: float = 10.0) -> None:
        super().__init__()
        self.radius = radius
        dims = (1, *filters, 1)
        scale = init_scale ** (1 / (len(filters) + 1))
        self.matrices = nn.ParameterList()
        self.biases = nn.ParameterList()
        self.factors = nn.ParameterList()
        for i in range(len(filters) + 1):
            init = math.log(math.expm1(1 / scale / dims[i + 1]))
            self.matrices.append(nn.Parameter(torch.full((channels, dims[i + 1], dims[i]), init)))
            self.biases.append(nn.Parameter(torch.rand(channels, dims[i + 1], 1) - 0.5))
            if i < len(filters):
                self.factors.append(nn.Parameter(torch.zeros(channels, dims[i + 1], 1)))
        self.register_buffer("table", torch.zeros(channels, 2 * radius + 2, dtype=torch.int32))

    def _logits_cdf(self, x: Tensor) -> Tensor:
        """x: (C, 1, n) → logits of the cumulative density at x, same shape."""
        for i, (m, b) in enumerate(zip(self.matrices, self.biases)):
            x = torch.matmul(F.softplus(m), x) + b
            if i < len(self.factors):
                x = x + torch.tanh(self.factors[i]) * torch.tanh(x)
        return x

    def _interval_mass(self, values: Tensor) -> Tensor:
        """Probability of [v−½, v+½) for values shaped (C, 1, n)."""
        lower = self._logits_cdf(values - 0.5)
        upper = self._logits_cdf(values + 0.5)
        sign = -torch.sign(lower + upper).detach()  # evaluate in the flatter tail for accuracy
        return (torch.sigmoid(sign * upper) - torch.sigmoid(sign * lower)).abs()

    def likelihood(self, z: Tensor) -> Tensor:
        """z: (N, C, H, W) (noisy or rounded) → per-element likelihood."""
        n, c, h, w = z.shape
        flat = z.float().permute(1, 0, 2, 3).reshape(c, 1, -1)
        lik = self._interval_mass(flat).reshape(c, n, h, w).permute(1, 0, 2, 3)
        return lik.clamp_min(LIKELIHOOD_BOUND)

    @torch.no_grad()
    def update_tables(self) -> None:
        """Built on the CPU in float64 whatever device the model is on, so a file encoded
        where the model runs on a GPU decodes bit-exactly on a CPU-only machine."""
        c = self.table.shape[0]
        grid = torch.arange(-self.radius, self.radius + 1, dtype=torch.float64)
        exact = copy.deepcopy(self).cpu().double()
        pmf = exact._interval_mass(grid.expand(c, 1, -1)).squeeze(1)
        tail = (1 - pmf.sum(-1)).clamp_min(1e-9)
        self.table.copy_(_to_counts(pmf, tail))

    def channel_index(self, shape: torch.Size) -> np.ndarray:
        """Table row for every element of a (N, C, H, W) tensor: its channel."""
        n, c, h, w = shape
        return np.broadcast_to(np.arange(c).reshape(1, c, 1, 1), (n, c, h, w))


def _std_normal_cdf(x: Tensor) -> Tensor:
    return 0.5 * torch.erfc(-x / math.sqrt(2))


class GaussianConditional(nn.Module):
    """Gaussian likelihood of y given predicted mean and scale; coding quantises the
    scale to the smallest entry of a fixed log-spaced table that is not below it."""

    def __init__(self, scale_min: float = 0.11, scale_max: float = 256.0, levels: int = 64,
                 radius: int = 64) -> None:
        super().__init__()
        self.scale_min = scale_min
        self.radius = radius
        scales = torch.exp(torch.linspace(math.log(scale_min), math.log(scale_max), levels))
        self.register_buffer("scale_table", scales)
        self.register_buffer("table", torch.zeros(levels, 2 * radius + 2, dtype=torch.int32))

    def likelihood(self, y: Tensor, means: Tensor, scales: Tensor) -> Tensor:
        values = (y - means).abs()
        scales = scales.clamp_min(self.scale_min)
        upper = _std_normal_cdf((0.5 - values) / scales)
        lower = _std_normal_cdf((-0.5 - values) / scales)
        return (upper - lower).clamp_min(LIKELIHOOD_BOUND)

    def scale_index(self, scales: Tensor) -> Tensor:
        """The coding table of each scale (uint8, the table has at most 256 rows)."""
        idx = torch.bucketize(scales.double().cpu().clamp_min(self.scale_min).contiguous(),
                              self.scale_table.double().cpu())
        return idx.clamp_max(len(self.scale_table) - 1).to(torch.uint8)

    @torch.no_grad()
    def update_tables(self) -> None:
        grid = torch.arange(-self.radius, self.radius + 1, dtype=torch.float64)
        s = self.scale_table.double().cpu().unsqueeze(1)
        pmf = _std_normal_cdf((grid + 0.5) / s) - _std_normal_cdf((grid - 0.5) / s)
        tail = (1 - pmf.sum(-1)).clamp_min(1e-12)
        self.table.copy_(_to_counts(pmf, tail))
