"""`hf-linear publish RUN_DIR`: a finished run's evidence, everything but the weights, in reports/runs/NAME."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import subprocess
from pathlib import Path

import pytest
from helpers import tiny_config, write_config

from hf_linear import cli
from hf_linear.data.arithmetic import ArithmeticSpec
from hf_linear.run_files import EVAL_RESULTS, SEGMENT_ACCURACY, TRAINER_STATE, TRAINING_CONFIG
from hf_linear.runtime import machine_description
from hf_linear.studies.publish import publish_run
from hf_linear.studies.results import read_results
from hf_linear.training.config import load_config
from hf_linear.training.train import train

CPUINFO = Path("/proc/cpuinfo")
REPOSITORY = Path(__file__).resolve().parents[1]
PNG = b"\x89PNG\r\n\x1a\n"
TODAY = dt.datetime.now(dt.timezone.utc).date().isoformat()  # a run is dated in UTC


@pytest.mark.skipif(not CPUINFO.is_file(), reason="no /proc/cpuinfo")
def test_machine_description_reads_the_cpu_model_and_its_flags():
    lines = CPUINFO.read_text().splitlines()
    model = next(line.split(":", 1)[1].strip() for line in lines if line.startswith("model name"))
    flags = set(next(line.split(":", 1)[1].split() for line in lines if line.startswith("flags")))
    machine = machine_description()
    assert machine["cpu"] == model
    assert machine["native_bf16"] == bool(flags & {"avx512_bf16", "amx_bf16"})
    assert machine["amx_bf16"] == ("amx_bf16" in flags)


# ----------------------------------------------------------------------------- a tiny finished run


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A tiny run (MLPLM, 2x2 multiplication, 4 steps, evaluated at steps 2 and 4) and the commit
    the tree was at when it trained."""
    directory = tmp_path_factory.mktemp("publish")
    config = tiny_config(directory / "tiny-run", max_steps=4, eval_strategy="steps", eval_steps=2)
    config["evaluation"]["during_training_samples"] = 16
    train(load_config(write_config(directory, config)))
    head = subprocess.run(["git", "-C", str(REPOSITORY), "rev-parse", "HEAD"], capture_output=True, text=True)
    return directory / "tiny-run", head.stdout.strip()


@pytest.mark.slow  # trains a tiny run (the module's fixture)
def test_publish_writes_the_runs_evidence_without_its_weights(finished, tmp_path):
    run_dir, head = finished
    published = publish_run(run_dir, tmp_path / "reports")
    assert published == (tmp_path / "reports" / "runs" / "tiny-run").absolute()
    assert not list(published.rglob("*.safetensors")) and not list(published.rglob("checkpoint-*"))
    for name in (TRAINING_CONFIG, EVAL_RESULTS, TRAINER_STATE):  # the run's own files, unchanged
        assert (published / name).read_bytes() == (run_dir / name).read_bytes()
    final = json.loads((published / EVAL_RESULTS).read_text())
    readme = (published / "README.md").read_text()

    # the final held-out metrics with their sample count, as train wrote them
    assert f"**{100 * final['exact_match']:.1f}%** of {final['num_samples']} examples (test split)" in readme
    assert f"| per answer digit | {100 * final['per_digit_accuracy']:.1f}% |" in readme
    # date, machine kind and precision (this machine's, read independently), the commit it trained with
    assert f"| date | {TODAY} |" in readme
    cpuinfo = CPUINFO.read_text() if CPUINFO.is_file() else ""
    native = "avx512_bf16" in cpuinfo or "amx_bf16" in cpuinfo
    assert f"{machine_description()['cpu']} {'with' if native else 'without'} " in readme
    assert "| precision | fp32 |" in readme  # the tiny config does not ask for bf16
    assert final["training"]["commit"] == head and f"`{head}`" in readme

    # the eval curve: one point per evaluation, against the tokens the Trainer counted
    curve = [json.loads(line) for line in (published / "curve.jsonl").read_text().splitlines()]
    state = json.loads((published / TRAINER_STATE).read_text())
    evaluations = [e for e in state["log_history"] if "eval_exact_match" in e]
    assert [p["step"] for p in curve] == [e["step"] for e in evaluations] == [2, 4]
    assert [p["exact_match"] for p in curve] == [e["eval_exact_match"] for e in evaluations]
    # tokens per step = batch × world size × gradient accumulation × example length (+ [EOS])
    example = ArithmeticSpec.create("multiplication", [2, 2], "lsb").length + 1
    assert [p["tokens"] for p in curve] == [step * 32 * 1 * 1 * example for step in (2, 4)]
    assert f"| training | 4 steps, {4 * 32 * example:,} training tokens," in readme
    assert all((published / "plots" / n).read_bytes()[:8] == PNG for n in ("curve_tokens.png", "curve_per_digit.png"))

    # the per-segment table, from the run's own weights
    segments = json.loads((published / SEGMENT_ACCURACY).read_text())
    assert [s["name"] for s in segments][-1] == "answer" and "Where the chain breaks" in readme

    # the record `hf-linear reproduce` reads: the same numbers
    (record,) = read_results(published).values()
    assert record["final"]["exact_match"] == final["exact_match"] and record["tokens"] == 4 * 32 * example
    assert record["date"] == TODAY and record["commit"] == head


