"""A trained score-based decoder (diffusion or rectified flow) and its one job: refine x_ae.

    decoder = ScoreDecoder.load("assets/weights/flow.safetensors")
    x = decoder.refine(x_ae, steps=4, seed=1, on_step=show)

It owns the network, what the weights were trained with (TrainedFacts), the precision
policy, the tiling and the checks on user settings; the maths lives in diffusion.py and
flow.py."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from numbers import Integral
from pathlib import Path
from typing import Any, Literal, Optional

import numpy as np
import torch

from engine.decoders.diffusion import DEFAULT_RESIDUAL_SIGMA, sample_diffusion
from engine.decoders.flow import (
    DEFAULT_FLOW_SIGMA,
    FLOW_SHIFT_RANGE,
    Solver,
    StartNoise,
    sample_flow,
)
from engine.decoders.schedules import ShiftRange
from engine.decoders.tiling import (
    DEFAULT_OVERLAP,
    DEFAULT_TILE,
    Tile,
    composite,
    crop_tensor,
    pad_to_multiple,
    plan,
    tile_seed,
    to_uint8_image,
)
from engine.decoders.unet import ConditionalUNet, NetworkFn, UNetConfig
from engine.errors import ImageError, SettingsError, WeightsError
from engine.progress import CancelToken, StepCallback, StepInfo, check_cancel
from engine.weights import load_state, read_metadata, save_weights

DecoderKind = Literal["diffusion", "flow"]
KINDS: tuple[str, ...] = ("diffusion", "flow")
# What the network is conditioned on: g_s's output, or that output after the autoencoder's
# post-filter (an estimate of E[x | x_ae], engine/decoders/post_filter.py).
CONDITIONS: tuple[str, ...] = ("decoded", "post_filtered")
# How the network was trained: "regression" (v- / velocity-MSE: it predicts the mean of the detail)
# or "realism" (engine/training/realism_objective.py: each step's estimate is judged as a whole decode).
OBJECTIVES: tuple[str, ...] = ("regression", "realism")
MAX_STEPS = 1000


@dataclass(frozen=True)
class TrainedFacts:
    """What the weights were trained with; stored beside them and checked at sampling time."""

    shift_range: ShiftRange = field(default_factory=ShiftRange)  # diffusion: the shifts it trained on
    flow_sigma: StartNoise = StartNoise.constant(DEFAULT_FLOW_SIGMA)  # flow: start-noise σ in [-1, 1], by rate
    train_steps: int = 0  # optimiser steps the weights have seen
    crop: int = 256  # training crop size in pixels
    # std of the Gaussian prior around x_ae whose v / velocity the network corrects
    # (diffusion.prior_v, flow.prior_velocity); 0 = the network predicts everything
    residual_sigma: float = DEFAULT_RESIDUAL_SIGMA
    condition: str = "decoded"  # one of CONDITIONS
    objective: str = "regression"  # one of OBJECTIVES

    def __post_init__(self) -> None:
        if self.condition not in CONDITIONS:
            raise WeightsError(f"unknown decoder condition {self.condition!r}; expected one of {CONDITIONS}")
        if self.objective not in OBJECTIVES:
            raise WeightsError(f"unknown decoder objective {self.objective!r}; expected one of {OBJECTIVES}")

    @property
    def on_post_filtered(self) -> bool:
        """Whether the network refines the post-filtered decode rather than g_s's output."""
        return self.condition == "post_filtered"

    def to_dict(self) -> dict[str, Any]:
        return {"shift_range": [self.shift_range.low, self.shift_range.high],
                "flow_sigma": self.flow_sigma.to_json(), "train_steps": self.train_steps, "crop": self.crop,
                "residual_sigma": self.residual_sigma, "condition": self.condition, "objective": self.objective}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrainedFacts":
        try:
            low, high = data.get("shift_range", (0.0, 3.0))
            return cls(ShiftRange(float(low), float(high)),
                       StartNoise.from_json(data.get("flow_sigma", DEFAULT_FLOW_SIGMA)),
                       int(data.get("train_steps", 0)), int(data.get("crop", 256)),
                       # files from before the prior existed were trained without it
                       float(data.get("residual_sigma", 0.0)),
                       str(data.get("condition", "decoded")), str(data.get("objective", "regression")))
        except (TypeError, ValueError, SettingsError) as exc:
            raise WeightsError(f"unreadable decoder facts {data}: {exc}") from exc


