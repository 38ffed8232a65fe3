"""`hf-linear tune`: a recipe search through Trainer.hyperparameter_search (Optuna), published
with its trials, the best trial's runnable config, plots and REPORT.md."""

from __future__ import annotations

import json

import pytest
import yaml
from helpers import tiny_search

from hf_linear.studies.tune import Search, best_of
from hf_linear.studies.tune.cli import main
from hf_linear.training.config import load_config

pytest.importorskip("optuna", reason="hf-linear tune needs optuna: pip install -e '.[engines]'")

SEARCH = tiny_search()


@pytest.mark.slow
def test_a_tiny_search_writes_its_trials_best_config_and_report(tmp_path):
    path = tmp_path / "search.yaml"
    path.write_text(yaml.safe_dump(SEARCH, sort_keys=False))
    out = tmp_path / "out"
    assert main([str(path), "--out", str(out)]) == 0

    trials = [json.loads(line) for line in (out / "trials.jsonl").read_text().splitlines()]
    assert [t["trial"] for t in trials] == [0, 1, 2] and {t["state"] for t in trials} <= {"complete", "pruned"}
    assert trials[0]["params"] == SEARCH["start_with"][0]  # before the sampler proposed anything
    for trial in trials:
        assert trial["max_steps"] == 6 and trial["tokens"] == SEARCH["budget_tokens"]  # the budget, in steps
        assert 1e-3 <= trial["params"]["training.learning_rate"] <= 3e-2 and trial["params"]["model.hidden_size"] in (
            4,
            8,
        )
        assert [step for step, _ in trial["curve"]][:2] == [3, 6][
            : len(trial["curve"])
        ]  # evaluations: what the pruner saw
    complete = [t for t in trials if t["state"] == "complete"]
    best = max(complete, key=lambda t: t["objective"])

    # the best trial's config is a runnable training config
    config = load_config(out / "best_config.yaml")
    assert config.training["learning_rate"] == best["params"]["training.learning_rate"]
    assert config.model["hidden_size"] == best["params"]["model.hidden_size"]
    assert config.training["max_steps"] == 6 and config.training["output_dir"] == str(out / "best")

    report = (out / "REPORT.md").read_text()
    assert f"**Best: trial {best['trial']}**" in report and "best_config.yaml" in report
    for name in (
        "objective_per_trial.png",
        "curves.png",
        "slice_training_learning_rate.png",
        "slice_model_hidden_size.png",
    ):
        assert (out / "plots" / name).read_bytes()[:4] == b"\x89PNG" and f"plots/{name}" in report


def test_search_file_mistakes_are_named(tmp_path):
    path = tmp_path / "search.yaml"
    for change, message in (
        ({"space": {"dataset.arithmetic.cot": {"type": "categorical", "choices": ["lsb"]}}}, "only training"),
        ({"objective": "accuracy"}, "objective must be one of"),
        ({"budget_tokens": 0}, "budget_tokens must be a positive integer"),
        ({"space": {"training.learning_rate": {"type": "float", "low": 1e-3}}}, "needs high"),
        ({"start_with": [{"training.weight_decay": 0.1}]}, "not a parameter of `space`"),
        ({"start_with": [{"training.learning_rate": 0.5}]}, "outside the space"),
        ({"start_with": [{"model.hidden_size": 6}]}, "outside the space"),
        ({"start_with": {"training.learning_rate": 0.01}}, "give a list"),
    ):
        path.write_text(yaml.safe_dump({**SEARCH, **change}))
        with pytest.raises(ValueError, match=message):
            Search.load(path)


def test_the_best_of_equal_trials_is_the_one_that_got_there_sooner():
    def record(trial, objective, curve, state="complete"):
        return {"trial": trial, "state": state, "objective": objective, "curve": list(enumerate(curve))}

    records = [
        record(0, 1.0, [0.1, 0.8, 1.0]),
        record(1, 1.0, [0.3, 0.9, 1.0]),
        record(2, 0.9, [0.9, 0.9, 0.9]),
        record(3, None, [0.95], "pruned"),
    ]
    assert best_of(records, "exact_match")["trial"] == 1
    losses = [record(0, 0.5, [2.0, 1.0, 0.5]), record(1, 0.5, [3.0, 1.0, 0.5]), record(2, 0.7, [0.7])]
    assert best_of(losses, "eval_loss")["trial"] == 0  # minimised: lower losses on the way
    with pytest.raises(ValueError, match="no trial completed"):
        best_of([record(3, None, [0.95], "pruned")], "exact_match")
