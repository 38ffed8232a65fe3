"""The fast path, second half: Arrow string columns straight from token ids, as bytes.

Every position of a format holds tokens of one byte width (a digit, a digit pair, "[BOS]", ...),
so the bytes of a block of texts are gathered column group by column group; rows of varying
widths (any ids) take a slower general path. Tests compare both with plain joins.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from hf_linear.data.arithmetic.tokenizer import VOCABULARY
from hf_linear.data.arithmetic.vectorised import bit_matrix


def _token_byte_table() -> tuple[np.ndarray, np.ndarray]:
    """(V, W) bytes of every token followed by a space, and their lengths."""
    encoded = [(token + " ").encode() for token in VOCABULARY]
    table = np.zeros((len(encoded), max(map(len, encoded))), dtype=np.uint8)
    for index, token_bytes in enumerate(encoded):
        table[index, : len(token_bytes)] = np.frombuffer(token_bytes, dtype=np.uint8)
    return table, np.array([len(e) for e in encoded], dtype=np.int64)


_TOKEN_BYTES, _TOKEN_BYTE_LENGTHS = _token_byte_table()


def _joined_token_bytes(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Bytes of every row's tokens, each followed by one space; returns (flat bytes, row lengths)."""
    widths = _TOKEN_BYTE_LENGTHS[ids]
    if len(ids) and np.array_equal(widths, np.broadcast_to(widths[0], widths.shape)):
        # Fixed template: every column has one width, so byte offsets are the same in every row;
        # gather all columns of one width at once.
        column_widths = widths[0]
        offsets = np.concatenate([[0], np.cumsum(column_widths)[:-1]])
        out = np.empty((len(ids), int(column_widths.sum())), dtype=np.uint8)
        for width in np.unique(column_widths):
            columns = np.flatnonzero(column_widths == width)
            column_ids = ids[:, columns]
            for k in range(width):
                out[:, offsets[columns] + k] = _TOKEN_BYTES[:, k][column_ids]
        return out.ravel(), np.full(len(ids), out.shape[1], dtype=np.int64)
    chars = _TOKEN_BYTES[ids]
    keep = np.arange(_TOKEN_BYTES.shape[1]) < widths[..., None]
    return chars[keep], widths.sum(axis=1)


def _string_array(data: np.ndarray, offsets: np.ndarray, count: int) -> pa.Array:
    """An Arrow string array over flat utf-8 bytes and int32 row offsets (no copy)."""
    return pa.Array.from_buffers(pa.string(), count, [None, pa.py_buffer(offsets.astype(np.int32)), pa.py_buffer(data)])


def strings_of_ids(ids: np.ndarray) -> pa.Array:
    """Arrow strings of the rows of `ids`: their tokens joined by single spaces."""
    flat, row_lengths = _joined_token_bytes(ids)
    # drop each row's trailing space: keep bytes [start, end - 1) of every row
    ends = np.cumsum(row_lengths)
    keep = np.ones(len(flat), dtype=bool)
    keep[ends[row_lengths > 0] - 1] = False
    offsets = np.concatenate([[0], np.cumsum(np.maximum(row_lengths - 1, 0))])
    return _string_array(flat[keep], offsets, len(ids))


def bit_strings(bits: np.ndarray, n: int) -> pa.Array:
    """Arrow strings of n characters '0'/'1' of packed bits (the first bit most significant)."""
    data = (bit_matrix(bits, n) + ord("0")).astype(np.uint8).ravel()
    return _string_array(data, np.arange(len(bits) + 1) * n, len(bits))
