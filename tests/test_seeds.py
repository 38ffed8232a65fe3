"""Seeds as an axis: `seeds:` in study files (runs NAME@seedS), and the report's share of seeds
reaching the target with the interquartile mean and its bootstrap interval (rliable's convention)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml
from helpers import tiny_study
from scipy.stats import trim_mean

from hf_linear.studies.seed_statistics import bootstrap_interval, interquartile_mean
from hf_linear.studies.study import Study, run_study


def write_study(tmp_path, spec):
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def plain_iqm(values) -> float:
    """The middle 50%'s mean, written out: floor(n/4) cut from each end of the sorted values."""
    ordered, cut = sorted(values), len(values) // 4
    middle = ordered[cut : len(values) - cut]
    return sum(middle) / len(middle)


def plain_interval(values, reps=50_000, seed=0):
    """The percentile bootstrap written out: resample the seeds (the same generator draws), the
    plain IQM of each resample, the 2.5th and 97.5th percentiles."""
    picks = np.random.default_rng(seed).integers(0, len(values), size=(reps, len(values)))
    means = [plain_iqm([values[i] for i in row]) for row in picks.tolist()]
    return tuple(np.percentile(means, [2.5, 97.5]))


def test_every_run_runs_once_per_seed_with_its_data_seeded(tmp_path):
    spec = tiny_study(seeds=[0, 3])
    spec["runs"].append(
        {
            "name": "stream",
            "set": {
                "dataset.arithmetic": None,
                "dataset.arithmetic_stream": {"task": "multiplication", "digits": [2, 2], "cot": "lsb", "seed": 9},
            },
        }
    )
    study = Study.load(write_study(tmp_path, spec))
    names = [run.name for run in study.runs]
    assert names == [
        f"{name}@seed{seed}" for name in ("type-linear_lm", "type-mlp_lm", "nocot", "stream") for seed in (0, 3)
    ]
    for run in study.runs:
        seed = int(run.name.rsplit("@seed", 1)[1])
        assert run.varied["seed"] == str(seed) and run.config["training"]["seed"] == seed
        (source,) = run.config["dataset"].values()
        assert source["seed"] == seed
    assert study.select("nocot@*") == study.runs[4:6]


@pytest.mark.parametrize("seeds", [[], [1, 1], [0, -1], "0,1", [True, 2]])
def test_bad_seeds_are_named(tmp_path, seeds):
    with pytest.raises(ValueError, match="seeds must be a list of distinct non-negative integers"):
        Study.load(write_study(tmp_path, tiny_study(seeds=seeds)))


def test_iqm_and_interval_against_scipy():
    values = [0.2, 0.9, 0.5, 1.0, 0.0, 0.7, 0.95, 0.3]
    assert interquartile_mean(values) == pytest.approx(trim_mean(values, 0.25)) == pytest.approx(plain_iqm(values))
    for n in range(1, 10):  # the written-out IQM is scipy's (rliable's) at every size
        sample = np.random.default_rng(n).random(n).tolist()
        assert plain_iqm(sample) == pytest.approx(trim_mean(sample, 0.25))
    assert interquartile_mean([0.2, 0.9, 0.5, 1.0]) == pytest.approx(0.7)  # the middle two of four
    assert interquartile_mean([0.0, 1.0]) == 0.5  # two or three seeds: the plain mean
    assert bootstrap_interval(values) == pytest.approx(plain_interval(values))
    assert bootstrap_interval([0.4, 1.0, 1.0]) == pytest.approx(plain_interval([0.4, 1.0, 1.0]))
    assert bootstrap_interval([0.8, 0.8]) == (0.8, 0.8)
    assert bootstrap_interval(values) == bootstrap_interval(values)  # a fixed generator: the same report