def sampling_shift_range(kind: str, facts: TrainedFacts) -> ShiftRange:
    """The schedule shifts a ``kind`` decoder samples with: the diffusion decoder's trained range
    (each shift is a different set of logSNRs), any in FLOW_SHIFT_RANGE for the flow (a shift only
    moves its step times)."""
    return facts.shift_range if kind == "diffusion" else FLOW_SHIFT_RANGE


def check_settings(kind: str, facts: TrainedFacts, steps: int, shift: float, noise: float, realism: float,
                   solver: str, seed: int = 0) -> None:
    """Raise SettingsError naming the first setting outside its valid range for a ``kind`` decoder
    trained as ``facts`` say: needs no network, so a decode can refuse bad settings before any work."""
    if isinstance(seed, bool) or not isinstance(seed, Integral) or not 0 <= seed < 2 ** 63:
        raise SettingsError(f"seed must be a non-negative integer below 2**63, got {seed!r}")
    if isinstance(steps, bool) or not isinstance(steps, Integral) or not 1 <= steps <= MAX_STEPS:
        raise SettingsError(f"steps must be an integer in [1, {MAX_STEPS}], got {steps!r}")
    if not 0.0 <= noise <= 1.0:
        raise SettingsError(f"noise must be in [0, 1], got {noise:g}")
    if not 0.0 <= realism <= 1.0:
        raise SettingsError(f"realism must be in [0, 1], got {realism:g}")
    if solver not in ("euler", "heun"):
        raise SettingsError(f"unknown flow solver {solver!r}; use 'euler' or 'heun'")
    sampling_shift_range(kind, facts).check(shift)


def cpu_supports_bf16() -> bool:
    """Whether oneDNN has bf16 kernels here (AVX-512 or newer). On this project's CPU
    bf16 autocast + channels_last runs the UNet ~2.8× faster than plain fp32 (0.12 s vs
    0.33 s per 768×512 step on two threads; benchmarks/bench_decoder_step.py)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def network_call(net: ConditionalUNet, device: torch.device, fast: bool, rate: float | None = None) -> NetworkFn:
    """``net`` as the samplers call it, returning fp32: with ``fast``, bf16 autocast and
    channels_last (the net is converted in place; call this outside inference mode). ``rate``
    is passed on to a rate-conditioned network."""
    if fast:
        net.to(memory_format=torch.channels_last)

    def run(z: torch.Tensor, x_ae: torch.Tensor, level: torch.Tensor) -> torch.Tensor:
        if fast:
            z = z.contiguous(memory_format=torch.channels_last)
            x_ae = x_ae.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=fast):
            return net(z, x_ae, level, rate).float()

    return run


def padded(fn: NetworkFn, multiple: int) -> NetworkFn:
    """``fn`` on inputs of any size: padded to the network's size multiple, the output cropped back."""
    def run(z: torch.Tensor, x_ae: torch.Tensor, level: torch.Tensor) -> torch.Tensor:
        h, w = z.shape[-2:]
        return fn(pad_to_multiple(z, multiple), pad_to_multiple(x_ae, multiple), level)[..., :h, :w]

    return run


