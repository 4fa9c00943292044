"""How a transmitted image is turned into pixels: the decode settings, as plain data.

Importing this needs no torch, so the command line can parse and check settings before it
loads a model."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

DecoderName = Literal["ae", "diffusion", "flow"]
# The refined decode a user gets unless they choose: the decoder trained for realism (MODEL_CARD.md).
DEFAULT_DECODER: DecoderName = "flow"


@dataclass(frozen=True)
class DecodeSettings:
    """How to turn a transmitted image into pixels. Bits are unaffected by all of it."""

    decoder: DecoderName = DEFAULT_DECODER
    steps: int = 16
    # logSNR shift, + = less noise: the diffusion schedule's (within its trained range) or the
    # flow's step times (flow.flow_times)
    shift: float = 0.0
    noise: float = 0.0  # sampler noise: 0 = deterministic (DDIM / the flow's ODE) .. 1 = DDPM / start noise redrawn each step
    seed: int = 0
    # 0 = autoencoder output, 1 = fully refined; linear blend in between. None: the weights'
    # default for the file's rate (ModelInfo.realism), resolved by ModelInfo.resolve.
    realism: float | None = 1.0
    solver: Literal["euler", "heun"] = "euler"  # flow only


# The DecodeSettings fields each decoder reads (the rest are ignored by it).
DECODER_SETTINGS: dict[str, tuple[str, ...]] = {
    "ae": (), "diffusion": ("steps", "shift", "noise", "seed", "realism"),
    "flow": ("steps", "shift", "noise", "seed", "realism", "solver")}
