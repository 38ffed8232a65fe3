"""A proof, not a sample: every step of a program decides, on every input of any size.

A step reads a few positions, and the layout knows every token each position can hold
(`Program.values`). `prove` enumerates, for each step, every combination of those values — a
superset of what any input can bring to it — computes the step's scores exactly (a float is a
binary fraction: the scores become integers over a common denominator), and checks that the best
token beats the runner-up by `MIN_MARGIN` on every combination. Then `Program.run` never refuses
an input and is the same function for every input, however large the input space; sampling inputs
(as `certificate.certify` does) can miss a tie that one input in a million reaches.

    proof = prove(compile_program("multiplication", 10000))
    proof.proved, proof.smallest_margin, proof.describe()

`ExactStep` (a step's exact integer scores over its reads' values) is shared with the optimiser.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from hf_linear.data.programs.compiler import MIN_MARGIN, Program, Step

__all__ = ["ExactStep", "Proof", "prove"]
MAX_COMBINATIONS = 2**26  # per step: more is no longer "a few reads" (seconds of enumeration)
CHUNK_SCORES = 2**22  # scores computed at once while enumerating (combinations x outputs)


@dataclass(frozen=True)
class ExactStep:
    """A step's scores as exact integers over the values of its read positions:
    score(v) = (bias[v] + Σ_k rows[k][value index at positions[k], v]) / scale.

    A position the step reads twice has one row (its tables summed): both reads see one token."""

    positions: tuple[int, ...]  # the distinct positions read
    values: tuple[tuple[str, ...], ...]  # the tokens each can hold
    outputs: tuple[str, ...]
    bias: np.ndarray  # (outputs,)
    rows: tuple[np.ndarray, ...]  # (values of positions[k], outputs) each
    scale: int

    @classmethod
    def of(cls, step: Step, values: Sequence[tuple[str, ...]]) -> ExactStep:
        """`step` over `values[p]` (the tokens position p can hold, e.g. `Program.values`)."""
        positions = tuple(dict.fromkeys(step.reads))
        outputs = step.outputs
        column = {token: index for index, token in enumerate(outputs)}
        bias = [Fraction(step.bias[token]) for token in outputs]
        rows = {p: [[Fraction(0)] * len(outputs) for _ in values[p]] for p in positions}
        for read, table in zip(step.reads, step.tables):
            index = {token: i for i, token in enumerate(values[read])}
            for (token_in, token_out), score in table.items():
                if token_in in index and token_out in column:  # other tokens never meet this step
                    rows[read][index[token_in]][column[token_out]] += Fraction(score)
        everything = [*bias, *(x for p in positions for row in rows[p] for x in row)]
        scale = math.lcm(*(x.denominator for x in everything))
        largest = max(abs(x) for x in everything) * scale * (len(positions) + 1)
        dtype = np.int64 if largest < 2**62 else object  # object: Python integers, exact at any size

        def integers(fractions) -> np.ndarray:
            return np.array([int(x * scale) for x in fractions], dtype=dtype)

        return cls(
            positions,
            tuple(tuple(values[p]) for p in positions),
            outputs,
            integers(bias),
            tuple(
                np.array([integers(row) for row in rows[p]], dtype=dtype).reshape(-1, len(outputs)) for p in positions
            ),
            scale,
        )

    @property
    def combinations(self) -> int:
        return math.prod(len(v) for v in self.values)

    def scores(self, columns: Sequence[np.ndarray]) -> np.ndarray:
        """(N, outputs) integer scores of N combinations; columns[k] holds value indices of positions[k]."""
        count = len(columns[0]) if columns else 1
        scores = np.repeat(self.bias[None, :], count, axis=0)
        for row, column in zip(self.rows, columns):
            scores = scores + row[column]
        return scores

    def combination_columns(self, start: int, stop: int) -> list[np.ndarray]:
        """Value indices of combinations start..stop-1 (mixed radix, the last position fastest)."""
        if not self.values:
            return []
        return list(np.unravel_index(np.arange(start, stop), [len(v) for v in self.values]))


def decide(scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(winner, margin) per row of integer scores: the first best column (as `Program.run`
    picks it) and how far the runner-up is behind (0: a tie)."""
    winner = scores.argmax(axis=1)
    best = scores[np.arange(len(scores)), winner]
    if scores.shape[1] < 2:
        return winner, np.full(len(scores), None, dtype=object)
    if scores.dtype == object:
        runner_up = np.sort(scores, axis=1)[:, -2]
    else:
        runner_up = np.partition(scores, scores.shape[1] - 2, axis=1)[:, -2]
    return winner, best - runner_up


