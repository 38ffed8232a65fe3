"""The shipped programs: each a compiler (`ProgramBuilder` calls) beside an independent plain-loop
reference of the same trace, which the tests compare token for token.

    parity          n bits, MSB first: the `threshold` parity CoT of the arithmetic data (k = 1)
    addition        binary, LSB first: a full adder per column (carry, then sum)
    subtraction     binary, LSB first: a - b in n + 1 bits of two's complement, a full subtractor
                    per column (borrow, then difference); the last bit is the borrow out, [a < b]
    comparison      binary, LSB first: g_i = [a > b on bits 0..i] = [2a_i - 2b_i + g_{i-1} >= 1]
    multiplication  binary, LSB first: shift-and-add, a full adder per (row, column) with its
                    partial-product bit AND(a_i, b_k) written first: 3n² + n CoT tokens (3n² steps,
                    n - 1 "+" between the rows, the "=" before the answer)
    turing_machine  any one-tape machine given by its transition table; the CoT is its sequence
                    of configurations, every cell of the next one a linear step of three cells;
                    compiling checks that the machine halts and keeps to its tape; shipped:
                    tm-increment, tm-double (moving right only) and tm-increment-twice (x + 2 as
                    two increments: back to the marked first cell between them, moving both ways)
    dfa             any deterministic finite automaton over bits (MSB first), one linear step
                    per input bit: its token is the state reading the bit ("r1:0"), the next
                    state a lookup of the token before plus the bit; shipped: dfa-mod3
                    (divisibility by 3: the remainder of the bits read so far)

Multiplication is binary, not decimal: every step of binary long multiplication is a threshold
of bits already written (the digit product and carry of decimal digits are not, and would need
composite tokens and 100-entry lookups per step); the price is log2(10) ≈ 3.3 times more digits.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from hf_linear.data.programs.compiler import (
    BITS,
    BOS,
    EQUALS,
    MAX_INPUT_BITS,
    STEP_JOINER,
    ZERO,
    Program,
    ProgramBuilder,
    check_trace_fits,
)
from hf_linear.data.programs.fusion import optimize as optimize_program

EXHAUSTIVE_INPUTS = 2**16  # a machine is run on every input up to this many, on a sample of as many beyond

# ---------------------------------------------------------------------------------------------
# Parity, addition, comparison, multiplication


def bits_needed(limit: int) -> int:
    """Binary digits of the numbers below `limit` (at least 1)."""
    return max(1, (limit - 1).bit_length())


def check_bits(name: str, bits: int, trace_tokens: int) -> None:
    """A program of `bits`-bit inputs: its trace must fit in memory (`trace_tokens`, estimated
    before anything is built) and its inputs in 64-bit integers."""
    check_trace_fits(name, trace_tokens)
    if bits > MAX_INPUT_BITS:
        raise ValueError(f"{name}: inputs are 64-bit integers: at most {MAX_INPUT_BITS} bits, not {bits}")


def parity(bits: int) -> Program:
    """Parity of `bits` bits: AND(p, x_t), then p XOR x_t = [p + x_t - 2·AND >= 1], per bit."""
    check_bits(f"parity-{bits}", bits, 3 * bits + 3)
    program = ProgramBuilder(f"parity-{bits}")
    x = program.number("x", 2**bits, width=bits, msb_first=True)[::-1]  # prompt order
    program.begin_cot()
    p = ZERO
    for t, bit in enumerate(x):
        both = program.gate([(p, 1), (bit, 1)], 2, "and")
        if t == bits - 1:
            program.begin_answer()
        p = program.gate([(p, 1), (bit, 1), (both, -2)], 1, "xor")
    return program.build()


def two_operands(name: str, limit: int, operator: str) -> tuple[ProgramBuilder, list[int], list[int], int]:
    """The prompt "[BOS] a operator b =" of two n-bit numbers below `limit` (LSB first): the
    builder, the positions of a's and b's bits, and n."""
    n = bits_needed(limit)
    if n > MAX_INPUT_BITS:  # said in words: the limit itself may have hundreds of digits
        raise ValueError(
            f"{name}: operands are 64-bit integers: at most {MAX_INPUT_BITS} bits (size <= 2**{MAX_INPUT_BITS}), "
            f"not {n} bits"
        )
    program = ProgramBuilder(f"{name}-{limit}")
    a = program.number("a", limit, width=n)
    program.token(operator)
    b = program.number("b", limit, width=n)
    program.begin_cot()
    return program, a, b, n


def addition(limit: int) -> Program:
    """a + b for a, b in [0, limit): per column, the carry out, then the sum bit."""
    program, a, b, n = two_operands("addition", limit, "+")
    carry, sums = ZERO, []
    for i in range(n):
        total, carry = program.full_adder(a[i], b[i], carry)
        sums.append(total)
    program.begin_answer()
    for position in [*sums, carry]:
        program.copy(position)
    return program.build()


def subtraction(limit: int) -> Program:
    """a - b for a, b in [0, limit), in n + 1 bits of two's complement (the n difference bits, then
    the borrow out: 1 when a < b). Per column, the borrow out [b_i + borrow - a_i >= 1], then the
    difference bit a_i - b_i - borrow + 2·borrow_out, which is 0 or 1: [... >= 1]."""
    program, a, b, n = two_operands("subtraction", limit, "-")
    borrow, differences = ZERO, []
    for i in range(n):
        borrow_out = program.gate([(a[i], -1), (b[i], 1), (borrow, 1)], 1, "borrow")
        differences.append(program.gate([(a[i], 1), (b[i], -1), (borrow, -1), (borrow_out, 2)], 1, "difference"))
        borrow = borrow_out
    program.begin_answer()
    for position in [*differences, borrow]:
        program.copy(position)
    return program.build()


def comparison(limit: int) -> Program:
    """[a > b] for a, b in [0, limit), scanning from the least significant bit."""
    program, a, b, n = two_operands("comparison", limit, ">")
    greater = ZERO
    for i in range(n):
        greater = program.gate([(a[i], 2), (b[i], -2), (greater, 1)], 1, "greater")
    program.begin_answer()
    program.copy(greater)
    return program.build()


def multiplication(limit: int) -> Program:
    """a·b for a, b in [0, limit), binary shift-and-add. Row k adds a·b_k << k to the running
    sum s: per column i, p = AND(a_i, b_k), then the full adder of (s_{k+i}, p, carry). The carry
    out of a row is bit k+n of the new sum. Rows are joined by "+", the 2n product bits follow:
    a CoT of 3n² + n tokens for n-bit operands (602 for n = 14)."""
    program, a, b, n = two_operands("multiplication", limit, "x")
    running = [ZERO] * (2 * n)  # the bits of the running sum: constants until written
    for k in range(n):
        if k:
            program.token(STEP_JOINER)
        carry = ZERO
        for i in range(n):
            partial = program.and_(a[i], b[k])
            running[k + i], carry = program.full_adder(running[k + i], partial, carry)
        running[k + n] = carry
    program.begin_answer()
    for position in running:
        program.copy(position)
    return program.build()


def binary_lsb(x: int, width: int) -> list[str]:
    return [str((x >> i) & 1) for i in range(width)]


def parity_reference(bits: int, x: int) -> list[str]:
    """The arithmetic data's `threshold` parity trace (k = 1): an independent implementation."""
    from hf_linear.data.arithmetic.formats import parity_threshold

    return parity_threshold(format(x, f"0{bits}b"), 1)


