"""Fixtures of the viewer tests: one tiny-weights engine per module, and sample photos."""
from __future__ import annotations

from pathlib import Path

import pytest

from engine.api import Engine
from engine.testing import write_tiny_weights
from tests.viewer.support import make_samples


@pytest.fixture(scope="module")
def tiny_engine(tmp_path_factory):
    """One engine with tiny random-init weights per test module (windows share it, one at a time)."""
    return Engine(weights_dir=write_tiny_weights(tmp_path_factory.mktemp("weights")), device="cpu")


@pytest.fixture
def samples(tmp_path) -> list[Path]:
    return make_samples(tmp_path / "samples")

