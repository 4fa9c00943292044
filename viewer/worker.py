"""The one engine worker: a QObject living on its own QThread.

The window never calls the engine. It drops requests into the worker's mailbox (a
lock-guarded slot per job kind, newest request wins) and the worker drains the mailbox
in priority order: open an image, (re)load the engine, run the live decode, then one
point of the rate sweep at a time. A new decode request cancels the running one through
its CancelToken; every result carries its request id so the window can drop stale ones.
"""
from __future__ import annotations

import logging
import sys
import threading
from collections import OrderedDict
from functools import partial
from pathlib import Path
from typing import Any, Callable, Hashable, Optional

import numpy as np
from PySide6.QtCore import QObject, QThread, Signal, Slot

from engine.api import DecodeSettings, Encoded
from engine.codec import classical as baselines
from engine.codec import images
from engine.errors import Cancelled, HfdError, SettingsError
from engine.evaluation import metrics
from engine.progress import CancelToken, StepInfo

from .jobs import (
    STEP_PERCEPTUAL_CROP,
    DecodeRequest,
    OpenedImage,
    PaneStats,
    RatePoint,
    RateRequest,
    StepReport,
)

log = logging.getLogger(__name__)

EngineFactory = Callable[[str], Any]  # device name -> engine.api.Engine
CACHE_BYTES = 256 * 2**20  # per cache of decoded images: a few dozen bitrates of a 12-megapixel photo


class _LRU:
    """A least-recently-used cache bounded in bytes (``size_of`` weighs a value); worker thread only."""

    def __init__(self, max_bytes: int, size_of: Callable[[Any], int]) -> None:
        self._max_bytes, self._size_of = max_bytes, size_of
        self._items: OrderedDict[Hashable, tuple[Any, int]] = OrderedDict()
        self._bytes = 0

    def get_or_make(self, key: Hashable, make: Callable[[], Any]) -> Any:
        if key in self._items:
            self._items.move_to_end(key)
            return self._items[key][0]
        value = make()
        size = self._size_of(value)
        self._items[key] = (value, size)
        self._bytes += size
        while self._bytes > self._max_bytes and len(self._items) > 1:
            _, (_, dropped) = self._items.popitem(last=False)
            self._bytes -= dropped
        return value

    def clear(self) -> None:
        self._items.clear()
        self._bytes = 0


