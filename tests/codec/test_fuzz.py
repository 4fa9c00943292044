"""The decoder against crafted files that pass the file CRC (a fixed corpus; the long run is
benchmarks/fuzz_decoder.py): every one is refused with the project's own error, or decodes to
exactly the original's pixels; none raises anything else or decodes to other pixels."""
from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from engine.api import Engine
from engine.errors import HfdError
from engine.testing import MUTATIONS, craft_hfd, write_tiny_weights
from tests.support import photo_like, single_thread  # noqa: F401 (fixture)


@pytest.fixture(scope="module")
def engine(tmp_path_factory) -> Engine:
    return Engine(write_tiny_weights(tmp_path_factory.mktemp("w"), context=True, post_filter=True), device="cpu")


def test_crafted_crc_valid_files_are_refused_or_decode_exactly(engine):
    original = engine.encode(photo_like(96, 128, seed=2), rate=0.6).data
    expected = engine.decode_ae(original)
    rng = np.random.default_rng(0)
    outcomes: Counter = Counter()
    for _ in range(80):
        kind, crafted = craft_hfd(original, rng)
        try:
            decoded = engine.decode_ae(crafted)
        except HfdError as exc:
            assert "\n" not in str(exc)
            outcomes[(kind, "refused")] += 1
        else:
            assert decoded.shape == expected.shape and np.array_equal(decoded, expected), kind
            outcomes[(kind, "same pixels")] += 1
    assert {kind for kind, _ in outcomes} == set(MUTATIONS)  # the corpus reached every kind
    assert sum(n for (_, outcome), n in outcomes.items() if outcome == "refused") >= 70
