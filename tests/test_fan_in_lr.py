"""The masked map's per-position learning rate (optimizer.mixing_lr_fan_in_reference)."""

from __future__ import annotations

import copy

import pytest
import torch
from helpers import tiny_config, tiny_model, trained_with_and_without

from hf_linear.training.config import check_config
from hf_linear.training.fan_in_lr import attach_fan_in_lr


def one_step(model, optimizer, input_ids):
    optimizer.zero_grad()
    model(input_ids=input_ids, labels=input_ids).loss.backward()
    optimizer.step()


@pytest.mark.parametrize("kind", ["linear", "mlp"])
def test_each_row_moves_by_its_share_of_the_plain_step(kind):
    T, d, reference = 6, 4, 2
    plain = tiny_model(kind, context_length=T, hidden_size=d).train()
    scaled = copy.deepcopy(plain)
    input_ids = torch.randint(0, 23, (8, T), generator=torch.Generator().manual_seed(0))
    optimizers = [torch.optim.AdamW(m.parameters(), lr=1e-2, weight_decay=0.1) for m in (plain, scaled)]
    attach_fan_in_lr(optimizers[1], scaled, reference)
    before = copy.deepcopy(plain.state_dict())
    for model, optimizer in zip((plain, scaled), optimizers):
        one_step(model, optimizer, input_ids)  # the same weights and batch: the same gradients

    # reference: block (i, j) sits at i(i+1)/2 + j and moves by min(1, reference / (i+1)) of the plain step
    name = "model.mixing.weight"
    plain_step = plain.state_dict()[name] - before[name]
    scaled_step = scaled.state_dict()[name] - before[name]
    for i in range(T):
        for j in range(i + 1):
            block = i * (i + 1) // 2 + j
            share = min(1.0, reference / (i + 1))
            torch.testing.assert_close(scaled_step[block], share * plain_step[block], rtol=1e-5, atol=1e-8)
    assert not torch.equal(scaled_step, plain_step)  # rows 2.. were scaled down
    for key, value in plain.state_dict().items():  # every other parameter: the plain step exactly
        if key != name:
            assert torch.equal(scaled.state_dict()[key], value), key
    # the optimizer's moments are the plain ones: only the applied update is scaled
    state = [opt.state[dict(m.named_parameters())[name]] for opt, m in zip(optimizers, (plain, scaled))]
    assert torch.equal(state[0]["exp_avg"], state[1]["exp_avg"])


def test_a_reference_covering_the_window_changes_nothing():
    plain = tiny_model("mlp").train()
    scaled = copy.deepcopy(plain)
    input_ids = torch.randint(0, 23, (8, 6), generator=torch.Generator().manual_seed(1))
    optimizers = [torch.optim.AdamW(m.parameters(), lr=1e-2) for m in (plain, scaled)]
    attach_fan_in_lr(optimizers[1], scaled, 6)  # every row reads at most 6 positions: factor 1
    for _ in range(2):
        for model, optimizer in zip((plain, scaled), optimizers):
            one_step(model, optimizer, input_ids)
    for key, value in plain.state_dict().items():
        torch.testing.assert_close(scaled.state_dict()[key], value, rtol=0, atol=1e-7)


@pytest.mark.slow
def test_a_run_with_it_trains_and_records_it(tmp_path):
    weights, saved = trained_with_and_without(tmp_path, {"mixing_lr_fan_in_reference": 4}, max_steps=20)
    # the short rows (reading ≤ 4 positions) and the rest of the model train alike at first; the
    # long rows took smaller steps, so the runs differ
    assert not torch.equal(weights[0]["model.mixing.weight"], weights[1]["model.mixing.weight"])
    assert saved[0]["optimizer"] == {"mixing_lr_fan_in_reference": 4}
    assert "optimizer" not in saved[1]


@pytest.mark.parametrize(
    "change,message",
    [
        ({"optimizer": {"mixing_lr_fan_in_reference": 0}}, "must be a positive number of positions, got 0"),
        ({"optimizer": {"mixing_lr_fan_in_reference": 2.5}}, "optimizer.mixing_lr_fan_in_reference' expected int"),
        ({"optimizer": {"mixing_lr_fan_in_referenc": 8}}, r"optimizer: unknown key\(s\) mixing_lr_fan_in_referenc"),
        ({"optimizer": {"mixing_lr_fan_in_reference": 8}, "lora": {"r": 2}}, "under lora: that weight is frozen"),
        (
            {"optimizer": {"mixing_lr_fan_in_reference": 8}, "model": {"type": "gpt2"}},
            "model type gpt2 has no masked map",
        ),
    ],
)
def test_bad_settings_are_named(tmp_path, change, message):
    config = {**tiny_config(tmp_path / "run"), **change}
    with pytest.raises(ValueError, match=message):
        check_config(config)


def test_a_model_without_a_trained_masked_map_is_refused():
    model = tiny_model("mlp").train()
    model.model.mixing.weight.requires_grad_(False)
    with pytest.raises(ValueError, match="masked map's weight is not trained"):
        attach_fan_in_lr(torch.optim.AdamW([p for p in model.parameters() if p.requires_grad]), model, 4)
