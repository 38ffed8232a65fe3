"""Arithmetic Chain-of-Thought datasets: splits, fast vectorised building, saving, Hub push, stream.

Main entry points
-----------------
* `build_arithmetic_dataset(task, digits, cot, train_size, ...) -> DatasetDict` (train /
  validation / test) — the keyword arguments are the `dataset:` section of a training config;
* `save_arithmetic_dataset(dataset_dict, out, overwrite=False)` — `save_to_disk` + tokenizer +
  dataset card, written to a temporary directory and then renamed;
* `push_arithmetic_dataset_to_hub(dataset_dict, repo_id, token=None, private=False)`;
* `ArithmeticStream(task, digits, cot, seed=...)` — unlimited training examples on the fly, with
  disjoint random streams per (seed, epoch, distributed rank, data-loader worker).

Inputs and the split
--------------------
An input is an operand pair (a, b) of n- and m-digit numbers with nonzero leading digits, i.e.
a uniform in [10^(n-1), 10^n - 1] (the authors' code draws 1111..9999 for 4 digits; we use the
whole n-digit range, for every format alike), or for parity a string of n bits (any).
Every input goes to one split by a fixed hash, the same on every machine and run:
``h = splitmix64(splitmix64(a) XOR b)`` (parity: ``splitmix64(splitmix64(n) XOR bits)``) on
unsigned 64-bit integers; ``h % 4 != 0`` -> train (75%, as in the paper); otherwise held out,
``(h >> 2) % 2 == 0`` -> validation, else test (12.5% each).

* train: `train_size` inputs drawn uniformly with replacement from the train inputs by a numpy
  generator seeded with `seed` (duplicates are possible, as in the paper's on-the-fly drawing);
* validation / test: distinct inputs of their held-out part, drawn by a generator with a FIXED seed
  that depends neither on `seed` nor on the format — every run and every format of a task and
  size is evaluated on the same inputs, and a smaller set is a prefix of a larger one.

Columns: ``prompt`` (str, up to the first "="), ``text`` (str, tokens + [EOS]), ``answer`` (str,
after the last "="), ``input_ids`` (list[int32], ids of ``text``), ``prompt_length`` (int32,
number of prompt tokens incl. [BOS]), and the inputs: ``a``, ``b`` (int64) or ``bits`` (str).

Speed: the token ids are built for a whole block of examples at once with numpy (every format is
a fixed template for given digits: each position holds a constant, a digit or a digit pair of
known origin), and the texts are assembled from the ids as bytes; the pure per-example functions
of `hf_linear.data.arithmetic.formats` stay the reference, and tests check both paths agree.
"""

from __future__ import annotations

import hashlib
import json
import os
import string
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import torch
from datasets import Dataset, DatasetDict, DatasetInfo, Features, List, Value
from datasets.table import InMemoryTable

from hf_linear.data.arithmetic.formats import (
    BOS,
    EQUALS,
    FORMATS,
    MAX_DIGITS,
    check_digits,
    check_every,
    check_task_and_format,
    sequence_length,
)
from hf_linear.data.io import push_dataset, save_dataset
from hf_linear.resources import card_template
from hf_linear.data.arithmetic.tokenizer import (
    DIGIT_ID,
    PAIR_ID,
    TOKEN_TO_ID,
    VOCABULARY,
    build_arithmetic_tokenizer,
)

SPLITS = ("train", "validation", "test")
TRAIN, VALIDATION, TEST = 0, 1, 2  # split codes

BLOCK = 1 << 16  # inputs drawn, and examples built, per block (fixed: results must not depend on it)
ENUMERATE_LIMIT = 1 << 22  # input spaces up to this size are enumerated instead of sampled
_STREAM_CHUNK = 4096  # examples built at once by ArithmeticStream (small: the first one comes fast)

# First element of every SeedSequence entropy: keeps the kinds of random streams apart.
# (numpy's SeedSequence ignores trailing zeros, so each kind also has a fixed entropy length.)
_TRAIN_STREAM, _ONLINE_STREAM, _HELDOUT_STREAM = 1, 2, 3

FORMAT_VERSION = 1  # bump when a format or the split changes; part of the dataset fingerprint

