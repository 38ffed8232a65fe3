"""Studies: a grid of runs from one YAML, resumable, with results.jsonl and REPORT.md."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml
from helpers import tiny_study
from transformers import TrainerCallback

from hf_linear.studies import study as study_module
from hf_linear.studies.report import write_report
from hf_linear.studies.study import Study, run_study
from hf_linear.training.config import read_yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def write_study(tmp_path, spec) -> Path:
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))  # axis order is run order
    return path


class Killed(Exception):
    """Stands for the process being killed mid-run."""


class KillAtStep(TrainerCallback):
    def __init__(self, step):
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            raise Killed(f"killed at step {self.step}")


def results_lines(study_dir) -> list[dict]:
    return [json.loads(line) for line in (study_dir / "results.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_a_tiny_study_end_to_end_with_an_interrupted_run(tmp_path):
    study_dir = tmp_path / "out"
    study = Study.load(write_study(tmp_path, tiny_study()))
    assert [run.name for run in study.runs] == ["type-linear_lm", "type-mlp_lm", "nocot"]

    # the MLP run is killed after its checkpoint at step 3: the study stops there
    kill_mlp = lambda run: KillAtStep(4) if run.name == "type-mlp_lm" else TrainerCallback()  # noqa: E731
    with pytest.raises(Killed):
        run_study(study, study_dir, callbacks=[kill_mlp])
    assert [r["name"] for r in results_lines(study_dir)] == ["type-linear_lm"]
    mlp_dir = study_dir / "runs" / "type-mlp_lm"
    assert (mlp_dir / "checkpoint-3").is_dir() and not (mlp_dir / "eval_results.json").exists()

    # again: the finished run is skipped, the killed one resumes from checkpoint-3, the last one runs
    outcome = run_study(Study.load(write_study(tmp_path, tiny_study())), study_dir)
    assert outcome == {"type-linear_lm": "skipped", "type-mlp_lm": "done", "nocot": "done"}
    records = {r["name"]: r for r in results_lines(study_dir)}
    assert list(records) == ["type-linear_lm", "type-mlp_lm", "nocot"]  # one line per run

    mlp = records["type-mlp_lm"]
    assert mlp["varied"] == {"model.type": "mlp_lm"} and mlp["model_type"] == "mlp_lm"
    assert mlp["steps"] == 6 and mlp["tokens"] > 0 and mlp["parameters"] > 0
    assert [p["step"] for p in mlp["curve"]] == [3, 6]
    assert (
        mlp["curve"][1]["tokens"] == mlp["tokens"] == 2 * mlp["curve"][0]["tokens"]
    )  # 16 sequences of equal length per step
    # the clock continues across the resume
    assert 0 < mlp["curve"][0]["wall_seconds"] < mlp["curve"][1]["wall_seconds"] <= mlp["wall_seconds"]
    assert {"exact_match", "per_digit_accuracy", "loss"} <= set(mlp["curve"][1])
    assert mlp["final"]["num_samples"] == 16 and 0 <= mlp["final"]["exact_match"] <= 1
    assert mlp["machine"]["threads"] >= 1
    # length complexity: 2x2 lsb vs no CoT
    assert mlp["sequence_tokens"] > records["nocot"]["sequence_tokens"] and records["nocot"]["cot_tokens"] == 0
    assert records["nocot"]["varied"] == {"group": "nocot"}
    # the resumed history holds steps 1..6 once (the killed session's step 4 is not in it)
    state = json.loads((mlp_dir / "trainer_state.json").read_text())
    assert [e["step"] for e in state["log_history"] if "loss" in e] == [1, 2, 3, 4, 5, 6]

    # traceable: each run's config is saved and runnable with `hf-linear train`
    saved = read_yaml((study_dir / mlp["config"]).read_text())
    assert saved["model"]["type"] == "mlp_lm" and saved["training"]["output_dir"] == str(mlp_dir)

    # the report (written at the end of the study): every run, valid small PNGs
    report = (study_dir / "REPORT.md").read_text()
    for name in records:
        assert f"| {name} |" in report
    pngs = sorted((study_dir / "plots").glob("*.png"))
    assert {"curves_tokens.png", "curves_minutes.png", "final_vs_length.png", "inspect_best.png"} <= {
        p.name for p in pngs
    }
    for png in pngs:
        assert png.read_bytes()[:8] == PNG_SIGNATURE and 5_000 < png.stat().st_size < 300_000
        assert f"plots/{png.name}" in report
    assert (study_dir / "plots" / "inspect_best.json").is_file()

    # a third time: nothing to do, no new lines
    assert set(run_study(Study.load(write_study(tmp_path, tiny_study())), study_dir, write_report=False).values()) == {
        "skipped"
    }
    assert len(results_lines(study_dir)) == 3

    # a changed config does not silently reuse the old run
    changed = tiny_study()
    changed["base"]["training"]["learning_rate"] = 5e-3
    outcome = run_study(Study.load(write_study(tmp_path, changed)), study_dir, only="nocot", write_report=False)
    assert outcome["nocot"].startswith("failed: its config changed")


@pytest.mark.slow
def test_report_beside_the_paper_and_with_tokens_to_target(tmp_path):
    """A fabricated results line for a 4x4 `paper` run: the paper's 96.9% appears beside it."""
    study_dir = tmp_path / "study"
    study_dir.mkdir()
    record = {
        "name": "cot-paper",
        "varied": {"dataset.arithmetic.cot": "paper"},
        "run_dir": "runs/cot-paper",
        "config": "configs/cot-paper.yaml",
        "model_type": "gpt2",
        "task": "4x4-digit multiplication",
        "cot": "paper",
        "sequence_tokens": 307,
        "parameters": 1000,
        "steps": 20,
        "tokens": 20 * 3080,
        "wall_seconds": 90.0,
        "final": {"exact_match": 0.5, "per_digit_accuracy": 0.9, "num_samples": 100},
        "curve": [{"step": s, "tokens": s * 3080, "wall_seconds": 4.5 * s, "exact_match": s / 20} for s in (5, 10, 20)],
        "machine": {"cpu": "test cpu", "threads": 2},
    }
    (study_dir / "results.jsonl").write_text(json.dumps(record) + "\n")
    (study_dir / "study.yaml").write_text(yaml.safe_dump({"name": "fabricated", "report": {"target": 0.5}}))
    report = write_report(study_dir).read_text()
    assert "96.9% exact (MLP-775M" in report and "test cpu without native bf16 (2 threads)" in report
    assert "| 30.8k |" in report  # tokens to 50%: the eval at step 10
    assert (study_dir / "plots" / "tokens_to_target.png").read_bytes()[:8] == PNG_SIGNATURE
    assert "inspect_best" not in report  # not an hf-linear model


