"""Small random-init weights for tests and demos of the plumbing (never for quality), and crafted
.hfd files for fuzzing the decoder."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from engine.codec import bitstream
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


MUTATIONS = ("flip bits", "overwrite bytes", "cut a segment", "swap segments", "rate", "size", "colour",
             "size and payload")


def craft_hfd(data: bytes, rng: np.random.Generator) -> tuple[str, bytes]:
    """A crafted copy of a valid .hfd file that passes the file CRC: its payload and/or the header
    fields that change the decode altered (one of MUTATIONS, drawn by ``rng``), the segment lengths
    kept consistent and the file CRC recomputed, so only the decoder's own checks can catch it."""
    header, segments = bitstream.unpack(data)
    segments = [bytearray(s) for s in segments]
    kind = MUTATIONS[rng.integers(len(MUTATIONS))]
    fields: dict = {}

    def payload() -> None:
        segment = segments[rng.integers(len(segments))]
        if len(segment) == 0:
            segment.extend(rng.integers(0, 256, 4, dtype=np.uint8).tobytes())
        at = int(rng.integers(len(segment)))
        if rng.random() < 0.5:
            segment[at] ^= 1 << int(rng.integers(8))
        else:
            end = min(len(segment), at + int(rng.integers(1, 9)))
            segment[at:end] = rng.integers(0, 256, end - at, dtype=np.uint8).tobytes()

    if kind in ("flip bits", "overwrite bytes"):
        payload()
    elif kind == "cut a segment":
        segment = segments[rng.integers(len(segments))]
        del segment[int(rng.integers(len(segment) + 1)):]
    elif kind == "swap segments" and len(segments) > 1:
        i, j = rng.choice(len(segments), 2, replace=False)
        segments[i], segments[j] = segments[j], segments[i]
    elif kind == "rate":
        fields["rate"] = float(rng.random())
    elif kind in ("size", "size and payload"):
        fields["width"] = int(max(1, header.width + rng.integers(-64, 257)))
        fields["height"] = int(max(1, header.height + rng.integers(-64, 257)))
        if kind == "size and payload":
            payload()
    elif kind == "colour":
        fields["colour"] = "gray" if header.colour == "rgb" else "rgb"
    return kind, bitstream.pack(replace(header, **fields), [bytes(s) for s in segments])