def addition_reference(limit: int, a: int, b: int) -> list[str]:
    n = bits_needed(limit)
    cot, carry = [], 0
    for i in range(n):
        column = ((a >> i) & 1) + ((b >> i) & 1) + carry
        carry = column // 2
        cot += [str(carry), str(column % 2)]
    return [BOS, *binary_lsb(a, n), "+", *binary_lsb(b, n), EQUALS, *cot, EQUALS, *binary_lsb(a + b, n + 1)]


def subtraction_reference(limit: int, a: int, b: int) -> list[str]:
    """From closed forms: the borrow out of column i is [a mod 2^(i+1) < b mod 2^(i+1)], the
    difference bit is bit i of a - b (Python's integers are two's complement at any width)."""
    n = bits_needed(limit)
    cot = []
    for i in range(n):
        low = 2 ** (i + 1)
        cot += [str(int(a % low < b % low)), str(((a - b) >> i) & 1)]
    return [
        BOS,
        *binary_lsb(a, n),
        "-",
        *binary_lsb(b, n),
        EQUALS,
        *cot,
        EQUALS,
        *binary_lsb((a - b) % 2 ** (n + 1), n + 1),
    ]


def comparison_reference(limit: int, a: int, b: int) -> list[str]:
    n = bits_needed(limit)
    cot = [str(int(a % 2 ** (i + 1) > b % 2 ** (i + 1))) for i in range(n)]  # a > b on the low bits
    return [BOS, *binary_lsb(a, n), ">", *binary_lsb(b, n), EQUALS, *cot, EQUALS, str(int(a > b))]


