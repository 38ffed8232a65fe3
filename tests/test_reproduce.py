"""`hf-linear reproduce`: studies run, reports published, RESULTS.md's generated section rebuilt from
reports/ by claim."""

from __future__ import annotations

import json
import shutil

import pytest
import yaml
from helpers import tiny_study

from hf_linear.studies import reproduce as reproduce_module
from hf_linear.studies.claims import (
    SeedRun,
    claims_formats,
    claims_length_complexity,
    claims_one_hour,
    claims_parity,
    claims_scaling,
    claims_seeds,
    power_law_fit,
    results_section,
    seed_groups_of,
    tokens_to_per_digit,
)
from hf_linear.studies.evidence import RUN, STUDY, Evidence
from hf_linear.studies.reproduce import BEGIN, END, reproduce

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def layout(tmp_path):
    studies = tmp_path / "studies"
    studies.mkdir()
    # the studies' tiny study, its grid only (two runs: LinearLM, MLPLM)
    (studies / "tiny.yaml").write_text(yaml.safe_dump(tiny_study(runs=[]), sort_keys=False))
    results = tmp_path / "RESULTS.md"
    results.write_text(f"# Results\n\nhand-written intro\n\n{BEGIN}\nold table\n{END}\n\nhand-written notes\n")
    return studies, tmp_path / "reports", results, tmp_path / "runs"


@pytest.mark.slow  # trains a tiny study
def test_reproduce_runs_publishes_and_regenerates(layout, monkeypatch):
    studies, reports, results, runs = layout
    (published,) = reproduce(studies, reports, results, runs_dir=runs)
    assert published == reports / "tiny"
    report = (published / "REPORT.md").read_text()
    assert "# Study: tiny" in report and "Where the chain breaks" in report
    assert all(
        (published / "plots" / name).read_bytes()[:8] == PNG_SIGNATURE
        for name in ("curves_tokens.png", "inspect_best.png")
    )
    # every number traceable: the run files are published, the weights are not
    for run in ("type-linear_lm", "type-mlp_lm"):
        assert json.loads((published / "runs" / run / "eval_results.json").read_text())["num_samples"] == 16
        assert (published / "runs" / run / "training_config.yaml").is_file()
        assert (published / "runs" / run / "segment_accuracy.json").is_file()
        assert (published / "configs" / f"{run}.yaml").is_file()
    assert not list(published.rglob("*.safetensors"))
    assert len((published / "results.jsonl").read_text().splitlines()) == 2

    text = results.read_text()
    assert text.startswith("# Results\n\nhand-written intro\n\n" + BEGIN) and text.endswith(
        END + "\n\nhand-written notes\n"
    )
    # a study without claims of its own: one row per run, linked to its report, and its training time
    assert "old table" not in text and "(reports/tiny/REPORT.md)" in text
    assert "| type-linear_lm: `linear_lm`" in text and "| type-mlp_lm: `mlp_lm`" in text
    assert (
        "Training study `tiny` (2 runs)" in text
        and "`hf-linear reproduce`: the shipped studies published so far (1 of 1)" in text
    )

    # a second call trains nothing (finished runs are skipped) and writes the same section
    outcomes, real_run_study = [], reproduce_module.run_study
    monkeypatch.setattr(
        reproduce_module, "run_study", lambda *a, **k: outcomes.append(real_run_study(*a, **k)) or outcomes[-1]
    )
    before = results.read_text()
    reproduce(studies, reports, results, runs_dir=runs)
    assert outcomes == [{"type-linear_lm": "skipped", "type-mlp_lm": "skipped"}]
    assert results.read_text() == before

    # --only runs the studies named; the section lists what reports/ holds, not what runs/ does
    (studies / "zzz.yaml").write_text((studies / "tiny.yaml").read_text().replace("name: tiny", "name: zzz"))
    shutil.copytree(runs / "tiny", runs / "zzz")
    outcomes.clear()
    assert reproduce(studies, reports, results, only=["tiny"], runs_dir=runs) == [reports / "tiny"]
    assert len(outcomes) == 1 and not (reports / "zzz").exists()
    # the same rows; only the count of shipped studies grew (zzz is shipped, not yet published)
    before = before.replace("published so far (1 of 1)", "published so far (1 of 2)")
    assert results.read_text() == before

    # a fresh clone: no runs/, only reports/; --report-only trains nothing and rebuilds the same page
    shutil.rmtree(runs)
    results.write_text(before.replace("| type-linear_lm:", "| edited by hand:"))
    assert reproduce(studies, reports, results, report_only=True) == []
    assert results.read_text() == before and not runs.exists()


