"""Help → About: what this program is and the facts of the loaded model (from its card)."""
from __future__ import annotations

from typing import Optional

from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QLabel,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from engine.api import ModelInfo

INTRO = ("<b>hfd-viewer</b> compares a learned image codec with a classical one at the same file size. "
         "The autoencoder's bits set the file; a diffusion model or rectified flow then adds fine "
         "detail at decode time without extra bits.")


DEVICE_NAMES = {"cpu": "the CPU", "cuda": "the GPU (CUDA)"}


def model_facts_html(info: Optional[ModelInfo], device: str) -> str:
    if info is None:
        return "<p><i>No model loaded.</i></p>"
    decoders = ", ".join(info.decoders)
    return (f"<table><tr><td>Model</td><td>{info.model_id}</td></tr>"
            f"<tr><td>Weights hash</td><td><code>{info.weights_hash}</code></td></tr>"
            f"<tr><td>Decoders</td><td>{decoders}</td></tr>"
            f"<tr><td>Bitrate range</td><td>{info.bpp_range[0]:.3f}–{info.bpp_range[1]:.3f} bpp</td></tr>"
            + "".join(f"<tr><td>Schedule shift range, {kind}</td><td>{low:+.2f} to {high:+.2f}</td></tr>"
                      for kind, (low, high) in info.shift_ranges.items())
            + (f"<tr><td>Flow start noise</td><td>σ = {info.flow_sigma.describe()}</td></tr>"
               if info.flow_sigma is not None else "")
            + (f"<tr><td>Post-filter</td><td>yes (<code>{info.post_filter_hash}</code>): the autoencoder "
               "image is its estimate of the original, and the decoders' realism blends toward it</td></tr>"
               if info.post_filter_hash is not None else "")
            + "".join(f"<tr><td>The {kind} decoder refines</td><td>{info.refines_text(kind)}</td></tr>"
                      for kind in info.decoder_conditions)
            + "".join(f"<tr><td>Default realism, {kind}</td><td>{schedule.describe()}</td></tr>"
                      for kind, schedule in info.realism.items())
            + f"<tr><td>Running on</td><td>{DEVICE_NAMES.get(device, device or 'not loaded yet')}</td></tr></table>")


class AboutDialog(QDialog):
    """Non-modal; shows the model card text below the facts."""

    def __init__(self, info: Optional[ModelInfo], device: str, parent: Optional[QWidget] = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("About hfd-viewer")
        self.resize(560, 520)
        layout = QVBoxLayout(self)
        intro = QLabel(INTRO + model_facts_html(info, device))
        intro.setWordWrap(True)
        layout.addWidget(intro)
        self.card = QTextBrowser()
        self.card.setMarkdown(info.card if info is not None and info.card else "_No model card._")
        layout.addWidget(self.card, 1)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.close)
        layout.addWidget(buttons)
