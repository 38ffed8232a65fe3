"""Studies on Ray: the same results.jsonl as the sequential engine, and a run whose worker is
killed after its first checkpoint is restarted by Ray and resumes from that checkpoint."""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

import pytest
import yaml
from helpers import tiny_search, tiny_study
from transformers import TrainerCallback

from hf_linear.studies.study import Study, run_study

ray = pytest.importorskip("ray", reason="the Ray engine is an optional extra: pip install -e '.[engines]'")
from hf_linear.studies.engines.ray_cluster import RayResources  # noqa: E402
from hf_linear.studies.engines.ray_runs import RayEngine  # noqa: E402

SPEC = tiny_study(name="tiny-ray", runs=[])  # the two grid runs: LinearLM and MLPLM
KILLED_RUN = "type-mlp_lm"


class KillWorkerOnce(TrainerCallback):
    """Kills its own process (SIGKILL: no cleanup, as the OOM killer or a lost node) right after
    the first checkpoint is written, once: `marker` records that it happened."""

    def __init__(self, marker: Path):
        self.marker = marker

    def on_save(self, args, state, control, **kwargs):
        if not self.marker.exists():
            self.marker.write_text(str(os.getpid()))
            os.kill(os.getpid(), signal.SIGKILL)


@pytest.fixture(scope="module")
def local_ray():
    # the workers unpickle this module's callbacks; they cannot import tests/ by name
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR")
    yield
    ray.shutdown()


def comparable(study_dir: Path) -> dict:
    """results.jsonl without timings: per run the steps, tokens, final metrics and the eval curve."""
    records = [json.loads(line) for line in (study_dir / "results.jsonl").read_text().splitlines()]
    return {
        r["name"]: {
            "steps": r["steps"],
            "tokens": r["tokens"],
            "exact_match": r["final"]["exact_match"],
            "per_digit_accuracy": r["final"]["per_digit_accuracy"],
            "curve": [(p["step"], p["tokens"], p["exact_match"]) for p in r["curve"]],
        }
        for r in records
    }


@pytest.mark.slow
def test_ray_gives_the_sequential_results_and_survives_a_killed_worker(tmp_path, local_ray):
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(SPEC, sort_keys=False))
    sequential = run_study(Study.load(path), tmp_path / "sequential", write_report=False)
    assert sequential == {"type-linear_lm": "done", KILLED_RUN: "done"}

    marker = tmp_path / "killed"
    kill_once = lambda run: KillWorkerOnce(marker) if run.name == KILLED_RUN else TrainerCallback()  # noqa: E731
    on_ray = run_study(
        Study.load(path),
        tmp_path / "ray",
        callbacks=[kill_once],
        write_report=False,
        engine=RayEngine(RayResources(cpus=1)),
    )
    assert on_ray == {"type-linear_lm": "done", KILLED_RUN: "done"}
    assert marker.read_text() != str(os.getpid())  # a worker died, not this process
    assert comparable(tmp_path / "ray") == comparable(tmp_path / "sequential")
    # the restarted worker resumed from checkpoint-3: steps 1..6 once in the run's history
    state = json.loads((tmp_path / "ray" / "runs" / KILLED_RUN / "trainer_state.json").read_text())
    assert [e["step"] for e in state["log_history"] if "loss" in e] == [1, 2, 3, 4, 5, 6]

    # resumable as the sequential engine: finished runs are skipped, no new lines
    again = run_study(Study.load(path), tmp_path / "ray", write_report=False, engine=RayEngine())
    assert again == {"type-linear_lm": "skipped", KILLED_RUN: "skipped"}
    assert len((tmp_path / "ray" / "results.jsonl").read_text().splitlines()) == 2


@pytest.mark.slow
def test_a_run_bigger_than_the_cluster_is_an_error(tmp_path, local_ray):
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(SPEC, sort_keys=False))
    with pytest.raises(ValueError, match="wants 64 CPU"):
        run_study(Study.load(path), tmp_path / "out", write_report=False, engine=RayEngine(RayResources(cpus=64)))


@pytest.mark.slow
def test_a_tiny_search_on_ray_tune_tries_its_start_with_recipe(tmp_path, local_ray):
    """`hf-linear tune --engine ray`: Ray Tune trials through Trainer.hyperparameter_search; the
    search file's start_with recipe is among them (points_to_evaluate), and a best config is written."""
    from hf_linear.studies.tune.cli import main as tune_main

    search = tiny_search(trials=2, pruner="none")
    path = tmp_path / "search.yaml"
    path.write_text(yaml.safe_dump(search, sort_keys=False))
    assert tune_main([str(path), "--out", str(tmp_path / "out"), "--engine", "ray"]) == 0
    trials = [json.loads(line) for line in (tmp_path / "out" / "trials.jsonl").read_text().splitlines()]
    assert len(trials) == 2 and all(t["state"] == "complete" for t in trials)
    assert search["start_with"][0] in [t["params"] for t in trials]
    assert (tmp_path / "out" / "best_config.yaml").is_file()
