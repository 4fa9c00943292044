"""The side panel of knobs: bitrate (the only one that changes the file) and the decoder's
own settings (which change only how the same file is decoded)."""
from __future__ import annotations

import random
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Iterator, Optional

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from engine.api import DEFAULT_DECODER, DEFAULT_OPTIMISE_STEPS, DecodeSettings, ModelInfo
from viewer.choices import DECODER_LABELS, DEVICES
from viewer.widgets.float_slider import FloatSlider
from viewer.worker.jobs import CODEC_LABELS, CODECS

MAX_SEED = 2**31 - 1

TIPS = {
    "bpp": "How many bits per pixel the file may use. Lower means a smaller file and a blurrier "
           "autoencoder image. This is the only control that changes the file; all others change "
           "only how the same file is decoded.",
    "optimise": f"Search, for this image, for latents that cost fewer bits at the same quality "
                f"({DEFAULT_OPTIMISE_STEPS} gradient steps, up to three times to fill the bitrate): a better file that any "
                "decoder reads, but encoding takes seconds on a GPU and a minute or more on a CPU. The rate "
                "plot always shows the plain encoder.",
    "decoder": "Which generative decoder adds the fine detail: diffusion or rectified flow. "
               "Picking one brings its recommended steps, shift and noise.",
    "steps": "How many refinement steps the decoder takes (1-256); each step is one pass of the "
             "network. With the shipped weights more steps do not mean a better picture: the flow "
             "invents more texture and strays further from the original, the diffusion decoder "
             "gets worse. The recommended count was measured best.",
    "shift": "Moves the noise schedule toward less noise (the flow: spends its steps near the end of "
             "its path). Higher: the decoder trusts the autoencoder image more and changes less; "
             "lower: it invents more.",
    "noise": "Fresh randomness added at each step. 0 = deterministic (diffusion: DDIM; flow: its ODE), "
             "1 = fully stochastic (diffusion: ancestral DDPM; flow: the start noise is drawn afresh "
             "before every step).",
    "seed": "The decoder's random seed. The same file and seed always give the same picture; "
            "a new seed invents different detail.",
    "new_seed": "Pick a random seed and decode again.",
    "realism": "Blend between the autoencoder image the Autoencoder pane shows (0; post-filtered, if "
               "the model has a post-filter) and the fully refined image (1). Untick Auto to set it "
               "yourself.",
    "realism_auto": "Use the blend the model's sweeps chose for the rate this file was coded at: full "
                    "refinement where the bits leave much to restore, less where they leave little (the "
                    "model card's decode defaults). The slider shows the blend of the last decode.",
    "codec": "The classical codec shown beside it, tuned to produce a file of the same size.",
    "device": "Where the model runs. Auto uses the GPU when there is one.",
}


# The fixed realism defaults of the versions before it followed the rate (1 until 2026-11-27,
# then 0.5): a remembered value among them was the default, not a choice.
OLD_DEFAULT_REALISMS = (1.0, 0.5)
# ControlValues.version: 1 (not stored) until the flow read the shift, which it had ignored.
CONTROLS_VERSION = 2


