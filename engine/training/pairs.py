"""Training pairs for every stage after the autoencoder: (x_ae, rate) made on the fly from
originals by the frozen autoencoder, as the codec would decode them."""
from __future__ import annotations

import torch
from torch import Tensor

from engine.codec.autoencoder import HyperpriorAutoencoder
from engine.decoders.post_filter import PostFilter, post_filter_residual


def make_pairs(ae: HyperpriorAutoencoder, x: Tensor, generator: torch.Generator | None = None,
               post_filter: PostFilter | None = None,
               rate_range: tuple[float, float] = (0.0, 1.0)) -> tuple[Tensor, Tensor]:
    """(x_ae, rate): x_ae at a random rate per sample (uniform in ``rate_range``), rounded to 8 bits as the real decode
    delivers it, and those rates. With ``post_filter``, x_ae is then post-filtered (and rounded
    again), as the engine's autoencoder decode is.

    Always in fp32, also inside the trainer's bf16 autocast: the codec decodes in fp32, and
    bf16 pairs were measured 0.5–1.7 levels (mean) and up to 82 levels from it on validation
    crops (hyper-synthesis means rounding y differently, bf16 synthesis), a mismatch the
    size of the detail left to restore at high rates."""
    low, high = rate_range
    rate = (low + (high - low) * torch.rand(x.shape[0], generator=generator)).to(x.device)
    with torch.autocast(x.device.type, enabled=False), torch.no_grad():
        x_ae = torch.round(ae.reconstruct(x.float(), rate) * 255) / 255
        if post_filter is not None:
            filtered = 2 * x_ae - 1 + post_filter_residual(post_filter.net, x_ae, rate)
            x_ae = torch.round((filtered + 1).clamp(0, 2) * 127.5) / 255
    return x_ae, rate
