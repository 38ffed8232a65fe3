"""Programs compiled into linear-realizable CoT: traces against plain-loop references, the
lowering of every gate against plain Python, certificates through `generate`, the TM format with
two (and a third, test-only) transition tables, data determinism and a tiny training run."""

from __future__ import annotations

import itertools
import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from hf_linear.data.programs import MACHINES, PROGRAMS, ProgramBuilder, TuringMachine, compile_program, prove
from hf_linear.data.programs.certificate import certificate_model, certify
from hf_linear.data.programs.compiler import ONE, ZERO
from hf_linear.data.programs.dataset import (
    build_program_dataset,
    build_program_tokenizer,
    program_of,
    program_prompt,
    render_dataset_card,
    split_codes,
)
from hf_linear.data.programs.library import turing_machine_program, turing_machine_reference
from hf_linear.data.sources import data_source
from hf_linear.training.config import check_config
from hf_linear.training.train import train

REPO_ROOT = Path(__file__).resolve().parent.parent
SMALL = {
    "parity": 7,
    "addition": 32,
    "subtraction": 32,
    "comparison": 32,
    "multiplication": 16,
    "tm-increment": 5,
    "tm-double": 5,
    "tm-increment-twice": 5,
    "dfa-mod3": 7,
}
LARGE_BITS = {"parity": 20, "tm-increment": 12, "tm-double": 12, "tm-increment-twice": 12, "dfa-mod3": 40}


def all_inputs(program, limit=3000, seed=0):
    """Every input of a small program, or `limit` random ones."""
    limits = [number.limit for number in program.inputs]
    if np.prod(limits) <= limit:
        return [list(x) for x in itertools.product(*(range(n) for n in limits))]
    rng = random.Random(seed)
    return [[rng.randrange(n) for n in limits] for _ in range(limit)]


def tokens_of(program, inputs):
    trace = program.run([np.array(column) for column in zip(*inputs)])
    return [[program.vocabulary[i] for i in row] for row in trace]


@pytest.mark.parametrize("name", sorted(PROGRAMS))
@pytest.mark.parametrize("scale", ["small", "large"])
def test_compiled_traces_equal_the_plain_references(name, scale):
    size = SMALL[name] if scale == "small" else LARGE_BITS.get(name, 10000)
    program = compile_program(name, size)
    inputs = all_inputs(program, limit=3000 if scale == "small" else 300)
    for x, got in zip(inputs, tokens_of(program, inputs)):
        assert got == PROGRAMS[name].reference(size, *x), (name, size, x)


def test_the_multiplication_answer_is_the_product_and_the_cot_has_3n2_plus_n_tokens():
    program = compile_program("multiplication", 10000)
    n = 14
    assert program.length == (2 * n + 3) + 3 * n * n + (n - 1) + 1 + 2 * n  # prompt, cells, "+", "=", answer
    assert program.cot_length == 3 * n * n + n == 602  # what the docs say
    for a, b in [(0, 0), (9999, 9999), (4321, 8765), (1, 8192)]:
        answer = program.tokens(a, b)[program.answer_start :]
        assert int("".join(answer[::-1]), 2) == a * b


@pytest.mark.slow
def test_parity_program_is_the_threshold_format_token_for_token():
    from hf_linear.data.arithmetic.formats import parity_threshold

    program = compile_program("parity", 9)
    for x in range(2**9):
        assert program.tokens(x) == parity_threshold(format(x, "09b"), 1)