def test_markers_are_checked_before_any_training(layout):
    studies, reports, results, runs = layout
    results.write_text("# Results without markers\n")
    with pytest.raises(ValueError, match="marker"):
        reproduce(studies, reports, results, runs_dir=runs)
    assert not runs.exists() and results.read_text() == "# Results without markers\n"


def test_unknown_study_name(layout):
    studies, reports, results, runs = layout
    with pytest.raises(ValueError, match="no study nope"):
        reproduce(studies, reports, results, only=["nope"], runs_dir=runs)


def test_power_law_fit_and_extrapolation():
    c, p = power_law_fit([10, 100, 1000], [3 * 10**-0.5, 3 * 100**-0.5, 3 * 1000**-0.5])
    assert (c, p) == (pytest.approx(3.0), pytest.approx(-0.5))
    # per-digit error 2 * tokens^-0.5: the error reaches 0.002 at tokens = (2 / 0.002)^2 = 1e6
    curve = [{"tokens": t, "per_digit_accuracy": 1 - 2 * t**-0.5} for t in (100, 400, 1600, 6400, 25600, 102400)]
    tokens, exponent = tokens_to_per_digit(curve, 0.998)
    assert tokens == pytest.approx(1e6, rel=1e-6) and exponent == pytest.approx(-0.5)
    assert tokens_to_per_digit([{"tokens": t, "per_digit_accuracy": 0.2} for t in (1, 2, 3, 4, 5, 6)], 0.99) is None


def record(name, model_type, cot, exact, reached_at=None, **extra):
    curve = [{"step": 1, "tokens": 1000, "exact_match": 0.0, "per_digit_accuracy": 0.5}]
    if reached_at:
        curve.append({"step": 2, "tokens": reached_at, "exact_match": 0.995, "per_digit_accuracy": 0.999})
    return {
        "name": name,
        "model_type": model_type,
        "cot": cot,
        "final": {"exact_match": exact, "per_digit_accuracy": 0.5},
        "curve": curve,
        "parameters": 3_400_000,
        "tokens": 5_000_000,
        "wall_seconds": 360,
        "sequence_tokens": 80,
        **extra,
    }


def lines(rows) -> list[str]:
    """Rows of a claims table as "claim | figure" lines."""
    return [f"{claim} | {figure}" for claim, figure in rows]


def test_formats_claims_follow_the_numbers():
    failing = lines(
        claims_formats(
            {
                "p": record("p", "mlp_lm", "paper", 0.0),
                "l": record("l", "mlp_lm", "lsb", 1.0, 2_000_000),
                "d": record("d", "mlp_lm", "direct", 0.0),
            }
        )
    )
    assert "not reproduced at this budget" in failing[0]
    assert any("| 100.0% with the 80-token `lsb` CoT, 0.0% with no CoT" in line for line in failing)
    assert "| **reproduced**" in lines(claims_formats({"p": record("p", "mlp_lm", "paper", 0.97)}))[0]


def test_parity_claims_follow_the_numbers():
    runs = {
        "a": record("a", "linear_lm", "running", 0.1, every=1, task="parity of 16 bits"),
        "b": record("b", "linear_lm", "running", 1.0, 10_000, every=16, task="parity of 16 bits"),  # k = n: no CoT
        "c": record("c", "linear_lm", "threshold", 1.0, 20_000, every=1, task="parity of 16 bits"),
    }
    assert (
        "| a LinearLM cannot learn the running-parity CoT at any k and learns the linear-threshold CoT"
        in (lines(claims_parity(runs))[-1])
    )
    runs["a"] = record("a", "linear_lm", "running", 1.0, 5_000, every=1, task="parity of 16 bits")
    assert "learned the running-parity CoT in some runs" in lines(claims_parity(runs))[-1]


