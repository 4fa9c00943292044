"""The engine's public API: the one surface the viewer, the CLI and scripts use.

    engine = Engine()                                  # shipped weights, CUDA if present
    enc = engine.encode(rgb, bpp=0.2)                  # -> Encoded (the whole .hfd file)
    shown = engine.decode_ae(enc.data)                 # autoencoder-only decode (post-filtered)
    x_ae = engine.decode_ae(enc.data, post_filter=False)   # g_s alone: what refine takes
    x = engine.refine(x_ae, DecodeSettings("flow", steps=4), rate=enc.rate, on_step=cb, cancel=tok)

Images cross this boundary as numpy uint8 arrays of shape H×W×3 (RGB). Besides Engine, a user
interface needs a few plain functions, offered here so that it imports this one module:
``load_image`` / ``save_png`` / ``atomic_write_bytes`` (any picture in, PNG or bytes out without
a half-written file), ``match_classical`` (a JPEG, WebP or AVIF file of at most a given size),
``psnr`` and ``budget_scores`` (PSNR, MS-SSIM, ST-LPIPS at a bounded cost), and the settings,
progress and error types."""
from __future__ import annotations

import functools
import json
import math
import os
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from engine import memory
from engine.codec import bitstream
from engine.codec.autoencoder import (
    AutoencoderConfig,
    HyperpriorAutoencoder,
    Latents,
    pad_to_stride,
)
from engine.codec.classical import CODECS, ClassicalResult  # noqa: F401  (for UIs)
from engine.codec.classical import match_size as match_classical  # noqa: F401  (for UIs)
from engine.codec.images import (  # noqa: F401  (for UIs)
    MAX_PIXELS,
    LoadedImage,
    atomic_write_bytes,
    load_image,
    save_png,
)
from engine.codec.latent_optimisation import DEFAULT_STEPS as DEFAULT_OPTIMISE_STEPS  # noqa: F401  (for UIs)
from engine.codec.latent_optimisation import ProgressCallback as OptimiseCallback
from engine.codec.latent_optimisation import optimise_latents
from engine.decoders.flow import StartNoise
from engine.decoders.post_filter import PostFilter
from engine.decoders.realism_schedule import RealismSchedule
from engine.decoders.score_decoder import (
    KINDS,
    ScoreDecoder,
    TrainedFacts,
    check_settings,
    cpu_supports_bf16,
    sampling_shift_range,
)
from engine.errors import HfdError, ImageError, SettingsError, WeightsError
from engine.evaluation.metrics import Scores, budget_scores, psnr  # noqa: F401  (for UIs)
from engine.progress import CancelToken, StepInfo
from engine.settings import DEFAULT_DECODER, DecodeSettings  # noqa: F401  (for UIs)
from engine.weights import file_hash, load_state, read_metadata


@dataclass(frozen=True)
class Encoded:
    """One encoded image: ``data`` is the complete .hfd file."""

    data: bytes
    width: int
    height: int
    rate: float  # the raw rate control in [0, 1] that produced it

    # The bpp this image's files span, from the lowest rate to the highest, when the encode found
    # out on the way (a search for a bpp codes both ends first); None otherwise.
    reach: tuple[float, float] | None = None

    @property
    def nbytes(self) -> int:
        return len(self.data)

    @property
    def bpp(self) -> float:
        return len(self.data) * 8 / (self.width * self.height)


