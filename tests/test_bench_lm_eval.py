"""lm-evaluation-harness on an arithmetic checkpoint (bench/bench_lm_eval.py --arithmetic): the
harness's generate_until task, its regex filter and exact_match score the same held-out answers
as `hf-linear eval` does."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest
from helpers import tiny_config

pytest.importorskip("lm_eval")

_PATH = Path(__file__).resolve().parent.parent / "bench" / "bench_lm_eval.py"
_spec = importlib.util.spec_from_file_location("bench_lm_eval", _PATH)
bench = importlib.util.module_from_spec(_spec)
sys.modules["bench_lm_eval"] = bench
_spec.loader.exec_module(bench)


@pytest.mark.slow
def test_the_harness_scores_a_trained_arithmetic_model_as_hf_linear_eval_does(tmp_path):
    from hf_linear.training.config import check_config
    from hf_linear.training.train import train

    config = tiny_config(tmp_path / "run", max_steps=400)  # ~30% of the held-out answers right
    config["model"]["hidden_size"] = 32
    train(check_config(config))
    arithmetic = {**config["dataset"]["arithmetic"], "train_size": 0}
    report = bench.run_answers(str(tmp_path / "run"), "arithmetic", json.dumps(arithmetic), batch_size=8)
    assert report["num_samples"] == 40
    # partly right, so that agreeing is not two zeros or two ones
    assert 0 < report["hf_linear_exact_match"] < 1, report
    assert report["lm_eval_exact_match"] == pytest.approx(report["hf_linear_exact_match"]), report


@pytest.mark.slow
def test_data_of_another_task_is_refused_before_the_harness_runs(tmp_path):
    from hf_linear.training.config import check_config
    from hf_linear.training.train import train

    config = tiny_config(tmp_path / "run", max_steps=2)
    train(check_config(config))
    longer = {**config["dataset"]["arithmetic"], "digits": [3, 3], "train_size": 0}
    with pytest.raises(ValueError, match="longer than the checkpoint's window"):
        bench.run_answers(str(tmp_path / "run"), "arithmetic", json.dumps(longer))
