"""The one engine worker: a QObject living on its own QThread.

The window never calls the engine. It drops requests into the worker's mailbox (a lock-guarded
slot per kind of job, the newest request wins) and the worker drains it in priority order: open
an image, (re)load the engine, the live decode, another classical codec for the same file, the
difference maps, exports, then one point of the rate sweep at a time. A request cancels every
running job of its own or a lower priority through that job's CancelToken, and every engine
call checks the token between tiles (one tile of one sampler step at most), so a new setting,
Stop or quit takes effect at once on any image size. The classical codecs run in a child
process that a cancel kills (viewer/worker/child.py). Results carry their request id, so the
window drops stale ones.

A live decode runs in stages, each reported as it lands: the file (encode), the autoencoder
pane, the refined pane step by step, the classical pane at the same size, then the slower
scores of all three (MS-SSIM and ST-LPIPS at a bounded cost, engine.api.budget_scores)."""
from __future__ import annotations

import logging
import sys
import threading
from collections import OrderedDict
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Hashable, Optional

import numpy as np
from PySide6.QtCore import QObject, QThread, Signal, Slot

from engine import api
from engine.api import DecodeSettings, Encoded
from engine.errors import Cancelled, HfdError, SettingsError
from engine.progress import CancelToken, StepInfo
from viewer.maps import ERROR_MAX, error_image, invented_image
from viewer.worker.child import call_in_child, prepare_children
from viewer.worker.jobs import (
    STEP_PERCEPTUAL_CROP,
    ClassicalPane,
    ClassicalRequest,
    DecodeRequest,
    ExportRequest,
    MapRequest,
    OpenedImage,
    PaneStats,
    RatePoint,
    RateRequest,
    StepReport,
)

log = logging.getLogger(__name__)

