"""The words on screen: pane titles, number summaries, demo captions. Plain functions of state."""
from __future__ import annotations

from typing import Optional

from engine.api import DecodeSettings

from .controls import DECODER_LABELS
from .jobs import CODEC_LABELS, PANES, PaneStats
from .panes import PANE_TITLES

MAP_TITLES = {
    "original": "Invented detail |refined − autoencoder|",
    "ae": "Autoencoder error |AE − original|",
    "refined": "Refined error |refined − original|",
    "classical": "{codec} error |{codec} − original|",
}


def human_size(nbytes: int) -> str:
    if nbytes < 1000:
        return f"{nbytes} B"
    if nbytes < 1_000_000:
        return f"{nbytes / 1000:.1f} KB"
    return f"{nbytes / 1_000_000:.2f} MB"


def decoder_text(settings: DecodeSettings) -> str:
    """"diffusion, 2 steps", plus the realism when the decode is blended with the autoencoder's
    (the defaults blend, so a viewer must see that the pane is not the decoder's full output);
    "realism auto" until the file's rate has picked the blend."""
    text = f"{DECODER_LABELS.get(settings.decoder, settings.decoder).lower()}, {settings.steps} steps"
    if settings.realism is None:
        return f"{text}, realism auto"
    return text if settings.realism >= 1.0 else f"{text}, realism {settings.realism:g}"


def pane_title(pane: str, codec: str, settings: Optional[DecodeSettings], maps: bool) -> str:
    label = CODEC_LABELS[codec]
    if maps:
        return MAP_TITLES[pane].format(codec=label)
    if pane == "refined" and settings is not None:
        return f"Refined ({decoder_text(settings)})"
    if pane == "classical":
        return f"{label}, same size"
    return PANE_TITLES[pane]


def stats_text(stats: Optional[PaneStats]) -> str:
    if stats is None:
        return ""
    parts = []
    if stats.nbytes is not None:
        parts.append(human_size(stats.nbytes))
    if stats.bpp is not None:
        parts.append(f"{stats.bpp:.3f} bpp")
    if stats.psnr is not None:
        parts.append(f"{stats.psnr:.2f} dB")
    if stats.note:
        parts.append(stats.note)
    return " · ".join(parts)


def pane_caption(pane: str, title: str, stats: Optional[PaneStats]) -> str:
    """"2 · Autoencoder only — 7.2 KB · 0.147 bpp · 31.20 dB" (the number is the flicker key)."""
    details = stats_text(stats)
    key = PANES.index(pane) + 1
    return f"{key} · {title}" + (f" — {details}" if details else "")


def demo_texts(codec: str, nbytes: Optional[int], settings: DecodeSettings, progress: str = "") -> tuple[str, str, str]:
    """Headline and the two captions of demo mode, for people who have never heard of bpp."""
    label = CODEC_LABELS[codec]
    size = f"Same {human_size(nbytes)} file" if nbytes is not None else "Same file size"
    right = f"Learned decoder ({decoder_text(settings)})" + (f" — {progress}" if progress else "")
    return f"{size}: {label} | learned decoder", label, right