def multiplication_reference(limit: int, a: int, b: int) -> list[str]:
    """From closed forms, not gates: before row k the sum is a·(b mod 2^k); column i of row k
    adds bit k+i of it, bit i of a·b_k and the carry of the low i columns."""
    n = bits_needed(limit)
    cot = []
    for k in range(n):
        before = a * (b % 2**k)
        row = a * ((b >> k) & 1)
        low = before >> k  # the part of the sum row k adds to
        for i in range(n):
            mask = 2**i - 1
            carry_in = ((low & mask) + (row & mask)) >> i
            column = ((low >> i) & 1) + ((row >> i) & 1) + carry_in
            cot += [str((row >> i) & 1), str(column // 2), str(column % 2)]
        cot.append(STEP_JOINER)
    return [BOS, *binary_lsb(a, n), "x", *binary_lsb(b, n), EQUALS, *cot[:-1], EQUALS, *binary_lsb(a * b, 2 * n)]


# ---------------------------------------------------------------------------------------------
# Turing machines


@dataclass(frozen=True)
class TuringMachine:
    """A one-tape machine: transitions[(state, symbol)] = (new state, written symbol, move L/R/S).
    The input (binary, LSB first) starts at cell 0 with the head there in `start`; `halt` stays
    put forever. The tape has `bits + extra_cells` cells, and `steps(bits)` bounds the run: the
    machine must halt within it and never leave the tape (checked when it is compiled). A pair
    (state, symbol) the machine never meets needs no transition."""

    name: str
    start: str
    halt: str
    transitions: dict[tuple[str, str], tuple[str, str, str]]
    steps: Callable[[int], int]
    extra_cells: int = 1
    blank: str = "_"
    symbols: tuple[str, ...] = ("0", "1", "_")
    states: tuple[str, ...] = field(init=False)

    def __post_init__(self):
        if not {"0", "1", self.blank} <= set(self.symbols):
            raise ValueError(
                f"{self.name}: symbols {self.symbols} must hold the bits 0, 1 and the blank {self.blank!r}"
            )
        if any(":" in x for x in (*self.symbols, self.start, self.halt)):
            raise ValueError(f"{self.name}: states and symbols may not hold ':' (a head token is state:symbol)")
        states = dict.fromkeys([self.start])
        for (state, _), (new_state, _, _) in self.transitions.items():
            states.update(dict.fromkeys([state, new_state]))
        states.pop(self.halt, None)
        object.__setattr__(self, "states", (*states, self.halt))
        for (state, symbol), (new_state, written, move) in self.transitions.items():
            if symbol not in self.symbols or written not in self.symbols or move not in ("L", "R", "S"):
                raise ValueError(f"{self.name}: bad transition ({state}, {symbol}) -> ({new_state}, {written}, {move})")
            if ":" in state or ":" in new_state:
                raise ValueError(f"{self.name}: states may not hold ':' (a head token is state:symbol)")

    def delta(self, state: str, symbol: str) -> tuple[str, str, str]:
        if state == self.halt:
            return state, symbol, "S"
        if (state, symbol) not in self.transitions:
            raise ValueError(f"{self.name}: no transition from ({state}, {symbol})")
        return self.transitions[(state, symbol)]

    def width(self, bits: int) -> int:
        return bits + self.extra_cells

    def run_length(self, bits: int) -> int:
        steps = self.steps(bits)
        if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 0:
            raise ValueError(f"{self.name}: steps({bits}) = {steps!r} must be an integer >= 0")
        return int(steps)


def head(state: str, symbol: str) -> str:
    """The token of the cell under the head: state and symbol in one token."""
    return f"{state}:{symbol}"


# The scores of a cell step (see `turing_machine_program`): each reachable case wins by 1, and so
# does every combination no run reaches (two heads near one cell), so that `prove` holds.
KEEP, HEAD_ON, TRANSITION, FROM_LEFT, FROM_RIGHT = 2.0, 1.0, 6.0, 2.0, 3.0


def turing_machine_program(machine: TuringMachine, bits: int) -> Program:
    """Configuration 0 from the input, then `machine.steps(bits)` configurations joined by "+",
    each cell a linear step reading cells i-1, i, i+1 of the configuration before. Scores: a
    symbol keeps itself 2 and a head on it 1; a head on cell i writes its transition's result 6;
    a head arriving from the left 2 (from the right 3) for each token of its new state; so the
    right token wins by at least 1, and no combination of three cells ties.

    ValueError unless the machine halts within `steps(bits)` steps and never leaves its tape:
    checked on every input up to 2**16 of them, on a fixed sample of 2**16 beyond (see
    `check_machine`; the compiled program's `checks` say which)."""
    name = f"tm-{machine.name}-{bits}"
    if isinstance(bits, bool) or not isinstance(bits, int) or bits < 1:
        raise ValueError(f"{name}: bits={bits!r} must be an integer >= 1")
    steps, width = machine.run_length(bits), machine.width(bits)
    check_bits(name, bits, bits + 2 + width * (steps + 1) + steps + 1 + width)
    checked = check_machine(machine, bits)
    program = ProgramBuilder(name)
    x = program.number("x", 2**bits, width=bits)
    program.begin_cot()
    heads = {state: {symbol: head(state, symbol) for symbol in machine.symbols} for state in machine.states}
    cells = [program.lookup(x[0], {s: heads[machine.start][s] for s in "01"}, "tm-start")]
    cells += [program.copy(x[i]) for i in range(1, bits)]
    cells += [program.token(machine.blank) for _ in range(bits, width)]
    outputs = dict.fromkeys([*machine.symbols, *(h for state in heads.values() for h in state.values())], 0.0)
    cell_table = _cell_table(machine, heads)
    arrivals = {move: _arrival_table(machine, heads, move) for move in ("R", "L")}
    for _ in range(steps):
        program.token(STEP_JOINER)
        previous, cells = cells, []
        for i in range(width):
            reads, tables = [previous[i]], [cell_table]
            for neighbour, arriving in ((i - 1, "R"), (i + 1, "L")):
                if 0 <= neighbour < width:
                    reads.append(previous[neighbour])
                    tables.append(arrivals[arriving])
            cells.append(program.step(reads, tables, outputs, "tm-cell"))
    program.begin_answer()
    read_table = {**{s: s for s in machine.symbols}, **{h: s for state in heads.values() for s, h in state.items()}}
    for cell in cells:
        program.lookup(cell, read_table, "tm-read")
    compiled = program.build()
    compiled.checks.append(checked)
    return compiled


def _transition(machine: TuringMachine, state: str, symbol: str) -> tuple[str, str, str]:
    """The step tables' transition: a pair the machine never meets (`check_machine` makes sure)
    stays put, so that its tables still decide every combination."""
    if state != machine.halt and (state, symbol) not in machine.transitions:
        return state, symbol, "S"
    return machine.delta(state, symbol)


def _cell_table(machine: TuringMachine, heads: dict) -> dict[tuple[str, str], float]:
    """What cell i of the configuration before says about cell i now."""
    table = {}
    for symbol in machine.symbols:
        table[(symbol, symbol)] = KEEP
        for state in machine.states:
            table[(symbol, heads[state][symbol])] = HEAD_ON
    for state in machine.states:
        for symbol in machine.symbols:
            new_state, written, move = _transition(machine, state, symbol)
            table[(heads[state][symbol], heads[new_state][written] if move == "S" else written)] = TRANSITION
    return table


def _arrival_table(machine: TuringMachine, heads: dict, arriving: str) -> dict[tuple[str, str], float]:
    """What a neighbouring head moving onto cell i (`arriving` = its move) says about cell i."""
    table, score = {}, FROM_LEFT if arriving == "R" else FROM_RIGHT
    for state in machine.states:
        for symbol in machine.symbols:
            new_state, _, move = _transition(machine, state, symbol)
            if move == arriving:
                for other in machine.symbols:
                    table[(heads[state][symbol], heads[new_state][other])] = score
    return table


def check_machine(machine: TuringMachine, bits: int) -> str:
    """Run the machine on every `bits`-bit input (up to EXHAUSTIVE_INPUTS of them; beyond, on a
    fixed sample of as many, 0 and 2**bits - 1 among them), all at once; ValueError naming an
    input on which it meets a pair without a transition, leaves its tape, or has not halted after
    `steps(bits)` steps. Returns what was checked, in words."""
    steps, width = machine.run_length(bits), machine.width(bits)
    space = 2**bits
    if space <= EXHAUSTIVE_INPUTS:
        x, checked = np.arange(space, dtype=np.uint64), f"every one of the {space:,} inputs"
    else:
        rng = np.random.default_rng(0)
        x = np.concatenate(
            [np.array([0, space - 1], dtype=np.uint64), rng.integers(0, space, EXHAUSTIVE_INPUTS - 2, dtype=np.uint64)]
        )
        checked = f"{EXHAUSTIVE_INPUTS:,} inputs of the 2**{bits} (a fixed sample: 0, 2**{bits} - 1 and random ones)"
    symbols, states = {s: i for i, s in enumerate(machine.symbols)}, {q: i for i, q in enumerate(machine.states)}
    defined = np.zeros((len(states), len(symbols)), dtype=bool)
    new_state, written, move = (np.zeros((len(states), len(symbols)), dtype=np.int64) for _ in range(3))
    for q, i in states.items():
        for s, j in symbols.items():
            if q == machine.halt or (q, s) in machine.transitions:
                target, write, direction = machine.delta(q, s)
                defined[i, j] = True
                new_state[i, j], written[i, j] = states[target], symbols[write]
                move[i, j] = {"L": -1, "R": 1, "S": 0}[direction]
    tape = np.full((len(x), width), symbols[machine.blank], dtype=np.int64)
    tape[:, :bits] = ((x[:, None] >> np.arange(bits, dtype=np.uint64)) & np.uint64(1)).astype(np.int64)
    tape[:, :bits] = np.where(tape[:, :bits] == 1, symbols["1"], symbols["0"])
    state = np.full(len(x), states[machine.start], dtype=np.int64)
    position, rows = np.zeros(len(x), dtype=np.int64), np.arange(len(x))
    for step in range(steps):
        symbol = tape[rows, position]
        missing = ~defined[state, symbol]
        if missing.any():
            i = int(np.argmax(missing))
            raise ValueError(
                f"{machine.name}: no transition from ({machine.states[state[i]]}, {machine.symbols[symbol[i]]}), "
                f"met at step {step + 1} on input {int(x[i])} ({bits} bits)"
            )
        tape[rows, position] = written[state, symbol]
        position, state = position + move[state, symbol], new_state[state, symbol]
        outside = (position < 0) | (position >= width)
        if outside.any():
            raise ValueError(
                f"{machine.name}: the head leaves the {width}-cell tape at step {step + 1} on input "
                f"{int(x[np.argmax(outside)])} ({bits} bits)"
            )
    running = state != states[machine.halt]
    if running.any():
        raise ValueError(
            f"{machine.name}: not halted after steps({bits}) = {steps} steps on input {int(x[np.argmax(running)])}"
        )
    return f"the machine halts within {steps} steps and keeps to its {width}-cell tape on {checked}"


def turing_machine_reference(machine: TuringMachine, bits: int, x: int) -> list[str]:
    """A plain simulation, recording every configuration."""
    width = machine.width(bits)
    tape = [*binary_lsb(x, bits), *[machine.blank] * (width - bits)]
    state, position = machine.start, 0

    def configuration():
        return [head(state, s) if i == position else s for i, s in enumerate(tape)]

    cot = configuration()
    for _ in range(machine.steps(bits)):
        state, tape[position], move = machine.delta(state, tape[position])
        position += {"L": -1, "R": 1, "S": 0}[move]
        if not 0 <= position < width:
            raise ValueError(f"{machine.name}: the head leaves the {width}-cell tape on input {x}")
        cot += [STEP_JOINER, *configuration()]
    if state != machine.halt:
        raise ValueError(f"{machine.name}: not halted after {machine.steps(bits)} steps on input {x}")
    return [BOS, *binary_lsb(x, bits), EQUALS, *cot, EQUALS, *tape]


# binary increment, LSB first: carry right over the 1s, write the 1 (the tape has a cell for overflow)
INCREMENT = TuringMachine(
    name="increment",
    start="c",
    halt="h",
    transitions={("c", "1"): ("c", "0", "R"), ("c", "0"): ("h", "1", "S"), ("c", "_"): ("h", "1", "S")},
    steps=lambda bits: bits + 1,
)
# doubling, LSB first: shift every bit one cell up, the state carrying the bit being moved
DOUBLE = TuringMachine(
    name="double",
    start="z",
    halt="h",
    transitions={
        ("z", "0"): ("z", "0", "R"),
        ("z", "1"): ("o", "0", "R"),
        ("z", "_"): ("h", "0", "S"),
        ("o", "0"): ("z", "1", "R"),
        ("o", "1"): ("o", "1", "R"),
        ("o", "_"): ("h", "1", "S"),
    },
    steps=lambda bits: bits + 1,
)
# x + 2 as two increments, LSB first: the first marks cell 0 ("0'", "1'": the tape has no left
# end a head could feel), carries right and walks back left over the zeros it wrote to the mark;
# the second increments from there, clearing the mark. At most 2n + 1 steps (x = 2^n - 1)
INCREMENT_TWICE = TuringMachine(
    name="increment-twice",
    start="s",
    halt="h",
    transitions={
        ("s", "0"): ("b", "1'", "S"),  # the first increment ends at once
        ("s", "1"): ("c", "0'", "R"),
        ("c", "1"): ("c", "0", "R"),
        ("c", "0"): ("b", "1", "L"),
        ("c", "_"): ("b", "1", "L"),
        ("b", "0"): ("b", "0", "L"),  # back over the carried zeros
        ("b", "0'"): ("h", "1", "S"),  # the second increment, at the mark
        ("b", "1'"): ("i", "0", "R"),
        ("i", "1"): ("i", "0", "R"),
        ("i", "0"): ("h", "1", "S"),
        ("i", "_"): ("h", "1", "S"),
    },
    steps=lambda bits: 2 * bits + 1,
    symbols=("0", "1", "_", "0'", "1'"),
)
MACHINES = {machine.name: machine for machine in (INCREMENT, DOUBLE, INCREMENT_TWICE)}


# ---------------------------------------------------------------------------------------------
# Finite automata


@dataclass(frozen=True)
class FiniteAutomaton:
    """A deterministic automaton over bits: transitions[(state, bit)] = the next state, for every
    state and bit. It reads its input from the most significant bit and answers 1 when it ends
    in one of `accepting`."""

    name: str
    start: str
    transitions: dict[tuple[str, str], str]
    accepting: tuple[str, ...]
    states: tuple[str, ...] = field(init=False)

    def __post_init__(self):
        states = tuple(dict.fromkeys([self.start, *(q for q, _ in self.transitions), *self.transitions.values()]))
        for state in states:
            if not isinstance(state, str) or not state or ":" in state or any(c.isspace() for c in state):
                raise ValueError(
                    f"{self.name}: state {state!r} must be a non-empty string without ':' or whitespace "
                    "(a run's token is state:bit)"
                )
        for state, bit in self.transitions:
            if bit not in BITS:
                raise ValueError(f"{self.name}: transition ({state}, {bit!r}) reads no bit (0 or 1)")
        missing = [(q, b) for q in states for b in BITS if (q, b) not in self.transitions]
        if missing:
            raise ValueError(f"{self.name}: no transition from {missing[0]} (every state needs one per bit)")
        unknown = [q for q in self.accepting if q not in states]
        if unknown:
            raise ValueError(f"{self.name}: accepting state {unknown[0]!r} is not one of its states {states}")
        object.__setattr__(self, "states", states)


def automaton_program(automaton: FiniteAutomaton, bits: int) -> Program:
    """The run of `automaton` on `bits` input bits: per bit one token, the state reading it with
    the bit ("r1:0"), then the final state; the answer is [final state accepting].

    The token at bit t is (δ(token before), x_t): a function of ONE earlier token (a lookup, any
    function will do) plus the bit, each adding 1 to the tokens that agree with it, so the right
    token scores 2 and every other at most 1. One linear step per bit, however the automaton
    combines state and bit (a state and a bit alone could not: parity, δ = XOR, is no threshold)."""
    name = f"dfa-{automaton.name}-{bits}"
    if isinstance(bits, bool) or not isinstance(bits, int) or bits < 1:
        raise ValueError(f"{name}: bits={bits!r} must be an integer >= 1")
    check_bits(name, bits, 2 * bits + 5)
    program = ProgramBuilder(name)
    x = program.number("x", 2**bits, width=bits, msb_first=True)[::-1]  # reading order
    program.begin_cot()
    reading = {(q, b): head(q, b) for q in automaton.states for b in BITS}
    next_state = {token: automaton.transitions[pair] for pair, token in reading.items()}
    state_table = {(token, reading[(next_state[token], b)]): 1.0 for token in reading.values() for b in BITS}
    bit_table = {(b, token): 1.0 for (_, b), token in reading.items()}
    run = program.lookup(x[0], {b: reading[(automaton.start, b)] for b in BITS}, "dfa-start")
    for t in range(1, bits):
        run = program.step([run, x[t]], [state_table, bit_table], dict.fromkeys(reading.values(), 0.0), "dfa-step")
    final = program.lookup(run, next_state, "dfa-final")
    program.begin_answer()
    program.lookup(final, {q: "1" if q in automaton.accepting else "0" for q in automaton.states}, "dfa-accept")
    return program.build()


def automaton_reference(automaton: FiniteAutomaton, bits: int, x: int) -> list[str]:
    """A plain run of the automaton, recording the state at every bit."""
    digits, state, cot = format(x, f"0{bits}b"), automaton.start, []
    for bit in digits:
        cot.append(head(state, bit))
        state = automaton.transitions[(state, bit)]
    return [BOS, *digits, EQUALS, *cot, state, EQUALS, str(int(state in automaton.accepting))]


# divisibility by 3, MSB first: the state is the remainder of the bits read so far, r -> 2r + bit
MOD3 = FiniteAutomaton(
    name="mod3",
    start="r0",
    transitions={(f"r{r}", str(bit)): f"r{(2 * r + bit) % 3}" for r in range(3) for bit in (0, 1)},
    accepting=("r0",),
)
AUTOMATA = {automaton.name: automaton for automaton in (MOD3,)}


def mod3_reference(bits: int, x: int) -> list[str]:
    """dfa-mod3 from closed forms, not the table: before bit t the state is the value of the bits
    read, x >> (bits - t), mod 3."""
    digits = format(x, f"0{bits}b")
    cot = [head(f"r{(x >> (bits - t)) % 3}", digits[t]) for t in range(bits)]
    return [BOS, *digits, EQUALS, *cot, f"r{x % 3}", EQUALS, str(int(x % 3 == 0))]


# ---------------------------------------------------------------------------------------------
# The registry: one row per shipped program


@dataclass(frozen=True)
class ProgramFamily:
    """A shipped program: `compile(size)` and the plain `reference(size, *inputs)` of its trace.
    `size` is the input bound: numbers below it (multiplication, addition, comparison) or bits
    (parity, Turing machines)."""

    name: str
    compile: Callable[[int], Program]
    reference: Callable[..., list[str]]
    size_meaning: str
    description: str


def _machine_family(machine: TuringMachine) -> ProgramFamily:
    return ProgramFamily(
        f"tm-{machine.name}",
        lambda bits: turing_machine_program(machine, bits),
        lambda bits, x: turing_machine_reference(machine, bits, x),
        "bits",
        f"Turing machine `{machine.name}`: its configurations, one linear step per cell",
    )


PROGRAMS: dict[str, ProgramFamily] = {
    family.name: family
    for family in (
        ProgramFamily(
            "parity", parity, parity_reference, "bits", "parity of n bits, MSB first (AND, then XOR per bit)"
        ),
        ProgramFamily(
            "addition", addition, addition_reference, "limit", "a + b, binary LSB first (carry, sum per column)"
        ),
        ProgramFamily(
            "subtraction",
            subtraction,
            subtraction_reference,
            "limit",
            "a - b in n + 1 bits of two's complement, binary LSB first (borrow, difference per column)",
        ),
        ProgramFamily(
            "comparison", comparison, comparison_reference, "limit", "[a > b], binary LSB first (one gate per bit)"
        ),
        ProgramFamily(
            "multiplication",
            multiplication,
            multiplication_reference,
            "limit",
            "a x b, binary LSB first (partial-product bit, carry, sum per row and column)",
        ),
        *(_machine_family(machine) for machine in MACHINES.values()),
        ProgramFamily(
            "dfa-mod3",
            lambda bits: automaton_program(MOD3, bits),
            mod3_reference,
            "bits",
            "finite automaton `mod3`: [3 divides x], one linear step per bit (remainder so far, bit)",
        ),
    )
}


def compile_program(
    name: str | Callable[[int], Program], size: int, *, trust_program_code: bool = False, optimize: bool = False
) -> Program:
    """The compiled program `name` for inputs of `size`; ValueError naming what is wrong.

    `name` is a key of PROGRAMS, a function of `size` that returns `ProgramBuilder(...).build()`
    (your own program, passed as code), or "module:function" naming such a function. A name is
    often read from a file (a checkpoint's training_config.yaml, a dataset's build record), so
    "module:function" is imported only with `trust_program_code=True` (`--trust-program-code`
    on the command line), as transformers' `trust_remote_code`: importing a module runs its code.
    `optimize=True`: its CoT shortened by fusing steps (`fusion.optimize`; needs scipy)."""
    if not isinstance(optimize, bool):
        raise ValueError(f"optimize={optimize!r} must be true or false")
    program = _compiled(name, size, trust_program_code)
    return optimize_program(program) if optimize else program


def _compiled(name, size: int, trust_program_code: bool) -> Program:
    if isinstance(size, bool) or not isinstance(size, int) or size < 2:
        raise ValueError(f"size={size!r} must be an integer >= 2")
    if callable(name):
        return _checked_program(getattr(name, "__name__", repr(name)), name, size)
    if isinstance(name, str) and name in PROGRAMS:
        return PROGRAMS[name].compile(size)
    if not isinstance(name, str) or name.count(":") != 1 or not all(part.strip() for part in name.split(":")):
        raise ValueError(f"program={name!r} is not one of {', '.join(PROGRAMS)}, nor 'module:function'")
    if not trust_program_code:
        raise ValueError(
            f"program={name!r} is not a shipped program ({', '.join(PROGRAMS)}): it names code to "
            "import; pass --trust-program-code (Python: trust_program_code=True) if you wrote it or "
            "trust it"
        )
    module_name, function_name = name.split(":")
    try:
        function = getattr(importlib.import_module(module_name), function_name)
    except (ImportError, AttributeError) as error:
        raise ValueError(f"program={name!r}: cannot import it ({error})") from None
    return _checked_program(name, function, size)


def _checked_program(name: str, function, size: int) -> Program:
    """`function(size)`, which must return a compiled Program; its errors name the program."""
    if not callable(function):
        raise ValueError(f"program={name!r} is not a function of the size")
    try:
        program = function(size)
    except ValueError as error:
        raise ValueError(f"program={name!r}: {error}") from None
    except TypeError as error:  # e.g. "json:loads": not a function of one integer
        raise ValueError(f"program={name!r} is not a program function (size -> Program): {error}") from None
    if not isinstance(program, Program):
        raise ValueError(f"program={name!r} returned {type(program).__name__}, not a compiled Program")
    return program


def describe_program(name: str) -> str:
    return PROGRAMS[name].description if name in PROGRAMS else f"the program `{name}`"
