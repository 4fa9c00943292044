"""Small random-init weights for tests and demos of the plumbing (never for quality)."""
from __future__ import annotations

from pathlib import Path

import torch

from engine.codec.autoencoder import AutoencoderConfig, HyperpriorAutoencoder
from engine.decoders.post_filter import PostFilter
from engine.decoders.score_decoder import ScoreDecoder
from engine.decoders.unet import ConditionalUNet, UNetConfig
from engine.weights import save_weights

TINY_AUTOENCODER = AutoencoderConfig(n=16, m=24, levels=3)
TINY_UNET = UNetConfig(base=8, mults=(1, 2), blocks=1, attention=False, groups=4, level_dim=16)


def write_tiny_weights(folder: str | Path, seed: int = 0, decoders: bool = True, context: bool = False,
                       post_filter: bool = False) -> Path:
    """Write a tiny autoencoder (and, if asked, tiny diffusion and flow decoders) to ``folder``;
    ``context`` gives it a checkerboard context model whose refinement is not the identity, and
    ``post_filter`` a post-filter that is not the identity either."""
    folder = Path(folder)
    torch.manual_seed(seed)
    ae = HyperpriorAutoencoder(TINY_AUTOENCODER)
    # Untrained latents are tiny (std ≈ 0.06) and would all round to zero; a wide gain spread
    # makes the file size grow with the rate, as it does for trained weights.
    with torch.no_grad():
        spread = torch.linspace(1.0, 5.0, TINY_AUTOENCODER.levels).unsqueeze(1)
        ae.log_gain.copy_(spread.expand_as(ae.log_gain))
        ae.log_inv_gain.copy_(-spread.expand_as(ae.log_inv_gain))
    if context:
        ae = ae.with_context()
        with torch.no_grad():
            torch.nn.init.normal_(ae.context.fuse[-1].weight, std=0.2)
    ae.update_tables()
    save_weights(folder / "autoencoder.safetensors", ae, "autoencoder", ae.config.to_dict(),
                 {"model_id": f"tiny-test-{seed}", "validation": {"bpp@0": 0.05, "bpp@1": 1.0}})
    if decoders:  # like the shipped ones, both decoders are told the rate x_ae was coded at
        for kind in ("diffusion", "flow"):
            ScoreDecoder(ConditionalUNet(TINY_UNET).with_rate_conditioning(), kind).save(
                folder / f"{kind}.safetensors")
    if post_filter:
        tiny = PostFilter.new(TINY_UNET)
        with torch.no_grad():
            torch.nn.init.normal_(tiny.net.head.weight, std=0.02)
        tiny.save(folder / "postfilter.safetensors")
    return folder