CITATION = """@inproceedings{malach2024autoregressive,
  title     = {Auto-Regressive Next-Token Predictors are Universal Learners},
  author    = {Malach, Eran},
  booktitle = {Proceedings of the 41st International Conference on Machine Learning},
  series    = {Proceedings of Machine Learning Research},
  volume    = {235},
  year      = {2024},
  publisher = {PMLR},
  eprint    = {2309.06979},
  archivePrefix = {arXiv}
}"""
LICENSE = "apache-2.0"
_DESCRIPTION_PREFIX = "hf-linear arithmetic dataset; build arguments: "


# ---------------------------------------------------------------------------------------------
# The specification of a dataset


@dataclass(frozen=True)
class ArithmeticSpec:
    """What one dataset holds: task, operand sizes and CoT format (already checked)."""

    task: str
    digits: tuple[int, ...]
    cot: str
    every: int | None = None  # parity only: the k of the running parity

    @classmethod
    def create(cls, task: str, digits: int | Sequence[int], cot: str, every: int | None = None) -> ArithmeticSpec:
        check_task_and_format(task, cot)
        digits = check_digits(task, [digits] if isinstance(digits, int) else digits)
        if task == "parity":
            every = check_every(digits[0], cot, every)
        elif every is not None:
            raise ValueError(f"every={every} only applies to task='parity'")
        return cls(task, digits, cot, every)

    @property
    def length(self) -> int:
        """Tokens per example, without [EOS]."""
        return sequence_length(self.task, self.digits, self.cot, self.every)

    @property
    def prompt_length(self) -> int:
        """Tokens up to and including the first "=" (the operands have fixed sizes)."""
        return sum(self.digits) + (3 if self.task != "parity" else 2)

    @property
    def answer_length(self) -> int:
        """Tokens after the last "=": the zero-padded result."""
        return {"multiplication": sum(self.digits), "addition": max(self.digits) + 1, "parity": 1}[self.task]


# ---------------------------------------------------------------------------------------------
# Inputs, the hash split and the drawing of inputs

_U64 = np.uint64


def splitmix64(x: np.ndarray) -> np.ndarray:
    """The splitmix64 finaliser on uint64 arrays (wrapping arithmetic): a fixed, well-mixed hash."""
    z = np.asarray(x, dtype=_U64) + _U64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> _U64(30))) * _U64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> _U64(27))) * _U64(0x94D049BB133111EB)
    return z ^ (z >> _U64(31))


def split_codes(spec: ArithmeticSpec, inputs: tuple[np.ndarray, ...]) -> np.ndarray:
    """TRAIN / VALIDATION / TEST of every input, from its hash (see the module docstring)."""
    if spec.task == "parity":
        (bits,) = inputs
        first, second = np.full(bits.shape, spec.digits[0], dtype=_U64), bits
    else:
        first, second = inputs
    h = splitmix64(splitmix64(first) ^ np.asarray(second, dtype=_U64))
    held_out = h % _U64(4) == 0
    test = (h >> _U64(2)) % _U64(2) == 1
    return np.where(held_out, np.where(test, TEST, VALIDATION), TRAIN).astype(np.int8)


def _input_space_size(spec: ArithmeticSpec) -> int:
    if spec.task == "parity":
        return 2 ** spec.digits[0]
    n, m = spec.digits
    return 9 * 10 ** (n - 1) * 9 * 10 ** (m - 1)


def _operand_range(digits: int) -> tuple[int, int]:
    return 10 ** (digits - 1), 10**digits - 1


def _draw_inputs(spec: ArithmeticSpec, rng: np.random.Generator, count: int) -> tuple[np.ndarray, ...]:
    """Uniform random inputs (any split)."""
    if spec.task == "parity":
        return (rng.integers(0, 2 ** spec.digits[0] - 1, size=count, dtype=_U64, endpoint=True),)
    return tuple(rng.integers(*_operand_range(d), size=count, dtype=np.int64, endpoint=True) for d in spec.digits)


