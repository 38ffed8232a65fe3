"""The compiler's edges: inputs checked where they enter, sizes refused before they are built, a
text format that cannot break, machines that halt, a proof for every input (not a sample), a
certificate checked token for token, and the width cost in the open."""

from __future__ import annotations

import json
import re
import time
from functools import partial
from pathlib import Path

import numpy as np
import pytest
from datasets import Dataset

from hf_linear.data.programs import (
    MACHINES,
    PROGRAMS,
    ProgramBuilder,
    TuringMachine,
    compile_program,
    prove,
    turing_machine_program,
)
from hf_linear.data.programs.certificate import certificate_model, certify
from hf_linear.data.programs.compiler import STEP_JOINER
from hf_linear.data.programs.dataset import with_eos
from hf_linear.data.programs.library import turing_machine_reference

REPO_ROOT = Path(__file__).resolve().parent.parent
SIZES = {
    "parity": (7, 40),
    "addition": (32, 10**6),
    "subtraction": (32, 10**6),
    "comparison": (32, 10**6),
    "multiplication": (16, 10**8),
}


def one_line_error(call, *fragments) -> str:
    with pytest.raises(ValueError) as error:
        call()
    message = str(error.value)
    assert "\n" not in message and len(message) < 300, message
    for fragment in fragments:
        assert fragment in message, message
    return message


# ------------------------------------------------------------------------------------------ inputs


def test_bad_inputs_are_one_line_errors_naming_the_input():
    program = compile_program("multiplication", 10000)
    for numbers, fragment in [
        ((5,), "takes 2 input(s) (a in [0, 10000), b in [0, 10000)), got 1"),
        ((5, 6, 7), "got 3"),
        ((3.7, 2), "a=3.7 must be an integer in [0, 10000)"),
        (("12", 2), "a='12' must be an integer"),
        ((True, 2), "a=True must be an integer"),
        ((2, 2**70), f"b={2**70} must be an integer in [0, 10000)"),
        ((10000, 1), "a=10000 must be"),
        ((-1, 1), "a=-1 must be"),
    ]:
        one_line_error(partial(program.tokens, *numbers), "multiplication-10000", fragment)
    assert (
        program.tokens(np.int64(3), np.uint8(5))[program.answer_start :] == program.tokens(3, 5)[program.answer_start :]
    )
    for columns, fragment in [
        ([np.array([1.0]), np.array([2])], "a=1.0 must be an integer"),
        ([np.array([False]), np.array([2])], "a=False"),
        ([np.array(["7"]), np.array([2])], "a='7'"),
        ([np.array([1, 2**70], dtype=object), np.array([1, 2])], f"a={2**70}"),
        ([np.array([1, 2]), np.array([1])], "differ in length"),
        ([np.array([1])], "got 1"),
    ]:
        one_line_error(partial(program.run, columns), "multiplication-10000", fragment)


def test_sizes_whose_trace_cannot_fit_or_whose_inputs_exceed_63_bits_fail_fast_in_words():
    for name, size in [("tm-increment", 2**62), ("parity", 2**40)]:
        start = time.perf_counter()
        message = one_line_error(partial(compile_program, name, size), "tokens", "memory")
        assert time.perf_counter() - start < 1.0 and re.search(r"\d(\.\d)?e\+\d+ tokens", message)
    one_line_error(lambda: compile_program("parity", 64), "at most 63 bits")
    one_line_error(lambda: compile_program("tm-double", 70), "at most 63 bits")
    one_line_error(lambda: compile_program("multiplication", 10**600), "at most 63 bits", "not 1994 bits")


# ------------------------------------------------------------------------------------------ format