def fabricated_run(study_dir, name, evaluations: list[dict]) -> dict:
    """A results line of a run and its trainer_state.json, whose evaluations (at steps 5, 10, ...)
    log `evaluations`' eval_* metrics beside the exact match; an MLPLM when they count dead
    positions, else a LinearLM."""
    history = []
    for index, metrics in enumerate(evaluations, 1):
        step = 5 * index
        history += [
            {"step": step, "loss": 1.0 / step, "num_input_tokens_seen": 1000 * step},
            {"step": step, "eval_loss": 1.0 / step, "num_input_tokens_seen": 1000 * step},
            {"step": step, "eval_exact_match": index / 4, "num_input_tokens_seen": 1000 * step, **metrics},
        ]
    run_dir = study_dir / "runs" / name
    run_dir.mkdir(parents=True)
    (run_dir / "trainer_state.json").write_text(json.dumps({"global_step": step, "log_history": history}))
    return {
        "name": name,
        "varied": {},
        "run_dir": f"runs/{name}",
        "config": f"configs/{name}.yaml",
        "model_type": "mlp_lm" if any("eval_dead_positions" in m for m in evaluations) else "linear_lm",
        "parameters": 1000,
        "steps": step,
        "tokens": 1000 * step,
        "final": {"exact_match": 0.5, "num_samples": 100},
        "curve": [
            {"step": e["step"], "tokens": 1000 * e["step"], "exact_match": e["eval_exact_match"]} for e in history[2::3]
        ],
    }


