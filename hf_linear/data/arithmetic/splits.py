"""Inputs, the fixed hash split, and the seeded drawing of inputs for each split.

An input is an operand pair (a, b) of n- and m-digit numbers with nonzero leading digits, i.e.
a uniform in [10^(n-1), 10^n - 1] (the authors' code draws 1111..9999 for 4 digits; we use the
whole n-digit range, for every format alike), or for parity a string of n bits (any), packed
into a uint64, the first bit most significant.

Every input goes to one split by a fixed hash, the same on every machine and run:
``h = splitmix64(splitmix64(a) XOR b)`` (parity: ``splitmix64(splitmix64(n) XOR bits)``) on
unsigned 64-bit integers; ``h % 4 != 0`` -> train (75%, as in the paper); otherwise held out,
``(h >> 2) % 2 == 0`` -> validation, else test (12.5% each).

* train: inputs drawn uniformly with replacement from the train inputs by a numpy generator
  seeded with `seed` (duplicates are possible, as in the paper's on-the-fly drawing);
* validation / test: distinct inputs of their held-out part, drawn by a generator with a FIXED
  seed that depends neither on `seed` nor on the format — every run and every format of a task
  and size is evaluated on the same inputs, and a smaller set is a prefix of a larger one.

Input spaces of up to ENUMERATE_LIMIT inputs are enumerated (exact split sizes, exact errors);
larger ones are sampled, and a held-out set may then take at most 1/16 of the space (about half
of its split), so that drawing distinct inputs always ends soon. Every loop here has an exit.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np

from hf_linear.data.arithmetic.formats import MAX_DIGITS

if TYPE_CHECKING:
    from hf_linear.data.arithmetic.spec import ArithmeticSpec

SPLITS = ("train", "validation", "test")
TRAIN, VALIDATION, TEST = 0, 1, 2  # split codes

BLOCK = 1 << 16  # inputs drawn, and examples built, per block (fixed: results must not depend on it)
ENUMERATE_LIMIT = 1 << 22  # input spaces up to this size are enumerated instead of sampled
# A sampled held-out set takes at most this fraction of the input space: half of the ~1/8 in its
# split, so at least half of the split's draws are new inputs until the set is complete.
SAMPLED_HELDOUT_FRACTION = 16

# First element of every SeedSequence entropy: keeps the kinds of random streams apart.
# (numpy's SeedSequence ignores trailing zeros, so each kind also has a fixed entropy length.)
_TRAIN_STREAM, _ONLINE_STREAM, _HELDOUT_STREAM = 1, 2, 3

_U64 = np.uint64
Inputs = tuple[np.ndarray, ...]  # (a, b) int64 arrays, or (bits,) uint64


def splitmix64(x: np.ndarray) -> np.ndarray:
    """The splitmix64 finaliser on uint64 arrays (wrapping arithmetic): a fixed, well-mixed hash."""
    z = np.asarray(x, dtype=_U64) + _U64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> _U64(30))) * _U64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> _U64(27))) * _U64(0x94D049BB133111EB)
    return z ^ (z >> _U64(31))


def split_codes(spec: ArithmeticSpec, inputs: Inputs) -> np.ndarray:
    """TRAIN / VALIDATION / TEST of every input, from its hash (see the module docstring)."""
    if spec.bits:
        (bits,) = inputs
        first, second = np.full(bits.shape, spec.digits[0], dtype=_U64), bits
    else:
        first, second = inputs
    return split_of_hash(splitmix64(splitmix64(first) ^ np.asarray(second, dtype=_U64)))


def split_of_hash(h: np.ndarray) -> np.ndarray:
    """The split rule, shared by every data source: h % 4 != 0 -> TRAIN, else VALIDATION or TEST by
    bit 2 of h."""
    held_out = h % _U64(4) == 0
    test = (h >> _U64(2)) % _U64(2) == 1
    return np.where(held_out, np.where(test, TEST, VALIDATION), TRAIN).astype(np.int8)


# ---------------------------------------------------------------------------------------------
# The input space


def input_space_size(spec: ArithmeticSpec) -> int:
    if spec.bits:
        return 2 ** spec.digits[0]
    n, m = spec.digits
    return 9 * 10 ** (n - 1) * 9 * 10 ** (m - 1)


def _operand_range(digits: int) -> tuple[int, int]:
    return 10 ** (digits - 1), 10**digits - 1


def _draw_inputs(spec: ArithmeticSpec, rng: np.random.Generator, count: int) -> Inputs:
    """Uniform random inputs (any split)."""
    if spec.bits:
        return (rng.integers(0, 2 ** spec.digits[0] - 1, size=count, dtype=_U64, endpoint=True),)
    return tuple(rng.integers(*_operand_range(d), size=count, dtype=np.int64, endpoint=True) for d in spec.digits)


def _split_pool(spec: ArithmeticSpec, split: int) -> Inputs:
    """Every input of one split, in a fixed order (only for spaces of at most ENUMERATE_LIMIT)."""
    if spec.bits:
        everything = (np.arange(2 ** spec.digits[0], dtype=_U64),)
    else:
        (a_low, a_high), (b_low, b_high) = (_operand_range(d) for d in spec.digits)
        a, b = np.meshgrid(np.arange(a_low, a_high + 1), np.arange(b_low, b_high + 1), indexing="ij")
        everything = a.ravel().astype(np.int64), b.ravel().astype(np.int64)
    return select(everything, np.flatnonzero(split_codes(spec, everything) == split))


def select(inputs: Inputs, index) -> Inputs:
    return tuple(x[index] for x in inputs)


def _of_split(spec: ArithmeticSpec, inputs: Inputs, split: int) -> Inputs:
    return select(inputs, np.flatnonzero(split_codes(spec, inputs) == split))


def _unique_keys(spec: ArithmeticSpec, inputs: Inputs) -> np.ndarray:
    if spec.bits:
        return inputs[0]
    a, b = inputs
    return a * 10**MAX_DIGITS + b


# ---------------------------------------------------------------------------------------------
# Drawing


def input_blocks(spec: ArithmeticSpec, split: int, rng: np.random.Generator) -> Iterator[Inputs]:
    """Endless blocks of uniform random inputs of one split, with repetition; each block holds at
    least one input (else ValueError), so that taking any number of inputs ends."""
    if input_space_size(spec) <= ENUMERATE_LIMIT:
        pool = _split_pool(spec, split)
        if len(pool[0]) == 0:
            raise ValueError(f"{spec.describe()} has no {SPLITS[split]} inputs: use more digits")
        while True:
            yield select(pool, rng.integers(0, len(pool[0]), size=BLOCK))
    while True:
        block = _of_split(spec, _draw_inputs(spec, rng, BLOCK), split)
        if len(block[0]) == 0:  # a share of 1/8 or more of a space this large: never happens
            raise ValueError(f"no {SPLITS[split]} input among {BLOCK} random inputs of {spec.describe()}")
        yield block


def first_inputs(blocks: Iterator[Inputs], count: int) -> Inputs:
    """The first `count` inputs of `blocks` (every block holds at least one: this ends); a smaller
    `count` gives a prefix of a larger one."""
    taken, total = [], 0
    while total < count:
        block = next(blocks)
        taken.append(block)
        total += len(block[0])
    if not taken:
        return tuple(np.empty(0, dtype=x.dtype) for x in next(blocks))
    return tuple(np.concatenate(parts)[:count] for parts in zip(*taken))


class RepeatedTrainingInputsWarning(UserWarning):
    """More training examples asked for than the task has distinct training inputs."""


def warn_if_repeated(spec: ArithmeticSpec, count: int) -> None:
    """Warn when `count` training draws exceed the distinct training inputs (2x2 multiplication has
    6,075): the split then repeats each input many times, which a size alone does not show."""
    space = input_space_size(spec)
    if count <= space // 2:  # the train share is about 3/4 of the space: nothing to count
        return
    enumerated = space <= ENUMERATE_LIMIT
    available = len(_split_pool(spec, TRAIN)[0]) if enumerated else space * 3 // 4
    if count > available:
        warnings.warn(
            f"train_size={count:,} exceeds the {'' if enumerated else 'about '}{available:,} distinct training "
            f"inputs of {spec.describe()}: drawn with replacement, each repeats about "
            f"{count / max(1, available):.0f} times (use more digits or a smaller train_size)",
            RepeatedTrainingInputsWarning,
            stacklevel=3,
        )


def train_inputs(spec: ArithmeticSpec, count: int, seed: int) -> Inputs:
    """`count` training inputs drawn with replacement; same seed -> same inputs, and a smaller
    `count` gives a prefix of a larger one."""
    warn_if_repeated(spec, count)
    rng = np.random.default_rng(np.random.SeedSequence([_TRAIN_STREAM, seed]))
    return first_inputs(input_blocks(spec, TRAIN, rng), count)


def stream_input_blocks(spec: ArithmeticSpec, key: tuple[int, ...]) -> Iterator[Inputs]:
    """Endless blocks of training inputs of the on-the-fly stream `key` (seed, epoch, rank, worker)."""
    rng = np.random.default_rng(np.random.SeedSequence([_ONLINE_STREAM, *key]))
    return input_blocks(spec, TRAIN, rng)


def sampled_heldout_limit(spec: ArithmeticSpec) -> int:
    """Most distinct held-out inputs drawn from a sampled (not enumerated) input space."""
    return input_space_size(spec) // SAMPLED_HELDOUT_FRACTION


def heldout_inputs(spec: ArithmeticSpec, split: int, count: int) -> Inputs:
    """`count` DISTINCT inputs of the validation or test split, always the same (fixed seed).

    Too large a `count` raises ValueError naming `<split>_size` up front: the exact size of the
    split when the space is enumerated, else `sampled_heldout_limit`.
    """
    rng = np.random.default_rng(np.random.SeedSequence([_HELDOUT_STREAM, split]))
    name = f"{SPLITS[split]}_size"
    if input_space_size(spec) <= ENUMERATE_LIMIT:
        pool = _split_pool(spec, split)
        available = len(pool[0])
        if count > available:
            raise ValueError(f"{name}={count} exceeds the {available} {SPLITS[split]} inputs of {spec.describe()}")
        return select(pool, rng.permutation(available)[:count])
    limit = sampled_heldout_limit(spec)
    if count > limit:
        raise ValueError(
            f"{name}={count} is too many: {spec.describe()} has {input_space_size(spec)} inputs, too many to "
            f"enumerate, so held-out inputs are drawn at random, at most {limit} distinct ones per split "
            f"(1/{SAMPLED_HELDOUT_FRACTION} of the space, about half of the split)"
        )
    # With count <= limit, at least half of the split's draws are new, and a block holds ~BLOCK/8
    # of them: count / (BLOCK / 16) blocks are expected at most; allow four times as many.
    max_blocks = 4 * (count * SAMPLED_HELDOUT_FRACTION // BLOCK + 1)
    candidates: list[Inputs] = []
    for _ in range(max_blocks):
        candidates.append(_of_split(spec, _draw_inputs(spec, rng, BLOCK), split))
        merged = tuple(np.concatenate(parts) for parts in zip(*candidates))
        _, first_index = np.unique(_unique_keys(spec, merged), return_index=True)
        if len(first_index) >= count:
            return select(merged, np.sort(first_index)[:count])
    raise ValueError(
        f"{name}={count}: only {len(first_index)} distinct {SPLITS[split]} inputs of "
        f"{spec.describe()} in {max_blocks * BLOCK} random draws"
    )