@dataclass(frozen=True)
class ControlValues:
    """Everything the panel sets; what the worker needs and what QSettings remembers."""

    bpp: float = 0.15
    optimise: bool = False  # encoder-side latent optimisation
    decoder: str = DEFAULT_DECODER
    steps: int = 16
    shift: float = 0.0
    noise: float = 0.0
    seed: int = 0
    realism: float = 1.0
    realism_auto: bool = True  # the weights' realism for the file's rate; ``realism`` is then only shown
    codec: str = "jpeg"
    device: str = "auto"
    version: int = CONTROLS_VERSION  # of what the remembered values mean

    def settings(self) -> DecodeSettings:
        return DecodeSettings(decoder=self.decoder, steps=self.steps, shift=self.shift, noise=self.noise,
                              seed=self.seed, realism=None if self.realism_auto else self.realism)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ControlValues":
        """Build from remembered values, ignoring unknown keys and unreadable values."""
        values = cls()
        for f in fields(cls):
            if f.name in data:
                try:
                    values = replace(values, **{f.name: type(getattr(values, f.name))(data[f.name])})
                except (TypeError, ValueError):
                    pass
        if "realism" in data and "realism_auto" not in data and values.realism not in OLD_DEFAULT_REALISMS:
            # Remembered by a version without the automatic blend, which decoded every file at the
            # slider's value: one that is no old default was set by hand, so it stays in force.
            values = replace(values, realism_auto=False)
        if "version" not in data and values.decoder == "flow":
            # Remembered before the flow read the shift: it decoded with uniform steps (shift 0).
            values = replace(values, shift=0.0)
        return values


def _clamp(value: float, bounds: tuple[float, float]) -> float:
    return min(max(value, bounds[0]), bounds[1])


