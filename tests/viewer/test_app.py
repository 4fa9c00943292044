"""The command line: ``python -m viewer IMAGE --screenshot OUT.png`` decodes offscreen and saves the window."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from engine.codec.images import load_image, save_png
from engine.testing import write_tiny_weights
from tests.support import photo_like
from viewer.app import main, parse_args

ROOT = Path(__file__).resolve().parents[2]


def run_viewer(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    return subprocess.run([sys.executable, "-m", "viewer", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)


def test_screenshot_decodes_and_saves_a_non_blank_window(tmp_path):
    weights = write_tiny_weights(tmp_path / "weights")
    image = tmp_path / "photo.png"
    save_png(image, photo_like(64, 96))
    out = tmp_path / "shot.png"
    result = run_viewer(str(image), "--weights", str(weights), "--screenshot", str(out), "--size", "1000x700",
                        "--steps", "3", "--decoder", "flow", "--bpp", "0.3")
    assert result.returncode == 0, result.stderr
    shot = load_image(out).rgb
    assert shot.shape == (700, 1000, 3)
    assert shot.std() > 20 and len(np.unique(shot.reshape(-1, 3), axis=0)) > 200  # a real window, not a blank


def test_a_screenshot_that_runs_out_of_time_exits_124_without_aborting(tmp_path):
    """The worker is still decoding when the time is up: the process must wait for it, not abort."""
    weights = write_tiny_weights(tmp_path / "weights")
    image = tmp_path / "photo.png"
    save_png(image, photo_like(192, 256))
    result = run_viewer(str(image), "--weights", str(weights), "--screenshot", str(tmp_path / "shot.png"),
                        "--steps", "1000", "--decoder", "flow", "--timeout", "2")
    assert result.returncode == 124, result.stderr
    assert "no result within 2 s" in result.stderr and "Destroyed while thread" not in result.stderr


def test_sigterm_in_the_middle_of_a_decode_ends_the_app(tmp_path):
    """The window hides at once and waits for the worker; once it has stopped the process must
    exit too (a hidden window no longer counts as the last one closing, so Qt alone would not)."""
    weights = write_tiny_weights(tmp_path / "weights")
    image = tmp_path / "photo.png"
    save_png(image, photo_like(64, 96))
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    app = subprocess.Popen([sys.executable, "-m", "viewer", str(image), "--weights", str(weights), "--steps", "500",
                            "--decoder", "flow"], cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(8)  # started, and decoding its 500 steps
        assert app.poll() is None, app.stderr.read()
        app.send_signal(signal.SIGTERM)
        assert app.wait(timeout=20) == 0
    finally:
        app.kill()


def test_screenshot_of_a_missing_image_fails_with_one_message(qapp, tmp_path, capsys):
    weights = write_tiny_weights(tmp_path / "weights", decoders=False)
    out = tmp_path / "shot.png"
    assert main([str(tmp_path / "nope.png"), "--weights", str(weights), "--screenshot", str(out)]) == 1
    messages = [line for line in capsys.readouterr().err.splitlines() if line.startswith("hfd-viewer:")]
    assert len(messages) == 1 and "Could not open nope.png: image not found" in messages[0]
    assert out.exists()  # the window, with its message, is still saved for whoever looks


def test_arguments_are_parsed_with_their_types():
    args = parse_args(["a.png", "--bpp", "0.2", "--steps", "8", "--decoder", "diffusion", "--device", "cpu"])
    assert (args.image, args.bpp, args.steps, args.decoder, args.device) == (Path("a.png"), 0.2, 8, "diffusion",
                                                                             "cpu")
    assert parse_args([]).image is None
