"""The window's menus and toolbar, built from the one shortcut table, and the file dialogs
behind the Save entries."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QActionGroup, QKeySequence
from PySide6.QtWidgets import QFileDialog, QWidget

from viewer.widgets.panes import PANE_TITLES
from viewer.window.about import AboutDialog
from viewer.window.shortcuts import SHORTCUTS, ShortcutsDialog
from viewer.worker.jobs import PANES

# The window the menus are built for: a QMainWindow with these methods and parts (see main_window).
MenuHost = Any

TOOLBAR = (("grid", "Grid"), ("pane_1", "1"), ("pane_2", "2"), ("pane_3", "3"), ("pane_4", "4"), ("split", "Split"),
           ("maps", "Maps"), ("fit", "Fit"), ("one_to_one", "1:1"), ("loupe", "Loupe"))


def build_menus(window: MenuHost) -> tuple[dict[str, QAction], list[QAction]]:
    """Menus and toolbar; returns the actions by name and the (hidden) map-legend toolbar entries."""
    actions: dict[str, QAction] = {}

    def act(name: str, slot: Callable, checkable: bool = False) -> QAction:
        key, text = SHORTCUTS[name]
        action = QAction(text, window)
        action.setShortcut(QKeySequence(key))
        action.setCheckable(checkable)
        action.triggered.connect(slot)
        window.addAction(action)  # the shortcut works wherever the focus is in the window
        actions[name] = action
        return action

    file_menu = window.menuBar().addMenu("&File")
    file_menu.addAction(act("open", window.choose_file))
    window.recent_menu = file_menu.addMenu("Open &recent")
    window.recent_menu.aboutToShow.connect(window.fill_recent)
    window.samples_menu = file_menu.addMenu("&Samples")
    window.samples_menu.aboutToShow.connect(window.fill_samples)
    file_menu.addSeparator()
    export_menu = file_menu.addMenu("Save &pane as PNG")
    for i, pane in enumerate(PANES, start=1):
        export_menu.addAction(f"{i} · {PANE_TITLES[pane]}…", lambda p=pane: _save_pane(window, p))
    file_menu.addAction(act("save_hfd", lambda: _save(window, "Save .hfd file", ".hfd", "hfd files (*.hfd)",
                                                      window.save_hfd)))
    file_menu.addAction(act("save_sheet", lambda: _save(window, "Save comparison image", "-comparison.png",
                                                        "PNG (*.png)", window.save_comparison)))
    file_menu.addSeparator()
    file_menu.addAction(act("quit", window.close))

    view_menu = window.menuBar().addMenu("&View")
    modes = QActionGroup(window)
    for mode in ("grid", "split"):
        view_menu.addAction(modes.addAction(act(mode, lambda _=False, m=mode: window.set_mode(m), checkable=True)))
    for i, pane in enumerate(PANES, start=1):  # checked while that pane is shown alone
        view_menu.addAction(modes.addAction(act(f"pane_{i}", lambda _=False, p=pane: window.views.show_pane(p),
                                                checkable=True)))
    view_menu.addSeparator()
    view_menu.addAction(act("maps", window.set_maps, checkable=True))
    view_menu.addAction(act("fit", window.views.fit))
    view_menu.addAction(act("one_to_one", window.views.one_to_one))
    view_menu.addAction(act("loupe", window.views.set_crop_tool, checkable=True))
    view_menu.addSeparator()
    view_menu.addAction(act("demo", window.enter_demo))

    decode_menu = window.menuBar().addMenu("&Decode")
    decode_menu.addAction(act("new_seed", window.controls.new_seed.click))
    decode_menu.addAction(act("stop", window.stop_decode))

    help_menu = window.menuBar().addMenu("&Help")
    help_menu.addAction(act("help", lambda: _show(ShortcutsDialog(window))))
    help_menu.addAction("&About", lambda: _show(AboutDialog(window.info, window.device, window)))

    toolbar = window.addToolBar("View")
    toolbar.setObjectName("view-toolbar")
    toolbar.setMovable(False)
    for name, label in TOOLBAR:
        action = actions[name]
        action.setIconText(label)
        action.setToolTip(f"{action.text()} ({action.shortcut().toString()})")
        toolbar.addAction(action)
    toolbar.addSeparator()
    legend = [toolbar.addWidget(window.map_legend), toolbar.addWidget(window.map_legend_text)]
    for action in legend:
        action.setVisible(False)
    return actions, legend


def _show(dialog: QWidget) -> None:
    """Dialogs are non-modal: the window keeps working (and decoding) behind them."""
    dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    dialog.show()


def _save_pane(window: MenuHost, pane: str) -> None:
    _save(window, "Save pane as PNG", f"-{pane}.png", "PNG (*.png)", lambda path: window.save_pane(pane, path))


def _save(window: MenuHost, title: str, suffix: str, pattern: str, save: Callable[[str], None]) -> None:
    """Ask for a file name next to the image and hand the save to the worker, which reports the
    outcome in the status bar (or the banner) when the file is written."""
    image = window.image
    suggestion = (image.path.parent / f"{image.path.stem}{suffix}") if image else Path.home() / f"image{suffix}"
    path, _ = QFileDialog.getSaveFileName(window, title, str(suggestion), pattern)
    if not path:
        return
    try:
        save(path)
    except (OSError, ValueError) as exc:
        window.banner.show_message(f"Could not save {Path(path).name}: {exc}", topic="save")
    else:
        window.statusBar().showMessage(f"Saving {path}…")