def test_length_complexity_claims_pair_each_program_size_with_its_optimised_form():
    def program(name, task, cot_tokens, reached_at, exact=1.0):
        return record(
            name,
            "linear_lm",
            None,
            exact,
            reached_at,
            program=task.split("-")[0],
            size=16,
            task=task,
            cot_tokens=cot_tokens,
        )

    runs = {
        "a": program("a", "parity-16", 32, 400_000),
        "b": program("b", "parity-16-optimized", 16, 100_000),
        "c": program("c", "addition-16", 17, 300_000),
        "d": program("d", "addition-16-optimized", 9, 600_000, exact=0.98),
        "e": program("e", "comparison-16", 9, 100_000),  # no optimised run: no pair, no row
    }
    rows = lines(claims_length_complexity(runs))
    assert len(rows) == 3
    addition, parity, summary = rows
    assert addition.startswith("`addition`, 4-bit operands")  # size 16: numbers below 2^4
    assert "CoT 17 → 9 tokens" in addition and "300k → 600k (2.00× more)" in addition
    assert "held out 100.0% → 98.0%" in addition
    assert "CoT 32 → 16 tokens" in parity and "400k → 100k (4.00× fewer)" in parity
    # ratios 4.0 and 0.5: fewer tokens on one pair of two, median 2.25
    assert "fewer on 1 of 2 programs and sizes" in summary and "median 2.25, 0.50–4.00" in summary


def test_scaling_fit_falls_back_to_a_level_three_sizes_reached():
    runs = {}
    for n, length in ((2, 27), (3, 50), (4, 80)):
        tokens = 1000 * length**2  # tokens to 90% grow as L^2
        r = record(f"n-{n}", "mlp_lm", "lsb", 0.95, task=f"{n}x{n}-digit multiplication", sequence_tokens=length)
        r["curve"] = [{"step": 1, "tokens": tokens, "exact_match": 0.92}]
        runs[r["name"]] = r
    first, fit = lines(claims_scaling(runs))
    assert "| none; not reached within the budget: 2x2" in first
    assert "reached 90% validation (2x2, 3x3, 4x4)" in fit and "L^2.00" in fit
    assert f"{1000 * 307**2 / 1e6:.3g}M tokens" in fit


def test_one_hour_claims_follow_the_numbers():
    eight = record("lsb-8x8", "mlp_lm", "lsb", 0.992, 40_000_000, task="8x8-digit multiplication", steps=11_000)
    eight["curve"].insert(1, {"step": 2, "tokens": 20_000_000, "exact_match": 0.6, "per_digit_accuracy": 0.95})
    eight["final"]["num_samples"] = 1000
    paper = record("paper-4x4", "mlp_lm", "paper", 0.0)
    # per-digit error 0.5 * (tokens / 1e6)^-0.5 over six evaluations: 96.9% exact over 8 digits needs
    # 1 - 0.969^(1/8) = 0.394% error, at tokens = 1e6 * (0.5 / 0.00394)^2
    paper["curve"] = [
        {"tokens": t, "per_digit_accuracy": 1 - 0.5 * (t / 1e6) ** -0.5} for t in (1e6, 2e6, 4e6, 8e6, 16e6, 32e6)
    ]
    found = lines(claims_one_hour({"lsb-8x8": eight, "paper-4x4": paper}))
    assert found[0].startswith("8x8 with `lsb` in 6.0 min (target ≥ 99% held out) | **met**: 99.2% of 1,000 exact")
    assert "after 11,000 steps" in found[0]
    assert "50% after 20M tokens, 90% after 40M tokens, 99% after 40M tokens" in found[0]
    assert "not reproduced at this budget" in found[1]
    needed = 1e6 * (0.5 / (1 - 0.969 ** (1 / 8))) ** 2
    assert f"**{needed / 1e9:.3g}B tokens**" in found[2]
    # at the run's 5M tokens / 360 s
    assert f"~{needed / (5e6 / 360) / 3600:,.0f} hours at this run's" in found[2]
    eight["final"]["exact_match"] = 0.9
    assert "| **not met**: 90.0% of 1,000 exact" in lines(claims_one_hour({"lsb-8x8": eight}))[0]


