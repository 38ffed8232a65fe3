"""Training from a YAML config with Trainer, resume, 2 processes, evaluation and the metric."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from helpers import losses, tiny_config, write_config
from transformers import AutoModelForCausalLM

from hf_linear.analysis.dead_units import dead_positions
from hf_linear.evaluation.exact_match import load_metric
from hf_linear.training.config import check_config, load_config
from hf_linear.training.train import train

REPO_ROOT = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------------------------------------
# config parsing


@pytest.mark.parametrize(
    "section,key,value,message",
    [
        ("training", "learning_rat", 0.1, r"training: unknown key\(s\) learning_rat"),
        ("training", "learning_rate", "fast", r"training.learning_rate' expected float, got str"),
        ("training", "max_steps", 2.5, r"training.max_steps' expected int"),
        ("training", "bf16", "yes", r"training.bf16' expected bool"),
        ("training", "lr_scheduler_type", "wiggly", r"training.lr_scheduler_type must be one of"),
        ("model", "hidden_sise", 8, r"model: unknown key\(s\) hidden_sise"),
        ("model", "hidden_size", "big", r"model.hidden_size' expected int"),
        ("model", "type", "transformer", r"model.type must be a model type AutoConfig knows"),
        ("evaluation", "num_sample", 3, r"evaluation: unknown key\(s\) num_sample"),
        ("evaluation", "batch_size", 0, r"evaluation.batch_size must be >= 1"),
        ("dataset", "hubb", "x/y", r"dataset: unknown key\(s\) hubb"),
    ],
)
def test_config_errors_name_the_key(tmp_path, section, key, value, message):
    config = tiny_config(tmp_path / "out")
    config[section][key] = value
    with pytest.raises(ValueError, match=message):
        load_config(write_config(tmp_path, config))


def test_config_structure_errors(tmp_path):
    config = tiny_config(tmp_path / "out")
    config["dataset"]["arithmetic"]["digitz"] = 3
    with pytest.raises(ValueError, match=r"dataset.arithmetic: unknown key\(s\) digitz"):
        check_config(config)
    with pytest.raises(ValueError, match="give exactly one of"):
        check_config({**tiny_config(tmp_path), "dataset": {"path": "a", "hub": "b"}})
    with pytest.raises(ValueError, match="unknown config section"):
        check_config({**tiny_config(tmp_path), "optimiser": {}})
    with pytest.raises(ValueError, match="training.output_dir is required"):
        check_config({**tiny_config(tmp_path), "training": {"max_steps": 3}})
    with pytest.raises(ValueError, match="does not exist"):
        load_config(tmp_path / "missing.yaml")
    (tmp_path / "bad.yaml").write_text("model: [unclosed")
    with pytest.raises(ValueError, match="not valid YAML"):
        load_config(tmp_path / "bad.yaml")


def test_overrides_are_typed_and_checked(tmp_path):
    path = write_config(tmp_path, tiny_config(tmp_path / "out"))
    config = load_config(path, ["--training.learning_rate", "1e-3", "--model.hidden_size", "16"])
    assert config.training["learning_rate"] == 1e-3 and config.model["hidden_size"] == 16
    with pytest.raises(ValueError, match="must look like --section.key"):
        load_config(path, ["--learning_rate", "1e-3"])
    with pytest.raises(ValueError, match="come in pairs"):
        load_config(path, ["--training.learning_rate"])


@pytest.mark.slow
def test_cli_reports_config_errors_without_a_traceback(tmp_path):
    config = tiny_config(tmp_path / "out")
    config["training"]["warmup_stepz"] = 3
    result = subprocess.run(
        [sys.executable, "-m", "hf_linear.cli", "train", str(write_config(tmp_path, config))],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert "warmup_stepz" in result.stderr and "Traceback" not in result.stderr


def test_shipped_configs_parse():
    """Every training config (the study configs under configs/studies/ are checked by
    tests/test_studies.py: they are grids of training configs; configs/tune/ holds search files)."""
    paths = [p for p in sorted((REPO_ROOT / "configs").rglob("*.yaml")) if not {"studies", "tune"} & set(p.parts)]
    assert len(paths) >= 10
    for path in paths:
        load_config(path)


# ---------------------------------------------------------------------------------------------
# training


def test_training_lowers_the_loss_and_saves_a_loadable_model(tmp_path):
    out = tmp_path / "run"
    report = train(check_config(tiny_config(out)))
    history = losses(out)
    first, last = [history[s] for s in sorted(history)[:3]], [history[s] for s in sorted(history)[-3:]]
    assert sum(last) < 0.7 * sum(first), history
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(out)
    tokenizer = AutoTokenizer.from_pretrained(out)
    from hf_linear.data.arithmetic import sequence_length

    # vocabulary, special tokens and window default to the data's: one whole example + [EOS]
    assert model.config.context_length == sequence_length("multiplication", [2, 2], "lsb") + 1
    assert model.config.vocab_size == len(tokenizer) and model.config.eos_token_id == tokenizer.eos_token_id
    saved = json.loads((out / "eval_results.json").read_text())
    assert saved["num_samples"] == 40 and 0.0 <= saved["exact_match"] <= 1.0
    assert saved["exact_match"] == report["exact_match"] and len(saved["examples"]) == 2
    assert yaml.safe_load((out / "training_config.yaml").read_text())["model"]["hidden_size"] == 8


@pytest.mark.slow
def test_same_seed_same_losses(tmp_path):
    train(check_config(tiny_config(tmp_path / "a", max_steps=8)))
    train(check_config(tiny_config(tmp_path / "b", max_steps=8)))
    assert losses(tmp_path / "a") == losses(tmp_path / "b")


@pytest.mark.slow
def test_resume_continues_the_interrupted_run_exactly(tmp_path):
    full = tmp_path / "full"
    train(check_config(tiny_config(full, max_steps=12, save_strategy="steps", save_steps=6)))
    # an interrupted run: only checkpoint-6 made it to disk
    part = tmp_path / "part"
    part.mkdir()
    shutil.copytree(full / "checkpoint-6", part / "checkpoint-6")
    # as if its first process had run for an hour: the resumed run's clock goes on from there
    state_file = part / "checkpoint-6" / "trainer_state.json"
    state = json.loads(state_file.read_text())
    stamped = [entry for entry in state["log_history"] if "wall_seconds" in entry]
    assert stamped and stamped[-1]["step"] == 6
    for entry in stamped:
        entry["wall_seconds"] += 3600.0
    state_file.write_text(json.dumps(state))
    with pytest.raises(ValueError, match="already holds files"):
        train(check_config(tiny_config(part, max_steps=12, save_strategy="steps", save_steps=6)))
    train(check_config(tiny_config(part, max_steps=12, save_strategy="steps", save_steps=6)), resume=True)
    full_losses, resumed = losses(full), losses(part)
    assert sorted(resumed) == list(range(1, 13))
    for step in range(7, 13):
        assert resumed[step] == pytest.approx(full_losses[step], rel=1e-6), step
    clock = [e["wall_seconds"] for e in json.loads((part / "trainer_state.json").read_text())["log_history"]]
    first_hour = max(entry["wall_seconds"] for entry in stamped)
    assert clock == sorted(clock) and first_hour < clock[-1] < first_hour + 600
    with pytest.raises(ValueError, match="no complete checkpoint"):
        train(check_config(tiny_config(tmp_path / "empty")), resume=True)


def test_exact_match_is_evaluated_during_training(tmp_path):
    config = tiny_config(tmp_path / "run", max_steps=4, eval_strategy="steps", eval_steps=2)
    config["evaluation"]["during_training_samples"] = 10
    train(check_config(config))
    state = json.loads((tmp_path / "run" / "trainer_state.json").read_text())
    logged = [e for e in state["log_history"] if "eval_exact_match" in e]
    assert [e["step"] for e in logged] == [2, 4]
    assert all(0 <= e["eval_per_digit_accuracy"] <= 1 for e in logged)
    # an MLPLM's dead positions, counted at each evaluation (the count dead_positions gives)
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "run")
    data = check_config(config).data_source().load()["validation"].select(range(10))
    assert logged[-1]["eval_dead_positions"] == len(dead_positions(model, torch.tensor(data["input_ids"])))


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("accelerate") is None, reason="accelerate CLI not installed")
def test_accelerate_two_processes(tmp_path):
    config = tiny_config(tmp_path / "ddp", max_steps=6, save_strategy="steps", save_steps=6)
    path = write_config(tmp_path, config)
    env = dict(os.environ, OMP_NUM_THREADS="1")
    command = [
        "accelerate",
        "launch",
        "--multi_gpu",
        "--num_processes",
        "2",
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        "-m",
        "hf_linear.training.train",
        str(path),
    ]
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-4000:]
    report = json.loads((tmp_path / "ddp" / "eval_results.json").read_text())
    assert report["training"]["world_size"] == 2  # two ranks over gloo, not one process
    state = json.loads((tmp_path / "ddp" / "trainer_state.json").read_text())
    assert state["global_step"] == 6
    assert (tmp_path / "ddp" / "model.safetensors").exists()


# ---------------------------------------------------------------------------------------------
# evaluation


def test_metric_against_hand_made_predictions():
    metric = load_metric()
    predictions = [
        "[BOS] 1 2 x 3 4 = 4 0 8 + ... = 0 4 0 8 [EOS] [PAD]",  # right
        "[BOS] 1 2 x 3 4 = 0 4 0 9 [EOS]",  # one digit wrong
        "[BOS] 1 2 x 3 4 = 0 4",  # too short
        "0 4 0 8 [EOS] = 1 1 1 1",  # no "=" before [EOS] (what follows is ignored): no answer, wrong
    ]
    references = ["0 4 0 8"] * 4
    got = metric.compute(predictions=predictions, references=references)
    assert got["exact_match"] == 0.25
    assert got["per_digit_accuracy"] == (4 + 3 + 2 + 0) / 16
    assert got["num_samples"] == 4


@pytest.mark.slow
def test_eval_cli_writes_a_report(tmp_path, capsys):
    out = tmp_path / "run"
    train(check_config(tiny_config(out, max_steps=3)))
    from hf_linear.evaluation.cli import main

    report_path = tmp_path / "report.json"
    spec = json.dumps({"task": "multiplication", "digits": [2, 2], "cot": "lsb", "train_size": 0, "test_size": 25})
    assert (
        main([str(out), "--arithmetic", spec, "--num-samples", "20", "--output", str(report_path), "--show", "3"]) == 0
    )
    report = json.loads(report_path.read_text())
    assert report["num_samples"] == 20 and len(report["examples"]) == 3
    printed = capsys.readouterr().out
    assert "exact match" in printed and "expected answer" in printed
    # re-evaluating into the run's own report keeps the training facts no evaluation can recompute
    training_facts = json.loads((out / "eval_results.json").read_text())["training"]
    assert main([str(out), "--arithmetic", spec, "--num-samples", "10"]) == 0
    rewritten = json.loads((out / "eval_results.json").read_text())
    assert rewritten["num_samples"] == 10 and rewritten["training"] == training_facts
    # the report's exact match is the metric of the shown generations' kind: re-score by hand
    for example in report["examples"]:
        from hf_linear.data.arithmetic.formats import answer_of

        assert example["correct"] == (answer_of(f"{example['prompt']} {example['completion']}") == example["answer"])


def test_streamed_training_data(tmp_path):
    """arithmetic_stream: endless on-the-fly examples (max_steps), held-out splits materialised."""
    config = tiny_config(tmp_path / "run", max_steps=5)
    config["dataset"] = {
        "arithmetic_stream": {
            "task": "multiplication",
            "digits": [2, 2],
            "cot": "direct",
            "seed": 1,
            "validation_size": 10,
            "test_size": 12,
        }
    }
    config["evaluation"]["num_samples"] = 12
    report = train(check_config(config))
    assert report["training"]["global_step"] == 5 and report["num_samples"] == 12
    with pytest.raises(ValueError, match=r"dataset.arithmetic_stream: unknown key\(s\) train_size"):
        config["dataset"]["arithmetic_stream"]["train_size"] = 10
        check_config(config)


@pytest.mark.slow
def test_time_budget_stops_training(tmp_path):
    config = tiny_config(tmp_path / "run", max_steps=100000)
    config["budget"] = {"max_minutes": 0.05}  # 3 s
    report = train(check_config(config))
    assert 0 < report["training"]["global_step"] < 100000 and report["training"]["runtime_s"] < 30
    with pytest.raises(ValueError, match="budget.max_minutes must be > 0"):
        check_config({**config, "budget": {"max_minutes": 0}})
    with pytest.raises(ValueError, match=r"budget: unknown key\(s\) minutes"):
        check_config({**config, "budget": {"minutes": 3}})


@pytest.mark.slow
def test_push_to_hub_after_training(hub_server, tmp_path):
    """training.push_to_hub: the final checkpoint goes up with code, tokenizer and a model card
    carrying the held-out exact match; no pickle is uploaded."""
    from huggingface_hub import HfApi, ModelCard
    from transformers import AutoModelForCausalLM

    repo_id = hub_server.repo_id("trained")
    out = tmp_path / "run"
    report = train(check_config(tiny_config(out, max_steps=3, push_to_hub=True, hub_model_id=repo_id)))
    files = HfApi().list_repo_files(repo_id)
    assert {"model.safetensors", "config.json", "modeling_hf_linear.py", "tokenizer.json", "README.md"} <= set(files)
    assert not any(f.endswith((".bin", ".pt", ".pth")) for f in files)
    card = ModelCard.load(repo_id)
    assert card.data.eval_results[0].metric_type == "exact_match"
    assert card.data.eval_results[0].metric_value == report["exact_match"]
    local = AutoModelForCausalLM.from_pretrained(out)
    remote = AutoModelForCausalLM.from_pretrained(repo_id)
    ids = torch.tensor([[1, 3, 4, 16, 5, 6, 17]])
    torch.testing.assert_close(remote(ids).logits, local(ids).logits, rtol=0, atol=0)
