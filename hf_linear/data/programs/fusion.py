"""Shorter thoughts: fuse a step with the steps it depends on into one composite token, wherever
the joint output is still one linear step.

The length complexity of a program is the length of its CoT, and a LinearLM's masked map grows
with its square. The pass walks the CoT in order and tries to merge each step into the group
written just before it when the step reads that group (a step with the steps it depends on). A
group writes one token: the tuple of its members that something outside the group reads (the sum
and carry of a multiplication cell, named "c0s1"); members read only inside it leave the trace.
A merge is kept when

* the group's reads hold at most `max_combinations` combinations of values and its token at most
  `max_values` distinct values (the width the shorter CoT pays: a larger vocabulary), and
* its joint output is the argmax of affine scores of the tokens it reads, with margin >= 1/2,
  on EVERY combination of the values those positions can hold (a superset of what inputs
  bring): a linear program (scipy's HiGHS) finds scores with margin 1; they are rounded to binary
  fractions and verified in exact arithmetic on every combination. No scores: not merged. Nothing
  is decided by sampling inputs.

Answer tokens stay plain (bits), reading the fused tokens through lookups; the prompt does not
change, so a trained model is prompted as before. `unfuse` decodes an optimised trace back into
the original, token for token, and the optimised program is `prove`d before it is returned.

    optimized = optimize(compile_program("multiplication", 10000))  # CoT 602 -> 210 tokens
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass

import numpy as np

from hf_linear.data.programs.compiler import EQUALS, MIN_MARGIN, SPECIALS, Program, Step
from hf_linear.data.programs.proof import ExactStep, decide, prove

__all__ = ["Carrier", "Fusion", "optimize", "unfuse"]
MAX_VALUES = 4  # values of a fused token: (sum, carry) of a cell, not a whole row
MAX_COMBINATIONS = 1024  # combinations of read values a fused step is decided on
SCORE_BOUND = 1000  # |score| the LP may use in all (the certificate excludes tokens at -1250)

OPTIMIZED_SUFFIX = "-optimized"  # the name of an optimised program: its original's, then this


@dataclass(frozen=True)
class Carrier:
    """One position of an optimised program: the original steps fused into it (`members`), the
    ones its token carries (`carried`: read outside the group), and per token their tokens."""

    members: tuple[int, ...]
    carried: tuple[int, ...]
    decode: dict[str, tuple[str, ...]]


@dataclass(frozen=True)
class Fusion:
    """How an optimised program relates to the program it was optimised from."""

    original: Program
    carriers: dict[int, Carrier]  # optimised position (CoT and answer) -> what it holds


@dataclass
class _Group:
    """A group of original steps written as one token, realised: its step over the optimised
    positions, its tokens, and per carried position the index (into the original values) of its
    token under each of the group's tokens."""

    members: tuple[int, ...]
    carried: tuple[int, ...]
    step: Step
    tokens: tuple[str, ...]
    components: dict[int, np.ndarray]  # carried original position -> (len(tokens),) value indices
    in_cot: bool


