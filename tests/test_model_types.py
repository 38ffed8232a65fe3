"""A third model type is one row of `hf_linear.model_types` plus its modeling code.

The throwaway type below (a LinearLM under another `model_type`, with a smaller default window)
is registered with `register_model_type` and nothing else; the Auto classes, a training config,
`generate`, save/load, attribution, the dead-unit analysis, the demo's description and the model
card then all work for it, because none of them asks for a type by name.
"""

from __future__ import annotations

import pytest
import torch
from helpers import tiny_config, write_config
from transformers import AutoConfig, AutoModelForCausalLM

from hf_linear import LinearLMConfig, LinearLMForCausalLM
from hf_linear.modeling_hf_linear import LinearLMModel


class ThrowawayConfig(LinearLMConfig):
    model_type = "throwaway_lm"


class ThrowawayModel(LinearLMModel):
    config_class = ThrowawayConfig


class ThrowawayForCausalLM(LinearLMForCausalLM):
    config_class = ThrowawayConfig


@pytest.fixture
def throwaway_type():
    from hf_linear import model_types

    row = model_types.ModelType(
        ThrowawayConfig,
        ThrowawayModel,
        ThrowawayForCausalLM,
        "no model of the paper",
        label="ThrowawayLM",
        linear_in_inputs=True,
        relu_after_mixing=False,
        describe=lambda config: ("A throwaway model.", f"Width {config['hidden_size']}.", ""),
        paper_use="Not in the paper.",
    )
    yield model_types.register_model_type(row)
    del model_types.MODEL_TYPES[row.name]  # the table every module holds: the row leaves it again


def tiny_throwaway(seed: int = 0) -> ThrowawayForCausalLM:
    torch.manual_seed(seed)
    return ThrowawayForCausalLM(ThrowawayConfig(vocab_size=13, context_length=5, hidden_size=4)).eval()


def test_the_row_is_all_the_package_needs(throwaway_type, tmp_path):
    from hf_linear.model_types import is_hf_linear, type_names

    assert is_hf_linear("throwaway_lm") and "throwaway_lm" in type_names()
    model = tiny_throwaway()
    model.save_pretrained(tmp_path / "ckpt")
    assert type(AutoConfig.from_pretrained(tmp_path / "ckpt")) is ThrowawayConfig
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path / "ckpt")
    assert type(loaded) is ThrowawayForCausalLM
    ids = torch.tensor([[1, 5, 7, 2, 9, 3, 4]])  # longer than the window: it slides
    with torch.no_grad():
        torch.testing.assert_close(loaded(ids).logits, model(ids).logits, rtol=0, atol=0)
    generated = loaded.generate(ids[:, :3], max_new_tokens=6, do_sample=False)
    assert generated.shape == (1, 9)


def test_analyses_read_the_row_not_the_name(throwaway_type):
    from hf_linear.analysis.attribution import attribute_token
    from hf_linear.analysis.dead_units import alive_units
    from hf_linear.hub.card import architecture_text, intended_use_text

    model = tiny_throwaway(seed=3)
    ids = [1, 5, 7, 2, 9, 3]
    attribution = attribute_token(model, ids, position=4)
    assert attribution.exact  # linear in its inputs: the parts and the bias are the logit
    assert attribution.to_logit.sum().item() + attribution.logit_bias == pytest.approx(attribution.logit, abs=1e-5)
    assert alive_units(model, [ids, ids]) is None  # no ReLU after the masked map
    assert architecture_text(model.config.to_dict())[:2] == ("A throwaway model.", "Width 4.")
    assert intended_use_text(model.config.to_dict()) == "Not in the paper."


def test_a_training_config_names_the_new_type(throwaway_type, tmp_path):
    from hf_linear.training.train import main

    config = tiny_config(tmp_path / "run", max_steps=2)
    config["model"] = {"type": "throwaway_lm", "hidden_size": 4}
    assert main([str(write_config(tmp_path, config))]) == 0
    assert type(AutoModelForCausalLM.from_pretrained(tmp_path / "run")) is ThrowawayForCausalLM
