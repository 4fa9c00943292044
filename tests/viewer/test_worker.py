"""The engine worker on its own thread: newest request wins, stale work is cancelled,
autoencoder results are cached per bitrate."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from engine.api import DecodeSettings
from engine.errors import Cancelled
from engine.progress import CancelToken
from tests.support import photo_like
from tests.viewer.support import IDLE_TIMEOUT_MS
from viewer.worker.jobs import (
    ClassicalRequest,
    DecodeRequest,
    ExportRequest,
    RateRequest,
)
from viewer.worker.thread import WorkerHost

IMAGE = photo_like(64, 96)


@pytest.fixture
def host(tiny_engine):
    host = WorkerHost(lambda device: tiny_engine)
    host.worker.request_engine("cpu")
    yield host
    host.shutdown()


class Recorder:
    """Collects a worker's signals (they arrive on the worker thread: appends are thread-safe)."""

    def __init__(self, worker) -> None:
        self.events: list[tuple] = []
        for name in ("encoded", "encode_progress", "pane_ready", "classical_ready", "stats_ready", "step",
                     "decode_finished", "decode_cancelled", "decode_failed", "rate_point", "rate_finished", "opened",
                     "map_ready", "saved", "save_failed"):
            getattr(worker, name).connect(lambda *args, n=name: self.events.append((n, *args)))

    def of(self, name: str, rid: int | None = None) -> list[tuple]:
        return [e for e in self.events if e[0] == name and (rid is None or e[1] == rid)]

    def has(self, name: str, rid: int) -> bool:
        return bool(self.of(name, rid))


def request(rid: int, steps: int = 4, bpp: float = 0.2, seed: int = 0, optimise_steps: int = 0) -> DecodeRequest:
    return DecodeRequest(rid, image_key=1, rgb=IMAGE, bpp=bpp, settings=DecodeSettings("flow", steps=steps, seed=seed),
                         codec="jpeg", optimise_steps=optimise_steps)


def test_a_decode_reports_every_stage_in_order(host, qtbot):
    """The live decode first (file, autoencoder pane, refined steps), then the classical pane, then
    the slower scores."""
    rec = Recorder(host.worker)
    host.worker.request_decode(request(1, steps=3))
    qtbot.waitUntil(lambda: rec.has("decode_finished", 1), timeout=IDLE_TIMEOUT_MS)
    names = [e[0] if e[0] != "pane_ready" else f"pane:{e[2]}" for e in rec.events if e[0] != "stats_ready"]
    assert names.index("encoded") < names.index("pane:ae") < names.index("step") < names.index("pane:refined")
    assert names.index("pane:refined") < names.index("classical_ready") and names[-1] == "decode_finished"
    assert [e[2].index for e in rec.of("step", 1)] == [1, 2, 3]
    complete = [e[2] for e in rec.of("stats_ready", 1) if e[3].complete]
    assert sorted(complete) == ["ae", "classical", "refined"]
    assert rec.of("encoded", 1)[0][2].reach is not None  # the bitrate slider learns the photo's range


def test_only_the_newest_request_runs_to_the_end(host, qtbot):
    rec = Recorder(host.worker)
    host.worker.request_decode(request(1, steps=200))
    qtbot.waitUntil(lambda: rec.has("step", 1), timeout=IDLE_TIMEOUT_MS)
    host.worker.request_decode(request(2, steps=200, seed=1))
    host.worker.request_decode(request(3, steps=2, seed=2))
    qtbot.waitUntil(lambda: rec.has("decode_finished", 3), timeout=IDLE_TIMEOUT_MS)
    assert rec.of("decode_cancelled", 1) and len(rec.of("step", 1)) < 200
    assert [e[1] for e in rec.of("decode_finished")] == [3]
    assert len(rec.of("step", 2)) < 200  # superseded before it started, or cancelled at once