def test_the_builder_refuses_tokens_that_break_the_text_format_and_non_integer_gate_weights():
    def builder():
        made = ProgramBuilder("format")
        x = made.number("x", 4, width=2)
        return made, x

    made, x = builder()
    one_line_error(lambda: made.token("="), "reserved")  # "=" in the prompt would end it early
    made.begin_cot()
    one_line_error(lambda: made.token("[EOS]"), "'[EOS]' is reserved")
    one_line_error(lambda: made.step([x[0]], [{("1", "[PAD]"): 1.0}], {"[PAD]": 0.0, "0": 0.0}, "pad"), "reserved")
    one_line_error(lambda: made.apply(lambda a, b: f"{a} {b}", x[0], x[1]), "'0 0'", "whitespace")
    one_line_error(lambda: made.lookup(x[0], {"0": "", "1": "1"}), "non-empty")
    one_line_error(lambda: made.gate([(x[0], 0.5), (x[1], 1)], 1), "weight 0.5 must be an integer")
    one_line_error(lambda: made.gate([(x[0], 1)], 1.5), "threshold 1.5 must be an integer")
    one_line_error(lambda: made.step([x[0]], [{("1", "2"): 1.0}], {"0": 0.0, "1": 0.0}, "t"), "('1', '2')")
    one_line_error(lambda: made.step([x[0]], [{("1", "1"): float("nan")}], {"0": 0.0, "1": 0.0}, "t"), "finite")
    made.begin_answer()
    one_line_error(lambda: made.lookup(x[0], {"0": "=", "1": "1"}), "'=' is reserved")
    one_line_error(lambda: made.begin_answer(), "once")
    for name, fragment in [("text", "none of prompt"), ("two words", "identifier")]:
        one_line_error(partial(ProgramBuilder("p").number, name, 4), fragment)


# ------------------------------------------------------------------------------------------ proofs


@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_every_shipped_program_is_proved_at_two_sizes(name):
    for size in SIZES.get(name, (5, 40)):
        proof = prove(compile_program(name, size))
        assert proof.proved and proof.smallest_margin >= 0.5, proof.describe()
        assert proof.steps == sum(len(s.outputs) > 1 for s in compile_program(name, size).steps.values())


def planted(weight_of_last: float, threshold: float) -> ProgramBuilder:
    """[x_0 + ... + x_18 + w·x_19 >= θ] over 20 input bits, written as the gate would lower it:
    with w = 1, θ = 20.5 (a tie when all bits are 1) or w = 0.5, θ = 20 (a fractional gate)."""
    made = ProgramBuilder("planted")
    x = made.number("x", 2**20, width=20)
    made.begin_cot()
    tables = [{("1", "1"): 1.0} for _ in range(19)] + [{("1", "1"): weight_of_last}]
    result = made.step(x, tables, {"0": 0.0, "1": 0.5 - threshold}, "planted")
    made.begin_answer()
    made.copy(result)
    return made.build()


@pytest.mark.parametrize(("weight", "threshold"), [(1.0, 20.5), (0.5, 20.0)], ids=["tie", "fractional-gate"])
def test_prove_finds_what_one_input_in_2_20_reaches_and_sampling_misses(weight, threshold):
    program = planted(weight, threshold)
    # sampling: 2,000 random inputs (none of them all ones) run and certify at 100%
    inputs = np.random.default_rng(0).integers(0, 2**20 - 1, 2000)
    data = Dataset.from_dict({"input_ids": with_eos(program, program.run([inputs])).tolist()})
    assert certify(program, data)["exact_match"] == 1.0
    proof = prove(program)
    assert not proof.proved and proof.smallest_margin == 0 and proof.position == program.prompt_length
    assert set(proof.reads.values()) == {"1"} and len(proof.reads) == 20  # the one input: all bits set
    assert "a tie" in proof.describe()
    with pytest.raises(ValueError, match="no clear winner"):
        program.run([np.array([2**20 - 1])])


def test_a_step_reading_too_many_combinations_is_refused_by_name():
    made = ProgramBuilder("wide")
    x = made.number("x", 2**10, width=10)
    made.begin_cot()
    made.apply(lambda *bits: str(sum(map(int, bits)) % 2), *x)
    made.begin_answer()
    made.copy(x[0])
    program = made.build()
    one_line_error(lambda: prove(program, max_combinations=1000), "tuple step", "1,024 combinations")


# ------------------------------------------------------------------------------------------ certificates


def test_certify_checks_the_whole_trace_not_only_the_answer():
    program = compile_program("multiplication", 16)
    data = Dataset.from_dict(
        {"input_ids": with_eos(program, program.run([np.arange(16), np.arange(16)[::-1]])).tolist()}
    )
    assert certify(program, data)["exact_match"] == 1.0
    plus = program.tokens(3, 5).index(STEP_JOINER)  # a mid-CoT "+" that nothing reads
    model, ids = certificate_model(program), program.token_ids()
    model.model.mixing.bias.data[plus - 1, ids["x"]] = 1e3  # write "x" there instead
    report = certify(program, data, model=model)
    assert report["exact_match"] == 0.0 and report["answer_exact_match"] == 1.0
    assert report["examples"][0] | {"prompt": None} == {
        "prompt": None,
        "position": plus,
        "expected": "+",
        "generated": "x",
    }


