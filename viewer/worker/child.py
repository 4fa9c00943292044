"""Run one slow library call in a child process that a cancel can kill at once.

A classical codec at a matched size is a binary search of whole-image encodes inside Pillow:
one AVIF encode of a 12 MP photo takes seconds on a 2-core CPU and cannot be interrupted in the
calling thread. In a child process it can: a cancel (a new setting, Stop, quit) kills the child
and the worker moves on at once. The child is never forked from the app (it runs Qt and torch
threads): it comes from a fork server started while the app is still small (``prepare_children``),
or is spawned where there is none. Starting a spawned child copies the calling process's page
tables with the interpreter lock held: from the app holding a 12 MP photo and the models (1.6 GB)
that coincided with a 111 ms stall of its window. The child imports only what the call needs and
sends back the result or the error's message."""
from __future__ import annotations

import multiprocessing
import multiprocessing.forkserver
import traceback
from typing import Any, Callable

from engine.errors import HfdError
from engine.progress import CancelToken

POLL_S = 0.05
START_METHOD = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"


def prepare_children() -> None:
    """Start the fork server now, while this process is small, so that no child started later
    copies it (a no-op where children are spawned)."""
    if START_METHOD == "forkserver":
        multiprocessing.forkserver.ensure_running()


def _serve(conn: Any, fn: Callable[..., Any], args: tuple) -> None:
    try:
        conn.send(("ok", fn(*args)))
    except HfdError as exc:
        conn.send(("hfd", str(exc)))
    except BaseException:  # noqa: BLE001 — reported to the parent, which decides
        conn.send(("error", traceback.format_exc(limit=3)))
    finally:
        conn.close()


def call_in_child(fn: Callable[..., Any], *args: Any, cancel: CancelToken | None = None) -> Any:
    """``fn(*args)`` in a child process; raises Cancelled (and kills the child) once ``cancel`` is
    set, HfdError with the child's message for one raised there, RuntimeError for anything else.
    ``fn`` must be importable by name (a module-level function)."""
    context = multiprocessing.get_context(START_METHOD)
    parent, child = context.Pipe(duplex=False)
    process = context.Process(target=_serve, args=(child, fn, args), daemon=True)
    process.start()
    child.close()
    try:
        while not parent.poll(POLL_S):
            if cancel is not None and cancel.cancelled:
                process.kill()
                cancel.check()
            if not process.is_alive() and not parent.poll(0):
                raise RuntimeError(f"the {fn.__name__} process ended without an answer "
                                   f"(exit code {process.exitcode})")
        try:
            kind, value = parent.recv()
        except EOFError:  # the child died without an answer (out of memory, a crash in a library)
            process.join(timeout=5)
            raise RuntimeError(f"the {fn.__name__} process ended without an answer "
                               f"(exit code {process.exitcode})") from None
    finally:
        parent.close()
        process.join(timeout=5)
        if process.is_alive():
            process.kill()
    if kind == "hfd":
        raise HfdError(value)
    if kind == "error":
        raise RuntimeError(value)
    return value
