"""Fine-tuning from a checkpoint through the training config: `model: {init_from: ...}`, window
growth, data longer than the window, mixtures, and LoRA adapters of the masked map."""

from __future__ import annotations

import pytest
import torch
from helpers import tiny_config

from hf_linear.checkpoints import load_model
from hf_linear.data.arithmetic import build_arithmetic_dataset, build_arithmetic_tokenizer, sequence_length
from hf_linear.data.sources import data_source
from hf_linear.training.config import check_config
from hf_linear.training.models import build_model
from hf_linear.training.train import train

LENGTH_2x2 = sequence_length("multiplication", [2, 2], "lsb") + 1  # + [EOS]
LENGTH_3x3 = sequence_length("multiplication", [3, 3], "lsb") + 1


@pytest.fixture(scope="module")
def checkpoint_2x2(tmp_path_factory):
    out = tmp_path_factory.mktemp("ft") / "mul2x2"
    train(check_config(tiny_config(out, max_steps=20)))
    return out


def finetune_config(output_dir, checkpoint, digits=(3, 3), **model) -> dict:
    config = tiny_config(output_dir, max_steps=4)
    config["model"] = {"init_from": str(checkpoint), **model}
    config["dataset"]["arithmetic"]["digits"] = list(digits)
    return config


@pytest.mark.slow
def test_a_grown_model_computes_exactly_what_the_checkpoint_did(checkpoint_2x2):
    original = load_model(str(checkpoint_2x2)).eval()
    model, _ = build_model(
        {"init_from": str(checkpoint_2x2), "context_length": LENGTH_3x3},
        build_arithmetic_tokenizer(),
        LENGTH_3x3,
        language_model_windows=False,
    )
    model.eval()
    assert model.config.context_length == LENGTH_3x3 and original.config.context_length == LENGTH_2x2
    ids = torch.tensor(build_arithmetic_dataset("multiplication", [2, 2], "lsb", 0, 4, 4)["test"]["input_ids"])
    with torch.no_grad():
        assert torch.equal(model(ids).logits, original(ids).logits)  # inputs <= the old T: unchanged
        longer = torch.cat([ids, ids[:, :5]], dim=1)  # past the old T: the old sliding window
        torch.testing.assert_close(model(longer).logits, original(longer).logits, rtol=1e-5, atol=1e-5)


@pytest.mark.slow
def test_fine_tuning_grows_the_window_and_trains(checkpoint_2x2, tmp_path):
    report = train(check_config(finetune_config(tmp_path / "ft", checkpoint_2x2, context_length=LENGTH_3x3)))
    assert report["training"]["global_step"] == 4
    assert load_model(str(tmp_path / "ft")).config.context_length == LENGTH_3x3


@pytest.mark.slow
def test_data_longer_than_the_window_is_an_error_unless_sliding_is_asked_for(checkpoint_2x2, tmp_path):
    with pytest.raises(ValueError, match=f"set model.context_length: {LENGTH_3x3}.*allow_sliding"):
        train(check_config(finetune_config(tmp_path / "a", checkpoint_2x2)))
    assert not (tmp_path / "a").exists()
    config = finetune_config(tmp_path / "b", checkpoint_2x2)
    config["dataset"]["allow_sliding"] = True
    train(check_config(config))
    assert load_model(str(tmp_path / "b")).config.context_length == LENGTH_2x2  # slid, not grown
    # a new model's window is too short for its data unless sliding is asked for, too
    config = tiny_config(tmp_path / "c")
    config["model"]["context_length"] = 10
    with pytest.raises(ValueError, match="context_length=10 is shorter"):
        train(check_config(config))


@pytest.mark.parametrize(
    "model,message",
    [
        ({"hidden_size": 16}, "model.hidden_size: with init_from the checkpoint's architecture is kept"),
        ({"type": "mlp_lm"}, "either type .* or init_from"),
        ({"context_length": 3}, "can only grow the window"),
    ],
)
def test_changes_that_cannot_carry_the_weights_are_errors(checkpoint_2x2, tmp_path, model, message):
    with pytest.raises(ValueError, match=message):
        train(check_config(finetune_config(tmp_path / "x", checkpoint_2x2, digits=(2, 2), **model)))


def test_a_mixture_keeps_both_tasks_and_the_targets_held_out_splits():
    source = data_source(
        {
            "arithmetic_mixture": [
                {
                    "task": "multiplication",
                    "digits": [3, 3],
                    "cot": "lsb",
                    "train_size": 30,
                    "test_size": 5,
                    "validation_size": 5,
                },
                {
                    "task": "multiplication",
                    "digits": [2, 2],
                    "cot": "lsb",
                    "train_size": 10,
                    "test_size": 4,
                    "validation_size": 4,
                },
            ]
        }
    )
    splits = source.load()
    lengths = sorted({len(ids) for ids in splits["train"]["input_ids"]})
    assert lengths == [LENGTH_2x2, LENGTH_3x3] and len(splits["train"]) == 40
    assert len(splits["test"]) == 5 and len(splits["test_1"]) == 4
    assert source.describe() == "multiplication 3x3 cot=lsb + multiplication 2x2 cot=lsb"


@pytest.mark.slow
def test_a_lora_run_trains_only_the_adapter_and_saves_it_merged(checkpoint_2x2, tmp_path):
    from peft import PeftModel

    import hf_linear.lora  # noqa: F401

    config = finetune_config(tmp_path / "lora", checkpoint_2x2, context_length=LENGTH_3x3)
    config["lora"] = {"r": 2, "lora_alpha": 4}
    report = train(check_config(config))
    d, T = 8, LENGTH_3x3
    assert report["training"]["trainable_parameters"] == 2 * T * d * 2  # A_j, B_i: (d, r) and (r, d) per position
    merged = load_model(str(tmp_path / "lora")).eval()
    base, _ = build_model(
        {"init_from": str(checkpoint_2x2), "context_length": T},
        build_arithmetic_tokenizer(),
        T,
        language_model_windows=False,
    )
    adapted = PeftModel.from_pretrained(base, tmp_path / "lora" / "adapter").eval()
    ids = torch.tensor(build_arithmetic_dataset("multiplication", [3, 3], "lsb", 0, 3, 3)["test"]["input_ids"])
    with torch.no_grad():
        torch.testing.assert_close(adapted(input_ids=ids).logits, merged(ids).logits, rtol=1e-4, atol=1e-4)
        assert not torch.allclose(
            base.get_base_model()(ids).logits if hasattr(base, "get_base_model") else base(ids).logits,
            merged(ids).logits,
        )
