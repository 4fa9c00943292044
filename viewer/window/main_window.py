"""The main window: wires controls, views, numbers and plots to the one engine worker.

It keeps the state the screen shows (the current image, the latest results of the
current request) and turns every user action into a request; results whose request id
is not the current one are dropped."""
from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path
from typing import Optional

import numpy as np
from PySide6.QtCore import QSettings, Qt, QTimer, Signal
from PySide6.QtGui import QCloseEvent, QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import (
    QFileDialog,
    QLabel,
    QMainWindow,
    QScrollArea,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from engine.api import (
    DEFAULT_OPTIMISE_STEPS,
    DecodeSettings,
    Encoded,
    ModelInfo,
    devices,
)
from viewer.captions import count, pane_caption, pane_title
from viewer.maps import ERROR_MAX, abs_difference, colour_bar
from viewer.qimage import to_pixmap
from viewer.samples import SAMPLES_DIR, sample_paths
from viewer.widgets.banner import Banner
from viewer.widgets.controls import ControlPanel, ControlValues
from viewer.widgets.decode_status import DecodeStatus
from viewer.widgets.loupe import LoupeWindow
from viewer.widgets.panes import Crop
from viewer.widgets.plots import RatePlot, StepPlot
from viewer.widgets.stats_table import StatsTable
from viewer.widgets.views import MODES, ComparisonViews
from viewer.window.demo import DemoMode
from viewer.window.menus import build_menus
from viewer.window.settings import ViewerSettings
from viewer.worker.jobs import (
    CODEC_LABELS,
    PANES,
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
from viewer.worker.thread import EngineFactory, WorkerHost

log = logging.getLogger(__name__)

RATE_POINTS = 8
PAINT_INTERVAL_MS = 30  # streamed estimates are painted at most this often
CLOSE_POLL_MS = 20  # while closing, how often the window looks whether the worker has stopped


class MainWindow(QMainWindow):
    """``decode_ended(request id, "done" | "stopped" | "failed")`` fires once the window has shown
    the outcome of the current decode; ``idle`` when the current decode and rate sweep have both
    ended; ``closed`` when a close has completed (the worker has stopped). All are emitted on the
    GUI thread."""

    decode_ended = Signal(int, str)
    idle = Signal()
    closed = Signal()

    def __init__(self, engine_factory: EngineFactory, settings: QSettings, samples_dir: Path = SAMPLES_DIR,
                 rate_points: int = RATE_POINTS) -> None:
        super().__init__()
        self.setWindowTitle("hfd-viewer")
        self.setAcceptDrops(True)
        self.settings = ViewerSettings(settings)
        self.samples_dir = samples_dir
        self.rate_points = rate_points
        self.host = WorkerHost(engine_factory)
        self.worker = self.host.worker

        self.info: Optional[ModelInfo] = None
        self.device = ""
        self.image: Optional[OpenedImage] = None
        self.encoded: Optional[Encoded] = None
        self.raw: dict[str, Optional[np.ndarray]] = {p: None for p in PANES}
        self.stats: dict[str, Optional[PaneStats]] = {p: None for p in PANES}
        self.show_maps = False
        self._maps: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray, float]] = {}  # pane -> (a, b, map, scale)
        self._map_id = 0
        self._map_inputs_sent: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        # What produced each pane's current content (captions describe that, not the controls):
        # the request id of the autoencoder and refined panes, the classical file, the settings.
        self.content: dict[str, Optional[int]] = {p: None for p in PANES}
        self.classical: Optional[ClassicalPane] = None
        self.refined_shown: Optional[DecodeSettings] = None
        self.stale: set[str] = set()  # panes still showing an earlier request's result
        self._closing = False
        self.request: Optional[DecodeRequest] = None
        self._request_values: Optional[ControlValues] = None  # the panel's values that made ``request``
        self._classical_pending = False  # a classical pane alone is being made (another codec)
        self.decode_busy = False
        self.rate_busy = False
        self.last_step: Optional[StepReport] = None
        self._open_key = 0
        self._rate_id = 0
        self._pending_estimate: Optional[np.ndarray] = None
        self._paint_timer = QTimer(self)
        self._paint_timer.setSingleShot(True)
        self._paint_timer.setInterval(PAINT_INTERVAL_MS)
        self._paint_timer.timeout.connect(self._paint_estimate)
        self.demo = DemoMode(self)

        self._build_widgets()
        self.actions_by_name, self.legend_actions = build_menus(self)
        self._connect_worker()
        geometry = self.settings.geometry()
        if geometry is not None:
            self.restoreGeometry(geometry)
        else:
            self._first_run_size()
        self.set_mode(self.settings.view_mode() if self.settings.view_mode() in MODES else "grid")
        self.worker.request_engine(self.controls.values().device)

    # ---- construction ------------------------------------------------------------------
    def _first_run_size(self) -> None:
        """Most of the screen, capped at a size where the panes are already large."""
        screen = self.screen().availableGeometry() if self.screen() is not None else None
        width, height = (1600, 1000) if screen is None else (min(1600, int(screen.width() * 0.95)),
                                                              min(1000, int(screen.height() * 0.95)))
        self.resize(width, height)

    def _build_widgets(self) -> None:
        self.controls = ControlPanel(self.settings.controls(), devices())
        self.views = ComparisonViews()
        self.banner = Banner()
        self.status = DecodeStatus()
        self.table = StatsTable()
        self.step_plot = StepPlot()
        self.rate_plot = RatePlot()
        self.loupe = LoupeWindow(self)
        self.map_legend = QLabel()
        self.map_legend.setPixmap(to_pixmap(colour_bar(120, 10)))
        self.map_legend_text = QLabel(f"0 … {ERROR_MAX:.0f}+ levels (pane 1: its own scale)")
        self.map_legend.setToolTip("Absolute difference per pixel, averaged over R, G, B (8-bit levels).")
        self.pixel_readout = QLabel()
        self.statusBar().addPermanentWidget(self.pixel_readout)
        self.setCentralWidget(self._lay_out())

        self.controls.changed.connect(self._on_controls)
        self.controls.device_changed.connect(self._on_device)
        self.views.crop_drawn.connect(self.show_loupe)
        self.views.hovered.connect(self._on_hover)
        self.views.mode_changed.connect(self._on_mode_changed)
        self.status.stop_clicked.connect(self.stop_decode)
        self.rate_plot.bpp_clicked.connect(self.controls.set_bpp)

    def _lay_out(self) -> QWidget:
        """Images with the decode status under them, numbers below; controls and the step plot on the right."""
        image_column = QWidget()
        column = QVBoxLayout(image_column)
        column.setContentsMargins(0, 0, 0, 0)
        column.setSpacing(2)
        column.addWidget(self.banner)
        column.addWidget(self.views, 1)
        column.addWidget(self.status)
        table_column = QWidget()
        table_layout = QVBoxLayout(table_column)
        table_layout.setContentsMargins(0, 0, 0, 0)
        table_layout.addWidget(self.table)
        note = QLabel("Every pane is measured against the original. ↑ higher is better, ↓ lower is better. "
                      "Bytes count the whole file. Hover a column title for what it means.")
        note.setWordWrap(True)
        note.setStyleSheet("color: #666; padding: 4px;")
        table_layout.addWidget(note)
        table_layout.addStretch(1)
        numbers = QSplitter(Qt.Orientation.Horizontal)
        numbers.addWidget(table_column)
        numbers.addWidget(self.rate_plot)
        numbers.setSizes([520, 420])
        left = QSplitter(Qt.Orientation.Vertical)
        left.addWidget(image_column)
        left.addWidget(numbers)
        left.setStretchFactor(0, 1)
        left.setSizes([700, 200])
        scroll = QScrollArea()
        scroll.setWidget(self.controls)
        scroll.setWidgetResizable(True)
        side = QSplitter(Qt.Orientation.Vertical)
        side.addWidget(scroll)
        side.addWidget(self.step_plot)
        side.setStretchFactor(0, 0)  # the controls keep their height; the step plot takes what is left
        side.setStretchFactor(1, 1)
        side.setSizes([self.controls.sizeHint().height() + 8, 160])
        side.setMinimumWidth(320)
        main = QSplitter(Qt.Orientation.Horizontal)
        main.addWidget(left)
        main.addWidget(side)
        main.setStretchFactor(0, 1)
        main.setSizes([1100, 340])
        return main

    def _on_saved(self, path: str) -> None:
        self.statusBar().showMessage(f"Saved {path}", 5000)

    def _on_save_failed(self, path: str, message: str) -> None:
        self.banner.show_message(f"Could not save {Path(path).name}: {message}", topic="save")

    def _connect_worker(self) -> None:
        w = self.worker
        w.opened.connect(self._on_opened)
        w.open_failed.connect(self._on_open_failed)
        w.engine_ready.connect(self._on_engine_ready)
        w.engine_failed.connect(self._on_engine_failed)
        w.encoded.connect(self._on_encoded)
        w.encode_progress.connect(self._on_encode_progress)
        w.pane_ready.connect(self._on_pane_ready)
        w.classical_ready.connect(self._on_classical)
        w.classical_failed.connect(self._on_classical_failed)
        w.map_ready.connect(self._on_map)
        # Methods, not lambdas: a lambda has no thread, so Qt would run it on the worker's thread
        # (a direct connection) and it would touch widgets from there.
        w.saved.connect(self._on_saved)
        w.save_failed.connect(self._on_save_failed)
        w.stats_ready.connect(self._on_stats)
        w.step.connect(self._on_step)
        w.decode_finished.connect(self._on_decode_finished)
        w.decode_cancelled.connect(self._on_decode_cancelled)
        w.decode_failed.connect(self._on_decode_failed)
        w.rate_point.connect(self._on_rate_point)
        w.rate_finished.connect(self._on_rate_finished)

    # ---- opening images ----------------------------------------------------------------
    def start(self, image: Optional[Path] = None) -> None:
        """Open ``image``, else the first sample, else invite the user to open one."""
        samples = sample_paths(self.samples_dir)
        if image is not None:
            self.open_path(image)
        elif samples:
            self.open_path(samples[0])
        else:
            self.banner.show_message("Open an image (Ctrl+O) or drop one on this window.", "info", "open")

    def open_path(self, path: Path | str) -> None:
        self._open_key += 1
        self.statusBar().showMessage(f"Opening {Path(path).name}…")
        self.worker.request_open(self._open_key, Path(path))

    def choose_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open image or .hfd file", "",
                                              "Images and .hfd files (*.png *.jpg *.jpeg *.webp *.bmp *.tif *.tiff "
                                              "*.ppm *.avif *.hfd);;.hfd files (*.hfd);;All files (*)")
        if path:
            self.open_path(path)

    def _on_opened(self, opened: OpenedImage) -> None:
        if opened.key != self._open_key:
            return
        self.image = opened
        self.encoded = None
        self.banner.clear("open", "decode")
        what = " (a .hfd file: no original to compare with)" if opened.hfd is not None else (
            " (transparency flattened onto white)" if opened.had_alpha else "")
        self.statusBar().showMessage(f"{opened.path.name}: {opened.width}×{opened.height}{what}", 5000)
        self.setWindowTitle(f"{opened.path.name} — hfd-viewer")
        self.settings.add_recent(opened.path)
        for pane in PANES:
            self.raw[pane] = opened.rgb if pane == "original" else None
            self.stats[pane] = None
            self.content[pane] = None
        self.classical, self.refined_shown = None, None
        self.stale.clear()
        self._maps.clear()
        self.table.clear_numbers()
        self.table.set_original(opened.file_bytes, opened.width, opened.height, opened.hfd is not None)
        self.controls.clear_encoded()
        self.controls.set_file_mode(opened.hfd is not None)
        self.rate_plot.reset(CODEC_LABELS[self.controls.values().codec])
        self._refresh_all()
        self.request_rate()
        self.request_decode()

    def _on_open_failed(self, path: str, message: str) -> None:
        self.statusBar().clearMessage()
        kept = " The previous image stays." if self.image is not None else ""
        self.banner.show_message(f"Could not open {Path(path).name}: {message}.{kept}", topic="open")
        self._check_idle()

    def fill_recent(self) -> None:
        self.recent_menu.clear()
        for path in self.settings.recent_files():
            self.recent_menu.addAction(str(path), lambda p=path: self.open_path(p))
        if self.recent_menu.isEmpty():
            self.recent_menu.addAction("(none yet)").setEnabled(False)

    def fill_samples(self) -> None:
        self.samples_menu.clear()
        for path in sample_paths(self.samples_dir):
            self.samples_menu.addAction(path.name, lambda p=path: self.open_path(p))
        if self.samples_menu.isEmpty():
            self.samples_menu.addAction(f"(no images in {self.samples_dir})").setEnabled(False)

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:  # noqa: N802
        if any(url.isLocalFile() for url in event.mimeData().urls()):
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:  # noqa: N802
        files = [url.toLocalFile() for url in event.mimeData().urls() if url.isLocalFile()]
        if files:
            event.acceptProposedAction()
            self.open_path(files[0])

    # ---- requests ----------------------------------------------------------------------
    def request_decode(self) -> None:
        if self.image is None or self.info is None:
            return
        values = self.controls.values()
        rid = (self.request.request_id + 1) if self.request else 1
        optimise = DEFAULT_OPTIMISE_STEPS if values.optimise and self.image.hfd is None else 0
        self.request = DecodeRequest(rid, self.image.key, self.image.rgb, values.bpp, values.settings(),
                                     values.codec, optimise, hfd=self.image.hfd)
        self._request_values = values
        self.decode_busy = True
        self.last_step = None
        self.encoded = None  # the file of this request is not made yet: nothing may be matched to the last one
        self._paint_timer.stop()  # an estimate of the last request must not land under this one
        self._pending_estimate = None
        self.step_plot.reset(values.steps)
        self.status.started("reading the file…" if self.image.hfd is not None else
                            "optimising the encoding…" if optimise else "encoding…", values.steps)
        self.table.mark_pending("refined")
        self._mark_stale({"ae", "refined", "classical"})
        self.worker.request_decode(self.request)

    def _request_classical(self) -> None:
        """Another "Compare with" codec for the same file: only the classical pane and the rate
        curve's classical points are made again."""
        values = self.controls.values()
        self.request = replace(self.request, codec=values.codec)
        self._classical_pending = True
        self._mark_stale({"classical"})  # its caption keeps naming the codec it still shows
        self.table.mark_pending("classical")
        if self.encoded is not None and self.image is not None and self.image.rgb is not None:
            self.worker.request_classical(ClassicalRequest(self.request.request_id, self.image.key, self.image.rgb,
                                                           values.codec, self.encoded.nbytes))
        self.request_rate()

    def _mark_stale(self, panes: set[str]) -> None:
        """Panes keep their last image until the new one lands, dimmed and captioned as earlier."""
        self.stale |= {p for p in panes if self.raw[p] is not None}
        for pane in panes:
            self.views.set_stale(pane, pane in self.stale)
        self._refresh_captions()

    def request_rate(self) -> None:
        if self.image is None or self.info is None or self.image.rgb is None:
            return
        self._rate_id += 1
        lo, hi = self.controls.bpp_range()
        bpps = tuple(round(float(b), 4) for b in np.geomspace(lo, hi, self.rate_points))
        codec = self.controls.values().codec
        self.rate_busy = True
        self.rate_plot.reset(CODEC_LABELS[codec])
        self.worker.request_rate(RateRequest(self._rate_id, self.image.key, self.image.rgb, codec, bpps))

    def stop_decode(self) -> None:
        if self.decode_busy:
            self.worker.cancel_decode()

    def _on_controls(self, values: ControlValues) -> None:
        self.settings.set_controls(values)
        made = self._request_values
        if made is not None and values != made and replace(values, codec=made.codec) == made and \
                self.encoded is not None:  # the file exists: only the classical pane has to follow
            self._request_values = values
            self._request_classical()  # only "Compare with" changed
            return
        self.request_decode()

    def _on_device(self, device: str) -> None:
        self.statusBar().showMessage(f"Loading the model on {device}…")
        self.worker.request_engine(device)

    # ---- worker results ----------------------------------------------------------------
    def _current(self, rid: int) -> bool:
        return self.request is not None and rid == self.request.request_id

    def _on_engine_ready(self, info: ModelInfo, device: str) -> None:
        self.info, self.device = info, device
        self.controls.set_info(info, use_defaults=not self.settings.has_controls())
        self.controls.show_device(device)
        self.statusBar().showMessage(f"Model {info.model_id} ready ({device})", 5000)
        self.banner.clear("model")
        self.request_rate()
        self.request_decode()

    def _on_engine_failed(self, message: str) -> None:
        self.info = None
        self.banner.show_message(f"The model could not be loaded: {message}", topic="model")
        self.status.stopped("no model")
        self.decode_busy = self.rate_busy = False
        self.idle.emit()

    def _on_encoded(self, rid: int, encoded: Encoded) -> None:
        if self._current(rid):
            self.encoded = encoded
            if self.request.settings.realism is None and self.info is not None:
                # Auto realism: from now on the request names the blend this file's rate gives.
                self.request = replace(self.request, settings=self.info.resolve(self.request.settings, encoded.rate))
                self.controls.show_realism(self.request.settings.realism)
                self._refresh_captions()
            if encoded.reach is not None and self.image is not None and self.image.hfd is None:
                self.controls.set_bpp_reach(*encoded.reach)  # the slider spans what this photo can reach
            at_minimum = self.image is not None and self.image.hfd is None and encoded.bpp > self.request.bpp
            self.controls.show_encoded(encoded.nbytes, encoded.bpp, at_minimum=at_minimum)
            self.rate_plot.set_current(encoded.bpp)
            self.status.started("decoding…", self.request.settings.steps)

    def _on_encode_progress(self, rid: int, done: int, total: int) -> None:
        if self._current(rid):
            self.status.optimising(done, total)

    def _on_pane_ready(self, rid: int, pane: str, rgb: np.ndarray) -> None:
        if not self._current(rid):
            return
        if pane == "refined":
            self._paint_timer.stop()
            self._pending_estimate = None
            self.refined_shown = self.request.settings
        self._set_content(pane, rgb, rid)
        if pane in ("ae", "refined"):
            self._refresh("original")  # the invented-detail map depends on both
        self.demo.update()

    def _on_classical(self, rid: int, rgb: np.ndarray, classical: ClassicalPane) -> None:
        if not self._current(rid) or classical.codec != self.request.codec:
            return
        self._classical_pending = False
        self.banner.clear("classical")
        self.classical = classical
        self._set_content("classical", rgb, rid)
        self.demo.update()

    def _on_classical_failed(self, rid: int, codec: str, message: str) -> None:
        if not self._current(rid) or codec != self.request.codec:
            return
        self._classical_pending = False
        self.banner.show_message(f"Could not make the {CODEC_LABELS[codec]} file of the same size: {message}",
                                 topic="classical")
        self._refresh_captions()

    def _set_content(self, pane: str, rgb: np.ndarray, rid: int) -> None:
        self.raw[pane], self.content[pane] = rgb, rid
        self.stale.discard(pane)
        self.views.set_stale(pane, False)
        self._refresh(pane)
        self.views.set_caption(pane, self.caption(pane))
        if self.show_maps:
            self._request_maps()

    def _on_stats(self, rid: int, pane: str, stats: PaneStats) -> None:
        if not self._current(rid) or (pane == "classical" and pane in self.stale):
            return  # a classical file of another codec, still on its way out
        self.stats[pane] = stats
        self.table.set_stats(pane, stats)
        self._refresh_caption(pane)
        if pane == "ae":
            self.step_plot.set_autoencoder_psnr(stats.psnr)
        if pane == "refined" and self.encoded is not None:
            self.rate_plot.set_current(self.encoded.bpp, stats.psnr)  # at the file's real bpp, on the curve
        if self.worker.perceptual_error:
            self.table.perceptual_note = f"n/a: {self.worker.perceptual_error}"

    def _on_step(self, rid: int, report: StepReport) -> None:
        if not self._current(rid):
            return
        self.last_step = report
        self.status.stepped(report.index, report.total, report.elapsed_s, report.tiles)
        if report.psnr is not None and report.tiles == 1:  # a decode in tiles has no image-wide steps to plot
            self.step_plot.add_point(report.index, report.psnr, report.perceptual)
        self._pending_estimate = report.estimate
        if not self._paint_timer.isActive():
            self._paint_timer.start()

    def _paint_estimate(self) -> None:
        if self._pending_estimate is not None and self.request is not None:
            self.refined_shown = self.request.settings
            self._set_content("refined", self._pending_estimate, self.request.request_id)
            self._pending_estimate = None
            self._refresh("original")
            self.demo.update()

    def _on_decode_finished(self, rid: int) -> None:
        if not self._current(rid):
            return
        self.decode_busy = False
        total = self.request.settings.steps
        elapsed = self.last_step.elapsed_s if self.last_step else 0.0
        tiles = f" in {self.last_step.tiles} tiles" if self.last_step and self.last_step.tiles > 1 else ""
        self.status.finished(f"done: {count(total, 'step')}{tiles} in {elapsed:.1f} s")
        self.banner.clear("decode")
        self.demo.update()
        self.decode_ended.emit(rid, "done")
        self._check_idle()

    def _on_decode_cancelled(self, rid: int) -> None:
        if not self._current(rid):
            return
        self.decode_busy = False
        step = self.last_step
        where = ""
        if step is not None and step.tiles > 1:
            per_tile = step.total // step.tiles
            where = f" after tile {step.index // per_tile}/{step.tiles}"
        elif step is not None:
            where = f" at step {step.index}/{step.total}"
        self.status.stopped(f"stopped{where}")
        self._refresh_captions()  # dimmed panes are no longer "updating"
        self.demo.update()
        self.decode_ended.emit(rid, "stopped")
        self._check_idle()

    def _on_decode_failed(self, rid: int, message: str) -> None:
        if not self._current(rid):
            return
        self.decode_busy = False
        self.banner.show_message(f"Could not refine: {message}", topic="decode")
        self.status.stopped("failed")
        self._refresh_captions()
        self.decode_ended.emit(rid, "failed")
        self._check_idle()

    def _on_rate_point(self, rid: int, point: RatePoint) -> None:
        if rid == self._rate_id:
            self.rate_plot.add_point(point)

    def _on_rate_finished(self, rid: int) -> None:
        if rid == self._rate_id:
            self.rate_busy = False
            self._check_idle()

    def _check_idle(self) -> None:
        if not self.decode_busy and not self.rate_busy:
            self.idle.emit()

    # ---- display -----------------------------------------------------------------------
    def _map_inputs(self, pane: str) -> tuple[Optional[np.ndarray], Optional[np.ndarray]]:
        """The two images a pane's difference map compares (pane 1: refined against autoencoder)."""
        return (self.raw["refined"], self.raw["ae"]) if pane == "original" else (self.raw[pane], self.raw["original"])

    def shown_image(self, pane: str) -> Optional[np.ndarray]:
        """What ``pane`` shows now: the image, or its difference map when maps are on (the worker
        computes maps; until one arrives the pane shows nothing rather than a stale map)."""
        if not self.show_maps:
            return self.raw[pane]
        a, b = self._map_inputs(pane)
        cached = self._maps.get(pane)
        if a is None or b is None or cached is None or cached[0] is not a or cached[1] is not b:
            return None  # results are new arrays, never edited: identity says the map is current
        return cached[2]

    def _request_maps(self) -> None:
        pairs = []
        for pane in PANES:
            a, b = self._map_inputs(pane)
            if a is not None and b is not None and self.shown_image(pane) is None:
                pairs.append((pane, a, b))
        if pairs:
            self._map_id += 1
            self._map_inputs_sent = {pane: (a, b) for pane, a, b in pairs}
            self.worker.request_maps(MapRequest(self._map_id, tuple(pairs)))

    def _on_map(self, map_id: int, pane: str, image: np.ndarray, scale: float) -> None:
        if map_id != self._map_id:
            return
        a, b = self._map_inputs_sent[pane]
        self._maps[pane] = (a, b, image, scale)
        if self.show_maps:
            self._refresh(pane)
            self.views.set_caption(pane, self.caption(pane))

    def refined_settings(self) -> DecodeSettings:
        """The settings of the refined pane: the live request's (its realism resolved once the file is
        coded), else the panel's."""
        return self.request.settings if self.request else self.controls.values().settings()

    def caption(self, pane: str) -> str:
        codec = self.request.codec if self.request else self.controls.values().codec
        if pane == "classical" and pane in self.stale and self.classical is not None:
            codec = self.classical.codec
        settings = self.refined_shown or self.refined_settings()
        # the classical pane is described against the file it was matched to, which a newer
        # bitrate's file (while the pane is stale) is not
        hfd_bytes = self.classical.target_bytes if self.classical is not None else None
        title = pane_title(pane, codec, settings, self.show_maps, self.classical, hfd_bytes)
        if self.show_maps and pane in self._maps and self.shown_image(pane) is not None and pane == "original":
            title += f", 0 … {self._maps[pane][3]:g}+ levels"
        elif self.show_maps and self.shown_image(pane) is None and self.raw[pane] is not None:
            title += " (computing the map…)"
        if pane == "original" and self.image is not None and self.image.hfd is not None and not self.show_maps:
            title = "Original: not available (a .hfd file was opened)"
        if pane in self.stale:
            title = f"{title} (earlier result, updating…)" if self.decode_busy or pane == "classical" and \
                self._classical_pending else f"{title} (earlier result)"
        return pane_caption(pane, title, None if self.show_maps or pane in self.stale else self.stats[pane])

    def _refresh(self, pane: str) -> None:
        image = self.shown_image(pane)
        self.views.set_image(pane, image)
        self.loupe.set_image(pane, image, self.caption(pane))

    def _refresh_caption(self, pane: str) -> None:
        self.views.set_caption(pane, self.caption(pane))
        self.loupe.set_image(pane, self.shown_image(pane), self.caption(pane))

    def _refresh_captions(self) -> None:
        for pane in PANES:
            self._refresh_caption(pane)

    def _refresh_all(self) -> None:
        for pane in PANES:
            self.views.set_stale(pane, pane in self.stale)
            self._refresh(pane)
            self.views.set_caption(pane, self.caption(pane))

    def set_maps(self, on: bool) -> None:
        self.show_maps = bool(on)
        self.actions_by_name["maps"].setChecked(self.show_maps)
        for action in self.legend_actions:
            action.setVisible(self.show_maps)
        if self.show_maps:
            self._request_maps()
        self._refresh_all()

    def set_mode(self, mode: str) -> None:
        self.views.set_mode(mode)
        self._on_mode_changed(self.views.mode)

    def _on_mode_changed(self, mode: str) -> None:
        shown = mode if mode != "flicker" else f"pane_{PANES.index(self.views.flicker.current) + 1}"
        self.actions_by_name[shown].setChecked(True)
        self.settings.set_view_mode(mode)

    def show_loupe(self, crop: Crop) -> None:
        for pane in PANES:
            self.loupe.set_image(pane, self.shown_image(pane), self.caption(pane))
        self.loupe.set_crop(crop)
        self.loupe.show()
        self.loupe.raise_()

    def _on_hover(self, pane: str, x: int, y: int) -> None:
        """The pixel under the cursor in every pane: RGB, or with maps on the difference each map shows."""
        parts = [f"x {x}, y {y}"]
        for p in PANES:
            mark = "▸" if p == pane else ""
            if self.show_maps:
                a, b = self._map_inputs(p)
                if a is not None and b is not None and y < a.shape[0] and x < a.shape[1]:
                    value = float(abs_difference(a[y:y + 1, x:x + 1], b[y:y + 1, x:x + 1])[0, 0])
                    parts.append(f"{mark}{PANES.index(p) + 1}: Δ {value:.1f}")
                continue
            image = self.raw[p]
            if image is not None and y < image.shape[0] and x < image.shape[1]:
                r, g, b = (int(v) for v in image[y, x])
                parts.append(f"{mark}{PANES.index(p) + 1}: {r},{g},{b}")
        self.pixel_readout.setText("   ".join(parts))

    # ---- export (written by the worker: a 12 MP PNG takes seconds) ---------------------
    def save_pane(self, pane: str, path: Path | str) -> None:
        image = self.shown_image(pane)
        if image is None:
            raise ValueError(f"the {pane} pane is empty")
        self.worker.request_export(ExportRequest(Path(path), image=image))

    def save_hfd(self, path: Path | str) -> None:
        if self.encoded is None:
            raise ValueError("nothing encoded yet")
        self.worker.request_export(ExportRequest(Path(path), data=self.encoded.data))

    def save_comparison(self, path: Path | str) -> None:
        panels = tuple((self.caption(p), self.shown_image(p)) for p in PANES if self.shown_image(p) is not None)
        if not panels:
            raise ValueError("no image to compare")
        self.worker.request_export(ExportRequest(Path(path), panels=panels))

    # ---- demo mode ---------------------------------------------------------------------
    def enter_demo(self) -> None:
        self.demo.enter()

    # ---- closing -----------------------------------------------------------------------
    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802
        """Close at any moment without freezing: every engine job is cancelled and stops within a
        tile; until the worker thread has ended the window is hidden and the close waits for it
        (destroying a running QThread would abort the process)."""
        if not self._closing:
            self._closing = True
            self.settings.set_geometry(self.saveGeometry())
            self.settings.sync()
            self.demo.leave()
            self.loupe.close()
            self.host.request_stop()
        if self.host.finished():
            super().closeEvent(event)
            # A window hidden while it waited no longer counts as the last one closing, so Qt would
            # not quit on its own: the application listens to this instead.
            self.closed.emit()
            return
        event.ignore()
        self.hide()
        QTimer.singleShot(CLOSE_POLL_MS, self.close)
