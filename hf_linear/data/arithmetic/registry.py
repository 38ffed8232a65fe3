"""The one table of CoT formats: each format is declared here once, and only here.

A `Format` pairs the readable reference function of `hf_linear.data.arithmetic.formats` with
the fast numpy builder of `hf_linear.data.arithmetic.vectorised` and a one-line description.
Everything else is derived from it: the formats of each task (`FORMATS`), the dispatch of
`example_tokens`, the lengths of a dataset (`ArithmeticSpec` builds one example and measures
it: every format is a fixed template for given digits), the dataset card's list of formats.
Adding a format is one row below (and its two functions, and tests).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from hf_linear.data.arithmetic import formats, vectorised
from hf_linear.data.arithmetic.formats import check_bits, check_every


@dataclass(frozen=True)
class Format:
    """One Chain-of-Thought format of one task."""

    task: str  # "multiplication", "addition" or "parity"
    name: str  # the `cot` argument
    reference: Callable[..., list[str]]  # (a, b) or (bits[, every]) -> tokens, in formats.py
    builder: Callable[..., np.ndarray]  # (a, b, n, m) or (bits, n[, every]) -> ids, in vectorised.py
    description: str  # one line of Markdown (the dataset card lists them)
    stepped: bool = False  # parity: takes the step size k (`every`)
    step_names: tuple[str, ...] = ()  # names of the "="-delimited CoT steps (else "cot step i")

    def check_every(self, digits: tuple[int, ...], every: int | None) -> int | None:
        """The `every` a dataset of this format records: None outside parity; for parity the step
        k of a stepped format, and n for the others (k = n: no CoT)."""
        if self.task != "parity":
            if every is not None:
                raise ValueError(f"every={every} only applies to task='parity'")
            return None
        (n_bits,) = digits
        if self.stepped:
            return check_every(n_bits, every, self.name)
        if every not in (None, n_bits):
            stepped = [f.name for f in REGISTRY.values() if f.task == self.task and f.stepped]
            raise ValueError(
                f"every={every} is only meaningful with cot in {stepped} ({self.name!r} means every={n_bits})"
            )
        return n_bits

    def tokens(self, operands: tuple, every: int | None = None) -> list[str]:
        """The reference tokens of one example: operands (a, b), or (bits,) for parity."""
        if self.task != "parity":
            self.check_every((), every)
            return self.reference(*operands)
        (bits,) = operands
        check_bits(bits)
        every = self.check_every((len(bits),), every)
        return self.reference(bits, every) if self.stepped else self.reference(bits)

    def ids(self, inputs: tuple[np.ndarray, ...], digits: tuple[int, ...], every: int | None) -> np.ndarray:
        """(N, length) token ids of N examples (no [EOS]), built at once; `every` already checked."""
        return self.builder(*inputs, *digits, *([every] if self.stepped else []))


_FORMATS = (
    Format(
        "multiplication",
        "paper",
        formats.multiplication_paper,
        vectorised.multiplication_paper_ids,
        "exactly the paper's format: the operands expanded least-significant digit first as "
        "`( d x 1 + d x 1 0 + ... )`, then the n·m joined digit-pair terms `AxB x 10^i x 10^j`, then "
        "the n·m partial products zero-padded to i+j+2 digits, then the product zero-padded to n+m digits",
        step_names=("operand expansions", "digit-pair terms", "partial products"),
    ),
    Format(
        "multiplication",
        "direct",
        formats.multiplication_direct,
        vectorised.multiplication_direct_ids,
        "no CoT: `a x b = product`, the product zero-padded to n+m digits",
    ),
    Format(
        "multiplication",
        "lsb",
        formats.multiplication_lsb,
        vectorised.multiplication_lsb_ids,
        "long multiplication, least-significant digit first: for each digit b_j of b the n digit-pair "
        "tokens `a_i x b_j`, the partial product a·b_j (n+1 digits) and, from the second digit on, the "
        "running sum (n+j+1 digits), all least-significant digit first so that carries flow in "
        "generation order; steps joined by `+`; then the product, zero-padded to n+m digits",
        step_names=("long multiplication",),
    ),
    Format(
        "addition",
        "lsb",
        formats.addition_lsb,
        vectorised.addition_lsb_ids,
        "for each column, least significant first, its sum a_i + b_i + carry written as the two "
        "digits `carry s_i`; then the sum, zero-padded to max(n, m)+1 digits",
        step_names=("column sums",),
    ),
    Format(
        "addition",
        "direct",
        formats.addition_direct,
        vectorised.addition_direct_ids,
        "no CoT: `a + b = sum`, the sum zero-padded to max(n, m)+1 digits",
    ),
    Format(
        "parity",
        "running",
        formats.parity_running,
        vectorised.parity_running_ids,
        "the parity of the first k, 2k, ... bits (k = `every`), then the parity; k = n means no CoT",
        stepped=True,
        step_names=("running parities",),
    ),
    Format(
        "parity",
        "direct",
        formats.parity_direct,
        vectorised.parity_direct_ids,
        "no CoT: the parity alone (`running` with k = n)",
    ),
    Format(
        "parity",
        "threshold",
        formats.parity_threshold,
        vectorised.parity_threshold_ids,
        "a linear-threshold circuit: per block of k bits (k = `every`) with sum s, the pair "
        "`a p` with a = ⌊(p' + s)/2⌋ (for k = 1: AND(p', bit)) and p = p' + s − 2a, the parity so far "
        "(p' the previous p); the last block's `a`, then `= p`; every token is a linear-threshold "
        "function of tokens already written",
        stepped=True,
        step_names=("threshold steps",),
    ),
)

REGISTRY: dict[tuple[str, str], Format] = {(f.task, f.name): f for f in _FORMATS}

# task -> its format names, in declaration order (the first one is the task's default)
FORMATS: dict[str, tuple[str, ...]] = {}
for _format in _FORMATS:
    FORMATS[_format.task] = (*FORMATS.get(_format.task, ()), _format.name)


def get_format(task: str, cot: str) -> Format:
    """The registered format, or a ValueError naming `task` or `cot`."""
    if task not in FORMATS:
        raise ValueError(f"task={task!r} is unknown; choose one of {sorted(FORMATS)}")
    if cot not in FORMATS[task]:
        raise ValueError(f"cot={cot!r} is not a format of task {task!r}; choose one of {list(FORMATS[task])}")
    return REGISTRY[task, cot]


def example_tokens(task: str, cot: str, operands: tuple, every: int | None = None) -> list[str]:
    """Tokens of one example: operands are (a, b) for multiplication/addition, (bits,) for parity."""
    return get_format(task, cot).tokens(operands, every)
