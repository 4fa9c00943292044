"""The conditional UNet shared by the diffusion and the flow decoder.

    [z | x_ae] (6ch, H×W) ─ pixel-unshuffle ×2 ─ conv ─┬─ ResBlocks ─ down ─ … ─ ResBlock ─ (attention) ─ ResBlock
                                                       │                                        │
    v (3ch, H×W) ─ pixel-shuffle ×2 ─ conv ─ ResBlocks ┴──── (skip concatenations) ── up ─ … ──┘

The noisy image and the autoencoder reconstruction are stacked on channels; the noise
level (logSNR for diffusion, t for flow) enters every ResBlock as a per-channel scale and
shift of its normalised activations. Optionally the autoencoder's rate control enters the
same way (added to the level embedding): without it the network has to guess from x_ae how
much x_ae lacks, and one correction for every rate over-sharpens the high rates, where
x_ae lacks little. The space-to-depth stem runs the whole network at half resolution,
which cuts its cost about 4× on a CPU; optional self-attention runs only at the lowest
resolution, where it is cheap."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn

from engine.errors import WeightsError

# What the samplers and the tiler call: (z, x_ae, level [N]) -> N×3×H×W, images in [-1, 1].
NetworkFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class UNetConfig:
    """Shape of a ConditionalUNet; round-trips through a dict stored in weights metadata."""

    base: int = 32  # channels at the first (half-resolution) level
    mults: tuple[int, ...] = (1, 2, 2, 4)  # channel multiplier per level; each level halves H and W
    blocks: int = 2  # ResBlocks per encoder level (the decoder uses one more, for the skip)
    # Self-attention at the lowest resolution. Off by default: x_ae already fixes the
    # global structure, the decoder's job is local texture, and attention would tie the
    # output to the token count it was trained on (a 128-px crop is 8×8 tokens, a 512-px
    # sampling tile 32×32); without it the tile size only trades memory for speed.
    attention: bool = False
    head_dim: int = 64  # channels per attention head
    groups: int = 8  # GroupNorm groups
    level_dim: int = 128  # width of the noise-level embedding
    # Also condition on the rate ∈ [0, 1] the autoencoder coded x_ae at (the .hfd header's).
    rate_conditioning: bool = False

    @property
    def size_multiple(self) -> int:
        """Input H and W must be multiples of this (stem ×2, then one halving per extra level)."""
        return 2 ** len(self.mults)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "mults": list(self.mults)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "UNetConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise WeightsError(f"unknown UNet config keys {unknown}")
        values = dict(data)
        if "mults" in values:
            values["mults"] = tuple(int(m) for m in values["mults"])
        return cls(**values)


class LevelEmbedding(nn.Module):
    """Fourier features of a scalar, then an MLP.

    By default frequencies span 1/16 … 256 radians per unit, so one embedding resolves both
    a flow time t ∈ [0, 1] and a logSNR of tens of units. Computed in fp32 even under
    autocast: sin of arguments in the thousands is meaningless in bf16. ``zero_output``
    starts the embedding at 0, so adding it to a trained network changes nothing at first."""

    def __init__(self, dim: int, lowest: float = 1 / 16, highest: float = 256.0, zero_output: bool = False):
        super().__init__()
        half = dim // 2
        self.register_buffer("freqs", torch.logspace(math.log10(lowest), math.log10(highest), half),
                             persistent=False)
        self.mlp = nn.Sequential(nn.Linear(2 * half, dim), nn.SiLU(), nn.Linear(dim, dim))
        if zero_output:
            nn.init.zeros_(self.mlp[-1].weight)
            nn.init.zeros_(self.mlp[-1].bias)

    def forward(self, level: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device_type=level.device.type, enabled=False):
            arg = level.float()[:, None] * self.freqs[None, :]
            features = torch.cat([torch.cos(arg), torch.sin(arg)], dim=1)
        return self.mlp(features)


class ResBlock(nn.Module):
    """GroupNorm–SiLU–conv twice, the second norm modulated by the level (scale-shift)."""

    def __init__(self, cin: int, cout: int, level_dim: int, groups: int):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.film = nn.Linear(level_dim, 2 * cout)
        self.norm2 = nn.GroupNorm(groups, cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        nn.init.zeros_(self.conv2.weight)  # each block starts as the identity
        nn.init.zeros_(self.conv2.bias)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        scale, shift = self.film(F.silu(emb))[:, :, None, None].chunk(2, dim=1)
        h = self.norm2(h) * (1 + scale) + shift
        return self.skip(x) + self.conv2(F.silu(h))


class SelfAttention(nn.Module):
    """Multi-head self-attention over all positions, residual, output projection zero-initialised."""

    def __init__(self, channels: int, head_dim: int, groups: int):
        super().__init__()
        self.heads = max(1, channels // head_dim)
        self.norm = nn.GroupNorm(groups, channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.proj = nn.Conv2d(channels, channels, 1)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(n, 3, self.heads, c // self.heads, h * w).unbind(1)
        out = F.scaled_dot_product_attention(q.transpose(-1, -2), k.transpose(-1, -2), v.transpose(-1, -2))
        return x + self.proj(out.transpose(-1, -2).reshape(n, c, h, w))


class Downsample(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class Upsample(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class ConditionalUNet(nn.Module):
    """v(z, x_ae, level): predicts a 3-channel field (v for diffusion, velocity for flow).

    ``z`` and ``x_ae`` are N×3×H×W with H, W multiples of ``config.size_multiple``;
    ``level`` has shape [N]; ``rate`` (a number or shape [N]) is required by a
    rate-conditioned network and ignored by any other. The output layer is
    zero-initialised, so an untrained network predicts 0 everywhere."""

    def __init__(self, config: UNetConfig = UNetConfig()):
        super().__init__()
        self.config = config
        c, g, e = config.base, config.groups, config.level_dim
        widths = [c * m for m in config.mults]
        self.level_embedding = LevelEmbedding(e)
        # rate ∈ [0, 1]: wavelengths from 12.6 down to 0.1, fine enough for neighbouring λ levels
        self.rate_embedding = LevelEmbedding(e, 1 / 2, 64.0, zero_output=True) if config.rate_conditioning else None
        self.stem = nn.Conv2d(6 * 4, widths[0], 3, padding=1)

        self.down = nn.ModuleList()
        skip_widths = [widths[0]]
        width = widths[0]
        for i, w in enumerate(widths):
            for _ in range(config.blocks):
                self.down.append(ResBlock(width, w, e, g))
                width = w
                skip_widths.append(width)
            if i < len(widths) - 1:
                self.down.append(Downsample(width))
                skip_widths.append(width)

        self.mid1 = ResBlock(width, width, e, g)
        self.mid_attention = SelfAttention(width, config.head_dim, g) if config.attention else nn.Identity()
        self.mid2 = ResBlock(width, width, e, g)

        self.up = nn.ModuleList()
        for i, w in reversed(list(enumerate(widths))):
            for _ in range(config.blocks + 1):
                self.up.append(ResBlock(width + skip_widths.pop(), w, e, g))
                width = w
            if i > 0:
                self.up.append(Upsample(width))

        self.head_norm = nn.GroupNorm(g, width)
        self.head = nn.Conv2d(width, 3 * 4, 3, padding=1)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def with_rate_conditioning(self) -> "ConditionalUNet":
        """A rate-conditioned copy of this network that computes exactly what it does (the
        new rate embedding starts at zero), to be fine-tuned with the rate."""
        if self.config.rate_conditioning:
            raise ValueError("this UNet is already rate-conditioned")
        net = ConditionalUNet(replace(self.config, rate_conditioning=True))
        missing, unexpected = net.load_state_dict(self.state_dict(), strict=False)
        assert not unexpected and all(k.startswith("rate_embedding.") for k in missing), (missing, unexpected)
        return net.to(next(self.parameters()).device)

    def forward(self, z: torch.Tensor, x_ae: torch.Tensor, level: torch.Tensor,
                rate: torch.Tensor | float | None = None) -> torch.Tensor:
        m = self.config.size_multiple
        if z.shape[-2] % m or z.shape[-1] % m:
            raise ValueError(f"UNet input {tuple(z.shape[-2:])} is not a multiple of {m}")
        emb = self.level_embedding(level)
        if self.rate_embedding is not None:
            if rate is None:
                raise ValueError("this UNet is rate-conditioned: pass the autoencoder rate of x_ae")
            rate = torch.as_tensor(rate, dtype=torch.float32, device=z.device).reshape(-1).expand(z.shape[0])
            emb = emb + self.rate_embedding(rate)
        h = self.stem(F.pixel_unshuffle(torch.cat([z, x_ae], dim=1), 2))
        skips = [h]
        for layer in self.down:
            h = layer(h, emb) if isinstance(layer, ResBlock) else layer(h)
            skips.append(h)
        h = self.mid2(self.mid_attention(self.mid1(h, emb)), emb)
        for layer in self.up:
            h = layer(torch.cat([h, skips.pop()], dim=1), emb) if isinstance(layer, ResBlock) else layer(h)
        return F.pixel_shuffle(self.head(F.silu(self.head_norm(h))), 2)