def test_seed_claims_need_every_seed():
    seeds = [
        SeedRun(i, record(f"seed-{i}", "mlp_lm", "lsb", exact, 4_000_000, wall_seconds=seconds))
        for i, (exact, seconds) in enumerate([(1.0, 150), (0.995, 168), (0.99, 159)])
    ]
    for run in seeds:
        run.record["final"]["num_samples"] = 1000
    (line,) = lines(claims_seeds("The main job's recipe", seeds))
    assert line.startswith("The main job's recipe over seeds: ≥ 99% held out on every seed within 5M training tokens |")
    assert "**met** on 3 of 3 seeds" in line
    assert "seed 1: 99.5% of 1,000 (99% validation after 4M)" in line and "2.5–2.8 min" in line
    # three seeds: their IQM is their mean, 99.5%; a resample of three 99.0% comes 1 time in 27,
    # more often than the 2.5% tail, so the interval's ends are the lowest and highest seed
    assert "IQM 99.5%, 95% bootstrap interval [99.0%, 100.0%]" in line
    seeds[2].record["final"]["exact_match"] = 0.98
    assert "**not met** on 2 of 3 seeds" in lines(claims_seeds("The main job's recipe", seeds))[0]
    assert claims_seeds("The main job's recipe", []) == []


def test_a_study_over_seeds_is_recognised_in_either_form():
    seed_run = record("seed-1", "mlp_lm", "lsb", 1.0, varied={"seed": "1"})
    # a grid of training seeds (main_job_seeds), labels setting the training and data seeds
    # (program_mul10000_seeds), `seeds:` (runs NAME@seedS)
    spec = {"axes": {"training.seed": [0, 3]}}
    axis_run = record("training.seed-3", "mlp_lm", "lsb", 1.0, varied={"training.seed": "3"})
    assert seed_groups_of(spec, {"r": axis_run}) == {"training.seed": [SeedRun(3, axis_run)]}
    spec = {"axes": {"seed": {"1": {"training.seed": 7, "dataset.program_stream.seed": 7}}, "x": [1]}}
    assert seed_groups_of(spec, {"r": seed_run}) == {}  # a second axis: not seeds alone
    del spec["axes"]["x"]
    spec["axes"]["seed"]["2"] = {"training.seed": 2}
    assert seed_groups_of(spec, {"r": seed_run}) == {"seed": [SeedRun(7, seed_run)]}
    # an axis setting more than seeds (mul8x8_seed1's: steps with the seed) is a grid of recipes
    spec["axes"]["seed"]["2"]["training.max_steps"] = 10
    assert seed_groups_of(spec, {"r": seed_run}) == {}
    seeded = record("run@seed4", "mlp_lm", "lsb", 1.0, varied={"seed": "4"})
    assert seed_groups_of({"seeds": [4, 5]}, {"run@seed4": seeded}) == {"run": [SeedRun(4, seeded)]}
    assert seed_groups_of({"runs": [{"name": "run", "seeds": [4, 5]}]}, {"run@seed4": seeded}) == {
        "run": [SeedRun(4, seeded)]
    }
    assert seed_groups_of({"seeds": [4]}, {"run@seed4": seeded}) == {}  # one seed: nothing over seeds


def program_record(name, exact, tokens, minutes, **extra):
    found = record(name, "linear_lm", None, exact, tokens - 1_000_000, **extra)
    found.update(
        program="multiplication",
        task="multiplication-10000",
        sequence_tokens=661,
        parameters=14_050_000,
        steps=tokens // 42_368,
        tokens=tokens,
        wall_seconds=60 * minutes,
    )
    found["final"]["num_samples"] = 1000
    return found


def seeds_and_published_run(tmp_path, run_config):
    """A study of the base config below on seeds [1, 2], and a published run trained with `run_config`."""
    base = {
        "model": {"type": "linear_lm", "hidden_size": 8},
        "dataset": {"program_stream": {"program": "multiplication", "size": 10000, "seed": 0}},
        "training": {"output_dir": "runs/program-mul-linear", "learning_rate": 0.01, "max_steps": 4000, "seed": 0},
    }
    spec = {"name": "mul_seeds", "seeds": [1, 2], "base": base}
    records = {
        f"run@seed{seed}": program_record(f"run@seed{seed}", exact, 106_000_000, minutes, varied={"seed": str(seed)})
        for seed, exact, minutes in [(1, 0.996, 18.6), (2, 0.997, 9.8)]
    }
    study = Evidence(STUDY, "mul_seeds", tmp_path / "mul_seeds", records, spec)
    run_dir = tmp_path / "runs" / "program-mul-linear"
    run_dir.mkdir(parents=True)
    (run_dir / "training_config.yaml").write_text(yaml.safe_dump(run_config(yaml.safe_load(yaml.safe_dump(base)))))
    run = Evidence(
        RUN, "program-mul-linear", run_dir, {"r": program_record("program-mul-linear", 1.0, 169_000_000, 24.9)}
    )
    return study, run


