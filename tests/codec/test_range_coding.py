import numpy as np
import pytest

from engine.codec.range_coding import decode_symbols, encode_symbols
from engine.errors import BitstreamError

RADIUS = 8


def _tables(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.integers(1, 5000, size=(n, 2 * RADIUS + 2)).astype(np.int32)


def test_round_trip_exact_including_escapes():
    rng = np.random.default_rng(0)
    tables = _tables(rng, 5)
    values = rng.integers(-30, 31, size=(2, 3, 7, 9))  # many values outside ±RADIUS → escapes
    index = rng.integers(0, 5, size=values.shape)
    data = encode_symbols(values, index, tables, RADIUS)
    out = decode_symbols(data, index, tables, RADIUS)
    assert out.shape == values.shape
    np.testing.assert_array_equal(out, values)


def test_skewed_table_compresses():
    tables = np.ones((1, 2 * RADIUS + 2), dtype=np.int32)
    tables[0, RADIUS] = 60000  # value 0 very likely
    values = np.zeros(10_000, dtype=np.int64)
    data = encode_symbols(values, np.zeros_like(values), tables, RADIUS)
    assert len(data) < 200  # ~0.001 bits/symbol, far below 1 byte per symbol
    np.testing.assert_array_equal(decode_symbols(data, np.zeros_like(values), tables, RADIUS), values)


def test_truncated_stream_is_a_bitstream_error():
    rng = np.random.default_rng(1)
    tables = _tables(rng, 2)
    values = rng.integers(-4, 5, size=500)
    index = rng.integers(0, 2, size=500)
    data = encode_symbols(values, index, tables, RADIUS)
    with pytest.raises(BitstreamError):
        decode_symbols(data[:2], index, tables, RADIUS)
    with pytest.raises(BitstreamError):
        decode_symbols(data[:-3], index, tables, RADIUS)


def test_a_mask_codes_exactly_the_values_it_picks_out():
    """Coding with ``where`` must give the bytes of coding the picked-out values: the encoder
    codes a large grid's segments through the mask instead of copying them first."""
    rng = np.random.default_rng(2)
    tables = _tables(rng, 4)
    values = rng.integers(-12, 13, size=(1, 5, 16, 20)).astype(np.int32)
    index = rng.integers(0, 4, size=values.shape).astype(np.uint8)
    where = rng.random(values.shape) < 0.6
    data = encode_symbols(values, index, tables, RADIUS, where)
    assert data == encode_symbols(values[where], index[where], tables, RADIUS)
    np.testing.assert_array_equal(decode_symbols(data, index[where], tables, RADIUS), values[where])