def _all_inputs(spec: ArithmeticSpec) -> tuple[np.ndarray, ...]:
    """Every input, in a fixed order (only for spaces of at most ENUMERATE_LIMIT inputs)."""
    if spec.task == "parity":
        return (np.arange(2 ** spec.digits[0], dtype=_U64),)
    (a_low, a_high), (b_low, b_high) = (_operand_range(d) for d in spec.digits)
    a, b = np.meshgrid(np.arange(a_low, a_high + 1), np.arange(b_low, b_high + 1), indexing="ij")
    return a.ravel().astype(np.int64), b.ravel().astype(np.int64)


def _select(inputs: tuple[np.ndarray, ...], index: np.ndarray) -> tuple[np.ndarray, ...]:
    return tuple(x[index] for x in inputs)


def _input_blocks(spec: ArithmeticSpec, split: int, rng: np.random.Generator) -> Iterator[tuple[np.ndarray, ...]]:
    """Endless blocks of uniform random inputs of one split, with repetition."""
    if _input_space_size(spec) <= ENUMERATE_LIMIT:
        pool = _all_inputs(spec)
        pool = _select(pool, np.flatnonzero(split_codes(spec, pool) == split))
        if len(pool[0]) == 0:
            raise ValueError(f"{_describe(spec)} has no {SPLITS[split]} inputs: use more digits")
        while True:
            yield _select(pool, rng.integers(0, len(pool[0]), size=BLOCK))
    while True:
        candidates = _draw_inputs(spec, rng, BLOCK)
        yield _select(candidates, np.flatnonzero(split_codes(spec, candidates) == split))


def _take(blocks: Iterator[tuple[np.ndarray, ...]], count: int) -> tuple[np.ndarray, ...]:
    taken, total = [], 0
    while total < count:
        block = next(blocks)
        taken.append(block)
        total += len(block[0])
    if not taken:
        return tuple(np.empty(0, dtype=x.dtype) for x in next(blocks))
    return tuple(np.concatenate(parts)[:count] for parts in zip(*taken))


def train_inputs(spec: ArithmeticSpec, count: int, seed: int) -> tuple[np.ndarray, ...]:
    """`count` training inputs drawn with replacement; same seed -> same inputs, and a smaller
    `count` gives a prefix of a larger one."""
    rng = np.random.default_rng(np.random.SeedSequence([_TRAIN_STREAM, seed]))
    return _take(_input_blocks(spec, TRAIN, rng), count)


def _unique_keys(spec: ArithmeticSpec, inputs: tuple[np.ndarray, ...]) -> np.ndarray:
    if spec.task == "parity":
        return inputs[0]
    a, b = inputs
    return a * 10**MAX_DIGITS + b


def heldout_inputs(spec: ArithmeticSpec, split: int, count: int) -> tuple[np.ndarray, ...]:
    """`count` DISTINCT inputs of the validation or test split, always the same (fixed seed)."""
    rng = np.random.default_rng(np.random.SeedSequence([_HELDOUT_STREAM, split]))
    name = f"{SPLITS[split]}_size"
    if _input_space_size(spec) <= ENUMERATE_LIMIT:
        pool = _all_inputs(spec)
        pool = _select(pool, np.flatnonzero(split_codes(spec, pool) == split))
        available = len(pool[0])
        if count > available:
            raise ValueError(f"{name}={count} exceeds the {available} {SPLITS[split]} inputs of {_describe(spec)}")
        return _select(pool, rng.permutation(available)[:count])
    candidates: list[tuple[np.ndarray, ...]] = []
    while True:
        block = _draw_inputs(spec, rng, BLOCK)
        candidates.append(_select(block, np.flatnonzero(split_codes(spec, block) == split)))
        merged = tuple(np.concatenate(parts) for parts in zip(*candidates))
        _, first_index = np.unique(_unique_keys(spec, merged), return_index=True)
        if len(first_index) >= count:
            return _select(merged, np.sort(first_index)[:count])


def _describe(spec: ArithmeticSpec) -> str:
    if spec.task == "parity":
        return f"parity of {spec.digits[0]} bits"
    return f"{spec.digits[0]}x{spec.digits[1]}-digit {spec.task}"


# ---------------------------------------------------------------------------------------------
# Fast path: token ids of a block of examples, format by format (mirrors hf_linear.data.arithmetic.formats)


