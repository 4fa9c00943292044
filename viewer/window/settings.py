"""What the app remembers between runs, kept in QSettings (tests pass their own ini file)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

from PySide6.QtCore import QByteArray, QSettings

from viewer.widgets.controls import ControlValues

ORGANISATION = "hfd"
APPLICATION = "hfd-viewer"
MAX_RECENT = 8


def default_settings() -> QSettings:
    return QSettings(ORGANISATION, APPLICATION)


class ViewerSettings:
    """Typed access to the few values the viewer keeps."""

    def __init__(self, store: QSettings) -> None:
        self.store = store

    def recent_files(self) -> list[Path]:
        raw = self.store.value("recent", "[]")
        try:
            names = json.loads(raw) if isinstance(raw, str) else []
        except json.JSONDecodeError:
            names = []
        return [Path(n) for n in names if isinstance(n, str)]

    def add_recent(self, path: Path) -> None:
        names = [str(path.resolve())] + [str(p) for p in self.recent_files() if p != path.resolve()]
        self.store.setValue("recent", json.dumps(names[:MAX_RECENT]))

    def controls(self) -> ControlValues:
        raw = self.store.value("controls", "{}")
        try:
            data = json.loads(raw) if isinstance(raw, str) else {}
        except json.JSONDecodeError:
            data = {}
        return ControlValues.from_dict(data if isinstance(data, dict) else {})

    def has_controls(self) -> bool:
        return self.store.contains("controls")

    def set_controls(self, values: ControlValues) -> None:
        self.store.setValue("controls", json.dumps(values.to_dict()))

    def view_mode(self) -> str:
        return str(self.store.value("view_mode", "grid"))

    def set_view_mode(self, mode: str) -> None:
        self.store.setValue("view_mode", mode)

    def geometry(self) -> Optional[QByteArray]:
        value = self.store.value("geometry")
        return value if isinstance(value, QByteArray) else None

    def set_geometry(self, geometry: QByteArray) -> None:
        self.store.setValue("geometry", geometry)

    def sync(self) -> None:
        self.store.sync()
