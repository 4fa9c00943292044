"""The words on screen: pane titles, number summaries, demo captions. Plain functions of state."""
from __future__ import annotations

from typing import Optional

from engine.api import DecodeSettings
from viewer.choices import DECODER_LABELS
from viewer.widgets.panes import PANE_TITLES
from viewer.worker.jobs import CODEC_LABELS, PANES, ClassicalPane, PaneStats

# A classical file within this fraction below the .hfd file's size is called "the same size"; the
# size search lands there unless the codec's qualities are too coarse or even its smallest file
# is larger.
SAME_SIZE_TOLERANCE = 0.05

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


def count(n: int, noun: str) -> str:
    """"1 step", "2 steps"."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def decoder_text(settings: DecodeSettings) -> str:
    """"diffusion, 2 steps", plus the realism when the decode is blended with the autoencoder's
    (the defaults blend, so a viewer must see that the pane is not the decoder's full output);
    "realism auto" until the file's rate has picked the blend."""
    text = f"{DECODER_LABELS.get(settings.decoder, settings.decoder).lower()}, {count(settings.steps, 'step')}"
    if settings.realism is None:
        return f"{text}, realism auto"
    return text if settings.realism >= 1.0 else f"{text}, realism {settings.realism:g}"


def classical_title(classical: Optional[ClassicalPane], hfd_bytes: Optional[int], codec: str) -> str:
    """What the classical pane shows, in words that stay true: "same size" only when its file is
    within SAME_SIZE_TOLERANCE of the .hfd file; otherwise how much larger or smaller it is."""
    if classical is None:
        return f"{CODEC_LABELS[codec]} (finding the file of the same size…)"
    label = CODEC_LABELS[classical.codec]
    if not hfd_bytes:
        return label
    ratio = classical.nbytes / hfd_bytes
    if classical.over_target:
        return f"{label}'s smallest file, {human_size(classical.nbytes)}: {ratio:.1f}× larger"
    if ratio >= 1 - SAME_SIZE_TOLERANCE:
        return f"{label}, same size"
    return f"{label}, {human_size(classical.nbytes)}: {(1 - ratio) * 100:.0f} % smaller (its next quality is larger)"


def pane_title(pane: str, codec: str, settings: Optional[DecodeSettings], maps: bool,
               classical: Optional[ClassicalPane] = None, hfd_bytes: Optional[int] = None) -> str:
    if maps:
        return MAP_TITLES[pane].format(codec=CODEC_LABELS[classical.codec if classical else codec])
    if pane == "refined" and settings is not None:
        return f"Refined ({decoder_text(settings)})"
    if pane == "classical":
        return classical_title(classical, hfd_bytes, codec)
    return PANE_TITLES[pane]


def stats_text(stats: Optional[PaneStats]) -> str:
    """The file size and PSNR: what fits beside a title on a 1280-px screen (the table has the rest)."""
    if stats is None:
        return ""
    parts = []
    if stats.nbytes is not None:
        parts.append(human_size(stats.nbytes))
    if stats.psnr is not None:
        parts.append(f"{stats.psnr:.2f} dB")
    return " · ".join(parts)


def pane_caption(pane: str, title: str, stats: Optional[PaneStats]) -> str:
    """"2 · Autoencoder only — 7.2 KB · 31.20 dB" (the number is the flicker key)."""
    details = stats_text(stats)
    key = PANES.index(pane) + 1
    return f"{key} · {title}" + (f" — {details}" if details else "")


def demo_texts(classical: Optional[ClassicalPane], hfd_bytes: Optional[int], settings: DecodeSettings,
               progress: str = "") -> tuple[str, str, str]:
    """Headline and the two captions of demo mode, for people who have never heard of bpp; the
    headline says "same size" only when the two files are."""
    right = f"Learned decoder ({decoder_text(settings)})" + (f" — {progress}" if progress else "")
    if classical is None or not hfd_bytes:
        return "Classical codec | learned decoder", "Classical codec", right
    label = CODEC_LABELS[classical.codec]
    ratio = classical.nbytes / hfd_bytes
    if not classical.over_target and ratio >= 1 - SAME_SIZE_TOLERANCE:
        headline = f"Same {human_size(hfd_bytes)} file: {label} | learned decoder"
    elif classical.over_target:
        headline = (f"{label} cannot go this small: its smallest file is {human_size(classical.nbytes)}, "
                    f"{ratio:.1f}× the learned decoder's {human_size(hfd_bytes)}")
    else:
        headline = f"{label} {human_size(classical.nbytes)} | learned decoder {human_size(hfd_bytes)}"
    return headline, f"{label}, {human_size(classical.nbytes)}", right