def test_the_autoencoder_result_is_cached_per_bitrate(host, qtbot, tiny_engine, monkeypatch):
    calls = []
    encode = tiny_engine.encode
    monkeypatch.setattr(tiny_engine, "encode", lambda *a, **k: calls.append(k) or encode(*a, **k))
    rec = Recorder(host.worker)
    host.worker.request_decode(request(1, bpp=0.3))
    qtbot.waitUntil(lambda: rec.has("decode_finished", 1), timeout=IDLE_TIMEOUT_MS)
    host.worker.request_decode(request(2, bpp=0.3, seed=5))
    qtbot.waitUntil(lambda: rec.has("decode_finished", 2), timeout=IDLE_TIMEOUT_MS)
    assert [(k["bpp"], k["optimise_steps"]) for k in calls] == [(0.3, 0)]
    first_ae = next(e[3] for e in rec.of("pane_ready", 1) if e[2] == "ae")
    second_ae = next(e[3] for e in rec.of("pane_ready", 2) if e[2] == "ae")
    assert first_ae is second_ae


def test_an_optimised_encode_reports_progress_and_is_cached_apart(host, qtbot):
    rec = Recorder(host.worker)
    host.worker.request_decode(request(1, bpp=2.0))
    qtbot.waitUntil(lambda: rec.has("decode_finished", 1), timeout=IDLE_TIMEOUT_MS)
    host.worker.request_decode(request(2, bpp=2.0, optimise_steps=3))
    qtbot.waitUntil(lambda: rec.has("decode_finished", 2), timeout=IDLE_TIMEOUT_MS)
    assert not rec.of("encode_progress", 1)
    progress = [(e[2], e[3]) for e in rec.of("encode_progress", 2)]
    assert progress[-1] == (9, 9) and len(progress) >= 3  # up to three passes of 3, then done
    plain, optimised = rec.of("encoded", 1)[0][2], rec.of("encoded", 2)[0][2]
    assert optimised.data != plain.data and optimised.bpp <= 2.0
    names = [e[0] for e in rec.events if e[1] == 2]
    assert names.index("encode_progress") < names.index("encoded")


def test_a_newer_request_cancels_a_slow_optimised_encode(host, qtbot):
    rec = Recorder(host.worker)
    host.worker.request_decode(request(1, bpp=1.0, optimise_steps=2000))
    qtbot.waitUntil(lambda: rec.has("encode_progress", 1), timeout=IDLE_TIMEOUT_MS)
    host.worker.request_decode(request(2, steps=2))
    qtbot.waitUntil(lambda: rec.has("decode_finished", 2), timeout=IDLE_TIMEOUT_MS)
    assert rec.of("decode_cancelled", 1) and not rec.of("encoded", 1)
    assert rec.of("encode_progress", 1)[-1][2] < 2000


def test_cancel_stops_the_decode_within_a_step(host, qtbot):
    rec = Recorder(host.worker)
    host.worker.request_decode(request(1, steps=256))
    qtbot.waitUntil(lambda: rec.has("step", 1), timeout=IDLE_TIMEOUT_MS)
    host.worker.cancel_decode()
    qtbot.waitUntil(lambda: rec.has("decode_cancelled", 1), timeout=IDLE_TIMEOUT_MS)
    assert len(rec.of("step", 1)) < 256 and not rec.of("pane_ready", 1)[-1][2] == "refined"


def test_invalid_settings_fail_with_the_engines_message(host, qtbot):
    rec = Recorder(host.worker)
    bad = replace(request(1), settings=DecodeSettings("flow", steps=2, shift=0.0, noise=-1.0))
    host.worker.request_decode(bad)
    qtbot.waitUntil(lambda: rec.has("decode_failed", 1), timeout=IDLE_TIMEOUT_MS)
    message = rec.of("decode_failed", 1)[0][2]
    assert "noise" in message.lower() and "\n" not in message
    assert any(e[2] == "ae" for e in rec.of("pane_ready", 1))  # the autoencoder pane still arrived


def test_rate_sweep_reports_one_point_per_bitrate(host, qtbot):
    rec = Recorder(host.worker)
    host.worker.request_rate(RateRequest(7, image_key=1, rgb=IMAGE, codec="webp", bpps=(0.1, 0.3, 0.9)))
    qtbot.waitUntil(lambda: rec.has("rate_finished", 7), timeout=IDLE_TIMEOUT_MS)
    points = [e[2] for e in rec.of("rate_point", 7)]
    assert [p.target_bpp for p in points] == [0.1, 0.3, 0.9]
    assert all(p.ae_psnr > 0 and p.classical_bpp > 0 for p in points)


