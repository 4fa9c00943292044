"""Entry point: ``hfd-viewer [IMAGE]`` / ``python -m viewer``.

``--screenshot OUT.png`` runs the whole pipeline offscreen, waits until the decode (and
the rate sweep) have finished, saves a grab of the window and exits."""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path
from typing import Optional, Sequence

from viewer.choices import DECODER_LABELS, DEVICES

DEFAULT_TIMEOUT_S = 600


def parse_args(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="hfd-viewer", description=__doc__.splitlines()[0])
    parser.add_argument("image", nargs="?", type=Path, help="image to open (default: the first sample)")
    parser.add_argument("--weights", type=Path, default=None, help="weights folder (default: the shipped ones)")
    parser.add_argument("--device", choices=tuple(DEVICES), default=None, help="where the model runs")
    parser.add_argument("--bpp", type=float, default=None, help="bitrate in bits per pixel")
    parser.add_argument("--decoder", choices=tuple(DECODER_LABELS), default=None)
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--screenshot", type=Path, default=None, metavar="OUT.png",
                        help="decode offscreen, save a grab of the window to OUT.png, exit")
    parser.add_argument("--size", default="1600x1000", metavar="WxH", help="window size for --screenshot")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S,
                        help="--screenshot gives up after this many seconds")
    return parser.parse_args(argv)


SIGNAL_POLL_MS = 200
# The X11 libraries Qt's xcb platform plugin loads, by library name -> Debian/Ubuntu package. Qt's
# own message when one is missing names libxcb-cursor0 whichever it is.
XCB_LIBRARIES = {"xcb-icccm": "libxcb-icccm4", "xcb-keysyms": "libxcb-keysyms1", "xcb-cursor": "libxcb-cursor0",
                 "xcb-image": "libxcb-image0", "xcb-randr": "libxcb-randr0", "xcb-render-util": "libxcb-render-util0",
                 "xcb-shape": "libxcb-shape0", "xcb-xkb": "libxcb-xkb1", "xkbcommon-x11": "libxkbcommon-x11-0"}


def missing_x11_packages() -> list[str]:
    """The packages whose libraries Qt needs on an X11 display and the system lacks ([] elsewhere)."""
    import ctypes.util

    platform = os.environ.get("QT_QPA_PLATFORM", "")
    if platform and not platform.startswith("xcb") or not os.environ.get("DISPLAY") or sys.platform != "linux":
        return []
    return [package for library, package in XCB_LIBRARIES.items() if ctypes.util.find_library(library) is None]


def close_on_signals(window) -> None:
    """Ctrl+C in the terminal (SIGINT) and SIGTERM close the window as its Quit does. Python runs a
    signal handler only between bytecodes, and Qt's event loop runs in C++: a timer wakes the
    interpreter often enough for the handler to run."""
    import signal

    from PySide6.QtCore import QTimer

    def close(*_args) -> None:
        QTimer.singleShot(0, window.close)

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, close)
    window._signal_timer = QTimer(window)
    window._signal_timer.timeout.connect(lambda: None)
    window._signal_timer.start(SIGNAL_POLL_MS)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    if args.screenshot is not None:
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    missing = missing_x11_packages()
    if missing:
        print(f"hfd-viewer: Qt needs these system libraries on an X11 display: {' '.join(missing)} "
              f"(e.g. sudo apt-get install {' '.join(missing)})", file=sys.stderr)
        return 1
    # Qt is imported only now so that the platform choice above takes effect.
    from dataclasses import replace

    from PySide6.QtCore import QEventLoop, QSettings, QTimer
    from PySide6.QtWidgets import QApplication

    from engine.api import Engine
    from viewer.window.main_window import MainWindow
    from viewer.window.settings import APPLICATION, ORGANISATION, default_settings

    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setOrganizationName(ORGANISATION)
    app.setApplicationName(APPLICATION)
    if args.screenshot is not None:
        # A screenshot must not depend on (or change) what the user's last session remembered.
        scratch = tempfile.TemporaryDirectory()
        settings = QSettings(str(Path(scratch.name) / "viewer.ini"), QSettings.Format.IniFormat)
    else:
        settings = default_settings()

    weights = args.weights
    window = MainWindow(lambda device: Engine(weights_dir=weights, device=device), settings)
    values = window.controls.values()
    overrides = {k: getattr(args, k) for k in ("bpp", "decoder", "steps", "seed", "device")
                 if getattr(args, k) is not None}
    if overrides:
        window.controls.set_values(replace(values, **overrides))
        if "device" in overrides and overrides["device"] != values.device:
            window.worker.request_engine(overrides["device"])
    if args.screenshot is None:
        window.closed.connect(app.quit)
        window.show()
        window.start(args.image)
        close_on_signals(window)
        return app.exec()

    width, height = (int(v) for v in args.size.lower().split("x"))
    window.resize(width, height)
    window.show()
    result = {"code": 1}

    def grab() -> None:
        if window.decode_busy or window.rate_busy:
            return
        app.processEvents()
        problem = window.banner.text() if window.banner.kind == "error" else ""
        if window.image is None and not problem:
            problem = "no image was opened"
        args.screenshot.parent.mkdir(parents=True, exist_ok=True)
        if not window.grab().save(str(args.screenshot)):
            problem = f"could not write {args.screenshot}"
        if problem:
            print(f"hfd-viewer: {problem}", file=sys.stderr)
        result["code"] = 1 if problem else 0
        window.close()
        loop.quit()

    def give_up() -> None:
        print(f"hfd-viewer: no result within {args.timeout:.0f} s", file=sys.stderr)
        result["code"] = 124
        window.close()
        loop.quit()

    # A local event loop rather than app.exec(): nothing global is quit, so main() can also be
    # called inside a running Qt program (the tests do).
    loop = QEventLoop()
    window.idle.connect(grab)
    deadline = QTimer()
    deadline.setSingleShot(True)
    deadline.timeout.connect(give_up)
    deadline.start(int(args.timeout * 1000))
    window.start(args.image)
    loop.exec()
    deadline.stop()
    window.host.shutdown()  # the close above only hid the window: wait for the worker before returning
    return result["code"]