def optimize(program: Program, max_values: int = MAX_VALUES, max_combinations: int = MAX_COMBINATIONS) -> Program:
    """The program with its CoT steps fused wherever a fused step is proved linear (see the
    module docstring); the same prompt and answer, the same function on every input."""
    if program.fusion is not None:
        raise ValueError(f"{program.name} is optimised already")
    for name, value, least in (("max_values", max_values, 1), ("max_combinations", max_combinations, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise ValueError(f"{name}={value!r} must be an integer >= {least}")
    proof = prove(program)  # fused steps are built from the steps' own decisions: they must have them
    if not proof.proved:
        raise ValueError(f"{program.name}: only a proved program is optimised; {proof.describe()}")
    return _Optimizer(program, max_values, max_combinations).run()


def unfuse(program: Program, trace: np.ndarray) -> np.ndarray:
    """The original program's token ids (N, original length) of an optimised program's traces
    (N, length): carried tokens decoded, the steps fused away recomputed by their own steps."""
    fusion = program.fusion
    if fusion is None:
        raise ValueError(f"{program.name} is not an optimised program")
    original, ids, fused_ids = fusion.original, fusion.original.token_ids(), program.token_ids()
    decoded = np.zeros((len(trace), original.length), dtype=np.int32)
    to_original = np.array([ids.get(token, -1) for token in program.vocabulary], dtype=np.int32)
    decoded[:, : original.prompt_length] = to_original[trace[:, : original.prompt_length]]
    carried = set()
    for position, carrier in fusion.carriers.items():
        for j, q in enumerate(carrier.carried):
            component = np.full(len(program.vocabulary), -1, dtype=np.int32)
            for token, parts in carrier.decode.items():
                component[fused_ids[token]] = ids[parts[j]]
            decoded[:, q] = component[trace[:, position]]
            carried.add(q)
    for q in range(original.prompt_length, original.length):
        if q not in carried:
            original.write(q, decoded)
    return decoded


class _Optimizer:
    def __init__(self, program: Program, max_values: int, max_combinations: int):
        self.program, self.max_values, self.max_combinations = program, max_values, max_combinations
        self.consumers = defaultdict(set)
        for position, step in program.steps.items():
            for read in step.reads:
                self.consumers[read].add(position)
        self.exact: dict[int, ExactStep] = {}
        self.exact_steps: dict[tuple, ExactStep] = {}
        self.solutions: dict = {}  # identical fused functions (most cells of a program) share their LP
        # original position -> (optimised position, component): prompt positions stay where they are
        self.where = {p: (p, 0) for p in range(program.prompt_length)}
        self.values = list(program.values[: program.prompt_length])  # tokens of each optimised position
        self.components = {p: {p: np.arange(len(program.values[p]))} for p in range(program.prompt_length)}
        self.groups: list[_Group] = []

    def run(self) -> Program:
        program = self.program
        for q in range(program.prompt_length, program.length):
            in_cot = q < program.answer_start - 1  # the "=" before the answer and the answer stay as they are
            latest = self.groups[-1] if self.groups else None
            if latest and in_cot and latest.in_cot and set(program.steps[q].reads) & set(latest.members):
                fused = self._fuse(latest.members + (q,))
                if fused is not None:
                    self._place(fused, replace=True)
                    continue
            self._place(self._single(q, in_cot), replace=False)
        return self._build()

    # -- groups ------------------------------------------------------------------------------
    def _place(self, group: _Group, replace: bool) -> None:
        if replace:
            self.groups[-1] = group
            self.values[-1] = group.tokens
        else:
            self.groups.append(group)
            self.values.append(group.tokens)
        position = len(self.values) - 1
        self.components[position] = group.components
        for j, q in enumerate(group.carried):
            self.where[q] = (position, j)

    def _single(self, q: int, in_cot: bool) -> _Group:
        """Step q as it is, its tables read through the optimised positions holding its reads."""
        step, values = self.program.steps[q], self.program.values
        reads, tables = [], {}
        for read, table in zip(step.reads, step.tables):
            position, _ = self.where[read]
            carried = self.components[position][read]
            rows = defaultdict(list)
            for (token_in, token_out), score in table.items():
                rows[token_in].append((token_out, score))
            merged = tables.setdefault(position, {})
            if position not in reads:
                reads.append(position)
            for index, token in enumerate(self.values[position]):
                for token_out, score in rows.get(values[read][carried[index]], ()):
                    merged[(token, token_out)] = merged.get((token, token_out), 0.0) + score
        remapped = Step(tuple(reads), tuple(tables[p] for p in reads), dict(step.bias), step.kind)
        return _Group((q,), (q,), remapped, step.outputs, {q: np.arange(len(step.outputs))}, in_cot)

    def _fuse(self, members: tuple[int, ...]) -> _Group | None:
        """The group `members` as one step, or None where no linear step writes it (too wide, or
        no scores with margin on every combination of its reads' values)."""
        program, inside = self.program, set(members)
        carried = tuple(m for m in members if self.consumers[m] - inside) or members[-1:]
        positions = list(
            dict.fromkeys(self.where[r][0] for m in members for r in program.steps[m].reads if r not in inside)
        )
        sizes = [len(self.values[p]) for p in positions]
        if math.prod(sizes) > self.max_combinations:
            return None
        combination = list(np.unravel_index(np.arange(math.prod(sizes)), sizes)) if sizes else []
        column_of = dict(zip(positions, combination))
        winners = {}
        for m in members:  # every member on every combination, exactly, in order
            exact = self._exact(m)
            columns = []
            for r in dict.fromkeys(program.steps[m].reads):  # exact's positions, in its order
                if r in inside:
                    columns.append(winners[r])
                else:
                    position, _ = self.where[r]
                    columns.append(self.components[position][r][column_of[position]])
            winner, margin = decide(exact.scores(columns) if columns else exact.bias[None, :])
            if len(exact.outputs) > 1 and (margin < MIN_MARGIN * exact.scale).any():
                return None  # the original step is no clear step here: leave it alone
            winners[m] = np.broadcast_to(winner, (math.prod(sizes),))
        # the carried tokens of each combination, as one integer (mixed radix), then its distinct rows
        radix = [len(program.values[m]) for m in carried]
        code = np.zeros(math.prod(sizes), dtype=np.int64)
        for m, base in zip(carried, radix):
            code = code * base + winners[m]
        codes, target = np.unique(code, return_inverse=True)
        rows = np.stack(np.unravel_index(codes, radix), axis=1)  # (distinct, carried)
        target = target.reshape(-1)
        if len(rows) > self.max_values:
            return None
        tokens = _token_names(
            [program.steps[m].kind for m in carried], [[program.values[m][i] for i in row] for row in rows]
        )
        if tokens is None:
            return None
        scores = self._scores(tuple(sizes), target, len(rows), combination)
        if scores is None:
            return None
        bias, tables = scores
        step = Step(
            tuple(positions),
            tuple(
                {
                    (self.values[p][v], tokens[o]): float(table[v, o])
                    for v in range(len(self.values[p]))
                    for o in range(len(tokens))
                    if table[v, o]
                }
                for p, table in zip(positions, tables)
            ),
            {token: float(b) for token, b in zip(tokens, bias)},
            "+".join(program.steps[m].kind for m in members),
        )
        if not self._verified(step, target, combination):
            return None
        components = {m: rows[:, j] for j, m in enumerate(carried)}
        return _Group(members, carried, step, tuple(tokens), components, True)

    def _exact(self, q: int) -> ExactStep:
        if q not in self.exact:
            self.exact[q] = self._exact_step(self.program.steps[q], self.program.values)
        return self.exact[q]

    def _exact_step(self, step: Step, values) -> ExactStep:
        """`ExactStep.of`, once per distinct step (a program's cells repeat the same few)."""
        key = (
            tuple(step.reads.index(read) for read in step.reads),  # which reads are one position
            tuple(values[read] for read in step.reads),
            tuple(tuple(sorted(table.items())) for table in step.tables),
            tuple(step.bias.items()),
        )
        if key not in self.exact_steps:
            self.exact_steps[key] = ExactStep.of(step, values)
        return self.exact_steps[key]

    def _scores(self, sizes: tuple[int, ...], target: np.ndarray, outputs: int, combination) -> tuple | None:
        """Scores (bias (outputs,), one (size, outputs) table per read) under which `target[i]`
        wins combination i by >= 1 (by LP), rounded to binary fractions; None if there are none."""
        key = (sizes, outputs, target.tobytes())
        if key not in self.solutions:
            self.solutions[key] = _linear_scores(sizes, target, outputs, combination)
        return self.solutions[key]

    def _verified(self, step: Step, target: np.ndarray, combination) -> bool:
        """The fused step writes `target` on every combination with margin >= 1/2, exactly."""
        exact = self._exact_step(step, self.values)  # its outputs are the group's tokens, in order
        if len(exact.outputs) < 2:
            return True
        winner, margin = decide(exact.scores(combination) if combination else exact.bias[None, :])
        return bool((winner == target).all() and (margin >= MIN_MARGIN * exact.scale).all())

    # -- the program ---------------------------------------------------------------------------
    def _build(self) -> Program:
        program = self.program
        start = program.prompt_length
        answer_start = next(
            (start + i for i, group in enumerate(self.groups) if group.members[0] >= program.answer_start),
            start + len(self.groups),  # no answer tokens
        )
        carriers = {
            start + i: Carrier(
                group.members,
                group.carried,
                {
                    token: tuple(program.values[q][group.components[q][t]] for q in group.carried)
                    for t, token in enumerate(group.tokens)
                },
            )
            for i, group in enumerate(self.groups)
        }
        fused = sum(len(group.members) > 1 for group in self.groups)
        optimized = Program(
            program.name + OPTIMIZED_SUFFIX,
            list(program.layout),
            program.inputs,
            {start + i: group.step for i, group in enumerate(self.groups)},
            start,
            answer_start,
            list(self.values),
            checks=[
                *program.checks,
                f"{fused:,} fused steps of {program.name}, each verified in exact arithmetic on every "
                f"combination of its reads' values: CoT {program.cot_length:,} -> {answer_start - start:,} tokens",
            ],
            fusion=Fusion(program, carriers),
        )
        proof = prove(optimized)
        if not proof.proved:  # each fused step was verified: this would be a bug of the pass
            raise RuntimeError(f"optimising {program.name} broke a step: {proof.describe()}")
        return optimized


def _token_names(kinds: list[str], rows: list[list[str]]) -> list[str] | None:
    """Readable fused tokens: a letter per carried step (its kind's first) and its token,
    e.g. "c0s1" for (carry 0, sum 1); a single carried step keeps its own tokens."""
    if len(kinds) == 1:
        return [row[0] for row in rows]
    letters = [kind[0] if kind[:1].isalpha() else "v" for kind in kinds]
    joiner = "" if all(len(token) == 1 for row in rows for token in row) else "."
    names = [joiner.join(letter + token for letter, token in zip(letters, row)) for row in rows]
    if len(set(names)) < len(names) or any(name in (*SPECIALS, EQUALS) for name in names):
        return None
    return names


def _linear_scores(sizes: tuple[int, ...], target: np.ndarray, outputs: int, combination) -> tuple | None:
    """Affine scores under which output target[i] beats every other output by >= 1 on
    combination i (value indices `combination[k][i]` of read k): a linear program over the bias
    and one table per read, with the smallest total |score| (sparse, small numbers), rounded to
    multiples of a power of two 1/2^m <= 1/(2(reads + 1)), so that each margin stays >= 1/2."""
    if outputs == 1:
        return np.zeros(1), [np.zeros((size, 1)) for size in sizes]
    try:
        from scipy.optimize import linprog
        from scipy.sparse import coo_matrix, hstack
    except ImportError:
        raise ValueError("optimising a program needs scipy: pip install 'hf-linear[programs]'") from None
    offsets = np.cumsum([outputs, *(size * outputs for size in sizes)])  # bias first, then each table
    count = int(offsets[-1])
    rows, columns, entries = [], [], []
    row = 0
    for i, y in enumerate(target.tolist()):
        for o in range(outputs):
            if o == y:
                continue
            # -(score_y - score_o) <= -1
            terms = [(y, -1.0), (o, 1.0)]
            for k, start in enumerate(offsets[:-1]):
                v = int(combination[k][i])
                terms += [(int(start) + v * outputs + y, -1.0), (int(start) + v * outputs + o, 1.0)]
            for column, entry in terms:
                rows.append(row)
                columns.append(column)
                entries.append(entry)
            row += 1
    constraints = coo_matrix((entries, (rows, columns)), shape=(row, count)).tocsr()
    bound = SCORE_BOUND / (len(sizes) + 1)
    # |x| as x = x+ - x-, both in [0, bound]: minimise their sum
    result = linprog(
        np.ones(2 * count),
        A_ub=hstack([constraints, -constraints]).tocsr(),
        b_ub=-np.ones(row),
        bounds=(0, bound),
        method="highs",
    )
    if result.status != 0:
        return None
    x = result.x[:count] - result.x[count:]
    grid = 2.0 ** -math.ceil(math.log2(2 * (len(sizes) + 1)))
    x = np.round(x / grid) * grid
    bias = x[:outputs]
    tables = [x[int(a) : int(b)].reshape(size, outputs) for a, b, size in zip(offsets[:-1], offsets[1:], sizes)]
    return bias, tables
