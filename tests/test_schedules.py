"""Learning-rate schedules a `training:` section selects through TrainingArguments."""

from __future__ import annotations

import json

import pytest
from helpers import tiny_config

from hf_linear.training.config import check_config
from hf_linear.training.train import train


def test_warmup_stable_decay_is_selected_by_training_fields(tmp_path):
    """transformers' warmup_stable_decay with its kwargs: 2 warmup steps (linear from 0), 2 stable
    steps, 3 linearly decaying ones; the learning rate logged at each step is the one it used."""
    config = tiny_config(
        tmp_path / "run",
        max_steps=7,
        learning_rate=1e-2,
        warmup_steps=2,
        lr_scheduler_type="warmup_stable_decay",
        lr_scheduler_kwargs={"num_decay_steps": 3, "decay_type": "linear"},
    )
    train(check_config(config))
    history = json.loads((tmp_path / "run" / "trainer_state.json").read_text())["log_history"]
    logged = [entry["learning_rate"] for entry in history if "learning_rate" in entry]
    # warmup s/2 for s < 2, then 1 for s < 4, then 1 - (s-4)/3
    expected = [1e-2 * f for f in (0.0, 0.5, 1.0, 1.0, 1.0, 2 / 3, 1 / 3)]
    assert logged == pytest.approx(expected, rel=1e-6, abs=1e-12)
