"""Every keyboard shortcut in one table: the menus are built from it and Help lists it."""
from __future__ import annotations

from PySide6.QtWidgets import QDialog, QDialogButtonBox, QLabel, QVBoxLayout, QWidget

# action name -> (key, what it does)
SHORTCUTS: dict[str, tuple[str, str]] = {
    "open": ("Ctrl+O", "Open an image or a .hfd file"),
    "save_hfd": ("Ctrl+S", "Save the .hfd file at the current bitrate"),
    "save_sheet": ("Ctrl+E", "Save a labelled side-by-side comparison image"),
    "quit": ("Ctrl+Q", "Quit"),
    "grid": ("G", "Show all four panes"),
    "pane_1": ("1", "Show the original alone (flicker between 1–4)"),
    "pane_2": ("2", "Show the autoencoder image alone"),
    "pane_3": ("3", "Show the refined image alone"),
    "pane_4": ("4", "Show the classical codec alone"),
    "split": ("S", "Split view: swipe between two panes"),
    "maps": ("M", "Toggle difference maps (error vs original, invented detail)"),
    "fit": ("F", "Fit the image in the view"),
    "one_to_one": ("0", "Zoom to one image pixel per screen pixel"),
    "loupe": ("L", "Loupe tool: drag a rectangle to compare that crop everywhere"),
    "new_seed": ("N", "New random seed (decode again)"),
    "stop": ("Esc", "Stop the running decode"),
    "demo": ("F11", "Demo mode (full screen)"),
    "help": ("F1", "Keyboard shortcuts"),
}

MOUSE = (
    ("Wheel", "Zoom all panes together"),
    ("Drag", "Pan all panes together"),
    ("Shift+drag", "Draw a crop for the loupe"),
    ("Click on the rate plot", "Pick that bitrate"),
)

DEMO_KEYS = (
    ("→ or Space", "Next sample"),
    ("←", "Previous sample"),
    ("A", "Auto-advance on/off"),
    ("Esc or F11", "Leave demo mode"),
)


def shortcuts_html() -> str:
    def table(title: str, rows) -> str:
        body = "".join(f"<tr><td><b>{k}</b></td><td>&nbsp;&nbsp;{v}</td></tr>" for k, v in rows)
        return f"<h3>{title}</h3><table>{body}</table>"

    return (table("Keys", SHORTCUTS.values()) + table("Mouse", MOUSE) + table("Demo mode", DEMO_KEYS))


class ShortcutsDialog(QDialog):
    """A non-modal list of keys and mouse gestures."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Keyboard shortcuts")
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel(shortcuts_html()))
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.close)
        layout.addWidget(buttons)