def _digits_lsb(x: np.ndarray, width: int) -> np.ndarray:
    """(N, width) digits of x, least significant first."""
    return (x[:, None] // 10 ** np.arange(width, dtype=np.int64)) % 10


class _Columns:
    """Collects blocks of token-id columns of N examples, left to right."""

    def __init__(self, count: int):
        self.count = count
        self.blocks: list[np.ndarray] = []

    def tokens(self, *tokens: str) -> None:
        """The same tokens in every example."""
        if tokens:
            row = np.array([TOKEN_TO_ID[t] for t in tokens], dtype=np.int64)
            self.blocks.append(np.broadcast_to(row, (self.count, len(tokens))))

    def digits(self, digits: np.ndarray) -> None:
        """Digit tokens: (N,) or (N, k) digits."""
        self.blocks.append(DIGIT_ID + digits.reshape(self.count, -1))

    def pairs(self, a_digits: np.ndarray, b_digits: np.ndarray) -> None:
        """Joined digit-pair tokens "AxB": (N, k) and (N, 1) digits, or (N, 1) and (N, 1)."""
        self.blocks.append(PAIR_ID + 10 * a_digits + b_digits)

    def ids(self) -> np.ndarray:
        return np.concatenate(self.blocks, axis=1).astype(np.int32)


def _operands_prompt(columns: _Columns, a_lsb: np.ndarray, operator: str, b_lsb: np.ndarray) -> None:
    columns.tokens(BOS)
    columns.digits(a_lsb[:, ::-1])
    columns.tokens(operator)
    columns.digits(b_lsb[:, ::-1])
    columns.tokens(EQUALS)


def _multiplication_paper_ids(a: np.ndarray, b: np.ndarray, n: int, m: int) -> np.ndarray:
    a_lsb, b_lsb = _digits_lsb(a, n), _digits_lsb(b, m)
    columns = _Columns(len(a))
    _operands_prompt(columns, a_lsb, "x", b_lsb)
    for index, x_lsb in enumerate((a_lsb, b_lsb)):  # ( d0 x 1 + d1 x 1 0 + ... )
        columns.tokens(*(["x"] if index else []), "(")
        for i in range(x_lsb.shape[1]):
            columns.tokens(*(["+"] if i else []))
            columns.digits(x_lsb[:, i])
            columns.tokens("x", "1", *["0"] * i)
        columns.tokens(")")
    columns.tokens(EQUALS)
    for i in range(n):  # aixbj x 10^i x 10^j
        for j in range(m):
            columns.tokens(*(["+"] if i or j else []))
            columns.pairs(a_lsb[:, i : i + 1], b_lsb[:, j : j + 1])
            columns.tokens("x", "1", *["0"] * i, "x", "1", *["0"] * j)
    columns.tokens(EQUALS)
    for i in range(n):  # ai*bj*10^(i+j), i+j+2 digits
        for j in range(m):
            columns.tokens(*(["+"] if i or j else []))
            product = a_lsb[:, i] * b_lsb[:, j]
            columns.digits(np.stack([product // 10, product % 10], axis=1))
            columns.tokens(*["0"] * (i + j))
    columns.tokens(EQUALS)
    columns.digits(_digits_lsb(a * b, n + m)[:, ::-1])
    return columns.ids()


def _multiplication_direct_ids(a: np.ndarray, b: np.ndarray, n: int, m: int) -> np.ndarray:
    columns = _Columns(len(a))
    _operands_prompt(columns, _digits_lsb(a, n), "x", _digits_lsb(b, m))
    columns.digits(_digits_lsb(a * b, n + m)[:, ::-1])
    return columns.ids()


def _multiplication_lsb_ids(a: np.ndarray, b: np.ndarray, n: int, m: int) -> np.ndarray:
    a_lsb, b_lsb = _digits_lsb(a, n), _digits_lsb(b, m)
    columns = _Columns(len(a))
    _operands_prompt(columns, a_lsb, "x", b_lsb)
    running_sum = np.zeros_like(a)
    for j in range(m):
        partial = a * b_lsb[:, j]
        running_sum = running_sum + partial * 10**j
        columns.tokens(*(["+"] if j else []))
        columns.pairs(a_lsb, b_lsb[:, j : j + 1])
        columns.digits(_digits_lsb(partial, n + 1))
        if j:
            columns.digits(_digits_lsb(running_sum, n + j + 1))
    columns.tokens(EQUALS)
    columns.digits(_digits_lsb(a * b, n + m)[:, ::-1])
    return columns.ids()


def _addition_direct_ids(a: np.ndarray, b: np.ndarray, n: int, m: int) -> np.ndarray:
    columns = _Columns(len(a))
    _operands_prompt(columns, _digits_lsb(a, n), "+", _digits_lsb(b, m))
    columns.digits(_digits_lsb(a + b, max(n, m) + 1)[:, ::-1])
    return columns.ids()


def _addition_lsb_ids(a: np.ndarray, b: np.ndarray, n: int, m: int) -> np.ndarray:
    width = max(n, m)
    a_lsb, b_lsb = _digits_lsb(a, width), _digits_lsb(b, width)
    columns = _Columns(len(a))
    _operands_prompt(columns, a_lsb[:, :n], "+", b_lsb[:, :m])
    carry = np.zeros_like(a)
    for i in range(width):
        column_sum = a_lsb[:, i] + b_lsb[:, i] + carry
        carry = column_sum // 10
        columns.digits(np.stack([carry, column_sum % 10], axis=1))
    columns.tokens(EQUALS)
    columns.digits(_digits_lsb(a + b, width + 1)[:, ::-1])
    return columns.ids()


def _bit_matrix(bits: np.ndarray, n: int) -> np.ndarray:
    """(N, n) bits, the first (most significant) bit first."""
    shifts = np.arange(n - 1, -1, -1, dtype=_U64)
    return ((bits[:, None] >> shifts) & _U64(1)).astype(np.int64)


def _parity_ids(bits: np.ndarray, n: int, every: int) -> np.ndarray:
    bit_matrix = _bit_matrix(bits, n)
    prefix_parity = np.cumsum(bit_matrix, axis=1) % 2
    columns = _Columns(len(bits))
    columns.tokens(BOS)
    columns.digits(bit_matrix)
    columns.tokens(EQUALS)
    checkpoints = list(range(every, n, every))
    if checkpoints:
        columns.digits(prefix_parity[:, [end - 1 for end in checkpoints]])
        columns.tokens(EQUALS)
    columns.digits(prefix_parity[:, -1])
    return columns.ids()


_ARITHMETIC_IDS = {
    ("multiplication", "paper"): _multiplication_paper_ids,
    ("multiplication", "direct"): _multiplication_direct_ids,
    ("multiplication", "lsb"): _multiplication_lsb_ids,
    ("addition", "direct"): _addition_direct_ids,
    ("addition", "lsb"): _addition_lsb_ids,
}


def example_ids(spec: ArithmeticSpec, inputs: tuple[np.ndarray, ...]) -> np.ndarray:
    """(N, length) token ids of N examples, without [EOS]; equals tokenizing `example_tokens`."""
    if spec.task == "parity":
        return _parity_ids(inputs[0], spec.digits[0], spec.every)
    a, b = inputs
    return _ARITHMETIC_IDS[spec.task, spec.cot](a, b, *spec.digits)


# ---------------------------------------------------------------------------------------------
# Fast path: strings from ids


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


def strings_of_ids(ids: np.ndarray) -> pa.Array:
    """Arrow strings of the rows of `ids`: their tokens joined by single spaces."""
    flat, row_lengths = _joined_token_bytes(ids)
    # drop each row's trailing space: keep bytes [start, end - 1) of every row
    ends = np.cumsum(row_lengths)
    keep = np.ones(len(flat), dtype=bool)
    keep[ends[row_lengths > 0] - 1] = False
    data = flat[keep]
    offsets = np.concatenate([[0], np.cumsum(np.maximum(row_lengths - 1, 0))]).astype(np.int32)
    return pa.Array.from_buffers(pa.string(), len(ids), [None, pa.py_buffer(offsets), pa.py_buffer(data)])


def _bit_strings(bits: np.ndarray, n: int) -> pa.Array:
    data = (_bit_matrix(bits, n) + ord("0")).astype(np.uint8).ravel()
    offsets = (np.arange(len(bits) + 1) * n).astype(np.int32)
    return pa.Array.from_buffers(pa.string(), len(bits), [None, pa.py_buffer(offsets), pa.py_buffer(data)])


# ---------------------------------------------------------------------------------------------
# Arrow tables and the DatasetDict


def features_of(spec: ArithmeticSpec) -> Features:
    inputs = {"bits": Value("string")} if spec.task == "parity" else {"a": Value("int64"), "b": Value("int64")}
    return Features(
        {
            "prompt": Value("string"),
            "text": Value("string"),
            "answer": Value("string"),
            "input_ids": List(Value("int32")),
            "prompt_length": Value("int32"),
            **inputs,
        }
    )


def _record_batch(spec: ArithmeticSpec, inputs: tuple[np.ndarray, ...]) -> pa.RecordBatch:
    count = len(inputs[0])
    ids = example_ids(spec, inputs)
    with_eos = np.concatenate([ids, np.full((count, 1), TOKEN_TO_ID["[EOS]"], dtype=np.int32)], axis=1)
    id_offsets = (np.arange(count + 1) * with_eos.shape[1]).astype(np.int32)
    columns = {
        "prompt": strings_of_ids(ids[:, : spec.prompt_length]),
        "text": strings_of_ids(with_eos),
        "answer": strings_of_ids(ids[:, ids.shape[1] - spec.answer_length :]),
        "input_ids": pa.ListArray.from_arrays(pa.array(id_offsets), pa.array(with_eos.ravel())),
        "prompt_length": pa.array(np.full(count, spec.prompt_length, dtype=np.int32)),
    }
    if spec.task == "parity":
        columns["bits"] = _bit_strings(inputs[0], spec.digits[0])
    else:
        columns["a"], columns["b"] = pa.array(inputs[0]), pa.array(inputs[1])
    return pa.RecordBatch.from_pydict(columns, schema=features_of(spec).arrow_schema)


def examples_table(spec: ArithmeticSpec, inputs: tuple[np.ndarray, ...]) -> pa.Table:
    """The Arrow table of the examples of `inputs`, built block by block."""
    count = len(inputs[0])
    batches = [
        _record_batch(spec, tuple(x[start : start + BLOCK] for x in inputs)) for start in range(0, count, BLOCK)
    ]
    return pa.Table.from_batches(batches, schema=features_of(spec).arrow_schema)


def _check_size(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name}={value!r} must be an integer >= 0")
    return value


def build_arithmetic_dataset(
    task: str,
    digits: int | Sequence[int],
    cot: str,
    train_size: int,
    validation_size: int = 1000,
    test_size: int = 1000,
    seed: int = 0,
    every: int | None = None,
) -> DatasetDict:
    """Build a train / validation / test `DatasetDict` of one arithmetic task and CoT format.

    Args:
        task: "multiplication", "addition" or "parity".
        digits: operand sizes [n, m] (one int n means n x n), from 1 to 9 digits each; for
            parity the number of bits [n], 1 to 64.
        cot: the format — multiplication: "paper", "direct", "lsb"; addition: "lsb",
            "direct"; parity: "running", "direct" (see `hf_linear.data.arithmetic.formats`).
        train_size: training examples, drawn with replacement from the train inputs.
        validation_size, test_size: distinct held-out inputs each (fixed, seed-independent).
        seed: seed of the training draw; same arguments -> same dataset bytes and fingerprints.
        every: parity "running" only: write the running parity every `every` bits.

    Every bad argument raises ValueError naming it.
    """
    spec = ArithmeticSpec.create(task, digits, cot, every)
    sizes = {
        name: _check_size(f"{name}_size", size)
        for name, size in zip(SPLITS, (train_size, validation_size, test_size))
    }
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed={seed!r} must be an integer >= 0")
    arguments = {**asdict(spec), "digits": list(spec.digits), "train_size": train_size,
                 "validation_size": validation_size, "test_size": test_size, "seed": seed}  # fmt: skip
    inputs = {
        "train": train_inputs(spec, sizes["train"], seed),
        "validation": heldout_inputs(spec, VALIDATION, sizes["validation"]),
        "test": heldout_inputs(spec, TEST, sizes["test"]),
    }
    splits = {}
    for name in SPLITS:
        info = DatasetInfo(
            description=_DESCRIPTION_PREFIX + json.dumps(arguments, sort_keys=True),
            citation=CITATION,
            license=LICENSE,
            features=features_of(spec),
        )
        fingerprint = hashlib.sha256(json.dumps([FORMAT_VERSION, arguments, name], sort_keys=True).encode())
        splits[name] = Dataset(
            InMemoryTable(examples_table(spec, inputs[name])),
            info=info,
            split=name,
            fingerprint=fingerprint.hexdigest()[:16],
        )
    return DatasetDict(splits)


def build_arguments_of(dataset: Dataset | DatasetDict) -> dict:
    """The `build_arithmetic_dataset` arguments a dataset was built with (kept in its info)."""
    from hf_linear.data.io import build_record

    return build_record(dataset, _DESCRIPTION_PREFIX, "build_arithmetic_dataset")


# ---------------------------------------------------------------------------------------------
# Unlimited training examples on the fly


def _distributed_rank() -> int:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank()
    return int(os.environ.get("RANK", "0"))


class ArithmeticStream(torch.utils.data.IterableDataset):
    """Endless training examples ``{"input_ids": list[int], "prompt_length": int}`` (ids end with
    [EOS]), drawn with replacement from the TRAIN inputs only.

    Each (seed, epoch, distributed rank, data-loader worker) has its own random stream, so
    data-loader workers and ranks never replay each other's examples (the authors' code gives
    every worker the same random state). `set_epoch` (called by `Trainer`) starts new streams.
    The rank is taken from torch.distributed, else the RANK environment variable, unless given.
    """

    def __init__(
        self,
        task: str,
        digits: int | Sequence[int],
        cot: str,
        seed: int = 0,
        every: int | None = None,
        rank: int | None = None,
    ):
        super().__init__()
        self.spec = ArithmeticSpec.create(task, digits, cot, every)
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ValueError(f"seed={seed!r} must be an integer >= 0")
        self.seed, self.rank, self.epoch = seed, rank, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def stream_key(self) -> tuple[int, int, int, int]:
        """(seed, epoch, rank, worker) of the stream the calling process iterates."""
        worker = torch.utils.data.get_worker_info()
        rank = self.rank if self.rank is not None else _distributed_rank()
        return self.seed, self.epoch, rank, worker.id if worker is not None else 0

    def __iter__(self) -> Iterator[dict]:
        rng = np.random.default_rng(np.random.SeedSequence([_ONLINE_STREAM, *self.stream_key()]))
        eos = TOKEN_TO_ID["[EOS]"]
        for inputs in _input_blocks(self.spec, TRAIN, rng):
            for start in range(0, len(inputs[0]), _STREAM_CHUNK):
                ids = example_ids(self.spec, _select(inputs, slice(start, start + _STREAM_CHUNK)))
                for row in ids.tolist():
                    yield {"input_ids": [*row, eos], "prompt_length": self.spec.prompt_length}


# ---------------------------------------------------------------------------------------------
# Dataset card, saving, Hub


def _size_category(count: int) -> str:
    bounds = [(1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M"),
              (10_000_000, "1M<n<10M"), (100_000_000, "10M<n<100M")]  # fmt: skip
    return next((label for bound, label in bounds if count < bound), "100M<n<1B")


def length_table(spec: ArithmeticSpec) -> str:
    """Markdown table of tokens per example for every format of the task."""
    if spec.task == "parity":
        n = spec.digits[0]
        ks = sorted({1, 2, 4, 8, 16, 32, n, spec.every} & set(range(1, n + 1)))
        rows = [f"| {n} | {k} | {sequence_length('parity', [n], 'running', k)} |" for k in ks]
        return "\n".join(["| bits n | k (every) | tokens |", "|---|---|---|", *rows])
    formats = FORMATS[spec.task]
    sizes = sorted({(d, d) for d in range(1, 9)} | {spec.digits})
    header = "| n x m | " + " | ".join(f"`{f}`" for f in formats) + " |"
    rows = [f"| {n}x{m} | " + " | ".join(str(sequence_length(spec.task, [n, m], f)) for f in formats) + " |"
            for n, m in sizes]  # fmt: skip
    return "\n".join([header, "|---" * (len(formats) + 1) + "|", *rows])


def render_dataset_card(dataset_dict: DatasetDict, hub_metadata: dict | None = None) -> str:
    """README.md of a built dataset, from `model_cards/dataset_card_arithmetic.md`.

    `hub_metadata` (the YAML that `DatasetDict.push_to_hub` wrote: `configs`, `dataset_info`)
    is merged into the card's own metadata so that the Hub still finds the data files.
    """
    from huggingface_hub import DatasetCard, DatasetCardData

    arguments = build_arguments_of(dataset_dict)
    spec = ArithmeticSpec.create(arguments["task"], arguments["digits"], arguments["cot"], arguments["every"])
    example = dataset_dict["train"][0] if len(dataset_dict["train"]) else dataset_dict["test"][0]
    sizes = {name: len(dataset_dict[name]) for name in SPLITS}
    what = _describe(spec) + (f", running parity every {spec.every} bits" if spec.task == "parity" else "")
    values = {
        "pretty_name": f"CoT arithmetic: {what}, format {spec.cot}",
        "size_category": _size_category(sum(sizes.values())),
        "task": spec.task,
        "cot": spec.cot,
        "description": what,
        "length": spec.length + 1,
        "prompt_length": spec.prompt_length,
        "example_prompt": example["prompt"],
        "example_text": example["text"],
        "example_answer": example["answer"],
        "length_table": length_table(spec),
        "train_size": sizes["train"],
        "validation_size": sizes["validation"],
        "test_size": sizes["test"],
        "seed": arguments["seed"],
        "build_command": _build_command(arguments),
        "arguments": json.dumps(arguments, sort_keys=True),
        "citation": CITATION,
    }
    card = DatasetCard(string.Template(card_template("dataset_card_arithmetic.md")).substitute(values))
    if hub_metadata:
        card.data = DatasetCardData(**{**card.data.to_dict(), **hub_metadata})
    return str(card)


def _build_command(arguments: dict) -> str:
    digits = " ".join(map(str, arguments["digits"]))
    command = (
        f"python dataset_scripts/build_arithmetic.py --task {arguments['task']} --digits {digits} "
        f"--cot {arguments['cot']} --train-size {arguments['train_size']} "
        f"--validation-size {arguments['validation_size']} --test-size {arguments['test_size']} "
        f"--seed {arguments['seed']}"
    )
    return command + (f" --every {arguments['every']}" if arguments["task"] == "parity" else "") + " --out OUT"


def save_arithmetic_dataset(dataset_dict: DatasetDict, out: str | os.PathLike, overwrite: bool = False) -> Path:
    """`save_to_disk` the dataset into `out` with its tokenizer files and README.md card.

    Everything is written into a temporary sibling directory first, then renamed into place, so an
    interrupted run never leaves a half-written `out` (nor loses the old one).
    """
    return save_dataset(dataset_dict, build_arithmetic_tokenizer(), render_dataset_card(dataset_dict), out, overwrite)


def push_arithmetic_dataset_to_hub(
    dataset_dict: DatasetDict, repo_id: str, token: str | None = None, private: bool = False
) -> str:
    """Push the dataset (Parquet, via `DatasetDict.push_to_hub`) to the dataset repo `repo_id`, then
    its card (README.md) and the tokenizer files (under `tokenizer/`) in one more commit.

    Load it back with ``load_dataset(repo_id)`` and the tokenizer with
    ``AutoTokenizer.from_pretrained(snapshot_download(repo_id, repo_type="dataset"), subfolder="tokenizer")``.
    Returns the repo id.
    """
    return push_dataset(
        dataset_dict,
        build_arithmetic_tokenizer(),
        lambda hub_metadata: render_dataset_card(dataset_dict, hub_metadata),
        repo_id,
        token=token,
        private=private,
    )