@dataclass(frozen=True)
class ModelInfo:
    """Facts about the loaded weights, for UIs and reports."""

    model_id: str
    weights_hash: str
    rate_range: tuple[float, float]
    bpp_range: tuple[float, float]  # typical bpp at the two ends of rate_range on photos
    decoders: tuple[str, ...]  # which of "ae", "diffusion", "flow" have weights
    shift_ranges: dict[str, tuple[float, float]] = field(default_factory=dict)  # refining decoder → its shifts
    defaults: dict[str, DecodeSettings] = field(default_factory=dict)
    card: str = ""  # the model card text
    decoder_hashes: dict[str, str] = field(default_factory=dict)  # kind → file hash, like weights_hash
    flow_sigma: StartNoise | None = None  # the flow's trained start-noise σ in [-1, 1]; None: no flow
    realism: dict[str, RealismSchedule] = field(default_factory=dict)  # decoder → default realism by rate
    post_filter_hash: str | None = None  # the autoencoder's post-filter file, like weights_hash; None: none
    # decoder → what its network is conditioned on: "decoded" (g_s's output) or "post_filtered"
    decoder_conditions: dict[str, str] = field(default_factory=dict)

    def refines_post_filtered(self, decoder: str) -> bool:
        """Whether ``decoder`` refines (and the flow starts from) the post-filtered decode."""
        return self.decoder_conditions.get(decoder) == "post_filtered"

    def refines_text(self, decoder: str) -> str:
        """What ``decoder`` starts from, in words, for UIs."""
        if self.refines_post_filtered(decoder):
            return "the post-filtered autoencoder decode"
        return "the autoencoder's unfiltered output (g_s)"

    def resolve(self, settings: DecodeSettings, rate: float) -> DecodeSettings:
        """``settings`` with a default realism (None) replaced by the decoder's schedule at ``rate``
        (the file's, from its header); anything else is returned unchanged."""
        return _resolve_realism(settings, self.realism, rate)

    def settings_record(self, settings: DecodeSettings) -> dict:
        """``settings`` as JSON-ready fields, a default realism written as the schedule it follows
        (a number or [[rate, realism], ...]), so a record says what was decoded."""
        record = asdict(settings)
        if settings.realism is None:
            record["realism"] = _schedule(self.realism, settings.decoder).to_json()
        return record


def _schedule(schedules: dict[str, RealismSchedule], decoder: str) -> RealismSchedule:
    """``decoder``'s default realism; full refinement for a decoder the defaults do not name."""
    return schedules.get(decoder, RealismSchedule.constant(1.0))


def _resolve_realism(settings: DecodeSettings, schedules: dict[str, RealismSchedule], rate: float) -> DecodeSettings:
    if settings.realism is not None or settings.decoder == "ae":
        return settings
    return replace(settings, realism=_schedule(schedules, settings.decoder).at(rate))


StepCallback = Callable[[StepInfo], None]
# The --bpp search stops once the file is within this fraction below the target, or once the
# rate bracket is narrower than RATE_RESOLUTION (far below one byte's effect).
RATE_SEARCH_TOLERANCE = 0.001
RATE_RESOLUTION = 2.0 ** -14
RATE_SEARCH_ITERATIONS = 16
# An optimised re-encode aims this fraction under the bpp budget: overshooting it wastes the re-encode.
REFILL_MARGIN = 0.01
REFILL_PASSES = 2  # optimised re-encodes after the first, at most, to fill a --bpp budget
# Used when the weights folder has no decode_defaults.json (chosen from `hfd eval --sweep` runs).
FALLBACK_DEFAULTS = {
    "diffusion": {"steps": 16, "shift": 1.0, "noise": 0.0},
    "flow": {"steps": 4, "shift": 0.0, "noise": 0.25, "solver": "euler"},
}


def read_decode_defaults(path: Path, kinds: tuple[str, ...]
                         ) -> tuple[dict[str, DecodeSettings], dict[str, RealismSchedule]]:
    """Each decoder's default settings from ``path`` (FALLBACK_DEFAULTS for a decoder or setting it
    does not name: a setting newer than the file keeps the behaviour the file was chosen with) and
    its default realism by rate. The settings' realism is None: it depends on the file."""
    try:
        stored = json.loads(path.read_text()) if path.exists() else {}
        settings, schedules = {}, {}
        for kind in kinds:
            entry = {**FALLBACK_DEFAULTS[kind], **stored.get(kind, {})}
            schedules[kind] = RealismSchedule.from_json(entry.pop("realism", 1.0))
            settings[kind] = DecodeSettings(decoder=kind, realism=None, **entry)
    except (OSError, ValueError, TypeError, AttributeError, SettingsError) as exc:
        raise WeightsError(f"unreadable decode defaults in {path}: {exc}") from exc
    return settings, schedules


def default_weights_dir() -> Path:
    """``$HFD_WEIGHTS`` if set, else the ``assets/weights`` folder shipped with the project."""
    env = os.environ.get("HFD_WEIGHTS")
    return Path(env) if env else Path(__file__).resolve().parent.parent / "assets" / "weights"


def devices() -> tuple[str, ...]:
    """The device choices this machine offers: "auto" and "cpu", and "cuda" where torch sees a GPU."""
    return ("auto", "cpu", "cuda") if torch.cuda.is_available() else ("auto", "cpu")


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise SettingsError("device 'cuda' was asked for, but no CUDA device is available")
    if device not in ("cpu", "cuda"):
        raise SettingsError(f"unknown device {device!r} (choose auto, cpu or cuda)")
    return torch.device(device)