EngineFactory = Callable[[str], Any]  # device name -> engine.api.Engine
CACHE_BYTES = 256 * 2**20  # per cache of decoded images: a few dozen bitrates of a 12-megapixel photo
# Job kinds, highest priority first. A request cancels running jobs of its kind and of every
# kind after it; exports are never cancelled by other work.
PRIORITY = ("open", "engine", "decode", "classical", "maps", "export", "rate")


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
    classical_ready = Signal(int, object, object)  # request id, uint8 H×W×3, ClassicalPane
    classical_failed = Signal(int, str, str)  # request id, codec, message
    stats_ready = Signal(int, str, object)  # request id, pane, PaneStats
    step = Signal(int, object)  # request id, StepReport
    decode_finished = Signal(int)
    decode_cancelled = Signal(int)
    decode_failed = Signal(int, str)
    rate_point = Signal(int, object)  # request id, RatePoint
    rate_finished = Signal(int)
    map_ready = Signal(int, str, object, float)  # request id, pane, uint8 H×W×3, the map's scale
    saved = Signal(str)  # path
    save_failed = Signal(str, str)  # path, message
    _wake = Signal()

    def __init__(self, engine_factory: EngineFactory) -> None:
        super().__init__()
        self._factory = engine_factory
        self._engine: Any = None
        self._lock = threading.Lock()
        self._pending: dict[str, Any] = {}  # kind -> the newest request (exports: a list)
        self._rate_left: list[float] = []
        self._running: dict[str, CancelToken] = {}
        self._stopped = False
        self._encodings = _LRU(CACHE_BYTES // 16, lambda enc: enc.nbytes)
        self._ae_images = _LRU(CACHE_BYTES, lambda pair: pair[0].nbytes + pair[1].nbytes)
        self._classical = _LRU(CACHE_BYTES, lambda result: result.rgb.nbytes + result.nbytes)
        self._scores = _LRU(CACHE_BYTES // 1024, lambda stats: 256)
        self._perceptual_error: Optional[str] = None
        self._wake.connect(self._drain)
        prepare_children()  # before the models and photos make this process large

    # ---- requests, called from the GUI thread ------------------------------------------
    def _post(self, kind: str, request: Any) -> None:
        with self._lock:
            if self._stopped:  # the window is closing: nothing new starts
                return
            if kind == "export":
                self._pending.setdefault("export", []).append(request)
            else:
                self._pending[kind] = request
                self._cancel_from(kind)
        self._wake.emit()

    def request_open(self, key: int, path: Path) -> None:
        self._post("open", (key, Path(path)))

    def request_engine(self, device: str) -> None:
        self._post("engine", device)

    def request_decode(self, request: DecodeRequest) -> None:
        self._post("decode", request)

    def request_classical(self, request: ClassicalRequest) -> None:
        self._post("classical", request)

    def request_maps(self, request: MapRequest) -> None:
        self._post("maps", request)

    def request_export(self, request: ExportRequest) -> None:
        self._post("export", request)

    def request_rate(self, request: RateRequest) -> None:
        with self._lock:  # one section: the worker must never pair the new bitrates with the old request
            if self._stopped:
                return
            self._rate_left = list(request.bpps)
            self._pending["rate"] = request
            self._cancel_from("rate")
        self._wake.emit()

    def cancel_decode(self) -> None:
        """Stop the running decode and forget a pending one (the rest goes on); a forgotten one is
        reported cancelled, as a running one is."""
        with self._lock:
            pending = self._pending.pop("decode", None)
            if "decode" in self._running:
                self._running["decode"].cancel()
        if pending is not None:
            self.decode_cancelled.emit(pending.request_id)

    def stop_all(self) -> None:
        """Forget every pending request but the exports (a file the user asked for is still
        written) and cancel every running job; take no new request (the window is closing)."""
        with self._lock:
            self._stopped = True
            exports = self._pending.get("export")
            self._pending.clear()
            if exports:
                self._pending["export"] = exports
            self._rate_left = []
            for token in self._running.values():
                token.cancel()

    def _cancel_from(self, kind: str) -> None:
        """Cancel the running jobs of ``kind`` and of every lower priority but exports (lock held)."""
        rank = PRIORITY.index(kind)
        for running, token in self._running.items():
            if running != "export" and PRIORITY.index(running) >= rank:
                token.cancel()

    @property
    def perceptual_error(self) -> Optional[str]:
        """Why the perceptual score is unavailable, once the worker has found out."""
        return self._perceptual_error

    # ---- the worker thread -------------------------------------------------------------
    @Slot()
    def _drain(self) -> None:
        while (job := self._take_job()) is not None:
            kind, run, token = job
            try:
                run(token)
            finally:
                with self._lock:
                    if self._running.get(kind) is token:
                        del self._running[kind]
        if self._stopped:  # everything left (the exports) is done: end the thread's event loop
            self.thread().quit()

    def _take_job(self) -> Optional[tuple[str, Callable[[CancelToken], None], CancelToken]]:
        with self._lock:
            for kind in PRIORITY:
                if kind not in self._pending:
                    continue
                if kind == "rate":
                    request = self._pending["rate"]
                    if not self._rate_left:
                        del self._pending["rate"]
                        continue
                    bpp = self._rate_left.pop(0)
                    last = not self._rate_left
                    run = lambda token, r=request, b=bpp, last=last: self._run_rate_point(r, b, last, token)
                elif kind == "export":
                    request = self._pending["export"].pop(0)
                    if not self._pending["export"]:
                        del self._pending["export"]
                    run = lambda token, r=request: self._run_export(r)
                else:
                    request = self._pending.pop(kind)
                    run = getattr(self, f"_run_{kind}")
                    run = lambda token, r=request, f=run: f(r, token)
                token = self._running[kind] = CancelToken()
                return kind, run, token
        return None

    def _run_open(self, request: tuple[int, Path], token: CancelToken) -> None:
        key, path = request
        try:
            if path.suffix.lower() == ".hfd":
                opened = self._open_hfd(key, path)
            else:
                loaded = api.load_image(path)
                h, w = loaded.rgb.shape[:2]
                opened = OpenedImage(key, path, loaded.rgb, path.stat().st_size, loaded.had_alpha, w, h)
        except HfdError as exc:
            self.open_failed.emit(str(path), str(exc))
            return
        except OSError as exc:
            self.open_failed.emit(str(path), f"cannot read {path.name}: {exc.strerror or exc}")
            return
        self.opened.emit(opened)

    def _open_hfd(self, key: int, path: Path) -> OpenedImage:
        data = path.read_bytes()
        if self._engine is None:
            raise HfdError("no model loaded to read it with")
        header = self._engine.read_header(data)  # a broken or foreign file fails here, in one line
        return OpenedImage(key, path, None, len(data), False, header.width, header.height, hfd=data)

    def _run_engine(self, device: str, token: CancelToken) -> None:
        self._engine = None
        for cache in (self._encodings, self._ae_images, self._classical, self._scores):
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
        self.engine_ready.emit(self._engine.info, self._engine.device.type)

    def _run_decode(self, request: DecodeRequest, token: CancelToken) -> None:
        rid, original = request.request_id, request.rgb
        try:
            if self._engine is None:
                raise HfdError("no model loaded")
            if request.hfd is not None:
                header = self._engine.read_header(request.hfd)
                encoded = Encoded(request.hfd, header.width, header.height, header.rate)
            else:
                def optimise_step(done: int, total: int) -> None:
                    token.check()  # a newer request or Stop ends a slow optimised encode too
                    self.encode_progress.emit(rid, done, total)

                encoded = self._encode(request.image_key, original, request.bpp, token, request.optimise_steps,
                                       optimise_step)
            self.encoded.emit(rid, encoded)
            x_ae, shown_ae = self._decode_ae(encoded, token)
            self.pane_ready.emit(rid, "ae", shown_ae)
            self.stats_ready.emit(rid, "ae", self._quick_stats(original, shown_ae, encoded.nbytes))
            problem = None
            try:
                refined = self._refine(rid, original, x_ae, shown_ae, encoded, request.settings, token)
            except Cancelled:
                raise
            except HfdError as exc:  # e.g. no weights for this decoder: the other panes still count
                problem, refined = str(exc), None
            else:
                self.pane_ready.emit(rid, "refined", refined)
                self.stats_ready.emit(rid, "refined", self._quick_stats(original, refined, encoded.nbytes))
            scored = [("ae", shown_ae, encoded.nbytes, "", ("ae", request.image_key, encoded.data))]
            if refined is not None:
                scored.append(("refined", refined, encoded.nbytes, "", None))
            if original is not None:
                classical = self._classical_pane(rid, request.image_key, original, request.codec, encoded.nbytes,
                                                 token)
                if classical is not None:
                    scored.append(("classical", classical.rgb, classical.nbytes, _quality_note(classical),
                                   ("classical", request.image_key, request.codec, encoded.nbytes)))
                for pane, image, nbytes, note, key in scored:
                    self._emit_scores(rid, pane, original, image, nbytes, note, key, token)
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

    def _run_classical(self, request: ClassicalRequest, token: CancelToken) -> None:
        rid = request.request_id
        try:
            result = self._classical_pane(rid, request.image_key, request.rgb, request.codec, request.nbytes, token)
            if result is not None:
                self._emit_scores(rid, "classical", request.rgb, result.rgb, result.nbytes, _quality_note(result),
                                  ("classical", request.image_key, request.codec, request.nbytes), token)
        except Cancelled:
            pass

    def _run_maps(self, request: MapRequest, token: CancelToken) -> None:
        for pane, a, b in request.pairs:
            if token.cancelled:
                return
            image, scale = invented_image(a, b) if pane == "original" else (error_image(a, b), ERROR_MAX)
            self.map_ready.emit(request.request_id, pane, image, scale)

    def _run_export(self, request: ExportRequest) -> None:
        try:
            if request.data is not None:
                api.atomic_write_bytes(request.path, request.data)
            elif request.image is not None:
                api.save_png(request.path, request.image, fast=True)
            else:
                from viewer.window.export import (
                    compose_comparison,  # QImage painting: no GUI needed
                )

                if not compose_comparison(list(request.panels)).save(str(request.path)):
                    raise HfdError(f"cannot write {request.path}")
        except HfdError as exc:
            self.save_failed.emit(str(request.path), str(exc))
        except OSError as exc:
            self.save_failed.emit(str(request.path), f"cannot write {request.path}: {exc.strerror or exc}")
        else:
            self.saved.emit(str(request.path))

    def _run_rate_point(self, request: RateRequest, bpp: float, last: bool, token: CancelToken) -> None:
        rid = request.request_id
        try:
            if self._engine is None:
                return
            encoded = self._encode(request.image_key, request.rgb, bpp, token)
            shown_ae = self._decode_ae(encoded, token)[1]
            classical = self._match(request.image_key, request.rgb, request.codec, encoded.nbytes, token)
            self.rate_point.emit(rid, RatePoint(
                target_bpp=bpp, ae_bpp=encoded.bpp, ae_psnr=api.psnr(shown_ae, request.rgb),
                classical_bpp=classical.bpp, classical_psnr=api.psnr(classical.rgb, request.rgb)))
        except Cancelled:
            with self._lock:  # the point is taken again when the worker is free
                if self._pending.get("rate") is request:
                    self._rate_left.insert(0, bpp)
            return
        except HfdError as exc:
            log.warning("rate point at %.3f bpp failed: %s", bpp, exc)
        except Exception:
            log.exception("rate point at %.3f bpp failed", bpp)
        if last:
            self.rate_finished.emit(rid)

    # ---- stages ------------------------------------------------------------------------
    def _refine(self, rid: int, original: Optional[np.ndarray], x_ae: np.ndarray, shown_ae: np.ndarray,
                encoded: Encoded, settings: DecodeSettings, token: CancelToken) -> np.ndarray:
        live = shown_ae.copy()  # the refined pane while it is decoded: tiles land on the autoencoder's
        return self._engine.refine(x_ae, settings, rate=encoded.rate, post_filtered=shown_ae, cancel=token,
                                   on_step=lambda info: self._report_step(rid, original, live, info, settings.steps))

    def _report_step(self, rid: int, original: Optional[np.ndarray], live: np.ndarray, info: StepInfo,
                     steps: int) -> None:
        top, left = info.region
        h, w = info.estimate.shape[:2]
        live[top:top + h, left:left + w] = info.estimate
        tiles = max(1, info.total // max(1, steps))
        if tiles > 1 and info.index % steps:
            return  # a decode in tiles is shown tile by tile: each finished tile lands at once
        estimate = live.copy()
        psnr = perceptual = None
        if original is not None:
            psnr = api.psnr(estimate, original)
            if tiles == 1:
                perceptual = self._perceptual(*centre_crops(estimate, original))
        self.step.emit(rid, StepReport(info.index, info.total, info.elapsed_s, estimate, psnr, perceptual, tiles))

    def _classical_pane(self, rid: int, image_key: int, rgb: np.ndarray, codec: str, nbytes: int,
                        token: CancelToken) -> Any:
        """The classical file of the same size, shown and quickly scored; None (and classical_failed)
        if the codec failed: the learned panes stand without it."""
        try:
            result = self._match(image_key, rgb, codec, nbytes, token)
        except Cancelled:
            raise
        except Exception as exc:  # a codec library's failure, or a child process that died
            log.warning("%s at %d bytes failed: %s", codec, nbytes, exc)
            self.classical_failed.emit(rid, codec, str(exc).strip().splitlines()[-1] if str(exc).strip() else
                                       type(exc).__name__)
            return None
        self.classical_ready.emit(rid, result.rgb, ClassicalPane(codec, result.nbytes, result.quality,
                                                                 result.over_target, nbytes))
        self.stats_ready.emit(rid, "classical", self._quick_stats(rgb, result.rgb, result.nbytes,
                                                                  _quality_note(result)))
        return result

    def _emit_scores(self, rid: int, pane: str, original: np.ndarray, image: np.ndarray, nbytes: int, note: str,
                     key: Optional[Hashable], token: CancelToken) -> None:
        def make() -> PaneStats:
            scores = api.budget_scores(original, image, cancel=token)
            if scores.st_lpips is None and self._perceptual_error is None:
                self._perceptual_error = "ST-LPIPS needs the stlpips-pytorch package"
            h, w = original.shape[:2]
            return PaneStats(nbytes=nbytes, bpp=nbytes * 8 / (h * w), psnr=scores.psnr, ms_ssim=scores.ms_ssim,
                             perceptual=scores.st_lpips, note=note, complete=True, windows=scores.windows)

        token.check()
        self.stats_ready.emit(rid, pane, make() if key is None else self._scores.get_or_make(key, make))

    # ---- cached engine calls -----------------------------------------------------------
    def _encode(self, image_key: int, rgb: np.ndarray, bpp: float, token: CancelToken, optimise_steps: int = 0,
                on_optimise_step: Optional[Callable[[int, int], None]] = None) -> Encoded:
        def make() -> Encoded:
            optimise = dict(optimise_steps=optimise_steps, on_optimise_step=on_optimise_step)
            try:
                return self._engine.encode(rgb, bpp=bpp, cancel=token, **optimise)
            except SettingsError:
                # The target is below this image's lowest rate: show the smallest file the model
                # makes, and find out how far up the image goes.
                lowest = self._engine.encode(rgb, rate=0.0, cancel=token, **optimise)
                top = self._engine.encode(rgb, rate=1.0, cancel=token)
                return replace(lowest, reach=(lowest.bpp, top.bpp))

        return self._encodings.get_or_make((image_key, bpp, optimise_steps), make)

    def _decode_ae(self, encoded: Encoded, token: CancelToken) -> tuple[np.ndarray, np.ndarray]:
        """(g_s's decode, which Engine.refine takes; the autoencoder's decode as shown: post-filtered
        when the weights have a post-filter)."""
        def make() -> tuple[np.ndarray, np.ndarray]:
            x_ae = self._engine.decode_ae(encoded.data, post_filter=False, cancel=token)
            return x_ae, self._engine.refine(x_ae, DecodeSettings(decoder="ae"), rate=encoded.rate, cancel=token)

        return self._ae_images.get_or_make(encoded.data, make)

    def _match(self, image_key: int, rgb: np.ndarray, codec: str, nbytes: int, token: CancelToken):
        return self._classical.get_or_make(
            (image_key, codec, nbytes), lambda: call_in_child(api.match_classical, rgb, codec, nbytes, cancel=token))

    # ---- numbers -------------------------------------------------------------------------
    @staticmethod
    def _quick_stats(original: Optional[np.ndarray], image: np.ndarray, nbytes: int, note: str = "") -> PaneStats:
        h, w = image.shape[:2]
        return PaneStats(nbytes=nbytes, bpp=nbytes * 8 / (h * w),
                         psnr=None if original is None else api.psnr(image, original), note=note)

    def _perceptual(self, image: np.ndarray, original: np.ndarray) -> Optional[float]:
        if self._perceptual_error is not None:
            return None
        scores = api.budget_scores(original, image)
        if scores.st_lpips is None:
            self._perceptual_error = "ST-LPIPS needs the stlpips-pytorch package"
        return scores.st_lpips


def _quality_note(result: Any) -> str:
    return f"q={result.quality}" + (", its smallest file" if result.over_target else "")


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
    """Owns the worker's QThread: starts it, and stops it when the window closes."""

    def __init__(self, engine_factory: EngineFactory) -> None:
        sys.setswitchinterval(min(sys.getswitchinterval(), GIL_SWITCH_INTERVAL_S))
        self.thread = QThread()
        self.thread.setObjectName("hfd-engine")
        self.worker = EngineWorker(engine_factory)
        self.worker.moveToThread(self.thread)
        self.thread.start()

    def request_stop(self) -> None:
        """Cancel everything and let the thread end once its current tile and any export asked for
        are done (no wait): the worker quits its own event loop when it has nothing left."""
        self.worker.stop_all()
        self.worker._wake.emit()

    def finished(self) -> bool:
        return self.thread.isFinished()

    def shutdown(self, timeout_ms: int = 30_000) -> None:
        self.request_stop()
        if not self.thread.wait(timeout_ms):
            log.error("engine worker did not stop within %d ms", timeout_ms)
