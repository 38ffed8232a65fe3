"""The masked map drawn by each row's fan-in (model.mixing_init: fan_in)."""

from __future__ import annotations

import math

import pytest
import torch
from helpers import tiny_config, tiny_model

from hf_linear import MLPLMConfig, MLPLMForCausalLM
from hf_linear.training.config import check_config


def output_rms_per_row(model, input_ids: torch.Tensor) -> torch.Tensor:
    """(T,) RMS over the batch and the d units of the masked map's output at each position,
    computed from the layers themselves (embedding, then the map)."""
    with torch.no_grad():
        y = model.model.mixing(model.model.embed_tokens(input_ids))  # (B, T, d)
    return y.pow(2).mean(dim=(0, 2)).sqrt()


@pytest.mark.slow
def test_every_row_starts_at_one_scale_at_T_271():
    T, d, V = 271, 32, 256  # the 8x8 `lsb` model: window 271, width 32
    model = tiny_model("mlp", vocab_size=V, context_length=T, hidden_size=d, mixing_init="fan_in")
    input_ids = torch.randint(0, V, (256, T), generator=torch.Generator().manual_seed(0))
    rms = output_rms_per_row(model, input_ids)
    assert rms.max() / rms.min() <= 1.10, (rms.argmin(), rms.min(), rms.argmax(), rms.max())
    # the scale is the one the fan-in rule gives: E[y²] = E[x²]/3 (+ the bias's tiny 1/(3·T·d))
    embedding_power = float(model.model.embed_tokens.weight.detach().pow(2).mean())
    expected = math.sqrt(embedding_power / 3 + 1 / (3 * T * d))
    assert abs(rms.mean() / expected - 1) < 0.05

    # the authors' dense init under the same check: the scale grows as √(i+1), ~16x over the window
    dense = tiny_model("mlp", vocab_size=V, context_length=T, hidden_size=d)
    dense_rms = output_rms_per_row(dense, input_ids)
    assert dense_rms[-1] / dense_rms[0] > 10


def test_blocks_are_drawn_within_their_rows_bound():
    T, d = 7, 3
    model = tiny_model("mlp", context_length=T, hidden_size=d, mixing_init="fan_in")
    weight = model.model.mixing.weight
    for i in range(T):
        row = weight[i * (i + 1) // 2 : i * (i + 1) // 2 + i + 1]
        bound = 1 / math.sqrt((i + 1) * d)
        assert row.abs().max() <= bound
        assert row.abs().max() > 0.5 * bound  # drawn, not left at zero


def test_the_default_stays_the_authors_init_and_loading_keeps_the_weights(tmp_path):
    assert MLPLMConfig().mixing_init == "dense"
    dense = tiny_model("mlp", seed=3)
    assert dense.model.mixing.weight.abs().max() <= 1 / math.sqrt(6 * 4)  # T=6, d=4: one bound
    model = tiny_model("mlp", seed=4, mixing_init="fan_in")
    model.save_pretrained(tmp_path)
    loaded = MLPLMForCausalLM.from_pretrained(tmp_path)
    assert loaded.config.mixing_init == "fan_in"
    assert torch.equal(loaded.model.mixing.weight, model.model.mixing.weight)


def test_a_config_selects_it_and_a_wrong_name_is_an_error(tmp_path):
    config = tiny_config(tmp_path / "run")
    config["model"]["mixing_init"] = "fan_in"
    assert check_config(config).model["mixing_init"] == "fan_in"
    config["model"]["mixing_init"] = "fanin"
    with pytest.raises(ValueError, match="mixing_init must be one of dense, fan_in, got 'fanin'"):
        MLPLMConfig(mixing_init="fanin")
