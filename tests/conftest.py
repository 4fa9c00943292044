"""Garbage collection at safe points only.

A window a finished test left behind sits in reference cycles (its slots are closures over it),
so only Python's cyclic collector frees it. If that collection starts inside a Qt call, the
window's destructor runs there, and PySide6 can deadlock: seen as a previous test's QMenu
being destroyed from inside QObject::disconnect, both waiting on Qt's signal mutex, with the
suite hung forever. So a Qt test starts by collecting what earlier tests left, with no Qt call
on the stack, and runs with automatic collection off."""
from __future__ import annotations

import gc

import pytest


@pytest.fixture(autouse=True)
def qt_safe_garbage_collection(request):
    if "qtbot" not in request.fixturenames:  # no Qt calls on the stack: collecting anywhere is safe
        yield
        return
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
