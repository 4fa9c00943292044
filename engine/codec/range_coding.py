"""Lossless coding of integer symbols with integer probability tables (constriction's
range coder).

Each table is a row of integer counts over the alphabet ``[-radius, radius]`` plus one
escape symbol. A symbol outside the row's range is coded as the escape, and its exact
value is appended to a side stream, so any integer round-trips. Because the tables are
integers stored with the weights, encoder and decoder build bit-identical models."""
from __future__ import annotations

import zlib

import constriction
import numpy as np

from engine.errors import BitstreamError

_Categorical = constriction.stream.model.Categorical
_RangeEncoder = constriction.stream.queue.RangeEncoder
_RangeDecoder = constriction.stream.queue.RangeDecoder


def encode_symbols(values: np.ndarray, table_index: np.ndarray, tables: np.ndarray,
                   radius: int, where: np.ndarray | None = None) -> bytes:
    """Code integer ``values`` where value i uses row ``table_index[i]`` of ``tables``; with
    ``where`` (a bool mask of values' shape), only the values it marks, as if those had been
    picked out first.

    ``tables`` has shape (n_tables, 2*radius + 2); its last column is the escape symbol. Symbols
    are coded grouped by table, in table order, each group in the values' order. Only one table's
    group is copied at a time (as int32): a latent grid of a large photo holds tens of millions
    of values, and a whole-grid copy of them costs hundreds of megabytes."""
    values = np.asarray(values).reshape(-1)
    table_index = np.asarray(table_index).reshape(-1)
    mask = None if where is None else np.asarray(where, dtype=bool).reshape(-1)
    escape = 2 * radius + 1
    escaped = (values < -radius) | (values > radius)
    if mask is not None:
        escaped &= mask
    encoder = _RangeEncoder()
    used = np.bincount(table_index if mask is None else table_index[mask], minlength=len(tables))
    for t in np.flatnonzero(used):
        group = table_index == t
        if mask is not None:
            group &= mask
        symbols = values[group].astype(np.int32)
        symbols += radius
        symbols[(symbols < 0) | (symbols >= escape)] = escape
        encoder.encode(symbols, _Categorical(tables[t].astype(np.float64), perfect=False))
    main = encoder.get_compressed().tobytes()
    side = zlib.compress(values[escaped].astype("<i4").tobytes(), 9) if escaped.any() else b""
    return len(main).to_bytes(4, "little") + main + side


def decode_symbols(data: bytes, table_index: np.ndarray, tables: np.ndarray,
                   radius: int) -> np.ndarray:
    """Inverse of :func:`encode_symbols`; returns int32 values in ``table_index``'s shape."""
    shape = np.shape(table_index)
    table_index = np.asarray(table_index).ravel()
    if len(data) < 4:
        raise BitstreamError("latent stream is truncated")
    n_main = int.from_bytes(data[:4], "little")
    main, side = data[4:4 + n_main], data[4 + n_main:]
    if len(main) != n_main or n_main % 4:
        raise BitstreamError("latent stream is truncated")
    escape = 2 * radius + 1
    symbols = np.empty(table_index.size, dtype=np.int32)
    try:
        decoder = _RangeDecoder(np.frombuffer(main, dtype=np.uint32).copy())
        for t in np.unique(table_index):
            model = _Categorical(tables[t].astype(np.float64), perfect=False)
            where = np.flatnonzero(table_index == t)
            symbols[where] = decoder.decode(model, where.size)
    except (ValueError, RuntimeError, AssertionError) as exc:  # the coder's own words stay in the chain
        raise BitstreamError("latent stream is corrupt (the coded data does not fit the image the header "
                             "names)") from exc
    if not decoder.maybe_exhausted():  # a header naming fewer latents than were coded
        raise BitstreamError("latent stream is corrupt (coded data left over)")
    escaped = symbols == escape
    symbols -= radius
    if escaped.any():
        try:
            extra = np.frombuffer(zlib.decompress(side), dtype="<i4")
        except zlib.error as exc:
            raise BitstreamError("escape stream is corrupt") from exc
        if extra.size != escaped.sum():
            raise BitstreamError("escape stream does not match the latents")
        symbols[escaped] = extra
    elif side:
        raise BitstreamError("latent stream has trailing bytes")
    return symbols.reshape(shape)
