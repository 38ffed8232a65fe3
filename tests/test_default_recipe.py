"""The recipe a task's shape implies (hf_linear.training.default_recipe, `recipe: default`)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from hf_linear.data.arithmetic import ArithmeticSpec
from hf_linear.data.programs import compile_program
from hf_linear.training.config import check_config, read_yaml
from hf_linear.training.default_recipe import TaskShape, default_recipe
from hf_linear.training.train import train

REPO_ROOT = Path(__file__).resolve().parents[1]
RECIPE_KEYS = (
    "per_device_train_batch_size",
    "learning_rate",
    "adam_beta2",
    "weight_decay",
    "warmup_steps",
    "lr_scheduler_type",
    "max_grad_norm",
    "max_steps",
    "bf16",
)


@pytest.mark.parametrize(
    "config,digits",
    [("configs/cpu/mul4x4_lsb_mlp.yaml", 4), ("configs/cpu/mul8x8_lsb_mlp_centered.yaml", 8)],
)
def test_the_lsb_multiplications_get_the_measured_recipes_back(config, digits):
    """The two recipes the arithmetic rule is built on, reproduced from the shapes alone."""
    shipped = read_yaml((REPO_ROOT / config).read_text())
    recipe = default_recipe(ArithmeticSpec.create("multiplication", [digits, digits], "lsb"))
    assert recipe["model"] == shipped["model"]
    assert {key: recipe["training"][key] for key in RECIPE_KEYS} == {
        key: shipped["training"][key] for key in RECIPE_KEYS
    }
    assert recipe["optimizer"] == (shipped.get("optimizer") or {})


def test_a_program_gets_a_linear_model_sized_by_its_shape():
    program = compile_program("multiplication", 10000)
    shape = TaskShape.of(program)
    # the steps: position p reads earlier positions only; the reach is the farthest look back
    reaches = [p - min(step.reads) for p, step in program.steps.items() if step.reads]
    assert shape == TaskShape("program", program.length + 1, 9, 4, max(reaches))
    assert shape.window == 662 and 0 < shape.reach < shape.window
    recipe = default_recipe(program)
    assert recipe["model"] == {"type": "linear_lm", "hidden_size": 8}
    training = recipe["training"]
    assert (training["per_device_train_batch_size"], training["learning_rate"], training["weight_decay"]) == (
        64,
        1e-2,
        0.0,
    )
    # 1000 tokens per window position and position of reach
    assert training["max_steps"] == round(1000 * shape.window * shape.reach / (64 * shape.window))
    assert training["warmup_steps"] == min(200, max(20, round(training["max_steps"] / 80)))
    assert training["eval_steps"] * 10 >= training["max_steps"] > training["eval_steps"] * 9
    assert recipe["optimizer"] == {}


def test_local_steps_need_less_than_far_reaching_ones_and_wide_vocabularies_get_width():
    machine = compile_program("tm-double", 16)  # a Turing machine: each cell reads 3 cells of the last row
    multiplication = compile_program("multiplication", 256)
    tm, mul = TaskShape.of(machine), TaskShape.of(multiplication)
    assert tm.window > mul.window and tm.reach < mul.reach / 5
    tm_recipe, mul_recipe = default_recipe(machine), default_recipe(multiplication)
    tokens = [
        r["training"]["max_steps"] * r["training"]["per_device_train_batch_size"] for r in (tm_recipe, mul_recipe)
    ]
    assert tokens[0] * tm.window < tokens[1] * mul.window  # fewer training tokens for the local steps
    assert tm_recipe["model"]["hidden_size"] == 16 and tm.vocabulary == 18  # V = 18 > 9: width 16
    assert tm_recipe["training"]["max_steps"] == 300  # the floor


def test_a_long_program_keeps_its_masked_map_small():
    shape = TaskShape("program", 2326, 12, 4, 2240)  # 10^8 operands' length with a wider vocabulary
    from hf_linear.training.default_recipe import program_width

    assert program_width(shape) == 8  # 16 would be 2326·2327/2·256 = 693M parameters
    assert program_width(TaskShape("program", 300, 12, 4, 200)) == 16


def test_a_config_with_recipe_default_validates_and_trains(tmp_path):
    config = {
        "recipe": "default",
        "dataset": {
            "program_stream": {"program": "parity", "size": 8, "seed": 0, "validation_size": 20, "test_size": 20}
        },
        # everything given wins over the recipe: a short run for the test
        "training": {"output_dir": str(tmp_path / "run"), "max_steps": 3, "eval_strategy": "no", "report_to": []},
        "evaluation": {"num_samples": 20, "batch_size": 20, "num_examples": 0},
    }
    checked = check_config(json.loads(json.dumps(config)))
    recipe = default_recipe(compile_program("parity", 8))
    assert checked.model == {"type": "linear_lm", **{k: v for k, v in recipe["model"].items() if k != "type"}}
    assert checked.training["learning_rate"] == recipe["training"]["learning_rate"]
    assert checked.training["max_steps"] == 3 and checked.training["eval_strategy"] == "no"
    train(checked)
    saved = yaml.safe_load((tmp_path / "run" / "training_config.yaml").read_text())
    assert "recipe" not in saved and saved["training"]["per_device_train_batch_size"] == 64  # explicit: rerunnable
    assert (tmp_path / "run" / "model.safetensors").is_file()


@pytest.mark.parametrize(
    "change,message",
    [
        ({"recipe": "fast"}, "recipe must be default"),
        ({"dataset": {"path": "."}}, r"dataset.path: \. is not a DatasetDict"),
        ({"model": {"init_from": "runs/x"}}, "recipe: default chooses a new model"),
        (
            {"dataset": {"tinystories": {"source": "x"}}},
            "a tinystories dataset has none: give the model and training settings",
        ),
    ],
)
def test_recipe_mistakes_are_named(tmp_path, change, message):
    config = {
        "recipe": "default",
        "dataset": {"program_stream": {"program": "parity", "size": 8}},
        "training": {"output_dir": str(tmp_path / "run")},
        **change,
    }
    with pytest.raises(ValueError, match=message):
        check_config(config)