def seed_row(published, tmp_path) -> tuple[str, str]:
    """The row over seeds in RESULTS.md's section of `published`, and the heading of its section."""
    section = results_section(published, tmp_path, tmp_path, set())
    heading = ""
    for line in section.splitlines():
        heading = line if line.startswith("## ") else heading
        if "over seeds" in line:
            return line, heading
    raise AssertionError(f"no row over seeds in:\n{section}")


def test_a_published_run_of_the_base_config_is_one_more_seed(tmp_path):
    def elsewhere(config):  # trained from another folder and evaluated otherwise: still the base's run
        config["training"]["output_dir"] = "/data/runs/program-mul-linear"
        config["evaluation"] = {"num_samples": 1000}
        return config

    study, run = seeds_and_published_run(tmp_path, elsewhere)
    line, heading = seed_row([study, run], tmp_path)
    assert heading == "## Universality: a linear predictor learns compiled programs"
    assert "on the compiled `multiplication-10000` program (661 tokens per example) over seeds" in line
    assert "within 169M training tokens" in line
    assert (
        "**met** on 3 of 3 seeds: seed 0: 100.0% of 1,000 (published run; 99% validation after 168M), "
        "seed 1: 99.6% of 1,000 (99% validation after 105M), seed 2: 99.7% of 1,000" in line
    )
    assert "IQM 99.8%" in line  # (100.0 + 99.6 + 99.7) / 3
    assert "106M–169M training tokens and 9.8–24.9 min of training each" in line
    assert "[mul_seeds](mul_seeds/REPORT.md); [program-mul-linear](runs/program-mul-linear/README.md)" in line
    # the seed row stands for the study's runs; the published run keeps its own row too
    section = results_section([study, run], tmp_path, tmp_path, set())
    assert "run@seed1:" not in section and "| `linear_lm` (14.05M parameters) on the compiled" in section

    study.records["run@seed2"]["final"]["exact_match"] = 0.95
    line, _ = seed_row([study, run], tmp_path)
    assert "**not met** on 2 of 3 seeds" in line and "seed 2: 95.0% of 1,000" in line


@pytest.mark.parametrize(
    "change",
    [
        lambda c: c["training"].update(output_dir="runs/program-mul-mlp"),  # another config's run
        lambda c: c["training"].update(learning_rate=0.02),  # another recipe
        lambda c: c["model"].update(hidden_size=16),
        lambda c: c["dataset"]["program_stream"].update(size=1000),
        lambda c: c["training"].update(seed=1),  # a seed the study trained itself
    ],
)
def test_a_published_run_of_another_recipe_or_seed_is_not_counted(tmp_path, change):
    study, run = seeds_and_published_run(tmp_path, lambda config: change(config) or config)
    line, _ = seed_row([study, run], tmp_path)
    assert "**met** on 2 of 2 seeds: seed 1: 99.6% of 1,000" in line
    assert "published run" not in line and "IQM" not in line
    assert "[program-mul-linear]" not in line


def test_a_published_run_with_the_data_seeded_otherwise_is_one_more_seed(tmp_path):
    def seed_three(config):  # seeds of weights and of the generated data alike are what vary
        config["training"]["seed"] = 3
        config["dataset"]["program_stream"]["seed"] = 3
        return config

    study, run = seeds_and_published_run(tmp_path, seed_three)
    line, _ = seed_row([study, run], tmp_path)
    assert "**met** on 3 of 3 seeds" in line and line.index("seed 2: 99.7%") < line.index("seed 3: 100.0%")


def test_a_study_over_seeds_of_arithmetic_is_a_recipe(tmp_path):
    records = {
        f"training.seed-{seed}": record(
            f"training.seed-{seed}",
            "mlp_lm",
            "lsb",
            1.0,
            task="8x8-digit multiplication",
            varied={"training.seed": str(seed)},
        )
        for seed in (0, 1, 2)
    }
    study = Evidence(STUDY, "mul8x8_seeds", tmp_path, records, {"axes": {"training.seed": [0, 1, 2]}})
    line, heading = seed_row([study], tmp_path)
    assert heading == "## Recipes and robustness" and "**met** on 3 of 3 seeds" in line
