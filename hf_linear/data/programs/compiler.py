"""A program, compiled into a Chain of Thought whose every token a *linear* predictor can write.

Malach (ICML 2024) proves that linear auto-regressive predictors learn any efficiently
computable function, given a CoT in which every token is a linear-threshold function of the
tokens before it. A LinearLM scores the next token v at position p as a sum of one term per
(earlier position j, token x_j) plus a bias,

    score_p(v) = bias_p[v] + Σ_j W_p,j[x_j, v],

so a CoT token is linearly realizable exactly when it is the argmax of such a sum. A `Step` is
that sum, written sparsely: the positions it reads and one table per read position. Everything
a program says is lowered to steps:

    gate([(x, 1), (y, 1)], 2)      [x + y >= 2]  (AND; OR, NOT, MAJORITY alike)   1 token
    xor(x, y)                      t = AND(x, y), then [x + y - 2t >= 1]            2 tokens
    full_adder(x, y, c)            carry = [x + y + c >= 2], sum = [x + y + c - 2 carry >= 1]
    tuple_(x, y, ...)              one composite token for the tuple: component k adds 1 to every
                                   tuple token agreeing with it, so only the tuple itself scores k
    lookup(t, table)               any function of ONE earlier token (a table row per value)
    apply(f, x, y, ...)            tuple_ then lookup: any function of a few earlier tokens

Positions are fixed (a program's trace has one layout for every input), so each step is one
output position of the masked map. `Program.run` executes the steps themselves (numpy, whole
batches), refusing any step whose best token does not win by its margin: the trace IS what the
linear steps compute, and `certificate.certificate_model` turns the same tables into LinearLM
weights. Integer gate weights decide with margin 1/2 (the threshold is moved by 1/2).
"""

from __future__ import annotations

import itertools
import math
import numbers
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

# the token convention of the arithmetic data: the prompt ends at the first "=", the answer
# follows the last one, "+" joins the steps of a segment (scored per step by `eval --segments`)
from hf_linear.data.arithmetic.formats import BOS, EOS, EQUALS, PAD, STEP_JOINER, UNK

SPECIALS = (UNK, BOS, EOS, PAD)
__all__ = [
    "BITS",
    "BOS",
    "EOS",
    "EQUALS",
    "ONE",
    "PAD",
    "STEP_JOINER",
    "UNK",
    "ZERO",
    "Constant",
    "certificate_parameters",
    "check_trace_fits",
    "NumberInput",
    "Program",
    "ProgramBuilder",
    "Step",
    "dense_table",
]
BITS = ("0", "1")
MIN_MARGIN = 0.5  # every step's best token beats the runner-up by at least this much
MAX_INPUT_BITS = 63  # inputs are drawn, stored and hashed as int64
# what compiling costs per trace token (a Step, its tables, the layout): measured 0.7-1.2 KB on the
# shipped gate programs, more for wide tables; a trace that would not fit in memory at this rate is
# refused before it is built
BYTES_PER_TOKEN = 4096
RESERVED_COLUMNS = ("prompt", "text", "answer", "input_ids", "prompt_length")  # no input may take these names


@dataclass(frozen=True)
class Constant:
    """A known bit in a gate's inputs (e.g. the running sum before the first row): no token is
    read, the threshold moves instead."""

    value: int


ZERO, ONE = Constant(0), Constant(1)


@dataclass(frozen=True)
class Step:
    """One CoT token: argmax over `bias`'s tokens of bias[v] + Σ_k tables[k][(token at reads[k], v)].

    `bias` lists every token the step may write (score 0 when absent from the tables); a token
    pair missing from a table scores 0. `kind` names what the step was lowered from."""

    reads: tuple[int, ...]
    tables: tuple[dict[tuple[str, str], float], ...]
    bias: dict[str, float]
    kind: str

    @property
    def outputs(self) -> tuple[str, ...]:
        return tuple(self.bias)


