"""What one arithmetic dataset holds (`ArithmeticSpec`), what follows from it, and its prompts.

A spec is a task, operand sizes, a CoT format and (parity) a step k; all of it is checked once,
in `ArithmeticSpec.create`. Its lengths are derived, never written down: every format is a fixed
template for given digits, so the spec builds one example and measures it.

Prompts for a trained model: `prompt_for(spec, operands)` / `arithmetic_prompt(task, digits,
cot, *operands)` build the prompt string and REFUSE (ValueError) operands a dataset of the spec
never holds — other digit counts, leading zeros, negative or non-integer numbers, bit strings of
another length: a model trained on fixed-width operands answers those confidently and wrongly.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from numbers import Integral

import numpy as np

from hf_linear.data.arithmetic.formats import EQUALS, MAX_BITS, MAX_DIGITS, prompt_of
from hf_linear.data.arithmetic.registry import Format, get_format
from hf_linear.data.arithmetic.tokenizer import TOKEN_TO_ID


def check_digits(task: str, digits: int | Sequence[int]) -> tuple[int, ...]:
    """`digits` is (n, m) for multiplication/addition (a single n means n x n), (n,) for parity."""
    digits = (digits,) if isinstance(digits, int) else tuple(digits)
    if not all(isinstance(d, int) and not isinstance(d, bool) for d in digits):
        raise ValueError(f"digits={list(digits)} must be integers")
    if task == "parity":
        if len(digits) != 1 or not 1 <= digits[0] <= MAX_BITS:
            raise ValueError(f"digits={list(digits)}: parity takes one number of bits from 1 to {MAX_BITS}")
        return digits
    if len(digits) == 1:
        digits = digits * 2
    if len(digits) != 2 or not all(1 <= d <= MAX_DIGITS for d in digits):
        raise ValueError(
            f"digits={list(digits)}: {task} takes one or two operand sizes, each from 1 to {MAX_DIGITS} digits"
        )
    return digits


@dataclass(frozen=True)
class ArithmeticSpec:
    """What one dataset holds: task, operand sizes and CoT format (already checked)."""

    task: str
    digits: tuple[int, ...]
    cot: str
    every: int | None = None  # parity only: the step k (n for formats without steps)

    @classmethod
    def from_arguments(cls, arguments: dict) -> ArithmeticSpec:
        """The spec of builder arguments or a config section ({task, digits, cot[, every]}; other
        keys, e.g. sizes and seed, ignored); ValueError naming a missing key."""
        missing = [key for key in ("task", "digits", "cot") if key not in arguments]
        if missing:
            raise ValueError(f"an arithmetic task needs the keys task, digits and cot (missing: {', '.join(missing)})")
        return cls.create(arguments["task"], arguments["digits"], arguments["cot"], arguments.get("every"))

    @classmethod
    def create(cls, task: str, digits: int | Sequence[int], cot: str, every: int | None = None) -> ArithmeticSpec:
        """Check every argument (ValueError naming it) and return the spec."""
        format_ = get_format(task, cot)
        digits = check_digits(task, digits)
        return cls(task, digits, cot, format_.check_every(digits, every))

    @property
    def format(self) -> Format:
        return get_format(self.task, self.cot)

    def ids(self, inputs: tuple[np.ndarray, ...]) -> np.ndarray:
        """(N, length) token ids of the examples of N inputs, without [EOS] (the fast path)."""
        return self.format.ids(inputs, self.digits, self.every)

    # -- lengths, measured on one example ------------------------------------------------------

    @property
    def length(self) -> int:
        """Tokens per example, without [EOS]."""
        return len(_template(self))

    @property
    def prompt_length(self) -> int:
        """Tokens up to and including the first "="."""
        return _template(self).index(_EQUALS_ID) + 1

    @property
    def answer_length(self) -> int:
        """Tokens after the last "=": the zero-padded result."""
        return _template(self)[::-1].index(_EQUALS_ID)

    # -- inputs ------------------------------------------------------------------------------

    @property
    def bits(self) -> bool:
        """True when the inputs are bit strings (parity), False for operand pairs (a, b)."""
        return self.task == "parity"

    def describe(self) -> str:
        """E.g. "4x4-digit multiplication" or "parity of 8 bits"."""
        if self.bits:
            return f"parity of {self.digits[0]} bits"
        return f"{self.digits[0]}x{self.digits[1]}-digit {self.task}"

    def check_operands(self, operands: Sequence) -> tuple:
        """The operands of one input of this spec, or a ValueError naming the bad one.

        Numbers must be integers (int, or a string of digits) with exactly the spec's digit count
        and no leading zero; bits a string of exactly n characters '0'/'1'.
        """
        names = ("bits",) if self.bits else ("a", "b")
        operands = tuple(operands)
        if len(operands) != len(names):
            raise ValueError(f"operands={operands!r}: {self.describe()} takes {len(names)} ({', '.join(names)})")
        if self.bits:
            (bits,) = operands
            n_bits = self.digits[0]
            if not isinstance(bits, str) or len(bits) != n_bits or set(bits) - {"0", "1"}:
                raise ValueError(
                    f"bits={shown(bits)} must be a string of exactly {n_bits} characters '0'/'1' "
                    f"(the inputs of {self.describe()})"
                )
            return (bits,)
        return tuple(_checked_number(name, x, d, self.describe()) for name, x, d in zip(names, operands, self.digits))


_EQUALS_ID = TOKEN_TO_ID[EQUALS]


@functools.cache
def _template(spec: ArithmeticSpec) -> tuple[int, ...]:
    """The token ids of one example of `spec` (the smallest input): every example has the same
    template, so this one gives the lengths of all."""
    if spec.bits:
        smallest = (np.zeros(1, dtype=np.uint64),)
    else:
        smallest = tuple(np.array([10 ** (d - 1)], dtype=np.int64) for d in spec.digits)
    return tuple(spec.ids(smallest)[0].tolist())


SHOWN_IN_FULL = 24  # characters of an operand a message quotes whole


def shown(x) -> str:
    """repr of an operand for a message, shortened: a 5,000-digit one would fill the message (and
    writing an int of more than 4,300 digits as text raises Python's own ValueError)."""
    if isinstance(x, str) and len(x) > SHOWN_IN_FULL:
        return f"{x[:12]!r}... ({len(x):,} characters)"
    if isinstance(x, Integral) and not isinstance(x, bool) and abs(int(x)) >= 10**SHOWN_IN_FULL:
        return f"<an integer of about {int(abs(int(x)).bit_length() * 0.30103) + 1:,} digits>"
    return repr(x)


def _checked_number(name: str, x, digits: int, what: str) -> int:
    low, high = 10 ** (digits - 1), 10**digits - 1
    rule = f"{name}={shown(x)} must be a {digits}-digit integer from {low} to {high}"
    out_of_range = (
        f"{rule}: the operands of {what} all have exactly {digits} digits "
        "(a model trained on them answers others confidently and wrongly)"
    )
    if isinstance(x, str):
        if not (x.isascii() and x.isdigit()):
            raise ValueError(f"{rule} (a string of digits only, no sign or spaces)")
        if len(x) > 1 and x[0] == "0":
            raise ValueError(f"{rule}, without leading zeros (the operands of {what} have none)")
        if len(x) != digits:  # before int(), which refuses more than 4,300 digits with its own message
            raise ValueError(out_of_range)
        x = int(x)
    elif isinstance(x, bool) or not isinstance(x, Integral):
        raise ValueError(f"{rule}, not a {type(x).__name__}")
    if not low <= x <= high:
        raise ValueError(out_of_range)
    return int(x)


# ---------------------------------------------------------------------------------------------
# Functions of the spec's arguments


def sequence_length(task: str, digits: int | Sequence[int], cot: str, every: int | None = None) -> int:
    """Number of tokens of every example of a format (without the appended [EOS])."""
    return ArithmeticSpec.create(task, digits, cot, every).length


def prompt_for(spec: ArithmeticSpec, operands: Sequence) -> str:
    """The prompt string (``[BOS] ... =``) of one input, after `spec.check_operands`."""
    return prompt_of(spec.format.tokens(spec.check_operands(operands), spec.every))


def arithmetic_prompt(task: str, digits: int | Sequence[int], cot: str, *operands, every: int | None = None) -> str:
    """The prompt of operands (a, b) — or a bit string — for a model trained on the dataset
    `build_arithmetic_dataset(task, digits, cot, every=every, ...)`; refuses (ValueError)
    operands that dataset never holds. E.g. ``arithmetic_prompt("multiplication", 4, "paper",
    1234, 5678) == "[BOS] 1 2 3 4 x 5 6 7 8 ="``."""
    return prompt_for(ArithmeticSpec.create(task, digits, cot, every), operands)