@dataclass(frozen=True)
class Proof:
    """What `prove` found: whether every step beats its runner-up by MIN_MARGIN on every
    combination of its reads' values, and the smallest margin with where it occurs."""

    program: str
    proved: bool
    smallest_margin: Fraction | None  # None: no step has a choice to make
    position: int | None  # the step where the margin is smallest (the first such)
    kind: str | None
    reads: dict[int, str]  # the read tokens at which it is smallest
    steps: int  # steps with a choice, all checked
    combinations: int  # combinations of read values enumerated, summed over those steps

    def describe(self) -> str:
        if self.smallest_margin is None:
            return f"{self.program}: no step has a choice to make"
        where = f"the {self.kind} step at position {self.position}" + (
            f" reading {', '.join(f'{p}={t!r}' for p, t in self.reads.items())}" if self.reads else ""
        )
        if self.proved:
            return (
                f"proved: every one of the {self.steps:,} steps of {self.program} writes one token by a margin of at "
                f"least {self.smallest_margin} on every combination of the values its reads can hold "
                f"({self.combinations:,} combinations); the smallest margin is at {where}"
            )
        return (
            f"not proved: {where} in {self.program} has margin {self.smallest_margin} "
            f"(< {Fraction(MIN_MARGIN)}{', a tie' if self.smallest_margin == 0 else ''}): "
            "`Program.run` refuses every input that reaches it"
        )


def prove(program: Program, max_combinations: int = MAX_COMBINATIONS) -> Proof:
    """Check every step of `program` on every combination of the values its reads can hold,
    exactly; sound for all inputs. ValueError if a step reads more than `max_combinations`
    combinations (such a step is not "a few reads": split it)."""
    smallest, where, steps, combinations = None, None, 0, 0
    seen: dict = {}  # identical steps over identical values are decided once
    for position in sorted(program.steps):
        step = program.steps[position]
        if len(step.outputs) < 2:
            continue
        steps += 1
        key = (
            tuple(step.reads.index(read) for read in step.reads),  # which reads are one position
            tuple(program.values[read] for read in step.reads),
            tuple(tuple(sorted(table.items())) for table in step.tables),
            tuple(step.bias.items()),
        )
        if key not in seen:
            exact = ExactStep.of(step, program.values)
            if exact.combinations > max_combinations:
                raise ValueError(
                    f"{program.name}: the {step.kind} step at position {position} reads {len(exact.positions)} "
                    f"positions with {exact.combinations:,} combinations of values, more than {max_combinations:,} "
                    "to enumerate"
                )
            seen[key] = (exact, *_smallest_margin(exact))
        exact, margin, combination = seen[key]
        combinations += exact.combinations
        if smallest is None or margin < smallest:
            positions = dict.fromkeys(step.reads)  # this step's, in the order of the shared `exact`
            reads = {p: exact.values[k][combination[k]] for k, p in enumerate(positions)}
            smallest, where = margin, (position, step.kind, reads)
    if smallest is None:
        return Proof(program.name, True, None, None, None, {}, 0, 0)
    position, kind, reads = where
    return Proof(program.name, smallest >= Fraction(MIN_MARGIN), smallest, position, kind, reads, steps, combinations)


def _smallest_margin(exact: ExactStep) -> tuple[Fraction, tuple[int, ...]]:
    """The smallest margin of a step over all combinations, and the first combination reaching it."""
    chunk = max(1, CHUNK_SCORES // len(exact.outputs))
    smallest, at = None, None
    for start in range(0, exact.combinations, chunk):
        stop = min(start + chunk, exact.combinations)
        columns = exact.combination_columns(start, stop)
        _, margin = decide(exact.scores(columns))
        index = int(np.argmin(margin)) if margin.dtype != object else min(range(len(margin)), key=margin.__getitem__)
        if smallest is None or margin[index] < smallest:
            smallest, at = margin[index], tuple(int(column[index]) for column in columns)
    return Fraction(int(smallest), exact.scale), at