def row_scales(rms, ratios, dead=None) -> dict:
    """eval_* metrics of the masked map's scale at the first, middle and last positions."""
    metrics = {f"eval_row_rms_{p}": v for p, v in zip(("first", "middle", "last"), rms)}
    metrics |= {f"eval_row_update_ratio_{p}": v for p, v in zip(("first", "middle", "last"), ratios)}
    return metrics | ({} if dead is None else {"eval_dead_positions": dead})


def fabricated_study(tmp_path, runs: dict[str, list[dict]]) -> Path:
    study_dir = tmp_path / "study"
    study_dir.mkdir()
    lines = [json.dumps(fabricated_run(study_dir, name, evaluations)) for name, evaluations in runs.items()]
    (study_dir / "results.jsonl").write_text("\n".join(lines) + "\n")
    (study_dir / "study.yaml").write_text(yaml.safe_dump({"name": "fabricated", "report": {"segments": False}}))
    return study_dir


@pytest.mark.slow
def test_report_shows_the_masked_maps_scale_along_the_sequence(tmp_path):
    study_dir = fabricated_study(
        tmp_path,
        {
            "dense": [
                row_scales((0.5, 2.0, 40.0), (0.01, 0.1, 0.9), dead=0),
                row_scales((0.25, 3.0, 20.0), (0.0, 0.02, 0.5), dead=7),
            ],
            "fan_in": [
                row_scales((1.0, 1.1, 1.2), (0.01, 0.01, 0.01), dead=0),
                row_scales((0.8, 0.9, 1.6), (0.002, 0.003, 0.004), dead=0),
            ],
            "older": [{}, {}],  # a run from before the scales were logged
        },
    )
    report = write_report(study_dir).read_text()
    section = report.split("## Scale of the masked map along the sequence")[1].split("\n## ")[0]
    # the last evaluation's values: RMS first · middle · last, last / first, update ratios, dead positions
    assert "| dense | 0.25 · 3 · 20 | 80 | 0 · 0.02 · 0.5 | 7 |" in section
    assert "| fan_in | 0.8 · 0.9 · 1.6 | 2 | 0.002 · 0.003 · 0.004 | 0 |" in section
    assert "| older |" not in section and "| older |" in report  # in the runs table only
    for name in ("row_rms.png", "row_update_ratio.png", "dead_positions.png"):
        assert f"(plots/{name})" in section
        assert (study_dir / "plots" / name).read_bytes()[:8] == PNG_SIGNATURE


@pytest.mark.slow
def test_report_without_the_scales_has_no_such_section(tmp_path):
    study_dir = fabricated_study(
        tmp_path, {"older": [{}, {}], "linear": [row_scales((1.0, 2.0, 3.0), (0.1, 0.1, 0.1))]}
    )
    report = write_report(study_dir).read_text()
    # a LinearLM counts no dead positions: no column value, no plot
    assert "| linear | 1 · 2 · 3 | 3 | 0.1 · 0.1 · 0.1 | — |" in report
    assert "dead_positions.png" not in report and not (study_dir / "plots" / "dead_positions.png").exists()

    shutil.rmtree(study_dir)
    study_dir = fabricated_study(tmp_path, {"older": [{}, {}]})
    report = write_report(study_dir).read_text()
    assert "| older |" in report and "Scale of the masked map" not in report
    assert not list((study_dir / "plots").glob("row_*.png"))


# ---------------------------------------------------------------------------------------------
# The study file


