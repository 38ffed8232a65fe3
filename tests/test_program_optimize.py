"""The optimising pass: fused steps never change a trace (decoded back token for token), a step
no linear scores write stays unfused, multiplication's CoT shrinks to n² + n, and the optimised
programs' certificates, data and configs work as the originals' do."""

from __future__ import annotations

import itertools
import time

import numpy as np
import pytest

pytest.importorskip("scipy", reason="the optimising pass needs scipy (the programs extra)")

from user_program import maximum

from hf_linear.data.programs import PROGRAMS, ProgramBuilder, compile_program, prove
from hf_linear.data.programs.certificate import certify
from hf_linear.data.programs.compiler import BITS
from hf_linear.data.programs.dataset import build_program_dataset, program_of
from hf_linear.data.programs.fusion import optimize, unfuse
from hf_linear.data.sources import data_source

SMALL = {
    "parity": 9,
    "addition": 64,
    "subtraction": 64,
    "comparison": 64,
    "multiplication": 32,
    "tm-increment": 6,
    "tm-double": 6,
    "tm-increment-twice": 6,
    "dfa-mod3": 9,
}
LARGE = {
    "parity": 40,
    "addition": 10**9,
    "subtraction": 10**9,
    "comparison": 10**9,
    "multiplication": 10**6,
    "tm-increment": 12,
    "tm-double": 12,
    "tm-increment-twice": 12,
    "dfa-mod3": 40,
}


def inputs_of(program, count=2000, seed=0):
    """Every input of a small program, else `count` random ones (0 and the largest among them)."""
    limits = [number.limit for number in program.inputs]
    if np.prod(limits) <= count:
        return [np.array(column) for column in zip(*itertools.product(*(range(n) for n in limits)))]
    rng = np.random.default_rng(seed)
    return [np.concatenate([[0, n - 1], rng.integers(0, n, count)]) for n in limits]


@pytest.mark.slow
@pytest.mark.parametrize("name", [*sorted(PROGRAMS), "max"])
def test_the_pass_never_changes_a_trace(name):
    for size in (SMALL.get(name, 64), LARGE.get(name, 2**20)):
        original = maximum(size) if name == "max" else compile_program(name, size)
        optimized = optimize(original)
        inputs = inputs_of(original)
        before, after = original.run(inputs), optimized.run(inputs)
        assert (unfuse(optimized, after) == before).all(), (name, size)  # every token, decoded back
        answer = [[optimized.vocabulary[i] for i in row[optimized.answer_start :]] for row in after]
        assert answer == [[original.vocabulary[i] for i in row[original.answer_start :]] for row in before]
        assert optimized.prompt_length == original.prompt_length and optimized.cot_length <= original.cot_length
        assert prove(optimized).proved
        for position in range(optimized.answer_start, optimized.length):  # answers stay plain bits
            assert set(optimized.values[position]) <= set(BITS) or name.startswith("tm")


def test_a_planted_xor_of_two_unwritten_bits_stays_two_steps():
    made = ProgramBuilder("xor")
    x = made.number("x", 4, width=2)
    made.begin_cot()
    made.xor(x[0], x[1])  # AND(x0, x1), then [x0 + x1 - 2·AND >= 1]: XOR itself is no linear step
    made.begin_answer()
    made.copy(x[0])
    original = made.build()
    optimized = optimize(original)
    assert optimized.cot_length == original.cot_length == 3
    assert [step.kind for step in optimized.steps.values()][:2] == ["and", "xor"]


def test_a_program_with_a_tie_is_refused_not_optimised():
    made = ProgramBuilder("tie")
    x = made.number("x", 4, width=2)
    made.begin_cot()
    made.step([x[0], x[1]], [{("1", "1"): 1.0}, {("1", "1"): 1.0}], {"0": 0.0, "1": -1.0}, "tie")  # x = 3: a tie
    made.begin_answer()
    made.copy(x[0])
    with pytest.raises(ValueError, match="only a proved program is optimised; not proved: the tie step"):
        optimize(made.build())


@pytest.mark.slow
@pytest.mark.parametrize("n", [8, 14, 27, 40])
def test_optimised_multiplication_takes_at_most_n2_plus_3n_cot_tokens(n):
    start = time.perf_counter()
    optimized = compile_program("multiplication", 2**n, optimize=True)
    assert optimized.cot_length <= n * n + 3 * n, optimized.cot_length
    assert optimized.cot_length == n * n + n  # one token per cell, n - 1 "+", the "="
    assert optimized.describe()["optimized_from"]["cot_tokens"] == 3 * n * n + n
    assert time.perf_counter() - start < 10


def test_fused_tokens_are_readable_and_decode_to_the_cells_sum_and_carry():
    optimized = compile_program("multiplication", 10000, optimize=True)
    fused = set(optimized.vocabulary) - set(compile_program("multiplication", 10000).vocabulary)
    assert fused == {"c0s0", "c0s1", "c1s0", "c1s1"}
    trace = optimized.tokens(4321, 8765)
    assert int("".join(trace[optimized.answer_start :][::-1]), 2) == 4321 * 8765
    cells = [t for t in trace[optimized.prompt_length : optimized.answer_start] if t in fused]
    assert len(cells) == 14 * 14


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_certificates_of_optimised_programs_generate_every_token(name):
    dataset = build_program_dataset(name, SMALL[name], train_size=0, validation_size=2, test_size=4, optimize=True)
    program = program_of(dataset)
    assert program.fusion is not None
    report = certify(program, dataset["test"])
    assert report["num_samples"] == 4 and report["exact_match"] == 1.0, report["examples"]


def test_optimised_data_shares_the_held_out_inputs_and_the_config_key_flows_through():
    plain = build_program_dataset("addition", 1000, train_size=8, validation_size=6, test_size=6)
    fused = build_program_dataset("addition", 1000, train_size=8, validation_size=6, test_size=6, optimize=True)
    for split in plain:
        assert plain[split]["a"] == fused[split]["a"] and plain[split]["answer"] == fused[split]["answer"]
        assert plain[split]._fingerprint != fused[split]._fingerprint
    assert len(fused["test"][0]["input_ids"]) < len(plain["test"][0]["input_ids"])
    for key in ("program", "program_stream"):
        arguments = {"program": "addition", "size": 1000, "optimize": True, "validation_size": 3, "test_size": 3}
        if key == "program":
            arguments["train_size"] = 4
        source = data_source({key: arguments})
        assert source.compiled.fusion is not None
        assert source.example_lengths()["cot_tokens"] == compile_program("addition", 1000, optimize=True).cot_length
        held_out = source.held_out()
        assert held_out["test"]["text"] == fused["test"]["text"][:3]
        assert "c0s1" in source.tokenizer().get_vocab()
    with pytest.raises(ValueError, match="optimize='yes' must be true or false"):
        data_source({"program": {"program": "addition", "size": 1000, "train_size": 4, "optimize": "yes"}})


def test_build_program_optimize_writes_an_optimised_card(tmp_path, capsys):
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "dataset_scripts"))
    import build_program

    argv = ["--program", "multiplication", "--size", "16", "--train-size", "8", "--validation-size", "4"]
    argv += ["--test-size", "4", "--certify", "4", "--optimize", "--out", str(tmp_path / "data")]
    assert build_program.main(argv) == 0
    out = capsys.readouterr().out
    assert "optimised from 52 tokens" in out and "certificate: 100.00% of 4" in out and "proved:" in out
    card = (tmp_path / "data" / "README.md").read_text()
    assert "optimised (`optimize=True`" in card and "CoT 52 -> 20 tokens" in card
