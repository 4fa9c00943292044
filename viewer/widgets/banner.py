"""An inline message strip above the images: for problems the user should see without a
modal dialog in the way (a file that would not open, a model that would not load)."""
from __future__ import annotations

from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QToolButton

STYLES = {
    "error": "background:#5a1e1e; color:#ffdede;",
    "info": "background:#1e3a5a; color:#dee8ff;",
}


class Banner(QFrame):
    def __init__(self) -> None:
        super().__init__()
        self.label = QLabel()
        self.label.setWordWrap(True)
        close = QToolButton()
        close.setText("✕")
        close.setAutoRaise(True)
        close.setToolTip("Dismiss")
        close.clicked.connect(self.hide)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(8, 4, 4, 4)
        layout.addWidget(self.label, 1)
        layout.addWidget(close)
        self.kind = ""
        self.topic = ""
        self.hide()

    def show_message(self, text: str, kind: str = "error", topic: str = "") -> None:
        """``topic`` ("open", "model", "decode", "save", ...) lets a later success clear only its own kind of news."""
        self.kind, self.topic = kind, topic
        self.setStyleSheet(f"QFrame {{{STYLES[kind]}}} QLabel, QToolButton {{{STYLES[kind]}}}")
        self.label.setText(text)
        self.show()

    def clear(self, *topics: str) -> None:
        if self.topic in topics:
            self.hide()

    def text(self) -> str:
        return "" if self.isHidden() else self.label.text()
