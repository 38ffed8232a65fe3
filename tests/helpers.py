"""Helpers shared by the test modules (test modules never import each other): tiny models, a tiny
training config and a tiny study. Plain functions rather than fixtures: each test calls them with
its own sizes and settings."""

from __future__ import annotations

import json
from pathlib import Path

import torch
import yaml

from hf_linear import LinearLMConfig, LinearLMForCausalLM, MLPLMConfig, MLPLMForCausalLM

# ----------------------------------------------------------------------------- models


def tiny_model(
    kind: str = "linear", seed: int = 0, vocab_size: int = 23, context_length: int = 6, hidden_size: int = 4, **config
):
    """A small untrained LinearLM (`kind` "linear") or MLPLM ("mlp") in eval mode, its weights drawn
    after torch.manual_seed(seed); `config`: further fields of its config."""
    torch.manual_seed(seed)
    fields = {"vocab_size": vocab_size, "context_length": context_length, "hidden_size": hidden_size, **config}
    if kind == "linear":
        return LinearLMForCausalLM(LinearLMConfig(**fields)).eval()
    return MLPLMForCausalLM(MLPLMConfig(**fields)).eval()


# ----------------------------------------------------------------------------- training runs


def tiny_config(output_dir, **training) -> dict:
    """A training config that trains an MLPLM on 2x2 multiplication in seconds; `training`: keys of
    its training section to add or replace."""
    return {
        "model": {"type": "mlp_lm", "hidden_size": 8},
        "dataset": {
            "arithmetic": {
                "task": "multiplication",
                "digits": [2, 2],
                "cot": "lsb",
                "train_size": 2000,
                "validation_size": 40,
                "test_size": 40,
                "seed": 0,
            }
        },
        "training": {
            "output_dir": str(output_dir),
            "per_device_train_batch_size": 32,
            "learning_rate": 1e-2,
            "lr_scheduler_type": "constant",
            "max_steps": 30,
            "logging_steps": 1,
            "save_strategy": "no",
            "report_to": [],
            "disable_tqdm": True,
            "seed": 0,
            **training,
        },
        "evaluation": {"num_samples": 40, "during_training_samples": 0, "batch_size": 40, "num_examples": 2},
    }


def losses(output_dir) -> dict[int, float]:
    """The training loss logged at each step of a run (its trainer_state.json)."""
    state = json.loads((Path(output_dir) / "trainer_state.json").read_text())
    return {e["step"]: e["loss"] for e in state["log_history"] if "loss" in e}


def trained_with_and_without(tmp_path, optimizer: dict, max_steps: int) -> tuple[list[dict], list[dict]]:
    """The tiny config trained twice, with the `optimizer:` section and without: both runs' final
    weights and saved training configs, in that order."""
    from safetensors.torch import load_file

    from hf_linear.training.config import check_config
    from hf_linear.training.train import train

    train(check_config({**tiny_config(tmp_path / "run", max_steps=max_steps), "optimizer": optimizer}))
    train(check_config(tiny_config(tmp_path / "plain", max_steps=max_steps)))
    runs = (tmp_path / "run", tmp_path / "plain")
    weights = [load_file(run / "model.safetensors") for run in runs]
    return weights, [yaml.safe_load((run / "training_config.yaml").read_text()) for run in runs]


def write_config(directory, config) -> Path:
    """`config` as DIRECTORY/config.yaml."""
    path = directory / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


# ----------------------------------------------------------------------------- studies


def tiny_study(**extra) -> dict:
    """Two grid runs (LinearLM, MLPLM) and one explicit run (no CoT) on 2x2 multiplication, d=8."""
    return {
        "name": "tiny",
        "description": "A tiny study for the tests.",
        "base": {
            "model": {"type": "mlp_lm", "hidden_size": 8},
            "dataset": {
                "arithmetic": {
                    "task": "multiplication",
                    "digits": [2, 2],
                    "cot": "lsb",
                    "train_size": 1000,
                    "validation_size": 16,
                    "test_size": 16,
                    "seed": 0,
                }
            },
            "training": {
                "per_device_train_batch_size": 16,
                "learning_rate": 1e-2,
                "lr_scheduler_type": "constant",
                "max_steps": 6,
                "logging_steps": 1,
                "eval_strategy": "steps",
                "eval_steps": 3,
                "save_strategy": "steps",
                "save_steps": 3,
                "report_to": [],
                "disable_tqdm": True,
                "seed": 0,
            },
            "evaluation": {"num_samples": 16, "during_training_samples": 16, "batch_size": 16, "num_examples": 0},
        },
        "axes": {"model.type": ["linear_lm", "mlp_lm"]},
        "runs": [{"name": "nocot", "set": {"dataset.arithmetic.cot": "direct"}}],
        "report": {"target": 0.5, "x": "model.type"},
        **extra,
    }


TINY_SEARCH_BATCH, TINY_SEARCH_EXAMPLE_TOKENS = 16, 28  # 2x2 multiplication, `lsb` CoT: 27 tokens + [EOS]


def tiny_search(**extra) -> dict:
    """A search file for `hf-linear tune`: learning rate and width of a d<=8 MLPLM on 2x2
    multiplication, 3 trials of 6 steps, with a start_with recipe."""
    return {
        "name": "tiny-search",
        "base": {
            "model": {"type": "mlp_lm", "hidden_size": 8},
            "dataset": {
                "arithmetic": {
                    "task": "multiplication",
                    "digits": [2, 2],
                    "cot": "lsb",
                    "train_size": 500,
                    "validation_size": 16,
                    "test_size": 16,
                    "seed": 0,
                }
            },
            "training": {
                "output_dir": "unused",
                "per_device_train_batch_size": TINY_SEARCH_BATCH,
                "lr_scheduler_type": "constant",
                "logging_steps": 1,
                "report_to": [],
                "disable_tqdm": True,
                "seed": 0,
            },
            "evaluation": {"num_samples": 16, "during_training_samples": 16, "batch_size": 16, "num_examples": 0},
        },
        "space": {
            "training.learning_rate": {"type": "float", "low": 1e-3, "high": 3e-2, "log": True},
            "model.hidden_size": {"type": "categorical", "choices": [4, 8]},
        },
        "objective": "exact_match",
        "budget_tokens": 6 * TINY_SEARCH_BATCH * TINY_SEARCH_EXAMPLE_TOKENS,  # 6 steps
        "trials": 3,
        "evaluations": 2,
        "pruner": {"type": "median", "n_startup_trials": 1},
        "start_with": [{"training.learning_rate": 0.02, "model.hidden_size": 4}],  # a known recipe, tried first
        **extra,
    }
