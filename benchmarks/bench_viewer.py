"""Drive the real app window through what a user does, on a photo-sized image, and measure it.

    python benchmarks/bench_viewer.py [--size 4000x3000] [--out benchmarks/results/viewer.md]

Opens a test photo (a mosaic of the bundled samples) in the app's main window with the shipped
weights, then: waits for the first decode, moves the bitrate, switches the decoder, stops a
decode, turns the difference maps on and off, opens the loupe, saves a pane, enters and leaves
demo mode, and quits in the middle of a decode. It records how long each took, how long Stop and
quit took to take effect, the longest stall of the event loop (a 10 ms timer that measures its
own lateness: the time the window could not answer a click) and the process's peak resident
memory (Python, torch, Qt and the models included). Runs offscreen unless $DISPLAY is set and
QT_QPA_PLATFORM is not."""
from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_large_images import mosaic  # noqa: E402  (the same test photo as the engine benchmark)

TICK_MS = 10


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", default="4000x3000")
    p.add_argument("--timeout", type=float, default=1800, help="give up on any one wait after this many seconds")
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args()
    if not os.environ.get("DISPLAY"):
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import QSettings, QTimer
    from PySide6.QtWidgets import QApplication

    from engine.api import Engine
    from viewer.widgets.panes import Crop
    from viewer.window.main_window import MainWindow

    app = QApplication.instance() or QApplication(sys.argv[:1])
    width, height = (int(v) for v in args.size.split("x"))
    folder = Path(tempfile.mkdtemp())
    photo = folder / f"photo-{args.size}.png"
    Image.fromarray(mosaic(width, height)).save(photo, compress_level=1)
    settings = QSettings(str(folder / "viewer.ini"), QSettings.Format.IniFormat)
    window = MainWindow(lambda device: Engine(device=device), settings, samples_dir=folder / "none")
    window.resize(1600, 1000)
    window.show()

    stalls: list[float] = []
    last = [time.perf_counter()]

    def tick() -> None:
        now = time.perf_counter()
        stalls.append(now - last[0] - TICK_MS / 1000)
        last[0] = now

    ticker = QTimer()
    ticker.timeout.connect(tick)
    ticker.start(TICK_MS)
    rows: list[tuple[str, str, str]] = []

    def wait(condition, what: str) -> float:
        start = time.perf_counter()
        while not condition():
            app.processEvents()
            time.sleep(0.002)
            if time.perf_counter() - start > args.timeout:
                raise SystemExit(f"timed out waiting for {what}")
        return time.perf_counter() - start

    recorded = [0]  # stalls[recorded[0]:] happened since the last recorded step

    def record(name: str, seconds: float, note: str = "") -> None:
        longest_here = max(stalls[recorded[0]:], default=0.0) * 1000
        recorded[0] = len(stalls)
        rows.append((name, f"{seconds:.1f} s" + (f" ({note})" if note else ""), f"{longest_here:.0f} ms"))
        print(f"{name:40s} {rows[-1][1]}  longest stall {rows[-1][2]}", flush=True)

    ended: list[tuple[int, str]] = []
    window.decode_ended.connect(lambda rid, outcome: ended.append((rid, outcome)))

    def decode_ended(rid: int) -> bool:
        return any(r == rid for r, _ in ended)

    start = time.perf_counter()
    window.start(photo)
    wait(lambda: window.request is not None, "the first request")
    first = window.request.request_id
    record("open, first decode (defaults)", wait(lambda: decode_ended(first), "the first decode"),
           window.status.label.text())

    window.controls.set_bpp(window.controls.bpp_range()[0] * 2)
    second = window.request.request_id
    record("bitrate change, decode", wait(lambda: decode_ended(second), "the decode after a bitrate change"))

    decoder = window.controls.decoder
    decoder.setCurrentIndex(1 - decoder.currentIndex())
    third = window.request.request_id
    wait(lambda: window.last_step is not None or decode_ended(third), "the first tile")
    stop_at = time.perf_counter()
    window.stop_decode()
    wait(lambda: decode_ended(third), "Stop")
    record("Stop during a decode, effective after", time.perf_counter() - stop_at)
    decoder.setCurrentIndex(1 - decoder.currentIndex())
    fourth = window.request.request_id
    record("decoder change back, decode", wait(lambda: decode_ended(fourth), "the decode"))

    window.set_maps(True)
    record("maps on, all shown", wait(lambda: all(window.shown_image(p) is not None for p in ("ae", "refined")),
                                      "the maps"))
    window.set_maps(False)
    window.show_loupe(Crop(width // 2, height // 2, width // 2 + 96, height // 2 + 64))
    record("loupe", wait(window.loupe.isVisible, "the loupe"))
    saved: list[str] = []
    window.worker.saved.connect(saved.append)
    window.save_pane("refined", folder / "refined.png")
    record("save pane as PNG", wait(lambda: bool(saved), "the saved file"))
    window.enter_demo()
    record("demo mode on", wait(lambda: window.demo.active, "demo mode"))
    window.demo.leave()
    wait(lambda: not window.demo.active, "leaving demo mode")

    window.controls.seed.setValue(window.controls.seed.value() + 1)  # a decode to quit in the middle of
    wait(lambda: window.status.label.text() != "encoding…", "the decode to start")
    quit_at = time.perf_counter()
    window.close()
    wait(window.host.finished, "the worker to stop")
    record("quit during a decode, worker stopped after", time.perf_counter() - quit_at)
    ticker.stop()
    total = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20
    longest = max(stalls) * 1000 if stalls else 0.0
    over = sum(1 for s in stalls if s > 0.1)
    lines = [f"`python benchmarks/bench_viewer.py --size {args.size}` ({width}×{height} mosaic of the samples, "
             f"shipped weights, {os.environ.get('QT_QPA_PLATFORM') or 'X11'}).", "",
             "| step | time | longest stall |", "|---|---|---|",
             *[f"| {name} | {value} | {stall} |" for name, value, stall in rows], "",
             f"Whole run {total:.0f} s; longest event-loop stall {longest:.0f} ms ({over} stalls over 100 ms); "
             f"peak RSS {peak:.2f} GiB (the whole process)."]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