class ScoreDecoder:
    """A ConditionalUNet of one kind ("diffusion" | "flow") with its TrainedFacts."""

    def __init__(self, net: ConditionalUNet, kind: DecoderKind, facts: TrainedFacts = TrainedFacts()):
        if kind not in KINDS:
            raise WeightsError(f"unknown decoder kind {kind!r}; expected one of {KINDS}")
        self.net = net.eval()
        self.kind = kind
        self.facts = facts

    @property
    def needs_rate(self) -> bool:
        """Whether ``refine`` needs the rate x_ae was coded at: the network's input, or the
        flow's start noise, depends on it."""
        return self.net.config.rate_conditioning or (self.kind == "flow" and self.facts.flow_sigma.varies)

    @property
    def device(self) -> torch.device:
        return next(self.net.parameters()).device

    def save(self, path: str | Path) -> None:
        """Write the weights (bf16 safetensors) with the config and the trained facts."""
        save_weights(path, self.net, self.kind, self.net.config.to_dict(), extra=self.facts.to_dict())

    @classmethod
    def load(cls, path: str | Path, device: torch.device | str = "cpu") -> "ScoreDecoder":
        """Rebuild a decoder from a file written by ``save``."""
        kind, config, extra = read_metadata(path)
        if kind not in KINDS:
            raise WeightsError(f"{path} holds a {kind!r} model, not a score-based decoder")
        net = ConditionalUNet(UNetConfig.from_dict(config))
        load_state(path, net, kind)
        return cls(net.to(device), kind, TrainedFacts.from_dict(extra))

    def check_settings(self, steps: int, shift: float, noise: float, realism: float, solver: str,
                       seed: int = 0) -> None:
        """Raise SettingsError naming the first setting outside its valid range."""
        check_settings(self.kind, self.facts, steps, shift, noise, realism, solver, seed)

    def refine_image(self, x_ae: np.ndarray, base: np.ndarray | None = None, *, steps: int = 16,
                     shift: float = 0.0, noise: float = 0.0, seed: int = 0, realism: float = 1.0,
                     solver: Solver = "euler", on_step: Optional[StepCallback] = None,
                     cancel: Optional[CancelToken] = None, device: torch.device | str | None = None,
                     rate: float | None = None, tile: int = DEFAULT_TILE,
                     overlap: int = DEFAULT_OVERLAP) -> np.ndarray:
        """``refine`` of a uint8 H×W×3 image of any size (``base`` likewise), tile by tile
        (engine/decoders/tiling.py): each tile runs every step, then is composited into the uint8
        result, so memory is one tile's. ``on_step`` sees each tile's steps, numbered across the
        whole decode, with the tile's estimate and where it goes (StepInfo.region); ``cancel`` is
        checked before every step of every tile."""
        if x_ae.ndim != 3 or x_ae.shape[2] != 3 or x_ae.dtype != np.uint8:
            raise ImageError(f"expected a uint8 H×W×3 image, got {x_ae.dtype} {x_ae.shape}")
        if base is not None and base.shape != x_ae.shape:
            raise ImageError(f"the realism blend's base must have x_ae's shape {x_ae.shape}, got {base.shape}")
        self.check_settings(steps, shift, noise, realism, solver, seed)
        device = torch.device(device) if device is not None else self.device
        tiles = plan(*x_ae.shape[:2], tile, overlap)
        out = np.empty_like(x_ae)
        start = time.perf_counter()
        for t in tiles:
            check_cancel(cancel)

            def report(info: StepInfo, t: Tile = t) -> None:
                on_step(StepInfo(t.index * steps + info.index, len(tiles) * steps, info.estimate,
                                 time.perf_counter() - start, (t.top, t.left)))

            result = self.refine(crop_tensor(x_ae, t, device), steps, shift, noise, tile_seed(seed, t, len(tiles)),
                                 realism, solver, report if on_step is not None else None, cancel, device, rate,
                                 crop_tensor(base, t, device) if base is not None else None)
            composite(out, t, to_uint8_image(result))
        return out

    def refine(self, x_ae: torch.Tensor, steps: int = 16, shift: float = 0.0, noise: float = 0.0,
               seed: int = 0, realism: float = 1.0, solver: Solver = "euler",
               on_step: Optional[StepCallback] = None, cancel: Optional[CancelToken] = None,
               device: torch.device | str | None = None,
               rate: float | None = None, base: torch.Tensor | None = None) -> torch.Tensor:
        """Sample detail onto ``x_ae`` (1×3×H×W in [0, 1]), whole (``refine_image`` cuts a large image
        into tiles); returns 1×3×H×W in [0, 1] on x_ae's device.

        ``rate``: the autoencoder rate x_ae was coded at (the .hfd header's), which a
        rate-conditioned decoder needs (``needs_rate``) and any other ignores.

        diffusion: ``shift`` is the logSNR shift, ``noise`` the sampler noise γ (0 = DDIM,
        1 = DDPM). flow: ``noise`` is the fraction of the start noise redrawn before each step
        (0 = the ODE; see sample_flow), ``solver`` picks Euler or Heun, ``shift`` moves the step
        times toward the end (+) or the start (−) of the path (flow_times).
        The output (and every step's estimate) is realism·x + (1 − realism)·base, ``base``
        defaulting to x_ae; the engine passes the post-filtered x_ae, an estimate of E[x | x_ae]:
        blending a posterior sample with the MMSE estimate is what trades distortion for realism
        optimally (Freirich et al. 2021), whereas x_ae carries the quantiser's artefacts. A decoder
        trained on the post-filtered decode (``facts.on_post_filtered``) is conditioned on ``base``,
        which it then needs; x_ae only gives the shape. The same seed
        gives the same noise on any device (drawn on the CPU), so outputs differ across devices
        only by arithmetic."""
        if x_ae.ndim != 4 or x_ae.shape[:2] != (1, 3):
            raise ImageError(f"expected a 1×3×H×W image tensor, got shape {tuple(x_ae.shape)}")
        self.check_settings(steps, shift, noise, realism, solver, seed)
        if self.needs_rate and (rate is None or not 0.0 <= rate <= 1.0):
            raise SettingsError(f"this {self.kind} decoder depends on the rate: it needs the rate in [0, 1] "
                                f"that x_ae was coded at, got {rate}")
        steps, seed = int(steps), int(seed)
        device = torch.device(device) if device is not None else self.device
        self.net.to(device)  # outside inference mode, so the parameters stay trainable
        if base is not None and base.shape != x_ae.shape:
            raise ImageError(f"the realism blend's base must have x_ae's shape {tuple(x_ae.shape)}, "
                             f"got {tuple(base.shape)}")
        if self.facts.on_post_filtered and base is None:
            raise SettingsError(f"this {self.kind} decoder refines the post-filtered autoencoder decode: "
                                "pass it as base")
        decoded = x_ae.to(device, torch.float32)
        anchor = decoded if base is None else base.to(device, torch.float32)
        cond = anchor if self.facts.on_post_filtered else decoded
        fast = device.type == "cuda" or (device.type == "cpu" and cpu_supports_bf16())
        fn = padded(network_call(self.net, device, fast, rate), self.net.config.size_multiple)
        generator = torch.Generator().manual_seed(seed)
        start = time.perf_counter()

        def blend(x: torch.Tensor) -> torch.Tensor:
            return (realism * x + (1 - realism) * anchor).clamp(0.0, 1.0)

        def report(index: int, total: int, estimate: torch.Tensor) -> None:
            if on_step is not None:
                on_step(StepInfo(index, total, to_uint8_image(blend(estimate)), time.perf_counter() - start))

        with torch.inference_mode():
            if self.kind == "diffusion":
                x = sample_diffusion(fn, cond, steps, shift, noise, generator, report, cancel,
                                     self.facts.residual_sigma)
            else:
                sigma = self.facts.flow_sigma.at(float(rate) if rate is not None else 0.0)
                x = sample_flow(fn, cond, steps, sigma, noise, solver, generator, report, cancel,
                                self.facts.residual_sigma, shift)
            return blend(x).to(x_ae.device)