class EngineWorker(QObject):
    """Runs every engine call off the GUI thread and reports results as signals."""

    opened = Signal(object)  # OpenedImage
    open_failed = Signal(str, str)  # path, message
    engine_ready = Signal(object, str)  # ModelInfo, device name
    engine_failed = Signal(str)
    encoded = Signal(int, object)  # request id, Encoded
    encode_progress = Signal(int, int, int)  # request id, optimisation steps done, in all
    pane_ready = Signal(int, str, object)  # request id, pane, uint8 H×W×3
    stats_ready = Signal(int, str, object)  # request id, pane, PaneStats
    step = Signal(int, object)  # request id, StepReport
    decode_finished = Signal(int)
    decode_cancelled = Signal(int)
    decode_failed = Signal(int, str)
    rate_point = Signal(int, object)  # request id, RatePoint
    rate_finished = Signal(int)
    _wake = Signal()

    def __init__(self, engine_factory: EngineFactory) -> None:
        super().__init__()
        self._factory = engine_factory
        self._engine: Any = None
        self._lock = threading.Lock()
        self._open: Optional[tuple[int, Path]] = None
        self._device: Optional[str] = None
        self._decode: Optional[DecodeRequest] = None
        self._rate: Optional[tuple[RateRequest, list[float]]] = None
        self._running_token: Optional[CancelToken] = None
        self._encodings = _LRU(CACHE_BYTES // 16, lambda enc: enc.nbytes)
        self._ae_images = _LRU(CACHE_BYTES, lambda pair: pair[0].nbytes + pair[1].nbytes)
        self._classical = _LRU(CACHE_BYTES, lambda result: result.rgb.nbytes + result.nbytes)
        self._full_stats = _LRU(CACHE_BYTES // 1024, lambda stats: 256)
        self._perceptual_error: Optional[str] = None
        self._wake.connect(self._drain)

    # ---- requests, called from the GUI thread ------------------------------------------
    def request_open(self, key: int, path: Path) -> None:
        with self._lock:
            self._open = (key, Path(path))
        self._wake.emit()

    def request_engine(self, device: str) -> None:
        with self._lock:
            self._device = device
            self._cancel_running()
        self._wake.emit()

    def request_decode(self, request: DecodeRequest) -> None:
        with self._lock:
            self._decode = request
            self._cancel_running()
        self._wake.emit()

    def request_rate(self, request: RateRequest) -> None:
        with self._lock:
            self._rate = (request, list(request.bpps))
        self._wake.emit()

    def cancel_decode(self) -> None:
        """Stop the running decode and forget a pending one."""
        with self._lock:
            self._decode = None
            self._cancel_running()

    def stop_all(self) -> None:
        """Forget every pending request and cancel the running decode (the window is closing)."""
        with self._lock:
            self._open = self._device = self._decode = self._rate = None
            self._cancel_running()

    def _cancel_running(self) -> None:
        if self._running_token is not None:
            self._running_token.cancel()

    @property
    def perceptual_error(self) -> Optional[str]:
        """Why the perceptual score is unavailable, once the worker has found out."""
        return self._perceptual_error

    # ---- the worker thread -------------------------------------------------------------
    @Slot()
    def _drain(self) -> None:
        while (job := self._take_job()) is not None:
            job()

    def _take_job(self) -> Optional[Callable[[], None]]:
        with self._lock:
            if self._open is not None:
                key, path = self._open
                self._open = None
                return lambda: self._run_open(key, path)
            if self._device is not None:
                device, self._device = self._device, None
                return lambda: self._run_engine(device)
            if self._decode is not None:
                request, self._decode = self._decode, None
                token = self._running_token = CancelToken()
                return lambda: self._run_decode(request, token)
            if self._rate is not None:
                request, remaining = self._rate
                bpp = remaining.pop(0)
                if not remaining:
                    self._rate = None
                return lambda: self._run_rate_point(request, bpp, last=not remaining)
        return None

    def _run_open(self, key: int, path: Path) -> None:
        try:
            loaded = images.load_image(path)
            size = path.stat().st_size
        except HfdError as exc:
            self.open_failed.emit(str(path), str(exc))
            return
        except OSError as exc:
            self.open_failed.emit(str(path), f"cannot read {path.name}: {exc.strerror or exc}")
            return
        self.opened.emit(OpenedImage(key, path, loaded.rgb, size, loaded.had_alpha))

    def _run_engine(self, device: str) -> None:
        self._engine = None
        for cache in (self._encodings, self._ae_images, self._classical, self._full_stats):
            cache.clear()
        try:
            self._engine = self._factory(device)
        except HfdError as exc:
            self.engine_failed.emit(str(exc))
            return
        except Exception as exc:  # a broken install must not kill the worker thread
            log.exception("engine failed to load")
            self.engine_failed.emit(f"{type(exc).__name__}: {exc}")
            return
        self.engine_ready.emit(self._engine.info, device)

    def _run_decode(self, request: DecodeRequest, token: CancelToken) -> None:
        rid = request.request_id
        original = request.rgb
        try:
            if self._engine is None:
                raise HfdError("no model loaded")
            def optimise_step(done: int, total: int) -> None:
                token.check()  # a newer request or Stop ends a slow optimised encode too
                self.encode_progress.emit(rid, done, total)

            encoded = self._encode(request.image_key, original, request.bpp, request.optimise_steps, optimise_step)
            self.encoded.emit(rid, encoded)
            x_ae, shown_ae = self._decode_ae(encoded)
            self.pane_ready.emit(rid, "ae", shown_ae)
            self.stats_ready.emit(rid, "ae", self._quick_stats(original, shown_ae, encoded.nbytes))
            token.check()
            classical = self._match(request.image_key, original, request.codec, encoded.nbytes)
            classical_note = f"q={classical.quality}" + (", its smallest file" if classical.over_target else "")
            self.pane_ready.emit(rid, "classical", classical.rgb)
            self.stats_ready.emit(rid, "classical", self._quick_stats(
                original, classical.rgb, classical.nbytes, classical_note))
            token.check()
            panes = [("ae", shown_ae, encoded.nbytes, "", ("ae", request.image_key, encoded.data)),
                     ("classical", classical.rgb, classical.nbytes, classical_note,
                      ("classical", request.image_key, request.codec, encoded.nbytes))]
            problem = None
            live = shown_ae.copy()  # the refined pane while it is decoded: tiles land on the autoencoder's
            try:
                refined = self._engine.refine(
                    x_ae, request.settings, rate=encoded.rate, post_filtered=shown_ae,
                    on_step=lambda info: self._report_step(rid, original, live, info), cancel=token)
            except Cancelled:
                raise
            except HfdError as exc:  # e.g. no weights for this decoder: the other panes still count
                problem = str(exc)
            else:
                self.pane_ready.emit(rid, "refined", refined)
                self.stats_ready.emit(rid, "refined", self._quick_stats(original, refined, encoded.nbytes))
                panes.append(("refined", refined, encoded.nbytes, "", None))
            for pane, image, nbytes, note, key in panes:
                token.check()
                make = partial(self._stats, original, image, nbytes, note)
                self.stats_ready.emit(rid, pane, make() if key is None else self._full_stats.get_or_make(key, make))
            if problem is None:
                self.decode_finished.emit(rid)
            else:
                self.decode_failed.emit(rid, problem)
        except Cancelled:
            self.decode_cancelled.emit(rid)
        except HfdError as exc:
            self.decode_failed.emit(rid, str(exc))
        except Exception as exc:
            log.exception("decode failed")
            self.decode_failed.emit(rid, f"{type(exc).__name__}: {exc}")
        finally:
            with self._lock:
                if self._running_token is token:
                    self._running_token = None

    def _run_rate_point(self, request: RateRequest, bpp: float, last: bool) -> None:
        rid = request.request_id
        try:
            if self._engine is None:
                return
            encoded = self._encode(request.image_key, request.rgb, bpp)
            shown_ae = self._decode_ae(encoded)[1]
            classical = self._match(request.image_key, request.rgb, request.codec, encoded.nbytes)
            self.rate_point.emit(rid, RatePoint(
                target_bpp=bpp, ae_bpp=encoded.bpp, ae_psnr=metrics.psnr(shown_ae, request.rgb),
                classical_bpp=classical.bpp, classical_psnr=metrics.psnr(classical.rgb, request.rgb)))
        except HfdError as exc:
            log.warning("rate point at %.3f bpp failed: %s", bpp, exc)
        except Exception:
            log.exception("rate point at %.3f bpp failed", bpp)
        finally:
            if last:
                self.rate_finished.emit(rid)

    # ---- cached engine calls -----------------------------------------------------------
    def _encode(self, image_key: int, rgb: np.ndarray, bpp: float, optimise_steps: int = 0,
                on_optimise_step: Optional[Callable[[int, int], None]] = None) -> Encoded:
        def make() -> Encoded:
            optimise = dict(optimise_steps=optimise_steps, on_optimise_step=on_optimise_step)
            try:
                return self._engine.encode(rgb, bpp=bpp, **optimise)
            except SettingsError:
                # The target is below this image's lowest rate: show the smallest file the model makes.
                return self._engine.encode(rgb, rate=0.0, **optimise)

        return self._encodings.get_or_make((image_key, bpp, optimise_steps), make)

    def _decode_ae(self, encoded: Encoded) -> tuple[np.ndarray, np.ndarray]:
        """(g_s's decode, which Engine.refine takes; the autoencoder's decode as shown: post-filtered
        when the weights have a post-filter)."""
        def make() -> tuple[np.ndarray, np.ndarray]:
            x_ae = self._engine.decode_ae(encoded.data, post_filter=False)
            return x_ae, self._engine.refine(x_ae, DecodeSettings(decoder="ae"), rate=encoded.rate)

        return self._ae_images.get_or_make(encoded.data, make)

    def _match(self, image_key: int, rgb: np.ndarray, codec: str, nbytes: int):
        return self._classical.get_or_make(
            (image_key, codec, nbytes), lambda: baselines.match_size(rgb, codec, nbytes))

    def _report_step(self, rid: int, original: np.ndarray, live: np.ndarray, info: StepInfo) -> None:
        top, left = info.region
        h, w = info.estimate.shape[:2]
        live[top:top + h, left:left + w] = info.estimate
        estimate = live.copy()
        self.step.emit(rid, StepReport(info.index, info.total, info.elapsed_s, estimate,
                                       metrics.psnr(estimate, original),
                                       self._perceptual(*centre_crops(estimate, original))))

    # ---- numbers -------------------------------------------------------------------------
    @staticmethod
    def _quick_stats(original: np.ndarray, image: np.ndarray, nbytes: int, note: str = "") -> PaneStats:
        h, w = original.shape[:2]
        return PaneStats(nbytes=nbytes, bpp=nbytes * 8 / (h * w), psnr=metrics.psnr(image, original), note=note)

    def _stats(self, original: np.ndarray, image: np.ndarray, nbytes: int, note: str) -> PaneStats:
        h, w = original.shape[:2]
        return PaneStats(nbytes=nbytes, bpp=nbytes * 8 / (h * w), psnr=metrics.psnr(image, original),
                         ms_ssim=self._ms_ssim(image, original), perceptual=self._perceptual(image, original),
                         note=note, complete=True)

    @staticmethod
    def _ms_ssim(image: np.ndarray, original: np.ndarray) -> Optional[float]:
        try:
            return metrics.ms_ssim(image, original)
        except HfdError:
            return None

    def _perceptual(self, image: np.ndarray, original: np.ndarray) -> Optional[float]:
        if self._perceptual_error is not None:
            return None
        try:
            return metrics.st_lpips(image, original)
        except HfdError as exc:
            self._perceptual_error = str(exc)
            return None


def centre_crops(a: np.ndarray, b: np.ndarray, size: int = STEP_PERCEPTUAL_CROP) -> tuple[np.ndarray, np.ndarray]:
    """The same centre window (at most size×size) of two images, as contiguous arrays."""
    h, w = a.shape[:2]
    top, left = max(0, (h - size) // 2), max(0, (w - size) // 2)
    window = (slice(top, top + size), slice(left, left + size))
    return np.ascontiguousarray(a[window]), np.ascontiguousarray(b[window])


# Python hands the GIL between threads every 5 ms by default; with the engine's Python code
# running on the worker, each GUI event could wait that long several times over. 1 ms keeps
# the event loop's stalls short at a negligible cost to the worker.
GIL_SWITCH_INTERVAL_S = 0.001


class WorkerHost:
    """Owns the worker's QThread: starts it, and stops it cleanly when the window closes."""

    def __init__(self, engine_factory: EngineFactory) -> None:
        sys.setswitchinterval(min(sys.getswitchinterval(), GIL_SWITCH_INTERVAL_S))
        self.thread = QThread()
        self.thread.setObjectName("hfd-engine")
        self.worker = EngineWorker(engine_factory)
        self.worker.moveToThread(self.thread)
        self.thread.start()

    def shutdown(self, timeout_ms: int = 30_000) -> None:
        self.worker.stop_all()
        self.thread.quit()
        if not self.thread.wait(timeout_ms):
            log.error("engine worker did not stop within %d ms", timeout_ms)
