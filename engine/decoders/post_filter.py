"""The autoencoder's post-filter: a learned estimate of E[x | x_ae] applied after g_s, at no cost in bits.

g_s minimises MSE, but with 0.88 M parameters it leaves error that a larger network can still
predict from x_ae alone (ringing and blur around edges, most at low rates). The post-filter is a
rate-conditioned ConditionalUNet (4.4 M) asked for that residual and nothing else:

    x̂ = x_ae + f(x_ae, rate),   trained by MSE against x on pairs from the frozen autoencoder.

Its inputs are laid out as the flow decoder's are at t = 0 with no start noise (z = condition =
x_ae), the point where the flow's velocity is trained toward E[x − x_ae | x_ae]. So it starts
from the flow's weights, which already make a fair post-filter, and is fine-tuned for that one
point. It runs in fp32: bf16 would cost more on nearly flat photos than the filter gains."""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch
from torch import Tensor, nn

from engine.decoders.score_decoder import ScoreDecoder
from engine.decoders.tiling import (
    composite,
    crop_tensor,
    pad_to_multiple,
    plan,
    to_uint8_image,
)
from engine.decoders.unet import ConditionalUNet, UNetConfig
from engine.errors import ImageError, SettingsError, WeightsError
from engine.progress import CancelToken, check_cancel
from engine.weights import load_state, read_metadata, save_weights

KIND = "postfilter"


def post_filter_residual(net: nn.Module, x_ae: Tensor, rate: Tensor | float) -> Tensor:
    """f(x_ae, rate) in the [-1, 1] domain (add it to 2·x_ae − 1); ``x_ae`` N×3×H×W in [0, 1]."""
    cond = 2 * x_ae - 1
    level = torch.zeros(x_ae.shape[0], device=x_ae.device)
    return net(cond, cond, level, rate=rate).float()


def post_filter_loss(net: nn.Module, x: Tensor, x_ae: Tensor, rate: Tensor) -> Tensor:
    """Mean squared error of the filtered x_ae against x, in the [-1, 1] domain."""
    filtered = 2 * x_ae - 1 + post_filter_residual(net, x_ae, rate)
    return torch.mean((filtered - (2 * x - 1)) ** 2)


@dataclass(frozen=True)
class PostFilterFacts:
    """What the weights were trained with, stored beside them."""

    train_steps: int = 0
    crop: int = 128
    init: str = ""  # what training started from ("" = random)

    def to_dict(self) -> dict[str, Any]:
        return {"train_steps": self.train_steps, "crop": self.crop, "init": self.init}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "PostFilterFacts":
        try:
            return cls(int(data.get("train_steps", 0)), int(data.get("crop", 128)), str(data.get("init", "")))
        except (TypeError, ValueError) as exc:
            raise WeightsError(f"post-filter facts are malformed: {exc}") from exc


class PostFilter:
    """A trained post-filter: ``apply(x_ae, rate)`` returns the filtered image."""

    def __init__(self, net: ConditionalUNet, facts: PostFilterFacts = PostFilterFacts()) -> None:
        if not net.config.rate_conditioning:
            raise WeightsError("a post-filter network must be rate-conditioned")
        self.net = net.eval()
        self.facts = facts

    @classmethod
    def new(cls, config: UNetConfig = UNetConfig()) -> "PostFilter":
        """An untrained post-filter (made rate-conditioned): its zero-initialised head makes it the identity."""
        return cls(ConditionalUNet(replace(config, rate_conditioning=True)))

    @classmethod
    def from_flow(cls, flow: ScoreDecoder) -> "PostFilter":
        """The flow decoder's network as a post-filter (one Euler step from x_ae, no start noise)."""
        if flow.kind != "flow" or not flow.net.config.rate_conditioning or flow.facts.residual_sigma:
            raise WeightsError("only a rate-conditioned flow decoder without a residual prior can start "
                               "a post-filter")
        return cls(flow.net, PostFilterFacts(init=f"flow decoder ({flow.facts.train_steps} steps)"))

    @classmethod
    def start_from(cls, path: Optional[Path]) -> "PostFilter":
        """What training starts from: a post-filter or flow decoder file, or nothing (identity)."""
        if path is None:
            return cls.new()
        kind = read_metadata(path)[0]
        if kind == KIND:
            return cls.load(path)
        if kind == "flow":
            return cls.from_flow(ScoreDecoder.load(path))
        raise WeightsError(f"{path} holds a {kind!r} model; a post-filter starts from a post-filter or a flow decoder")

    def save(self, path: str | Path) -> None:
        save_weights(path, self.net, KIND, self.net.config.to_dict(), extra=self.facts.to_dict())

    @classmethod
    def load(cls, path: str | Path, device: torch.device | str = "cpu") -> "PostFilter":
        kind, config, extra = read_metadata(path)
        if kind != KIND:
            raise WeightsError(f"{path} holds a {kind!r} model, not a post-filter")
        net = ConditionalUNet(UNetConfig.from_dict(config))
        load_state(path, net, KIND)
        return cls(net.to(device).float(), PostFilterFacts.from_dict(extra))

    @torch.inference_mode()
    def apply_image(self, x_ae: np.ndarray, rate: float, cancel: Optional[CancelToken] = None) -> np.ndarray:
        """Filter a uint8 H×W×3 autoencoder decode coded at ``rate``; returns uint8 H×W×3. Any size:
        tile by tile (engine/decoders/tiling.py), with memory bounded by one tile."""
        if x_ae.ndim != 3 or x_ae.shape[2] != 3 or x_ae.dtype != np.uint8:
            raise ImageError(f"expected a uint8 H×W×3 image, got {x_ae.dtype} {x_ae.shape}")
        if not 0.0 <= rate <= 1.0:
            raise SettingsError(f"rate must be in [0, 1], got {rate:g}")
        device = next(self.net.parameters()).device
        multiple = self.net.config.size_multiple
        out = np.empty_like(x_ae)
        for tile in plan(*x_ae.shape[:2]):
            check_cancel(cancel)
            cond = 2 * crop_tensor(x_ae, tile, device) - 1
            h, w = cond.shape[-2:]
            padded = pad_to_multiple(cond, multiple)
            residual = self.net(padded, padded, torch.zeros(1, device=device), rate=rate).float()[..., :h, :w]
            composite(out, tile, to_uint8_image((cond + residual + 1) / 2))
        return out
