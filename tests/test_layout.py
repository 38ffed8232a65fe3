"""The package as a newcomer meets it: scripts run as scripts, files found through the package,
callers' objects left as they were."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from hf_linear import MLPLMConfig, MLPLMForCausalLM
from hf_linear.data.arithmetic import build_arithmetic_dataset, build_arithmetic_tokenizer
from hf_linear.evaluation.exact_match import generate_completions
from hf_linear.resources import card_template, packaged_config
from hf_linear.training.config import load_config

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_training_scripts_run_as_scripts():
    """`python training/evaluate_checkpoint.py` once shadowed the `evaluate` library (its folder
    comes first on sys.path when run as a script)."""
    for script, usage in (("train.py", "hf-linear train"), ("evaluate_checkpoint.py", "hf-linear eval")):
        result = subprocess.run(
            [sys.executable, str(REPO_ROOT / "training" / script), "--help"],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stderr[-2000:]
        assert usage in result.stdout


def test_package_files_are_found_through_the_package():
    assert load_config(packaged_config()).model["type"] == "mlp_lm"  # the README's main job
    assert "$model_name" in card_template("model_card.md")
    assert "$pretty_name" in card_template("dataset_card_arithmetic.md")


def test_generation_leaves_the_callers_tokenizer_as_it_was():
    tokenizer = build_arithmetic_tokenizer()
    tokenizer.padding_side = "right"
    model = MLPLMForCausalLM(
        MLPLMConfig(
            vocab_size=len(tokenizer),
            context_length=30,
            hidden_size=4,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
    )
    prompts = build_arithmetic_dataset("multiplication", [2, 1], "lsb", 0, 3, 3)["test"]["prompt"]
    generate_completions(model, tokenizer, prompts, max_new_tokens=3)
    assert tokenizer.padding_side == "right"


def test_return_dict_false_gives_tuples_as_in_transformers():
    model = MLPLMForCausalLM(MLPLMConfig(vocab_size=11, context_length=5, hidden_size=4)).eval()
    ids = torch.tensor([[1, 2, 3]])
    as_dict = model(ids, labels=ids)
    loss, logits = model(ids, labels=ids, return_dict=False)
    assert torch.equal(loss, as_dict.loss) and torch.equal(logits, as_dict.logits)
    (hidden,) = model.model(ids, return_dict=False)
    assert torch.equal(hidden, model.model(ids).last_hidden_state)


def test_every_package_is_listed_for_regular_installs():
    """pyproject lists its packages by name (configs/ and model_cards/ are mapped in): a new
    subpackage missing there would be absent from a regular `pip install .`."""
    import tomllib

    root = Path(__file__).resolve().parent.parent
    listed = set(tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(init.parent.relative_to(root).parts) for init in (root / "hf_linear").rglob("__init__.py")}
    assert found <= listed, sorted(found - listed)