class ControlPanel(QWidget):
    """Emits ``changed`` with the new ControlValues whenever the user moves anything."""

    changed = Signal(object)  # ControlValues
    device_changed = Signal(str)

    def __init__(self, values: ControlValues = ControlValues(), devices: tuple[str, ...] = tuple(DEVICES)) -> None:
        super().__init__()
        self._info: Optional[ModelInfo] = None
        self._quiet = False
        self._wanted_bpp = values.bpp  # kept through range changes: a slider clamps what it is given
        self._model_bpp_range = (0.005, 4.0)

        self.bpp = FloatSlider(0.05, 1.0, values.bpp, fmt="{:.3f} bpp", log=True)
        self.file_label = QLabel("file: not encoded yet")
        self.optimise = QCheckBox("Optimise the encoding (slow)")
        self.decoder = QComboBox()
        for key, label in DECODER_LABELS.items():
            self.decoder.addItem(label, key)
        self.steps = QSpinBox()
        self.steps.setRange(1, 256)
        self.shift = FloatSlider(0.0, 4.0, values.shift, fmt="{:+.2f}")
        self.noise = FloatSlider(0.0, 1.0, values.noise)
        self.seed = QSpinBox()
        self.seed.setRange(0, MAX_SEED)
        self.new_seed = QPushButton("New seed")
        self.realism = FloatSlider(0.0, 1.0, values.realism)
        self.realism_auto = QCheckBox("Auto")
        self.codec = QComboBox()
        for key in CODECS:
            self.codec.addItem(CODEC_LABELS[key], key)
        self.device = QComboBox()
        for key in devices:  # only what this machine has: no GPU entry without CUDA
            self.device.addItem(DEVICES[key], key)

        for name in ("bpp", "optimise", "decoder", "steps", "shift", "noise", "seed", "new_seed", "realism",
                     "realism_auto", "codec", "device"):
            getattr(self, name).setToolTip(TIPS[name])
        self.file_label.setToolTip("Size of the real .hfd file at this bitrate (every byte counted).")

        file_box = QGroupBox("File (bits)")
        file_form = QFormLayout(file_box)
        file_form.addRow("Bitrate", self.bpp)
        file_form.addRow("", self.file_label)
        file_form.addRow("", self.optimise)
        file_form.addRow("Compare with", self.codec)
        decode_box = QGroupBox("Decoder (same bits, different pixels)")
        form = QFormLayout(decode_box)
        form.addRow("Decoder", self.decoder)
        form.addRow("Steps", self.steps)
        form.addRow("Schedule shift", self.shift)
        form.addRow("Sampler noise", self.noise)
        seed_row = QHBoxLayout()
        seed_row.addWidget(self.seed, 1)
        seed_row.addWidget(self.new_seed)
        form.addRow("Seed", seed_row)
        realism_row = QHBoxLayout()
        realism_row.addWidget(self.realism, 1)
        realism_row.addWidget(self.realism_auto)
        form.addRow("Realism", realism_row)
        form.addRow("Device", self.device)
        for label_form, name in ((file_form, "bpp"), (file_form, "codec"), (form, "decoder"), (form, "steps"),
                                 (form, "shift"), (form, "noise"), (form, "seed"), (form, "realism"),
                                 (form, "device")):
            label = label_form.labelForField(getattr(self, name))
            if label is not None:
                label.setToolTip(TIPS[name])
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(file_box)
        layout.addWidget(decode_box)
        layout.addStretch(1)

        self.set_values(values)
        for signal in (self.bpp.valueChanged, self.shift.valueChanged, self.noise.valueChanged,
                       self.realism.valueChanged, self.steps.valueChanged, self.seed.valueChanged,
                       self.codec.currentIndexChanged, self.optimise.toggled):
            signal.connect(self._emit)
        self.decoder.currentIndexChanged.connect(self._on_decoder)
        self.realism_auto.toggled.connect(self._on_realism_auto)
        self.device.currentIndexChanged.connect(self._on_device)
        self.new_seed.clicked.connect(lambda: self.seed.setValue(random.randint(0, MAX_SEED)))

    # ---- state -------------------------------------------------------------------------
    def values(self) -> ControlValues:
        """What the panel sets; the bitrate as the user wants it, even where this image's range
        clamps the slider (a remembered 0.0086 bpp stays 0.0086)."""
        return ControlValues(
            bpp=round(self._wanted_bpp, 4), optimise=self.optimise.isChecked(), decoder=self.decoder.currentData(), steps=self.steps.value(),
            shift=round(self.shift.value(), 3), noise=round(self.noise.value(), 3), seed=self.seed.value(),
            realism=round(self.realism.value(), 3), realism_auto=self.realism_auto.isChecked(),
            codec=self.codec.currentData(),
            device=self.device.currentData())

    def bpp_range(self) -> tuple[float, float]:
        return self.bpp.range()

    def set_bpp_reach(self, low: float, high: float) -> None:
        """Span the bitrate slider over what this image's files reach (rate 0 to rate 1)."""
        with self._silently():
            self.bpp.setRange(low, high)
            self.bpp.setValue(_clamp(self._wanted_bpp, (low, high)))

    def set_file_mode(self, file_opened: bool) -> None:
        """A .hfd file fixes the bits: the bitrate, the encoder and the classical codec do not apply."""
        for widget in (self.bpp, self.optimise, self.codec):
            widget.setEnabled(not file_opened)
        if file_opened:
            self.file_label.setText("file: the .hfd file opened (its bits are fixed)")
        else:
            with self._silently():
                self.bpp.setRange(*self._model_bpp_range)
                self.bpp.setValue(_clamp(self._wanted_bpp, self._model_bpp_range))

    def show_device(self, device_type: str) -> None:
        """Where the loaded model runs ("cpu", "cuda"), for the tooltip of an Auto choice."""
        self.device.setToolTip(f"{TIPS['device']} The model runs on: {device_type.upper()}.")

    @contextmanager
    def _silently(self) -> Iterator[None]:
        """Widgets changed inside do not emit ``changed``."""
        self._quiet = True
        try:
            yield
        finally:
            self._quiet = False

    def set_values(self, values: ControlValues) -> None:
        """Show ``values`` without emitting ``changed``."""
        with self._silently():
            self._wanted_bpp = values.bpp
            self.bpp.setValue(values.bpp)
            self.optimise.setChecked(values.optimise)
            self._select(self.decoder, values.decoder)
            self.steps.setValue(values.steps)
            self._fit_shift_range(values.decoder)
            self.shift.setValue(values.shift)
            self.noise.setValue(values.noise)
            self.seed.setValue(values.seed)
            self.realism.setValue(values.realism)
            self.realism_auto.setChecked(values.realism_auto)
            self.realism.setEnabled(not values.realism_auto)
            self._select(self.codec, values.codec)
            self._select(self.device, values.device)

    def set_info(self, info: ModelInfo, use_defaults: bool = False) -> None:
        """Fit the ranges and decoder list to the loaded weights; ``use_defaults`` also takes the
        model's recommended settings for the current decoder (a first run, nothing remembered)."""
        self._info = info
        values = self.values()
        self._model_bpp_range = info.bpp_range
        with self._silently():
            self.bpp.setRange(*info.bpp_range)
            for key in DECODER_LABELS:
                index = self.decoder.findData(key)
                self.decoder.model().item(index).setEnabled(key in info.decoders)
        if values.decoder not in info.decoders:
            usable = [d for d in DECODER_LABELS if d in info.decoders]
            if usable:
                values = self._with_defaults(replace(values, decoder=usable[0]))
        elif use_defaults:
            values = self._with_defaults(values)
        # set_values fits the shift slider to the decoder's range, which clamps the shift; the
        # remembered bitrate stays wanted, whatever this range clamps it to for now
        wanted = self._wanted_bpp
        self.set_values(replace(values, bpp=_clamp(wanted, info.bpp_range)))
        self._wanted_bpp = wanted

    def _fit_shift_range(self, decoder: str) -> None:
        """The shift slider spans ``decoder``'s shifts, and only a decoder with a schedule enables it."""
        shift_range = self._info.shift_ranges.get(decoder) if self._info is not None else None
        if shift_range is not None:
            self.shift.setRange(*shift_range)
        self.shift.setEnabled(shift_range is not None)

    def show_encoded(self, nbytes: int, bpp: float, at_minimum: bool = False) -> None:
        """``at_minimum``: the target was below the smallest file the model makes for this image."""
        note = "<br><i>the smallest file for this image</i>" if at_minimum else ""
        self.file_label.setText(f"file: <b>{nbytes:,} bytes</b> · {bpp:.3f} bpp{note}")

    def clear_encoded(self) -> None:
        """A new image: no file of it exists yet (the label must not keep the last image's size)."""
        self.file_label.setText("file: not encoded yet")

    def show_realism(self, realism: float) -> None:
        """Show the realism an automatic blend resolved to for the file just coded (no ``changed``)."""
        if self.realism_auto.isChecked():
            with self._silently():
                self.realism.setValue(realism)

    def set_bpp(self, bpp: float) -> None:
        """Move the bitrate slider as if the user had (e.g. from a click on the rate plot)."""
        self._wanted_bpp = bpp
        self.bpp.setValue(bpp)

    # ---- reactions ---------------------------------------------------------------------
    def _on_decoder(self) -> None:
        if self._quiet:
            return
        self.set_values(self._with_defaults(self.values()))
        self._emit()

    def _on_realism_auto(self, auto: bool) -> None:
        self.realism.setEnabled(not auto)  # unticked, the slider starts from the blend last shown
        self._emit()

    def _on_device(self) -> None:
        if not self._quiet:
            self.device_changed.emit(self.device.currentData())
            self._emit()

    def _with_defaults(self, values: ControlValues) -> ControlValues:
        """A decoder switch brings that decoder's recommended steps, shift, noise and realism (Auto
        where the weights' realism follows the rate)."""
        default = self._info.defaults.get(values.decoder) if self._info else None
        if default is None:
            return values
        realism = dict(realism_auto=True) if default.realism is None else dict(realism=default.realism,
                                                                                 realism_auto=False)
        return replace(values, steps=default.steps, shift=default.shift, noise=default.noise, **realism)

    def _emit(self, *_args) -> None:
        if not self._quiet:
            if self.sender() is self.bpp:
                self._wanted_bpp = self.bpp.value()  # the user moved it: what it shows is wanted
            self.changed.emit(self.values())

    @staticmethod
    def _select(combo: QComboBox, key: str) -> None:
        index = combo.findData(key)
        if index >= 0:
            combo.setCurrentIndex(index)
