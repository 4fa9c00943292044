"""Small random-init weights for tests and demos of the plumbing (never for quality)."""
from __future__ import annotations

from pathlib import Path

import torch

from .autoencoder import AutoencoderConfig, HyperpriorAutoencoder
from .weights import save_weights

TINY_AUTOENCODER = AutoencoderConfig(n=16, m=24, levels=3)


def write_tiny_weights(folder: str | Path, seed: int = 0, decoders: bool = True) -> Path:
    """Write a tiny autoencoder (and, if asked, tiny diffusion and flow decoders) to ``folder``."""
    folder = Path(folder)
    torch.manual_seed(seed)
    ae = HyperpriorAutoencoder(TINY_AUTOENCODER)
    ae.update_tables()
    save_weights(folder / "autoencoder.safetensors", ae, "autoencoder", TINY_AUTOENCODER.to_dict(),
                 {"model_id": f"tiny-test-{seed}", "validation": {"bpp@0": 0.05, "bpp@1": 1.0}})
    if decoders:
        from .score_decoder import tiny_decoder

        for kind in ("diffusion", "flow"):
            tiny_decoder(kind, seed=seed).save(folder / f"{kind}.safetensors")
    return folder