def test_the_caches_stay_within_their_byte_budget():
    from viewer.worker.thread import _LRU

    made = []
    cache = _LRU(max_bytes=100, size_of=len)
    for key in "abcd":
        cache.get_or_make(key, lambda k=key: made.append(k) or k * 40)
    assert cache.get_or_make("d", lambda: "new") == "d" * 40  # kept, not remade
    assert cache.get_or_make("a", lambda: "remade") == "remade"  # the oldest went first
    assert made == ["a", "b", "c", "d"]


def test_the_autoencoder_pane_shows_the_post_filtered_decode_and_the_decoder_refines_g_s_output(qtbot, tmp_path):
    from engine.api import Engine
    from engine.testing import write_tiny_weights

    engine = Engine(write_tiny_weights(tmp_path, post_filter=True), device="cpu")
    host = WorkerHost(lambda device: engine)
    host.worker.request_engine("cpu")
    try:
        rec = Recorder(host.worker)
        host.worker.request_decode(request(1, steps=2))
        qtbot.waitUntil(lambda: rec.has("decode_finished", 1), timeout=IDLE_TIMEOUT_MS)
    finally:
        host.shutdown()
    encoded = rec.of("encoded", 1)[0][2]
    panes = {e[2]: e[3] for e in rec.of("pane_ready", 1)}
    raw = engine.decode_ae(encoded.data, post_filter=False)
    assert (panes["ae"] == engine.decode_ae(encoded.data)).all() and not (panes["ae"] == raw).all()
    expected = engine.refine(raw, DecodeSettings("flow", steps=2), rate=encoded.rate)
    assert (panes["refined"] == expected).all()


def test_a_rate_point_waits_behind_a_decode_and_is_taken_again_after_it(host, qtbot):
    rec = Recorder(host.worker)
    host.worker.request_rate(RateRequest(7, image_key=1, rgb=IMAGE, codec="jpeg", bpps=(0.1, 0.2, 0.3, 0.5, 0.9)))
    host.worker.request_decode(request(1, steps=2))
    qtbot.waitUntil(lambda: rec.has("rate_finished", 7), timeout=IDLE_TIMEOUT_MS)
    names = [e[0] for e in rec.events]
    assert names.index("decode_finished") < names.index("rate_point")  # the live decode went first
    assert sorted(e[2].target_bpp for e in rec.of("rate_point", 7)) == [0.1, 0.2, 0.3, 0.5, 0.9]


def test_another_codec_for_the_same_file_makes_only_the_classical_pane(host, qtbot, tiny_engine, monkeypatch):
    rec = Recorder(host.worker)
    host.worker.request_decode(request(1, steps=2))
    qtbot.waitUntil(lambda: rec.has("decode_finished", 1), timeout=IDLE_TIMEOUT_MS)
    nbytes = rec.of("encoded", 1)[0][2].nbytes
    monkeypatch.setattr(tiny_engine, "refine", lambda *a, **k: pytest.fail("the learned decode ran again"))
    host.worker.request_classical(ClassicalRequest(1, image_key=1, rgb=IMAGE, codec="webp", nbytes=nbytes))
    qtbot.waitUntil(lambda: len(rec.of("classical_ready", 1)) == 2, timeout=IDLE_TIMEOUT_MS)
    pane = rec.of("classical_ready", 1)[-1][3]
    assert pane.codec == "webp" and pane.nbytes <= nbytes or pane.over_target
    qtbot.waitUntil(lambda: [e for e in rec.of("stats_ready", 1) if e[2] == "classical" and e[3].complete
                             and "q=" in e[3].note][-1:] != [], timeout=IDLE_TIMEOUT_MS)


