"""Subtraction, finite automata and a Turing machine that moves both ways: their answers against
plain arithmetic on every small input, a user's automaton against a plain run, the automaton's
errors in words, and certificates through `generate`. (Their traces against the references, the
proofs at two sizes and the optimising pass are in the shared tests of every shipped program.)"""

from __future__ import annotations

import numpy as np
import pytest

from hf_linear.data.programs import MACHINES, compile_program, prove
from hf_linear.data.programs.certificate import certify
from hf_linear.data.programs.dataset import build_program_dataset, program_of
from hf_linear.data.programs.library import (
    AUTOMATA,
    FiniteAutomaton,
    automaton_program,
    automaton_reference,
    mod3_reference,
)


def answers(program, *columns) -> list[str]:
    """The answer tokens of every input (columns of integers), joined, as written by the steps."""
    trace = program.run([np.asarray(column, dtype=np.int64) for column in columns])
    return ["".join(program.vocabulary[i] for i in row[program.answer_start :]) for row in trace]


def lsb(value: int, width: int) -> str:
    return "".join(str((value >> i) & 1) for i in range(width))


def test_subtraction_answers_a_minus_b_in_twos_complement_on_every_pair():
    program = compile_program("subtraction", 64)  # 6 bits: 7 answer bits
    a, b = map(np.ravel, np.meshgrid(np.arange(64), np.arange(64), indexing="ij"))
    assert answers(program, a, b) == [lsb((x - y) % 2**7, 7) for x, y in zip(a.tolist(), b.tolist())]
    assert program.cot_length == 2 * 6 + 1  # borrow and difference per column, the "="
    # the last bit is the borrow out: [a < b]
    assert program.tokens(3, 5)[-1] == "1" and program.tokens(5, 3)[-1] == "0" and program.tokens(4, 4)[-1] == "0"


def test_dfa_mod3_answers_divisibility_by_3_in_one_step_per_bit():
    program = compile_program("dfa-mod3", 10)
    x = np.arange(2**10)
    assert answers(program, x) == [str(int(v % 3 == 0)) for v in x.tolist()]
    assert program.cot_length == 10 + 1 + 1  # a token per bit, the final state, the "="
    steps = [program.steps[p] for p in range(program.prompt_length, program.answer_start - 1)]
    assert [len(step.reads) for step in steps] == [1] + [2] * 9 + [1]  # bit 0, then (token before, bit)
    six = compile_program("dfa-mod3", 6)  # 21 = 010101: remainders 0, 0, 1, 2, 2, 1, then 0
    assert six.tokens(21)[six.prompt_length :] == [
        "r0:0",
        "r0:1",
        "r1:0",
        "r2:1",
        "r2:0",
        "r1:1",
        "r0",
        "=",
        "1",
    ]
    assert mod3_reference(10, 21) == automaton_reference(AUTOMATA["mod3"], 10, 21)  # closed form = plain run


def test_a_users_automaton_compiles_proves_and_runs_as_a_plain_loop():
    # "an odd number of 1s and the last two bits 11": XOR of state and bit, which no threshold of
    # the two computes, still one linear step per bit
    states = {(parity, last): f"p{parity}l{last}" for parity in (0, 1) for last in (0, 1, 2)}  # last: 2 = "11"
    transitions = {}
    for (parity, last), name in states.items():
        for bit in (0, 1):
            run = 2 if bit and last >= 1 else bit
            transitions[(name, str(bit))] = states[(parity ^ bit, run)]
    automaton = FiniteAutomaton("odd-ending-11", "p0l0", transitions, accepting=("p1l2",))
    program = automaton_program(automaton, 9)
    assert prove(program).proved
    for x in range(2**9):
        trace = program.tokens(x)
        assert trace == automaton_reference(automaton, 9, x), x
        assert trace[-1] == str(int(bin(x).count("1") % 2 == 1 and x % 4 == 3)), x


@pytest.mark.parametrize(
    "transitions, accepting, message",
    [
        ({("a", "0"): "a"}, (), r"no transition from \('a', '1'\)"),
        ({("a", "0"): "a", ("a", "1"): "a", ("a", "2"): "a"}, (), "reads no bit"),
        ({("a", "0"): "a", ("a", "1"): "a"}, ("z",), "accepting state 'z' is not one of its states"),
        ({("a:b", "0"): "a", ("a:b", "1"): "a", ("a", "0"): "a", ("a", "1"): "a"}, (), "without ':'"),
    ],
)
def test_a_bad_automaton_is_a_one_line_error_naming_it(transitions, accepting, message):
    with pytest.raises(ValueError, match=message) as error:
        FiniteAutomaton("bad", next(iter(transitions))[0], transitions, accepting)
    assert "\n" not in str(error.value) and str(error.value).startswith("bad: ")


def test_tm_increment_twice_adds_two_moving_both_ways():
    machine = MACHINES["increment-twice"]
    assert {move for _, _, move in machine.transitions.values()} == {"L", "R", "S"}
    program = compile_program("tm-increment-twice", 8)
    x = np.arange(2**8)
    # the final tape, n + 1 cells LSB first; a cell no increment reached stays blank
    assert [a.replace("_", "0") for a in answers(program, x)] == [lsb(v + 2, 9) for v in x.tolist()]
    configurations = " ".join(program.tokens(255)[program.prompt_length : program.answer_start]).split(" + ")
    heads = [next(i for i, cell in enumerate(c.split()) if ":" in cell) for c in configurations]
    assert heads[: 2 * 8 + 2] == [*range(9), *range(7, -1, -1), 0]  # right to the overflow cell, back to the mark
    assert "every one of the 256 inputs" in program.checks[0]


@pytest.mark.slow
@pytest.mark.parametrize("name, size", [("subtraction", 256), ("dfa-mod3", 12), ("tm-increment-twice", 8)])
@pytest.mark.parametrize("optimize", [False, True])
def test_certificates_of_the_new_programs_generate_every_token(name, size, optimize):
    dataset = build_program_dataset(name, size, train_size=0, validation_size=2, test_size=4, optimize=optimize)
    program = program_of(dataset)
    report = certify(program, dataset["test"])
    assert report["num_samples"] == 4 and report["exact_match"] == 1.0, report["examples"]


def test_the_narrowest_subtractions_are_proved_and_exact_on_every_pair():
    for limit in (2, 3, 5):  # one, two and three columns
        program = compile_program("subtraction", limit)
        n = program.inputs[0].width
        assert prove(program).proved
        a, b = map(np.ravel, np.meshgrid(np.arange(limit), np.arange(limit), indexing="ij"))
        assert answers(program, a, b) == [lsb((x - y) % 2 ** (n + 1), n + 1) for x, y in zip(a.tolist(), b.tolist())]