def test_grid_groups_named_axes_and_null(tmp_path):
    spec = tiny_study(
        axes={
            "model.type": {"lin": "linear_lm", "mlp": "mlp_lm"},
            "size": {"small": {"model.hidden_size": 4, "training.max_steps": 2}, "big": {"model.hidden_size": 16}},
        },
        runs=[{"name": "nolr", "set": {"training.learning_rate": None}, "axes": {"training.seed": [1, 2]}}],
    )
    runs = {run.name: run for run in Study.load(write_study(tmp_path, spec)).runs}
    assert list(runs) == [
        "type-lin_size-small",
        "type-lin_size-big",
        "type-mlp_size-small",
        "type-mlp_size-big",
        "nolr_seed-1",
        "nolr_seed-2",
    ]
    small = runs["type-mlp_size-small"]
    assert small.config["model"] == {"type": "mlp_lm", "hidden_size": 4} and small.config["training"]["max_steps"] == 2
    assert small.varied == {"model.type": "mlp", "size": "small"}
    assert (
        "learning_rate" not in runs["nolr_seed-2"].config["training"]
        and runs["nolr_seed-2"].config["training"]["seed"] == 2
    )

    with pytest.raises(ValueError, match="appear twice"):
        Study.load(write_study(tmp_path, tiny_study(runs=[{"set": {}}, {"set": {}}], axes={})))
    with pytest.raises(ValueError, match="unknown key"):
        Study.load(write_study(tmp_path, tiny_study(axis={})))
    with pytest.raises(ValueError, match="run type-linear_lm: model: unknown key"):
        bad = tiny_study()
        bad["base"]["model"]["hidden_sise"] = 8
        run_study(Study.load(write_study(tmp_path, bad)), tmp_path / "never")
    assert not (tmp_path / "never" / "runs").exists()  # every config is checked before any run


def test_quick_scales_steps_budgets_and_data(tmp_path):
    spec = tiny_study(quick={"factor": 3, "set": {"evaluation.batch_size": 4}})
    spec["base"]["training"].update(max_steps=600, eval_steps=100, warmup_steps=10)
    spec["base"]["budget"] = {"max_minutes": 6}
    spec["base"]["dataset"]["arithmetic"].update(train_size=10**6, validation_size=1000)
    run = Study.load(write_study(tmp_path, spec), quick=True).runs[0]
    assert run.config["training"]["max_steps"] == 200 and run.config["training"]["eval_steps"] == 34
    assert run.config["budget"]["max_minutes"] == 2
    assert (
        run.config["dataset"]["arithmetic"]["train_size"] == 2000
        and run.config["dataset"]["arithmetic"]["validation_size"] == 64
    )
    assert run.config["evaluation"]["batch_size"] == 4
    assert (
        Study.load(write_study(tmp_path, spec)).runs[0].config["training"]["max_steps"] == 600
    )  # not quick: unchanged


@pytest.mark.slow
@pytest.mark.parametrize("path", sorted((REPO_ROOT / "configs" / "studies").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_studies_expand_and_check(path, tmp_path, monkeypatch):
    """Every shipped study expands into runs whose configs pass the training config checks."""
    checked = []
    monkeypatch.setattr(
        study_module, "train_run", lambda study, study_dir, run, config, callbacks: checked.append(config) or "done"
    )
    for quick in (False, True):
        study = Study.load(path, quick=quick)
        outcome = run_study(study, tmp_path / path.stem, write_report=False)
        assert set(outcome.values()) == {"done"} and len(outcome) == len(study.runs) >= 2


def test_cli_lists_the_runs(capsys):
    from hf_linear.cli import main

    assert main(["study", str(REPO_ROOT / "configs" / "studies" / "formats_4x4.yaml"), "--list"]) == 0
    assert "cot-lsb" in capsys.readouterr().out


def test_series_styles_keep_a_dozen_lines_apart():
    from hf_linear.studies.report import series_styles

    keys = [
        (n, cot, model) for n in ("16", "32", "64") for cot in ("running", "threshold") for model in ("linear", "mlp")
    ]
    styles = series_styles(keys)
    assert len({tuple(sorted(style.items())) for style in styles.values()}) == 12
    # one colour per n, one line style per format, one marker per model
    assert {styles[k]["color"] for k in keys if k[0] == "32"} == {styles[("32", "running", "linear")]["color"]}
    assert styles[("16", "running", "mlp")]["linestyle"] != styles[("16", "threshold", "mlp")]["linestyle"]
    assert styles[("16", "running", "linear")]["marker"] != styles[("16", "running", "mlp")]["marker"]