def check_rgb(rgb: np.ndarray) -> None:
    if not isinstance(rgb, np.ndarray) or rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3 \
            or 0 in rgb.shape:
        raise SettingsError(f"expected a uint8 H×W×3 image, got {getattr(rgb, 'dtype', type(rgb))} "
                            f"{getattr(rgb, 'shape', '')}")


def to_tensor(rgb: np.ndarray) -> torch.Tensor:
    """uint8 H×W×3 → float (1,3,H,W) in [0,1]."""
    check_rgb(rgb)
    return torch.from_numpy(np.array(rgb, copy=True)).permute(2, 0, 1)[None].float().div(255)


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """float (1,3,H,W) in [0,1] → uint8 H×W×3."""
    return x[0].float().clamp(0, 1).mul(255).round().byte().permute(1, 2, 0).cpu().numpy()


class Engine:
    """Loads the shipped models once and offers encode / decode / refine.

    The autoencoder's weights hash identifies the bitstream; a file written by other weights
    is refused with ModelMismatchError. Decoders without weights are simply not offered."""

    def __init__(self, weights_dir: str | Path | None = None, device: str = "auto") -> None:
        self.weights_dir = Path(weights_dir) if weights_dir is not None else default_weights_dir()
        self.device = resolve_device(device)
        ae_path = self.weights_dir / "autoencoder.safetensors"
        if not ae_path.exists():
            raise WeightsError(f"no autoencoder weights at {ae_path}")
        _, config, self._ae_extra = read_metadata(ae_path)
        self.autoencoder = HyperpriorAutoencoder(AutoencoderConfig(**config))
        load_state(ae_path, self.autoencoder, "autoencoder")
        self.autoencoder.update_tables()
        self.autoencoder.eval().to(self.device)
        default_id = f"hfd-ae-{config['n']}x{config['m']}" + ("-ctx" if config.get("context") else "")
        self.model_id = self._ae_extra.get("model_id", default_id)
        self.weights_hash = file_hash(ae_path)
        # Decoders load on first use (compress and autoencoder-only decodes never need them);
        # their trained facts come from the file headers now, for ``info``.
        self._decoder_paths = {kind: self.weights_dir / f"{kind}.safetensors" for kind in KINDS
                               if (self.weights_dir / f"{kind}.safetensors").exists()}
        self._decoder_facts = {kind: TrainedFacts.from_dict(read_metadata(path)[2])
                               for kind, path in self._decoder_paths.items()}
        self._decoders: dict[str, ScoreDecoder] = {}
        self._post_filter_path = self.weights_dir / "postfilter.safetensors"
        self._decode_defaults, self._realism = read_decode_defaults(self.weights_dir / "decode_defaults.json",
                                                                    self.decoder_kinds)
        # bf16 + channels_last is ~2.7× faster than fp32 on GPUs and on CPUs with bf16 kernels
        # (AVX-512); elsewhere bf16 would be emulated and slower, so fp32 stays.
        self._fast = self.device.type == "cuda" or cpu_supports_bf16()
        if self._fast:
            self.autoencoder.to(memory_format=torch.channels_last)

    @property
    def decoder_kinds(self) -> tuple[str, ...]:
        """The score-based decoders this weights folder has ("diffusion", "flow")."""
        return tuple(self._decoder_paths)

    def decoder(self, kind: str) -> ScoreDecoder:
        """The loaded ``kind`` decoder (loaded on the first call)."""
        if kind not in self._decoder_paths:
            raise SettingsError(f"no weights for the {kind!r} decoder in {self.weights_dir}")
        if self._decoder_facts[kind].on_post_filtered and not self._post_filter_path.exists():
            raise WeightsError(f"the {kind} decoder in {self.weights_dir} refines the post-filtered decode, "
                               f"but the folder has no postfilter.safetensors")
        if kind not in self._decoders:
            self._decoders[kind] = ScoreDecoder.load(self._decoder_paths[kind], device=self.device)
        return self._decoders[kind]

    # ----- facts -----------------------------------------------------------------------
    @property
    def info(self) -> ModelInfo:
        val = self._ae_extra.get("validation", {})
        bpp_range = (float(val.get("bpp@0", 0.05)), float(val.get("bpp@1", 1.0)))
        shift_ranges = {kind: sampling_shift_range(kind, facts).bounds for kind, facts in self._decoder_facts.items()}
        defaults = {"ae": DecodeSettings(decoder="ae", steps=1), **self._decode_defaults}
        card_path = self.weights_dir / "MODEL_CARD.md"
        return ModelInfo(model_id=self.model_id, weights_hash=self.weights_hash, rate_range=(0.0, 1.0),
                         bpp_range=bpp_range, decoders=("ae", *self.decoder_kinds),
                         shift_ranges=shift_ranges, defaults=defaults,
                         card=card_path.read_text() if card_path.exists() else "",
                         decoder_hashes=dict(self._decoder_hashes),
                         flow_sigma=self._decoder_facts["flow"].flow_sigma if "flow" in self._decoder_facts else None,
                         realism=dict(self._realism),
                         post_filter_hash=self._post_filter_hash,
                         decoder_conditions={kind: facts.condition for kind, facts in self._decoder_facts.items()})

    def settings_for(self, decoder: str, rate: float, **overrides: object) -> DecodeSettings:
        """``decoder``'s default settings with ``overrides`` applied and a default realism resolved
        for a file coded at ``rate``: what ``decode`` will run, named before it runs. Unlike
        ``info`` it hashes no weights files, so one-shot tools stay quick."""
        base = self._decode_defaults.get(decoder, DecodeSettings(decoder=decoder))
        return _resolve_realism(replace(base, **overrides), self._realism, rate)

    @functools.cached_property
    def _decoder_hashes(self) -> dict[str, str]:
        """Hashed on first use: compress and decompress never need them."""
        return {kind: file_hash(path) for kind, path in self._decoder_paths.items()}

    @functools.cached_property
    def post_filter(self) -> PostFilter | None:
        """The autoencoder's post-filter, loaded on first use (compress never needs it); None when
        the weights folder has none."""
        path = self._post_filter_path
        return PostFilter.load(path, self.device) if path.exists() else None

    @functools.cached_property
    def _post_filter_hash(self) -> str | None:
        return file_hash(self._post_filter_path) if self._post_filter_path.exists() else None

    # ----- encode ----------------------------------------------------------------------
    def encode(self, rgb: np.ndarray, *, rate: float | None = None, bpp: float | None = None,
               colour: str = "rgb", optimise_steps: int = 0,
               on_optimise_step: OptimiseCallback | None = None, cancel: CancelToken | None = None) -> Encoded:
        """Encode to a complete .hfd file at ``rate`` ∈ [0,1], or at the highest rate whose
        real file stays at or below ``bpp`` (bits per pixel, counting every byte).

        ``optimise_steps`` > 0 refines the latents for this image by that many gradient steps
        (``latent_optimisation``): smaller files at the same quality, decoded as usual, for
        about 0.13 s a step per 0.2 MP on a 2-core CPU (with ``bpp``, up to three times the
        steps: see ``_optimised_at_bpp``). ``on_optimise_step(done, total)`` reports progress.
        ``cancel`` is checked between tiles and between the codings of a bpp search."""
        if (rate is None) == (bpp is None):
            raise SettingsError("give exactly one of rate or bpp")
        if type(optimise_steps) is not int or optimise_steps < 0:
            raise SettingsError(f"optimise_steps must be a whole number ≥ 0, got {optimise_steps!r}")
        check_rgb(rgb)
        h, w = rgb.shape[:2]
        if max(h, w) > bitstream.MAX_SIDE or h * w > MAX_PIXELS:
            raise ImageError(f"a {w}×{h} image is over the .hfd limits ({bitstream.MAX_SIDE} px a side, "
                             f"{MAX_PIXELS / 1e6:.0f} MP)")
        if rate is not None and not 0.0 <= rate <= 1.0:
            raise SettingsError(f"rate {rate} is outside [0, 1]")
        if bpp is not None and not (math.isfinite(bpp) and bpp > 0):
            raise SettingsError(f"target bpp must be positive, got {bpp}")
        memory.require("optimise" if optimise_steps else "compress", h, w)
        with torch.inference_mode(), self._oom_guard(h, w):
            y = self.autoencoder.analyze_image(rgb, self.device, self._fast, cancel)
            encoded = (self._pack(y, rate, w, h, colour, cancel) if rate is not None
                       else self._encode_at_bpp(y, bpp, w, h, colour, cancel))
        if optimise_steps == 0:
            return encoded
        with self._oom_guard(h, w):
            xp = pad_to_stride(to_tensor(rgb)).to(self.device)
            if self._fast:
                xp = xp.contiguous(memory_format=torch.channels_last)
            y = y.to(self.device)
            if rate is not None:
                return self._pack_optimised(xp, y, encoded.rate, w, h, colour, optimise_steps, on_optimise_step)
            return self._optimised_at_bpp(xp, y, encoded, bpp, colour, optimise_steps, on_optimise_step)

    def _pack_optimised(self, xp: torch.Tensor, y: torch.Tensor, rate: float, w: int, h: int, colour: str,
                        steps: int, on_step: OptimiseCallback | None) -> Encoded:
        rate = float(np.float32(rate))  # as _pack: code with the header's float32 value
        with self._autocast():  # bf16 where the device has it: twice as fast on this CPU, as good
            found = optimise_latents(self.autoencoder, xp, y, rate, (h, w), steps=steps, on_step=on_step)
        with torch.inference_mode():
            latents = self.autoencoder.code_gained(found.y, found.z_symbols, rate, (h, w))
        return self._pack_latents(latents, rate, w, h, colour)

    def _optimised_at_bpp(self, xp: torch.Tensor, y: torch.Tensor, encoded: Encoded, bpp: float, colour: str,
                          steps: int, on_step: OptimiseCallback | None) -> Encoded:
        """Optimised latents at the rate the bpp search found, which come out smaller than its
        file (the point of optimising), then up to REFILL_PASSES more at rates aimed to fill the
        budget again; the largest that fits (or the unoptimised file if none does) is returned."""
        w, h = encoded.width, encoded.height
        total = (1 + REFILL_PASSES) * steps

        def report(offset: int) -> OptimiseCallback | None:
            """Progress of one pass as a share of all of them."""
            return None if on_step is None else (lambda done, _: on_step(offset + done, total))

        first = self._pack_optimised(xp, y, encoded.rate, w, h, colour, steps, report(0))
        target = bpp * w * h / 8
        aim = target * (1 - REFILL_MARGIN)
        best, over = (first, None) if first.nbytes <= target else (encoded, first)
        if best is first and encoded.rate < 1.0 and first.nbytes < target * (1 - RATE_SEARCH_TOLERANCE):
            # Optimising saved this fraction of the plain file's bytes; at a nearby rate it saves about
            # as much, so the plain search for the budget divided by it finds the rate to aim at.
            with torch.inference_mode():
                rate = self._encode_at_bpp(y, aim * 8 / (w * h) * encoded.nbytes / first.nbytes, w, h, colour).rate
            for attempt in range(REFILL_PASSES):
                candidate = self._pack_optimised(xp, y, rate, w, h, colour, steps, report((1 + attempt) * steps))
                if candidate.nbytes > target:
                    over = candidate
                elif candidate.nbytes > best.nbytes:
                    best = candidate
                if over is None or best.nbytes >= aim * (1 - REFILL_MARGIN):
                    break
                # Overshot: aim between the largest fit and the overshoot, log bytes linear in the rate.
                rate = best.rate + (over.rate - best.rate) * np.log(aim / best.nbytes) / np.log(over.nbytes / best.nbytes)
        if on_step is not None:
            on_step(total, total)
        return best

    def _pack(self, y: torch.Tensor, rate: float, w: int, h: int, colour: str,
              cancel: CancelToken | None = None) -> Encoded:
        rate = float(np.float32(rate))  # the header stores float32: code with exactly that value
        return self._pack_latents(self.autoencoder.code_latents(y, rate, (h, w), cancel), rate, w, h, colour)

    def _pack_latents(self, latents: Latents, rate: float, w: int, h: int, colour: str) -> Encoded:
        crc = bitstream.sealed_checksum(latents.symbols_crc, self.model_id, self.weights_hash, rate, w, h, colour)
        header = bitstream.HfdHeader(model_id=self.model_id, weights_hash=self.weights_hash, rate=rate,
                                     width=w, height=h, colour=colour, latent_crc=crc)
        return Encoded(bitstream.pack(header, latents.segments), w, h, rate)

    def _encode_at_bpp(self, y: torch.Tensor, bpp: float, w: int, h: int, colour: str,
                       cancel: CancelToken | None = None) -> Encoded:
        if not bpp > 0:
            raise SettingsError(f"target bpp must be positive, got {bpp}")
        best = self._pack(y, 0.0, w, h, colour, cancel)
        if best.bpp > bpp:
            raise SettingsError(f"{bpp:g} bpp is below the lowest rate of this model for this image "
                                f"({best.bpp:.4f} bpp)")
        top = self._pack(y, 1.0, w, h, colour, cancel)
        reach = (best.bpp, top.bpp)
        if top.bpp <= bpp:
            return replace(top, reach=reach)
        # Regula falsi (Illinois) on log(bytes) − log(target), which is nearly linear in the rate
        # (λ is log-linear in it): 3–6 codings instead of bisection's 14.
        target = bpp * w * h / 8
        lo, hi = 0.0, 1.0
        f_lo, f_hi = np.log(best.nbytes / target), np.log(top.nbytes / target)
        side = 0
        for _ in range(RATE_SEARCH_ITERATIONS):
            if hi - lo < RATE_RESOLUTION or best.nbytes >= target * (1 - RATE_SEARCH_TOLERANCE):
                break
            guess = lo + (hi - lo) * f_lo / (f_lo - f_hi)
            margin = (hi - lo) / 64  # never probe the bracket's ends: each probe must shrink it
            mid = float(min(max(guess, lo + margin), hi - margin))
            candidate = self._pack(y, mid, w, h, colour, cancel)
            f_mid = np.log(candidate.nbytes / target)
            if candidate.nbytes <= target:
                lo, f_lo, best = mid, f_mid, candidate
                f_hi = f_hi / 2 if side == -1 else f_hi
                side = -1
            else:
                hi, f_hi = mid, f_mid
                f_lo = f_lo / 2 if side == 1 else f_lo
                side = 1
        return replace(best, reach=reach)

    # ----- decode ----------------------------------------------------------------------
    def read_header(self, data: bytes) -> "bitstream.HfdHeader":
        """Parse and verify a .hfd file's header (raises BitstreamError / ModelMismatchError)."""
        header, _ = bitstream.unpack(data)
        bitstream.check_model(header, self.model_id, self.weights_hash)
        return header

    def decode_ae(self, data: bytes, *, post_filter: bool = True, cancel: CancelToken | None = None) -> np.ndarray:
        """Autoencoder-only decode of a .hfd file → uint8 H×W×3: g_s's output, then the post-filter
        (an estimate of E[x | x_ae]: higher PSNR, less fine detail) when the weights ship one.
        ``post_filter=False``: g_s's output alone, which is what ``refine`` takes (it post-filters
        what a decoder needs filtered). ``cancel`` is checked between tiles."""
        header, x_ae = self._synthesize(*self._parse(data), cancel)
        return self._post_filtered(x_ae, header.rate, cancel) if post_filter else x_ae

    def _post_filtered(self, x_ae: np.ndarray, rate: float, cancel: CancelToken | None = None) -> np.ndarray:
        if self.post_filter is None:
            return x_ae
        h, w = x_ae.shape[:2]
        with self._oom_guard(h, w):
            return self.post_filter.apply_image(x_ae, rate, cancel)

    def _parse(self, data: bytes) -> tuple["bitstream.HfdHeader", list[bytes]]:
        """The file's header, checked to belong to these weights, and its payload segments."""
        header, segments = bitstream.unpack(data)
        bitstream.check_model(header, self.model_id, self.weights_hash)
        return header, segments

    def _synthesize(self, header: "bitstream.HfdHeader", segments: list[bytes],
                    cancel: CancelToken | None = None) -> tuple["bitstream.HfdHeader", np.ndarray]:
        h, w = header.height, header.width
        memory.require("decode", h, w)
        with torch.inference_mode(), self._oom_guard(h, w):
            y_hat = self.autoencoder.decode_latents(segments, header.rate, (h, w),
                                                    functools.partial(bitstream.check_payload, header), cancel)
            # Synthesis stays fp32 even where bf16 is fast: bf16's 8-bit mantissa costs 1–1.5 dB
            # on nearly flat photos (~50 dB) for 0.05 s saved per 0.4 MP here.
            x_ae = self.autoencoder.synthesize_image(y_hat, (h, w), self.device, self._fast, cancel)
        return header, x_ae

    def refine(self, x_ae: np.ndarray, settings: DecodeSettings, *, rate: float | None = None,
               on_step: StepCallback | None = None, cancel: CancelToken | None = None,
               post_filtered: np.ndarray | None = None) -> np.ndarray:
        """Run the score-based decoder on g_s's decode (``decode_ae(data, post_filter=False)``; no
        bits involved); decoder "ae" returns it post-filtered, as ``decode_ae`` does. ``rate``: the
        rate its file was coded at (``Encoded.rate``, the header's), which rate-conditioned
        decoders, the post-filter and the default realism (``settings.realism`` None) need (a
        SettingsError says so when it is missing).

        A realism below 1 blends the decoder's sample toward the post-filtered decode (see
        ScoreDecoder.refine), and a decoder trained on that decode is conditioned on it;
        ``post_filtered``, when the caller already has it (``refine`` with decoder "ae" on the
        same x_ae), saves computing it again."""
        if settings.decoder == "ae":
            if self.post_filter is not None and rate is None:
                raise SettingsError("the autoencoder's post-filter depends on the rate the file was coded at: "
                                    "pass the rate")
            return self._post_filtered(x_ae, rate, cancel)
        settings = self.check_settings(settings, rate)
        h, w = x_ae.shape[:2]
        memory.require("refine", h, w)
        decoder = self.decoder(settings.decoder)
        base = None
        on_post_filtered = decoder.facts.on_post_filtered
        if (settings.realism < 1.0 or on_post_filtered) and self.post_filter is not None:
            if rate is None:
                why = ("this decoder refines the post-filtered decode" if on_post_filtered
                       else "a realism below 1 blends toward the post-filtered decode")
                raise SettingsError(f"{why}, which depends on the rate the file was coded at: pass the rate")
            if post_filtered is None:
                post_filtered = self._post_filtered(x_ae, rate, cancel)
            elif post_filtered.shape != x_ae.shape:
                raise ImageError(f"post_filtered must have x_ae's shape {x_ae.shape}, got {post_filtered.shape}")
            base = post_filtered
        with self._oom_guard(h, w):
            return decoder.refine_image(x_ae, base, steps=settings.steps, shift=settings.shift, noise=settings.noise,
                                        seed=settings.seed, realism=settings.realism, solver=settings.solver,
                                        on_step=on_step, cancel=cancel, device=self.device, rate=rate)

    def check_settings(self, settings: DecodeSettings, rate: float | None = None) -> DecodeSettings:
        """``settings`` as a decode of a file coded at ``rate`` would run them (a default realism
        resolved for it), or SettingsError naming the first one out of range; reads no network, so
        a decode can refuse bad settings before it does any work."""
        if settings.decoder == "ae":
            return settings
        if settings.decoder not in self._decoder_facts:
            raise SettingsError(f"no weights for the {settings.decoder!r} decoder in {self.weights_dir}")
        if settings.realism is None:
            if rate is None:
                raise SettingsError("the default realism depends on the rate the file was coded at: "
                                    "pass the rate, or a realism")
            settings = _resolve_realism(settings, self._realism, rate)
        check_settings(settings.decoder, self._decoder_facts[settings.decoder], settings.steps, settings.shift,
                       settings.noise, settings.realism, settings.solver, settings.seed)
        return settings

    def decode(self, data: bytes, settings: DecodeSettings, on_step: StepCallback | None = None,
               cancel: CancelToken | None = None) -> np.ndarray:
        """Decode a .hfd file with ``settings``; the file and the settings are checked before any work."""
        header, segments = self._parse(data)
        settings = self.check_settings(settings, header.rate)
        _, x_ae = self._synthesize(header, segments, cancel)
        return self.refine(x_ae, settings, rate=header.rate, on_step=on_step, cancel=cancel)

    def _autocast(self) -> torch.autocast:
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self._fast)

    def _oom_guard(self, h: int, w: int):
        return _OutOfMemoryGuard(h, w, self.device)


class _OutOfMemoryGuard:
    """Turns an allocation failure into a one-line HfdError naming the image size."""

    def __init__(self, h: int, w: int, device: torch.device) -> None:
        self.h, self.w, self.device = h, w, device

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc_type is not None and (issubclass(exc_type, torch.OutOfMemoryError) or
                                     (issubclass(exc_type, RuntimeError) and "memory" in str(exc).lower()
                                      and not issubclass(exc_type, HfdError))):
            if self.device.type == "cuda":
                torch.cuda.empty_cache()
            mpix = self.h * self.w / 1e6
            raise HfdError(f"out of memory on {self.device.type} for a {self.w}×{self.h} image "
                           f"({mpix:.1f} MP)") from exc
        return False
