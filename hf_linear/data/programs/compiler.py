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
    "NumberInput",
    "Program",
    "ProgramBuilder",
    "Step",
    "dense_table",
]
BITS = ("0", "1")
MIN_MARGIN = 0.5  # every step's best token beats the runner-up by at least this much


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

    def digits(self, values: np.ndarray) -> np.ndarray:
        """(N,) integers -> (N, width) digits in prompt order."""
        powers = self.base ** np.arange(self.width, dtype=np.int64)
        digits = (np.asarray(values, dtype=np.int64)[:, None] // powers) % self.base
        return digits[:, ::-1] if self.msb_first else digits


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

    def token_ids(self) -> dict[str, int]:
        return {token: index for index, token in enumerate(self.vocabulary)}

    def run(self, inputs: Sequence[np.ndarray]) -> np.ndarray:
        """Token ids (N, length) of the traces of N inputs (one integer array per NumberInput),
        computed by the steps themselves; ValueError if a step has no clear winner."""
        ids = self.token_ids()
        count = len(inputs[0])
        trace = np.zeros((count, self.length), dtype=np.int32)
        for position, token in enumerate(self.layout):
            if token is not None:
                trace[:, position] = ids[token]
        for number, values in zip(self.inputs, inputs):
            values = np.asarray(values, dtype=np.int64)
            if values.min(initial=0) < 0 or values.max(initial=0) >= number.limit:
                raise ValueError(f"{self.name}: input {number.name} must lie in [0, {number.limit})")
            digit_ids = np.array([ids[str(digit)] for digit in range(number.base)], dtype=np.int32)
            trace[:, list(number.positions)] = digit_ids[number.digits(values)]
        V = len(self.vocabulary)
        for position in range(self.prompt_length, self.length):
            step = self.steps[position]
            scores = np.zeros((count, V), dtype=np.float32)
            allowed = [ids[token] for token in step.outputs]
            scores[:, allowed] = [step.bias[token] for token in step.outputs]
            for read, table in zip(step.reads, step.tables):
                scores += dense_table(table, ids)[trace[:, read]]
            scores_allowed = scores[:, allowed]
            order = np.argsort(-scores_allowed, axis=1, kind="stable")
            best = scores_allowed[np.arange(count), order[:, 0]]
            if len(allowed) > 1:
                runner_up = scores_allowed[np.arange(count), order[:, 1]]
                if (best - runner_up < MIN_MARGIN - 1e-6).any():
                    row = int(np.argmax(best - runner_up < MIN_MARGIN - 1e-6))
                    raise ValueError(
                        f"{self.name}: the {step.kind} step at position {position} has no clear winner "
                        f"for input {[int(x[row]) for x in inputs]} (a program bug)"
                    )
            trace[:, position] = np.asarray(allowed, dtype=np.int32)[order[:, 0]]
        return trace

    def tokens(self, *numbers: int) -> list[str]:
        """The trace of one input, as tokens."""
        trace = self.run([np.array([x]) for x in numbers])[0]
        return [self.vocabulary[i] for i in trace]

    def describe_steps(self) -> dict[str, int]:
        """How many CoT and answer tokens each kind of step writes."""
        counts: dict[str, int] = {}
        for step in self.steps.values():
            counts[step.kind] = counts.get(step.kind, 0) + 1
        return counts


def dense_table(table: dict[tuple[str, str], float], ids: dict[str, int]) -> np.ndarray:
    """A step's sparse table as a (V_in, V_out) matrix over the vocabulary."""
    dense = np.zeros((len(ids), len(ids)), dtype=np.float32)
    for (token_in, token_out), score in table.items():
        dense[ids[token_in], ids[token_out]] = score
    return dense


def _token_order(token: str):
    """Digits in numeric order, then everything else alphabetically (a stable vocabulary)."""
    return (0, int(token), "") if token.isdigit() else (1, 0, token)


class ProgramBuilder:
    """Writes a program token by token: prompt first (`number`, `token`), then after `begin_cot()`
    (which writes the prompt's closing "=") every call appends one step and returns its position.
    `begin_answer()` writes the "=" before the answer. A gate's inputs are positions of bit
    tokens or the constants ZERO / ONE (folded into the threshold)."""

    def __init__(self, name: str):
        self.name = name
        self.layout: list[str | None] = [BOS]
        self.values: list[tuple[str, ...]] = [(BOS,)]
        self.inputs: list[NumberInput] = []
        self.steps: dict[int, Step] = {}
        self.prompt_length: int | None = None
        self.answer_start: int | None = None

    # -- the prompt -------------------------------------------------------------------------
    def number(
        self, name: str, limit: int, base: int = 2, width: int | None = None, msb_first: bool = False
    ) -> list[int]:
        """An integer input in [0, limit); returns the positions of its digits, least significant first."""
        self._in_prompt("number")
        if not 2 <= limit <= 2**63:  # inputs are drawn and hashed as int64
            raise ValueError(f"{name}: limit={limit} must be between 2 and 2**63")
        width = width or max(1, int(np.ceil(np.log(limit) / np.log(base) - 1e-9)))
        if base**width < limit:
            raise ValueError(f"{name}: {width} digits in base {base} cannot hold {limit - 1}")
        start = len(self.layout)
        positions = tuple(range(start, start + width))
        self.layout += [None] * width
        self.values += [tuple(str(d) for d in range(base))] * width
        self.inputs.append(NumberInput(name, limit, base, width, positions, msb_first))
        return list(positions[::-1]) if msb_first else list(positions)

    def token(self, token: str) -> int:
        """A fixed token: part of the prompt before `begin_cot`, a constant step after it."""
        if self.prompt_length is None:
            self.layout.append(token)
            self.values.append((token,))
            return len(self.layout) - 1
        return self.step((), (), {token: 0.0}, "separator")

    def begin_cot(self) -> None:
        self.token(EQUALS)
        self.prompt_length = len(self.layout)

    def begin_answer(self) -> None:
        self.token(EQUALS)
        self.answer_start = len(self.values)

    def _in_prompt(self, what: str) -> None:
        if self.prompt_length is not None:
            raise ValueError(f"{self.name}: {what} inputs belong to the prompt, before begin_cot()")

    # -- steps --------------------------------------------------------------------------------
    def step(self, reads: Sequence[int], tables: Sequence[dict], bias: dict[str, float], kind: str) -> int:
        """Append a general linear step (see `Step`); returns its position."""
        if self.prompt_length is None:
            raise ValueError(f"{self.name}: steps come after begin_cot()")
        position = len(self.values)
        for read in reads:
            if not 0 <= read < position:
                raise ValueError(
                    f"{self.name}: a step at position {position} reads position {read}, not an earlier one"
                )
        self.steps[position] = Step(tuple(reads), tuple(tables), dict(bias), kind)
        self.values.append(tuple(bias))
        return position

    def gate(self, terms: Iterable[tuple[int | Constant, int]], threshold: int, kind: str = "gate") -> int:
        """The bit [Σ w·x >= threshold] of bit positions x (or the constants ZERO / ONE) with integer
        weights."""
        reads, tables = [], []
        for x, weight in terms:
            if isinstance(x, Constant):
                threshold -= weight * x.value
                continue
            self._check_bit(x)
            reads.append(x)
            tables.append({("1", "1"): float(weight)})
        # integer sums: [s >= θ] is [s - θ + 1/2 > 0], decided with margin 1/2
        return self.step(reads, tables, {"0": 0.0, "1": 0.5 - threshold}, kind)

    def _check_bit(self, position: int) -> None:
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