@dataclass(frozen=True)
class NumberInput:
    """An integer input in [0, limit), written as `width` digits in `base` at `positions`
    (least significant digit first, unless `msb_first`)."""

    name: str
    limit: int
    base: int
    width: int
    positions: tuple[int, ...]
    msb_first: bool = False

    def check(self, value) -> int:
        """One value of this input as an int; ValueError naming it unless it is an integer in range
        (numpy integers are; bools, floats and strings are not)."""
        integral = isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))
        if not integral or not 0 <= value < self.limit:
            raise ValueError(f"{self.name}={value!r} must be an integer in [0, {self.limit})")
        return int(value)

    def check_column(self, values) -> np.ndarray:
        """A 1-D array of this input's values as int64; ValueError naming the first bad value."""
        array = np.asarray(values)
        if array.ndim != 1:
            raise ValueError(f"{self.name}: expected a 1-D array of integers, got shape {array.shape}")
        if array.dtype.kind not in "iu":  # bools, floats, strings, Python ints beyond int64 (object)
            return np.array([self.check(value) for value in array.tolist()], dtype=np.int64)
        bad = (array < 0) | (array >= self.limit)
        if bad.any():
            self.check(array[bad][0].item())
        return array.astype(np.int64)

    def digits(self, values: np.ndarray) -> np.ndarray:
        """(N,) integers -> (N, width) digits in prompt order."""
        powers = self.base ** np.arange(self.width, dtype=np.int64)
        digits = (np.asarray(values, dtype=np.int64)[:, None] // powers) % self.base
        return digits[:, ::-1] if self.msb_first else digits


def certificate_parameters(length: int, vocabulary: int) -> int:
    """Parameters of a program's certificate, a LinearLM with window T = length (with [EOS]) and d = V =
    vocabulary: the masked map's T(T+1)/2 blocks of V x V and its (T, V) bias, the embedding,
    the output layer and its bias. The width cost of a program: it grows with V squared."""
    T, V = length, vocabulary
    return T * (T + 1) // 2 * V * V + T * V + 2 * V * V + V


@dataclass
class Program:
    """The compiled trace layout: fixed prompt tokens, number inputs, and one `Step` per CoT and
    answer token (`steps[p]` for position p >= prompt_length). Built by `ProgramBuilder`."""

    name: str
    layout: list[str | None]  # the fixed token of each prompt position (None: an input digit)
    inputs: tuple[NumberInput, ...]
    steps: dict[int, Step]
    prompt_length: int
    answer_start: int  # first answer position (after the last "=")
    values: list[tuple[str, ...]]  # the tokens each position can hold
    # what compiling checked beyond the steps, in words (e.g. that a Turing machine halts)
    checks: list[str] = field(default_factory=list)
    # an optimised program: how its tokens decode into the program it was optimised from
    # (`fusion.Fusion`); None for a program as compiled
    fusion: object | None = None
    vocabulary: tuple[str, ...] = field(init=False)

    def __post_init__(self):
        tokens = dict.fromkeys(SPECIALS)
        for position_values in self.values:
            tokens.update(dict.fromkeys(sorted(position_values, key=_token_order)))
        self.vocabulary = tuple(tokens)

    @property
    def length(self) -> int:
        """Tokens of a full example, [BOS] to the answer's last token ([EOS] not counted)."""
        return len(self.values)

    @property
    def cot_length(self) -> int:
        """The CoT between the prompt and the answer (separators included): the length complexity."""
        return self.answer_start - self.prompt_length

    @property
    def input_space_size(self) -> int:
        return int(np.prod([number.limit for number in self.inputs], dtype=object))

    @property
    def certificate_parameters(self) -> int:
        """Parameters of `certificate.certificate_model(self)` (see `certificate_parameters`)."""
        return certificate_parameters(self.length + 1, len(self.vocabulary))  # its window holds [EOS] too

    def token_ids(self) -> dict[str, int]:
        return {token: index for index, token in enumerate(self.vocabulary)}

    def check_inputs(self, inputs: Sequence) -> list[np.ndarray]:
        """One int64 column per NumberInput, all of one length; ValueError naming what is wrong
        (the number of inputs, a value that is no integer or lies outside its range)."""
        if isinstance(inputs, (str, bytes)) or not isinstance(inputs, Sequence) or len(inputs) != len(self.inputs):
            count = len(inputs) if isinstance(inputs, Sequence) else type(inputs).__name__
            raise ValueError(f"{self.name} takes {self._arity()}, got {count}")
        try:
            columns = [number.check_column(values) for number, values in zip(self.inputs, inputs)]
        except ValueError as error:
            raise ValueError(f"{self.name}: {error}") from None
        if len({len(column) for column in columns}) > 1:
            raise ValueError(f"{self.name}: the input columns differ in length ({[len(c) for c in columns]})")
        return columns

    def check_numbers(self, numbers: Sequence) -> tuple[int, ...]:
        """The integers of one input, checked as `check_inputs` checks columns."""
        if len(numbers) != len(self.inputs):
            raise ValueError(f"{self.name} takes {self._arity()}, got {len(numbers)}")
        try:
            return tuple(number.check(x) for number, x in zip(self.inputs, numbers))
        except ValueError as error:
            raise ValueError(f"{self.name}: {error}") from None

    def _arity(self) -> str:
        names = ", ".join(f"{n.name} in [0, {n.limit})" for n in self.inputs)
        return f"{len(self.inputs)} input(s) ({names})"

    def run(self, inputs: Sequence[np.ndarray]) -> np.ndarray:
        """Token ids (N, length) of the traces of N inputs (one integer array per NumberInput),
        computed by the steps themselves; ValueError for inputs outside the input space, or if a
        step has no clear winner."""
        inputs = self.check_inputs(inputs)
        ids = self.token_ids()
        trace = np.zeros((len(inputs[0]), self.length), dtype=np.int32)
        for position, token in enumerate(self.layout):
            if token is not None:
                trace[:, position] = ids[token]
        for number, values in zip(self.inputs, inputs):
            digit_ids = np.array([ids[str(digit)] for digit in range(number.base)], dtype=np.int32)
            trace[:, list(number.positions)] = digit_ids[number.digits(values)]
        for position in range(self.prompt_length, self.length):
            unclear = self.write(position, trace)
            if unclear is not None:
                raise ValueError(
                    f"{self.name}: the {self.steps[position].kind} step at position {position} has no clear winner "
                    f"for input {[int(x[unclear]) for x in inputs]} (a program bug)"
                )
        return trace

    def write(self, position: int, trace: np.ndarray) -> int | None:
        """Write the token at `position` of every row of `trace` (N, length) by its step, from the
        tokens before it; the first row where the step has no clear winner, or None."""
        step, ids = self.steps[position], self.token_ids()
        count = len(trace)
        scores = np.zeros((count, len(ids)), dtype=np.float32)
        allowed = [ids[token] for token in step.outputs]
        scores[:, allowed] = [step.bias[token] for token in step.outputs]
        for read, table in zip(step.reads, step.tables):
            scores += dense_table(table, ids)[trace[:, read]]
        scores_allowed = scores[:, allowed]
        order = np.argsort(-scores_allowed, axis=1, kind="stable")
        trace[:, position] = np.asarray(allowed, dtype=np.int32)[order[:, 0]]
        if len(allowed) > 1:
            best = scores_allowed[np.arange(count), order[:, 0]]
            runner_up = scores_allowed[np.arange(count), order[:, 1]]
            unclear = best - runner_up < MIN_MARGIN - 1e-6
            if unclear.any():
                return int(np.argmax(unclear))
        return None

    def tokens(self, *numbers: int) -> list[str]:
        """The trace of one input, as tokens."""
        numbers = self.check_numbers(numbers)
        trace = self.run([np.array([x], dtype=np.int64) for x in numbers])[0]
        return [self.vocabulary[i] for i in trace]

    def describe_steps(self) -> dict[str, int]:
        """How many CoT and answer tokens each kind of step writes."""
        counts: dict[str, int] = {}
        for step in self.steps.values():
            counts[step.kind] = counts.get(step.kind, 0) + 1
        return counts

    def describe(self) -> dict:
        """Length and width side by side: the CoT's length (the length complexity), the
        vocabulary, and the certificate's parameters, which grow with both (T² V² / 2)."""
        return {
            "program": self.name,
            "tokens": self.length,
            "prompt_tokens": self.prompt_length,
            "cot_tokens": self.cot_length,
            "answer_tokens": self.length - self.answer_start,
            "vocabulary": len(self.vocabulary),
            "certificate_parameters": self.certificate_parameters,
            "steps": self.describe_steps(),
            "checks": list(self.checks),
            **({"optimized_from": _length_and_width(self.fusion.original)} if self.fusion is not None else {}),
        }

    def summary(self) -> str:
        """`describe()` in one line."""
        summary = (
            f"{self.name}: CoT of {self.cot_length:,} tokens (the length complexity; {self.length:,} per example), "
            f"vocabulary of {len(self.vocabulary):,}, certificate of {self.certificate_parameters:,} parameters"
        )
        if self.fusion is not None:
            original = self.fusion.original
            summary += (
                f" (optimised from {original.cot_length:,} tokens, vocabulary {len(original.vocabulary):,}, "
                f"{original.certificate_parameters:,} parameters)"
            )
        return summary


def _length_and_width(program: Program) -> dict:
    return {
        "program": program.name,
        "cot_tokens": program.cot_length,
        "vocabulary": len(program.vocabulary),
        "certificate_parameters": program.certificate_parameters,
    }


def dense_table(table: dict[tuple[str, str], float], ids: dict[str, int]) -> np.ndarray:
    """A step's sparse table as a (V_in, V_out) matrix over the vocabulary."""
    dense = np.zeros((len(ids), len(ids)), dtype=np.float32)
    for (token_in, token_out), score in table.items():
        dense[ids[token_in], ids[token_out]] = score
    return dense


def _token_order(token: str):
    """Digits in numeric order, then everything else alphabetically (a stable vocabulary)."""
    return (0, int(token), "") if token.isdigit() else (1, 0, token)


def memory_bytes() -> int:
    """Physical memory of this machine, or 0 where the OS does not say."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 0


def check_trace_fits(name: str, tokens: int) -> None:
    """ValueError, with the estimate, if compiling a trace of `tokens` tokens would not fit in
    this machine's memory (at `BYTES_PER_TOKEN`)."""
    memory, needed = memory_bytes(), tokens * BYTES_PER_TOKEN
    if memory and needed > memory:
        raise ValueError(
            f"{name}: its trace would have {_count(tokens)} tokens, ~{_size(needed)} to compile "
            f"(~{BYTES_PER_TOKEN // 1024} KB a token), more than this machine's {_size(memory)} of memory"
        )


def _count(n: int) -> str:
    return f"{n:,}" if n < 10**7 else f"{float(n):.2g}"


def _size(n: int) -> str:
    for unit, scale in (("EB", 2**60), ("PB", 2**50), ("TB", 2**40), ("GB", 2**30), ("MB", 2**20)):
        if n >= scale:
            return f"{_count(round(n / scale)) if n / scale >= 10 else f'{n / scale:.1f}'} {unit}"
    return f"{n:,} bytes"


def _is_integer(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))