@pytest.mark.slow  # ~20 s: two short runs and a report
def test_a_tiny_study_on_two_seeds_reports_iqm_and_interval(tmp_path):
    spec = tiny_study(seeds=[0, 1], axes={}, runs=None)
    spec["base"]["training"].update(learning_rate=3e-2, max_steps=12, save_strategy="no")
    spec["report"] = {"target": 0.1, "segments": False}
    study_dir = tmp_path / "out"
    run_study(Study.load(write_study(tmp_path, spec)), study_dir)
    records = [json.loads(line) for line in (study_dir / "results.jsonl").read_text().splitlines()]
    assert [r["name"] for r in records] == ["run@seed0", "run@seed1"]
    scores = [r["final"]["exact_match"] for r in records]

    low, high = plain_interval(scores)
    reaching = sum(score >= 0.1 for score in scores)
    row = (
        f"| run | 0, 1 | {reaching} of 2 | {100 * trim_mean(scores, 0.25):.1f}% | [{100 * low:.1f}%, {100 * high:.1f}%] "
        f"| {100 * scores[0]:.1f}% / {100 * scores[1]:.1f}% |"
    )
    report = (study_dir / "REPORT.md").read_text()
    assert "## Over seeds" in report and row in report, (row, report)


def run_search(tmp_path, name, **extra) -> list[dict]:
    """One trial of the tiny search at its start_with recipe, by validation loss, no pruning; its trials.jsonl."""
    from helpers import tiny_search

    from hf_linear.studies.tune.cli import main as tune_main

    spec = tiny_search(trials=1, pruner="none", objective="eval_loss", **extra)  # (exact match: 0 after 6 steps)
    spec["base"]["training"]["learning_rate"] = 2e-2
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    assert tune_main([str(path), "--out", str(tmp_path / name)]) == 0
    return [json.loads(line) for line in (tmp_path / name / "trials.jsonl").read_text().splitlines()]


@pytest.mark.slow  # three tiny searches
def test_a_search_trial_on_two_seeds_scores_the_mean_of_the_seeds(tmp_path):
    """Its seeds' objectives are those of the same trial searched on each seed alone (training and
    data seeds set in the base), and its objective their mean."""
    pytest.importorskip("optuna", reason="hf-linear tune needs optuna: pip install -e '.[engines]'")
    (both,) = run_search(tmp_path, "both", seeds=[0, 1])
    (zero,) = run_search(tmp_path, "zero")
    (one,) = run_search(tmp_path, "one", set={"training.seed": 1, "dataset.arithmetic.seed": 1})
    assert both["state"] == "complete" and both["params"] == zero["params"] == one["params"]
    assert both["seed_objectives"] == [zero["objective"], one["objective"]]
    assert zero["objective"] != one["objective"]  # the seeds differ, so the check can fail
    assert both["objective"] == pytest.approx((zero["objective"] + one["objective"]) / 2)
    assert both["curve"] == zero["curve"]  # the pruner saw the first seed
    assert "each trial trains once per seed (0, 1)" in (tmp_path / "both" / "REPORT.md").read_text()


def test_a_group_of_runs_has_seeds_of_its_own(tmp_path):
    spec = tiny_study()  # the grid: no seeds; the group "nocot": two; a group with seeds: null beside study seeds
    spec["runs"][0]["seeds"] = [1, 2]
    names = [run.name for run in Study.load(write_study(tmp_path, spec)).runs]
    assert names == ["type-linear_lm", "type-mlp_lm", "nocot@seed1", "nocot@seed2"]
    seeded = Study.load(write_study(tmp_path, spec)).runs[2:]
    assert [run.config["training"]["seed"] for run in seeded] == [1, 2]
    assert [run.config["dataset"]["arithmetic"]["seed"] for run in seeded] == [1, 2]
    spec = tiny_study(seeds=[0, 5])
    spec["runs"][0]["seeds"] = None
    names = [run.name for run in Study.load(write_study(tmp_path, spec)).runs]
    assert names == ["type-linear_lm@seed0", "type-linear_lm@seed5", "type-mlp_lm@seed0", "type-mlp_lm@seed5", "nocot"]
    spec["runs"][0]["seeds"] = [1, 1]
    with pytest.raises(ValueError, match="distinct non-negative integers"):
        Study.load(write_study(tmp_path, spec))