@pytest.mark.slow  # trains a tiny run (the module's fixture)
def test_the_wall_time_of_a_run_resumed_without_a_clock_sums_its_processes(finished, tmp_path):
    """A run resumed before trainer_state.json carried `wall_seconds`: the time is the sum over its
    processes (one TensorBoard file each) of first to last event, not its last process's runtime."""
    from torch.utils.tensorboard import SummaryWriter

    run_dir = tmp_path / "resumed"
    shutil.copytree(finished[0], run_dir)
    state = json.loads((run_dir / TRAINER_STATE).read_text())
    for entry in state["log_history"]:
        entry.pop("wall_seconds", None)
    (run_dir / TRAINER_STATE).write_text(json.dumps(state))
    for process, (start, end) in enumerate([(1000.0, 3400.0), (5000.0, 5300.0)]):
        writer = SummaryWriter(run_dir / "runs" / f"process-{process}")
        for step, walltime in enumerate((start, (start + end) / 2, end)):
            writer.add_scalar("train/loss", 1.0 / (step + 1), step, walltime=walltime)
        writer.close()
    published = publish_run(run_dir, tmp_path / "reports")
    (record,) = read_results(published).values()
    assert record["wall_seconds"] == pytest.approx(2400.0 + 300.0)
    assert " training tokens, 45.0 min |" in (published / "README.md").read_text()


def test_publish_replaces_only_what_it_wrote(finished, tmp_path):
    run_dir, _ = finished
    first = publish_run(run_dir, tmp_path, name="again")
    (first / "stale.txt").write_text("from an earlier publication")
    assert not (publish_run(run_dir, tmp_path, name="again") / "stale.txt").exists()
    foreign = tmp_path / "runs" / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("not written by hf-linear")
    with pytest.raises(ValueError, match="not written by hf-linear"):
        publish_run(run_dir, tmp_path, name="foreign")
    assert (foreign / "notes.txt").is_file()


@pytest.mark.slow  # trains a tiny run (the module's fixture)
def test_publish_refuses_an_unfinished_run_and_a_bad_name(finished, tmp_path, capsys):
    run_dir, _ = finished
    unfinished = tmp_path / "unfinished"
    unfinished.mkdir()
    shutil.copy(run_dir / TRAINING_CONFIG, unfinished)
    with pytest.raises(ValueError, match=f"has no {EVAL_RESULTS}, {TRAINER_STATE}: not a finished run"):
        publish_run(unfinished, tmp_path / "reports")
    with pytest.raises(ValueError, match="one plain directory name"):
        publish_run(run_dir, tmp_path / "reports", name="a/b")
    with pytest.raises(SystemExit) as stop:
        cli.main(["publish", str(tmp_path / "missing"), "--reports", str(tmp_path / "reports")])
    assert stop.value.code == 2
    assert capsys.readouterr().err.strip().endswith("error: " + f"{tmp_path / 'missing'}: no such run directory")
    assert not (tmp_path / "reports").exists()