class ProgramBuilder:
    """Writes a program token by token: prompt first (`number`, `token`), then after `begin_cot()`
    (which writes the prompt's closing "=") every call appends one step and returns its position.
    `begin_answer()` writes the "=" before the answer. A gate's inputs are positions of bit
    tokens or the constants ZERO / ONE (folded into the threshold).

    Tokens are non-empty, hold no whitespace and are none of the reserved [BOS], [EOS], [PAD],
    [UNK] and "=" (which only `begin_cot` and `begin_answer` write): the texts stay parseable."""

    def __init__(self, name: str):
        if not isinstance(name, str) or not name or any(c.isspace() for c in name):
            raise ValueError(f"program name {name!r} must be a non-empty string without whitespace")
        self.name = name
        self.layout: list[str | None] = [BOS]
        self.values: list[tuple[str, ...]] = [(BOS,)]
        self.inputs: list[NumberInput] = []
        self.steps: dict[int, Step] = {}
        self.prompt_length: int | None = None
        self.answer_start: int | None = None
        self._token_budget = memory_bytes() // BYTES_PER_TOKEN  # 0: unknown, unchecked

    # -- the prompt -------------------------------------------------------------------------
    def number(
        self, name: str, limit: int, base: int = 2, width: int | None = None, msb_first: bool = False
    ) -> list[int]:
        """An integer input in [0, limit); returns the positions of its digits, least significant first."""
        self._in_prompt("number")
        if not isinstance(name, str) or not name.isidentifier() or name in RESERVED_COLUMNS:
            raise ValueError(
                f"{self.name}: input name {name!r} must be an identifier and none of {', '.join(RESERVED_COLUMNS)}"
            )
        if name in (number.name for number in self.inputs):
            raise ValueError(f"{self.name}: two inputs are named {name!r}")
        if not _is_integer(base) or not 2 <= base <= 10:
            raise ValueError(f"{self.name}: {name}: base={base!r} must be an integer in [2, 10] (one digit a token)")
        if not _is_integer(limit) or limit < 2:
            raise ValueError(f"{self.name}: {name}: limit={limit!r} must be an integer >= 2")
        if limit > 2**MAX_INPUT_BITS:  # named in words: the limit itself may have hundreds of digits
            raise ValueError(
                f"{self.name}: {name}: inputs are 64-bit integers, at most {MAX_INPUT_BITS} bits "
                f"(limit <= 2**{MAX_INPUT_BITS}); this limit needs {(limit - 1).bit_length()} bits"
            )
        width = width or max(1, int(np.ceil(np.log(limit) / np.log(base) - 1e-9)))
        if base**width < limit:
            raise ValueError(f"{self.name}: {name}: {width} digits in base {base} cannot hold {limit - 1}")
        start = len(self.layout)
        positions = tuple(range(start, start + width))
        self.layout += [None] * width
        self.values += [tuple(str(d) for d in range(base))] * width
        self.inputs.append(NumberInput(name, limit, base, width, positions, msb_first))
        return list(positions[::-1]) if msb_first else list(positions)

    def token(self, token: str) -> int:
        """A fixed token: part of the prompt before `begin_cot`, a constant step after it."""
        self._check_token(token, "a fixed")
        return self._fixed(token)

    def _fixed(self, token: str) -> int:
        if self.prompt_length is None:
            self.layout.append(token)
            self.values.append((token,))
            return len(self.layout) - 1
        return self._append((), (), {token: 0.0}, "separator")

    def begin_cot(self) -> None:
        if self.prompt_length is not None:
            raise ValueError(f"{self.name}: begin_cot() is called once")
        self._fixed(EQUALS)
        self.prompt_length = len(self.layout)

    def begin_answer(self) -> None:
        if self.prompt_length is None or self.answer_start is not None:
            raise ValueError(f"{self.name}: begin_answer() is called once, after begin_cot()")
        self._fixed(EQUALS)
        self.answer_start = len(self.values)

    def _in_prompt(self, what: str) -> None:
        if self.prompt_length is not None:
            raise ValueError(f"{self.name}: {what} inputs belong to the prompt, before begin_cot()")

    def _check_token(self, token, what: str) -> None:
        if not isinstance(token, str) or not token or any(c.isspace() for c in token):
            raise ValueError(
                f"{self.name}: {what} token {token!r} must be a non-empty string without whitespace "
                "(texts are split into tokens at whitespace)"
            )
        if token in (*SPECIALS, EQUALS):
            raise ValueError(
                f"{self.name}: {what} token {token!r} is reserved by the text format ({', '.join(SPECIALS)}; "
                '"=" is written by begin_cot() and begin_answer() only)'
            )

    # -- steps --------------------------------------------------------------------------------
    def step(self, reads: Sequence[int], tables: Sequence[dict], bias: dict[str, float], kind: str) -> int:
        """Append a general linear step (see `Step`); returns its position."""
        if not isinstance(bias, dict) or not bias:
            raise ValueError(f"{self.name}: a step's bias lists the tokens it may write (got {bias!r})")
        for token in bias:
            self._check_token(token, "a step's")
        reads, tables = tuple(reads), tuple(tables)
        if len(reads) != len(tables):
            raise ValueError(f"{self.name}: a step has {len(reads)} reads and {len(tables)} tables")
        for table in tables:
            for key, score in table.items():
                if not isinstance(key, tuple) or len(key) != 2 or key[1] not in bias:
                    raise ValueError(
                        f"{self.name}: a {kind} step's table scores {key!r}, not a (read token, written token) "
                        f"pair whose written token is one of the step's ({', '.join(bias)})"
                    )
                _check_score(self.name, kind, score)
        for score in bias.values():
            _check_score(self.name, kind, score)
        return self._append(reads, tables, bias, kind)

    def _append(self, reads: tuple[int, ...], tables: tuple[dict, ...], bias: dict[str, float], kind: str) -> int:
        if self.prompt_length is None:
            raise ValueError(f"{self.name}: steps come after begin_cot()")
        position = len(self.values)
        if self._token_budget and position >= self._token_budget:
            check_trace_fits(self.name, position + 1)
        for read in reads:
            if not _is_integer(read) or not 0 <= read < position:
                raise ValueError(
                    f"{self.name}: a step at position {position} reads position {read!r}, not an earlier one"
                )
        self.steps[position] = Step(tuple(int(read) for read in reads), tuple(tables), dict(bias), kind)
        self.values.append(tuple(bias))
        return position

    def gate(self, terms: Iterable[tuple[int | Constant, int]], threshold: int, kind: str = "gate") -> int:
        """The bit [Σ w·x >= threshold] of bit positions x (or the constants ZERO / ONE) with integer
        weights and threshold (decided with margin 1/2; other weights could tie, see `prove`)."""
        if not _is_integer(threshold):
            raise ValueError(f"{self.name}: a {kind} gate's threshold {threshold!r} must be an integer")
        reads, tables = [], []
        for x, weight in terms:
            if not _is_integer(weight):
                raise ValueError(f"{self.name}: a {kind} gate's weight {weight!r} must be an integer")
            if isinstance(x, Constant):
                threshold -= weight * x.value
                continue
            self._check_bit(x)
            reads.append(x)
            tables.append({("1", "1"): float(weight)})
        # integer sums: [s >= θ] is [s - θ + 1/2 > 0], decided with margin 1/2
        return self.step(reads, tables, {"0": 0.0, "1": 0.5 - threshold}, kind)

    def _check_bit(self, position: int) -> None:
        if not _is_integer(position) or not 0 <= position < len(self.values):
            raise ValueError(f"{self.name}: a gate reads {position!r}, not a position written before it")
        if not set(self.values[position]) <= set(BITS):
            raise ValueError(
                f"{self.name}: a gate reads position {position}, which is not a bit ({self.values[position]})"
            )

    def and_(self, *xs: int) -> int:
        return self.gate([(x, 1) for x in xs], len(xs), "and")

    def or_(self, *xs: int) -> int:
        return self.gate([(x, 1) for x in xs], 1, "or")

    def not_(self, x: int) -> int:
        return self.gate([(x, -1)], 0, "not")

    def majority(self, *xs: int) -> int:
        return self.gate([(x, 1) for x in xs], (len(xs) + 1) // 2, "majority")

    def xor(self, x: int, y: int) -> int:
        """x XOR y is no threshold of x and y: write AND(x, y) first, then [x + y - 2·AND >= 1]."""
        both = self.and_(x, y)
        return self.gate([(x, 1), (y, 1), (both, -2)], 1, "xor")

    def full_adder(self, x, y, carry) -> tuple[int, int]:
        """(sum, carry out) of three bits (positions or constants): the carry first, then the sum
        from it, two threshold steps."""
        carry_out = self.gate([(x, 1), (y, 1), (carry, 1)], 2, "carry")
        total = self.gate([(x, 1), (y, 1), (carry, 1), (carry_out, -2)], 1, "sum")
        return total, carry_out

    def tuple_(self, *xs: int) -> int:
        """One composite token "(a,b,...)" for the tuple of tokens at `xs`."""
        value_sets = [self.values[x] for x in xs]
        outputs = ["(" + ",".join(combo) + ")" for combo in itertools.product(*value_sets)]
        tables = []
        for k, values in enumerate(value_sets):
            tables.append(
                {
                    (v, out): 1.0
                    for v in values
                    for out, combo in zip(outputs, itertools.product(*value_sets))
                    if combo[k] == v
                }
            )
        return self.step(xs, tables, dict.fromkeys(outputs, 0.0), "tuple")

    def lookup(self, x: int, table: dict[str, str], kind: str = "lookup") -> int:
        """table[token at x]: any function of one earlier token."""
        missing = [v for v in self.values[x] if v not in table]
        if missing:
            raise ValueError(f"{self.name}: lookup table lacks the value(s) {missing} of position {x}")
        outputs = dict.fromkeys(table[v] for v in self.values[x])
        return self.step((x,), ({(v, table[v]): 1.0 for v in self.values[x]},), dict.fromkeys(outputs, 0.0), kind)

    def copy(self, x: int) -> int:
        return self.lookup(x, {v: v for v in self.values[x]}, "copy")

    def apply(self, function: Callable[..., str], *xs: int, kind: str = "apply") -> int:
        """function(*tokens at xs) for any function: a tuple token, then a lookup of it."""
        if len(xs) == 1:
            return self.lookup(xs[0], {v: function(v) for v in self.values[xs[0]]}, kind)
        composite = self.tuple_(*xs)
        value_sets = [self.values[x] for x in xs]
        table = {"(" + ",".join(combo) + ")": function(*combo) for combo in itertools.product(*value_sets)}
        return self.lookup(composite, table, kind)

    def build(self) -> Program:
        if self.prompt_length is None or self.answer_start is None:
            raise ValueError(f"{self.name}: a program needs begin_cot() and begin_answer()")
        return Program(
            self.name, self.layout, tuple(self.inputs), self.steps, self.prompt_length, self.answer_start, self.values
        )


def _check_score(name: str, kind: str, score) -> None:
    if isinstance(score, bool) or not isinstance(score, numbers.Real) or not math.isfinite(score):
        raise ValueError(f"{name}: a {kind} step's score {score!r} must be a finite number")