def test_gates_lower_to_the_functions_they_name():
    """Every macro against plain Python, on every input of four bits."""
    builder = ProgramBuilder("gates")
    bits = builder.number("x", 16, width=4)
    builder.begin_cot()
    w, x, y, z = bits
    made = {
        "and": (builder.and_(w, x, y), lambda b: b[0] & b[1] & b[2]),
        "or": (builder.or_(w, x), lambda b: b[0] | b[1]),
        "not": (builder.not_(z), lambda b: 1 - b[3]),
        "majority": (builder.majority(w, x, y), lambda b: int(b[0] + b[1] + b[2] >= 2)),
        "xor": (builder.xor(x, z), lambda b: b[1] ^ b[3]),
        "constant": (builder.gate([(ONE, 1), (ZERO, 5), (w, 1)], 2), lambda b: b[0]),
        "apply": (
            builder.apply(lambda *t: str((int(t[0]) + 2 * int(t[1]) + int(t[2])) % 3), w, x, y),
            lambda b: (b[0] + 2 * b[1] + b[2]) % 3,
        ),
    }
    total, carry = builder.full_adder(x, y, z)
    builder.begin_answer()
    builder.copy(w)
    program = builder.build()
    for value in range(16):
        trace = program.tokens(value)
        b = [(value >> i) & 1 for i in range(4)]
        for name, (position, function) in made.items():
            assert trace[position] == str(function(b)), (name, b)
        assert (int(trace[total]), int(trace[carry])) == ((b[1] + b[2] + b[3]) % 2, (b[1] + b[2] + b[3]) // 2)


def test_a_step_without_a_clear_winner_and_a_gate_on_a_non_bit_are_errors():
    builder = ProgramBuilder("tie")
    x = builder.number("x", 4, width=2)
    builder.begin_cot()
    builder.step([x[0]], [{("1", "0"): 1.0}], {"0": 0.0, "1": 1.0}, "broken")  # x0 = 1: both score 1
    builder.begin_answer()
    builder.copy(x[1])
    with pytest.raises(ValueError, match="no clear winner"):
        builder.build().run([np.array([0, 1, 2, 3])])
    builder = ProgramBuilder("non-bit")
    digit = builder.number("d", 10, base=10)
    builder.begin_cot()
    with pytest.raises(ValueError, match="not a bit"):
        builder.and_(digit[0], digit[0])


@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_certificates_reach_100_percent_through_generate(name):
    dataset = build_program_dataset(name, SMALL[name], train_size=0, validation_size=2, test_size=3)
    program = program_of(dataset)
    report = certify(program, dataset["test"])
    assert report["num_samples"] == 3 and report["exact_match"] == 1.0, report["examples"]


@pytest.mark.slow
def test_the_certificate_of_the_paper_sized_multiplication_is_exact():
    dataset = build_program_dataset("multiplication", 10000, train_size=0, validation_size=1, test_size=16)
    program = program_of(dataset)
    model = certificate_model(program)
    assert model.config.context_length == program.length + 1 and model.config.hidden_size == len(program.vocabulary)
    assert certify(program, dataset["test"])["exact_match"] == 1.0


@pytest.mark.slow
def test_the_turing_machine_format_is_generic_in_the_table():
    flip = TuringMachine(  # a third machine, defined here: complement every bit, halt at the blank
        name="flip",
        start="f",
        halt="h",
        steps=lambda bits: bits + 1,
        transitions={("f", "0"): ("f", "1", "R"), ("f", "1"): ("f", "0", "R"), ("f", "_"): ("h", "_", "S")},
    )
    for machine in (*MACHINES.values(), flip):
        program = turing_machine_program(machine, 6)
        for x in range(64):
            assert program.tokens(x) == turing_machine_reference(machine, 6, x), (machine.name, x)
    answer = turing_machine_program(flip, 6).tokens(0b101100)[-7:]
    assert answer == ["1", "1", "0", "0", "1", "0", "_"]  # LSB first: 001101 complemented, then the blank
    with pytest.raises(ValueError, match="not halted"):
        turing_machine_reference(
            TuringMachine("slow", "c", "h", MACHINES["increment"].transitions, lambda bits: 1), 4, 15
        )


def test_data_is_deterministic_split_by_hash_and_prompts_are_checked():
    arguments = dict(program="addition", size=1000, train_size=200, validation_size=20, test_size=20, seed=3)
    first, second = build_program_dataset(**arguments), build_program_dataset(**arguments)
    for split in first:
        assert first[split]["text"] == second[split]["text"] and first[split]._fingerprint == second[split]._fingerprint
    program = program_of(first)
    codes = {split: split_codes(program, (np.array(first[split]["a"]), np.array(first[split]["b"]))) for split in first}
    assert set(codes["train"]) == {0} and set(codes["validation"]) == {1} and set(codes["test"]) == {2}
    row = first["test"][0]
    assert row["prompt"] == program_prompt("addition", 1000, row["a"], row["b"])
    assert row["text"].startswith(row["prompt"]) and row["text"].endswith(row["answer"] + " [EOS]")
    assert build_program_tokenizer(program)(row["text"])["input_ids"] == row["input_ids"]
    for bad in [(1000, 1), (-1, 2), (1.5, 2), (1,)]:
        with pytest.raises(ValueError):
            program_prompt("addition", 1000, *bad)
    with pytest.raises(ValueError, match="program='nope'"):
        compile_program("nope", 10)
    with pytest.raises(ValueError, match="at most 63 bits"):  # inputs are int64
        compile_program("parity", 64)
    card = render_dataset_card(first, {"exact_match": 1.0, "answer_exact_match": 1.0, "num_samples": 20})
    assert "| chain of thought (length complexity) | 21 |" in card and "100.00% of 20 held-out examples" in card
    assert f"| vocabulary | {len(program.vocabulary)} |" in card and "**Proof** (every step" in card
    assert f"| {program.certificate_parameters:,} |" in card and "not run" in card  # no proof was passed


@pytest.mark.slow
def test_a_tiny_linear_run_learns_comparison_end_to_end_and_is_shared(tmp_path, hub_server):
    config = {
        "model": {"type": "linear_lm", "hidden_size": 8},
        "dataset": {
            "program_stream": {"program": "comparison", "size": 64, "seed": 0, "validation_size": 50, "test_size": 100}
        },
        "training": {
            "output_dir": str(tmp_path / "run"),
            "per_device_train_batch_size": 64,
            "learning_rate": 1e-2,
            "lr_scheduler_type": "constant",
            "max_steps": 150,
            "logging_steps": 50,
            "save_strategy": "no",
            "report_to": [],
            "disable_tqdm": True,
            "seed": 0,
        },
        "evaluation": {"num_samples": 100, "during_training_samples": 0, "batch_size": 100, "num_examples": 1},
    }
    assert data_source(config["dataset"]).describe() == "program comparison-64"
    report = train(check_config(config))
    assert report["exact_match"] >= 0.95, report
    assert json.loads((tmp_path / "run" / "eval_results.json").read_text())["exact_match"] == report["exact_match"]
    # shared on the Hub: the card says what it was trained on and how to prompt it; it loads and answers
    from huggingface_hub import ModelCard
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from hf_linear.hub.push import push_checkpoint

    repo_id = hub_server.repo_id("comparison")
    push_checkpoint(tmp_path / "run", repo_id)
    card = ModelCard.load(repo_id).text
    assert "program `comparison-64`" in card and "program_prompt('comparison', 64, ...)" in card
    model, tokenizer = AutoModelForCausalLM.from_pretrained(repo_id), AutoTokenizer.from_pretrained(repo_id)
    prompt = tokenizer(program_prompt("comparison", 64, 40, 33), return_tensors="pt")
    text = tokenizer.decode(model.generate(**prompt, max_new_tokens=20, do_sample=False)[0])
    assert text.split("=")[-1].split()[0] == "1"  # 40 > 33


@pytest.mark.slow
def test_builder_cli_saves_certifies_and_pushes_to_the_local_hub(tmp_path, capsys, hub_server):
    import sys

    from datasets import load_dataset, load_from_disk
    from huggingface_hub import DatasetCard

    sys.path.insert(0, str(REPO_ROOT / "dataset_scripts"))
    import build_program

    repo_id = hub_server.repo_id("program-tm")
    argv = [
        "--program",
        "tm-double",
        "--size",
        "6",
        "--train-size",
        "30",
        "--validation-size",
        "4",
        "--test-size",
        "6",
        "--certify",
        "6",
        "--out",
        str(tmp_path / "tm"),
        "--push-to-hub",
        repo_id,
    ]
    assert build_program.main(argv) == 0
    out = capsys.readouterr().out
    assert "certificate: 100.00% of 6 test examples generated token for token" in out and "proved: every one" in out
    saved = load_from_disk(str(tmp_path / "tm"))
    card_text = (tmp_path / "tm" / "README.md").read_text()
    assert "100.00% of 6 held-out examples generated token for token" in card_text
    assert "**Proof** (every step" in card_text and "proved: every one of the" in card_text
    pushed = load_dataset(repo_id)
    assert pushed["test"]["text"] == saved["test"]["text"]
    card = DatasetCard.load(repo_id, repo_type="dataset")
    assert "dataset_info" in card.data.to_dict() and "chain of thought (length complexity)" in card.text
    assert build_program.main([*argv[:-2]]) == 2  # --out exists now
    assert "not empty" in capsys.readouterr().err


def test_wiring_of_the_certificate_is_its_reads_and_a_random_model_is_far_from_it():
    from hf_linear import LinearLMConfig, LinearLMForCausalLM
    from hf_linear.analysis.wiring import influence_map, wiring_agreement

    program = compile_program("multiplication", 16)
    certificate = certificate_model(program)
    assert wiring_agreement(certificate, program)["mean_share_on_compiled_reads"] == pytest.approx(1.0)
    every_input = torch.from_numpy(program.run([np.repeat(np.arange(16), 16), np.tile(np.arange(16), 16)])).long()
    influence = influence_map(certificate, program, every_input)
    varies = {j for j in range(program.length) if len(every_input[:, j].unique()) > 1}
    for position, step in program.steps.items():  # exactly on the reads whose tokens vary in the data
        if len(step.outputs) > 1:
            assert set(influence[position].nonzero().flatten().tolist()) == set(step.reads) & varies
    random_model = LinearLMForCausalLM(
        LinearLMConfig(vocab_size=len(program.vocabulary), context_length=program.length, hidden_size=8)
    )
    assert wiring_agreement(random_model, program)["mean_share_on_compiled_reads"] < 0.3


USER_PROGRAM = Path(__file__).with_name("user_program.py")  # max(a, b): a program of a user's own


def test_a_users_own_program_compiles_certifies_and_trains_from_a_config(tmp_path, monkeypatch):
    (tmp_path / "my_programs.py").write_text(USER_PROGRAM.read_text())
    monkeypatch.syspath_prepend(str(tmp_path))
    trusted = {"trust_program_code": True}  # a "module:function" name is code to import: the user opts in
    program = compile_program("my_programs:maximum", 64, **trusted)
    for a, b in [(5, 9), (63, 0), (17, 17), (40, 33)]:
        assert int("".join(program.tokens(a, b)[program.answer_start :][::-1]), 2) == max(a, b)
    dataset = build_program_dataset("my_programs:maximum", 64, train_size=0, validation_size=5, test_size=20, **trusted)
    assert certify(program, dataset["test"])["exact_match"] == 1.0
    assert prove(program).proved  # every step, every input
    assert "the program `my_programs:maximum`" in render_dataset_card(dataset, **trusted)
    for bad, message in [
        ("my_programs:nothing", "cannot import"),
        ("nope", "nor 'module:function'"),
        ("json:dumps", "not a compiled Program"),
    ]:
        with pytest.raises(ValueError, match=message):
            compile_program(bad, 64, **trusted)

    from hf_linear.training.train import main

    config = {
        "model": {"type": "linear_lm", "hidden_size": 4, "context_length": program.length + 1},
        "dataset": {
            "program": {
                "program": "my_programs:maximum",
                "size": 64,
                "train_size": 64,
                "validation_size": 4,
                "test_size": 4,
            }
        },
        "training": {"output_dir": str(tmp_path / "run"), "max_steps": 2, "report_to": "none"},
        "evaluation": {"num_samples": 4},
    }
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    assert main([str(tmp_path / "config.yaml"), "--trust-program-code"]) == 0
    assert (tmp_path / "run" / "model.safetensors").is_file()