def test_a_hfd_file_opens_without_an_original_and_decodes_as_it_is(host, qtbot, tiny_engine, tmp_path):
    encoded = tiny_engine.encode(IMAGE, bpp=0.5)
    path = tmp_path / "saved.hfd"
    path.write_bytes(encoded.data)
    rec = Recorder(host.worker)
    qtbot.waitUntil(lambda: host.worker._engine is not None, timeout=IDLE_TIMEOUT_MS)
    host.worker.request_open(3, path)
    qtbot.waitUntil(lambda: bool(rec.of("opened")), timeout=IDLE_TIMEOUT_MS)
    opened = rec.of("opened")[0][1]
    assert opened.rgb is None and opened.hfd == encoded.data and (opened.width, opened.height) == (96, 64)
    host.worker.request_decode(DecodeRequest(1, 3, None, 0.0, DecodeSettings("flow", steps=2), "jpeg", hfd=opened.hfd))
    qtbot.waitUntil(lambda: rec.has("decode_finished", 1), timeout=IDLE_TIMEOUT_MS)
    assert {e[2] for e in rec.of("pane_ready", 1)} == {"ae", "refined"} and not rec.of("classical_ready", 1)
    assert rec.of("encoded", 1)[0][2].data == encoded.data
    bad = tmp_path / "bad.hfd"
    bad.write_bytes(encoded.data[:-5])
    failed = []
    host.worker.open_failed.connect(lambda p, m: failed.append(m))
    host.worker.request_open(4, bad)
    qtbot.waitUntil(lambda: bool(failed), timeout=IDLE_TIMEOUT_MS)
    assert "truncated .hfd file" in failed[0]


def test_a_slow_call_in_a_child_process_is_killed_by_a_cancel():
    import threading
    import time

    from tests.support import sleep_then
    from viewer.worker.child import call_in_child

    token = CancelToken()
    threading.Timer(0.3, token.cancel).start()
    start = time.perf_counter()
    with pytest.raises(Cancelled):
        call_in_child(sleep_then, "late", 60.0, cancel=token)
    assert time.perf_counter() - start < 10  # spawning takes a moment; the 60 s call does not run out
    assert call_in_child(sleep_then, "answer", 0.0) == "answer"


def test_children_come_from_the_fork_server_not_from_the_app():
    """Starting a child must not copy the app's process (a stall of its window at 12 MP)."""
    import os

    from viewer.worker.child import START_METHOD, call_in_child, prepare_children

    if START_METHOD != "forkserver":
        pytest.skip("no fork server on this platform: children are spawned")
    prepare_children()
    assert call_in_child(os.getppid) != os.getpid()


def test_stopping_ends_the_worker_thread_within_a_second_in_the_middle_of_a_decode(host, qtbot):
    import time

    rec = Recorder(host.worker)
    host.worker.request_decode(request(1, steps=500))
    qtbot.waitUntil(lambda: rec.has("step", 1), timeout=IDLE_TIMEOUT_MS)
    start = time.perf_counter()
    host.request_stop()
    qtbot.waitUntil(host.finished, timeout=5_000)
    assert time.perf_counter() - start < 1.0


def test_stop_on_a_decode_that_has_not_started_reports_it_cancelled(host, qtbot, tmp_path):
    rec = Recorder(host.worker)
    host.worker.request_export(ExportRequest(tmp_path / "big.png", image=np.zeros((2000, 2000, 3), np.uint8)))
    host.worker.request_decode(request(5, steps=2))
    host.worker.cancel_decode()
    qtbot.waitUntil(lambda: rec.has("decode_cancelled", 5) or rec.has("decode_finished", 5), timeout=IDLE_TIMEOUT_MS)
    assert not rec.has("decode_failed", 5)  # cancelled (or already done): never left hanging


def test_a_child_process_that_dies_without_an_answer_is_an_error_not_a_hang():
    import os

    from viewer.worker.child import call_in_child

    with pytest.raises(RuntimeError, match="ended without an answer .exit code 3."):
        call_in_child(os._exit, 3)


def test_nothing_new_starts_once_stopped_but_a_requested_export_is_still_written(host, qtbot, tmp_path):
    rec = Recorder(host.worker)
    host.worker.request_export(ExportRequest(tmp_path / "kept.png", image=IMAGE))
    host.request_stop()
    host.worker.request_decode(request(9, steps=2))
    qtbot.waitUntil(host.finished, timeout=10_000)
    assert (tmp_path / "kept.png").exists() and not rec.of("encoded", 9)