def test_describe_puts_length_beside_width_and_large_certificates_warn(monkeypatch):
    program = compile_program("multiplication", 16)
    described = program.describe()
    assert described["certificate_parameters"] == certificate_model(program).num_parameters()
    assert described["cot_tokens"] == 3 * 4 * 4 + 4 and described["vocabulary"] == len(program.vocabulary)
    assert f"{described['certificate_parameters']:,} parameters" in program.summary()
    from hf_linear.data.programs import certificate

    monkeypatch.setattr(certificate, "LARGE_CERTIFICATE", described["certificate_parameters"] - 1)
    with pytest.warns(UserWarning, match=f"{described['certificate_parameters']:,} parameters .* V = 9"):
        certificate_model(program)


def test_eval_program_reports_the_programs_length_and_width(tmp_path, capsys):
    from hf_linear.data.programs.dataset import build_program_tokenizer
    from hf_linear.evaluation.cli import main

    program = compile_program("comparison", 8)
    certificate_model(program).save_pretrained(tmp_path / "certificate")
    build_program_tokenizer(program).save_pretrained(tmp_path / "certificate")
    arguments = json.dumps({"program": "comparison", "size": 8, "validation_size": 2, "test_size": 4})
    assert main([str(tmp_path / "certificate"), "--program", arguments, "--show", "0"]) == 0
    assert program.summary() in capsys.readouterr().out
    report = json.loads((tmp_path / "certificate" / "eval_results.json").read_text())
    assert report["program"] == program.describe() and report["exact_match"] == 1.0


# ------------------------------------------------------------------------------------------ machines


def test_machines_that_do_not_halt_leave_the_tape_or_miss_a_transition_are_refused():
    increment = MACHINES["increment"]
    slow = TuringMachine("slow", "c", "h", increment.transitions, steps=lambda bits: bits - 1)
    one_line_error(lambda: turing_machine_program(slow, 6), "not halted after steps(6) = 5 steps", "input 31")
    cramped = TuringMachine("cramped", "c", "h", increment.transitions, steps=lambda bits: bits + 1, extra_cells=0)
    one_line_error(lambda: turing_machine_program(cramped, 6), "leaves the 6-cell tape", "input 63")
    partial = TuringMachine("partial", "c", "h", {("c", "1"): ("c", "0", "R")}, steps=lambda bits: bits + 1)
    one_line_error(lambda: turing_machine_program(partial, 6), "no transition from (c, 0)")
    loop = TuringMachine("loop", "l", "h", {("l", s): ("l", s, "S") for s in "01_"}, steps=lambda bits: 4)
    one_line_error(lambda: turing_machine_program(loop, 30), "not halted after steps(30) = 4 steps")
    assert "65,536 inputs of the 2**30" in turing_machine_program(MACHINES["double"], 30).checks[0]


def readme_machine_snippet() -> str:
    """The README's user machine, verbatim: the python block that defines a TuringMachine."""
    blocks = re.findall(r"^( *)```python\n(.*?)^\1```", (REPO_ROOT / "README.md").read_text(), re.S | re.M)
    (code,) = [(indent, text) for indent, text in blocks if "TuringMachine(" in text]
    indent, text = code
    return "\n".join(line.removeprefix(indent) for line in text.splitlines())


def test_the_readme_user_machine_runs_verbatim_and_halves(capsys):
    namespace: dict = {}
    exec(readme_machine_snippet(), namespace)  # the README's own example
    printed = capsys.readouterr().out.splitlines()
    assert printed[0] == str(["1", "1", "0", "1", "1", "0", "1", "_", "_"])  # 91, LSB first
    assert printed[1].startswith("the machine halts within 24 steps and keeps to its 9-cell tape on every one of")
    machine, program = namespace["HALVE"], namespace["program"]
    traces = program.run([np.arange(256)])
    for x, trace in enumerate(traces.tolist()):
        trace = [program.vocabulary[i] for i in trace]
        assert trace == turing_machine_reference(machine, 8, x)
        assert sum(int(bit) << i for i, bit in enumerate(trace[program.answer_start :]) if bit != "_") == x // 2
    assert prove(turing_machine_program(machine, 12)).proved  # moves both ways: no tie even between two heads
