"""Recycling dormant units after the masked map's ReLU (optimizer.redo_every, hf_linear.training.redo)."""

from __future__ import annotations

import copy
import json
import math
from types import SimpleNamespace

import pytest
import torch
import yaml
from helpers import tiny_config, tiny_model
from transformers import TrainerControl, TrainerState

from hf_linear.training.config import check_config
from hf_linear.training.redo import RecycleDormantUnits
from hf_linear.training.train import train

T, D, V = 6, 4, 23


def fired_by_a_plain_loop(model, batches) -> torch.Tensor:
    """(T, d) bool: the pre-activation x[:, :i+1] @ W_i + b_i of unit u at position i was > 0 on
    some row of some batch, computed row by row from the embeddings."""
    mixing = model.model.mixing
    fired = torch.zeros(T, D, dtype=torch.bool)
    with torch.no_grad():
        for ids in batches:
            x = model.get_input_embeddings()(ids)
            for i in range(T):
                fired[i] |= ((x[:, : i + 1].reshape(len(ids), -1) @ mixing.row_weight(i) + mixing.bias[i]) > 0).any(0)
    return fired


def adam_steps(model, optimizer, batches):
    for ids in batches:
        optimizer.zero_grad()
        model(input_ids=ids, labels=ids).loss.backward()
        optimizer.step()


@pytest.mark.parametrize("mixing_init", ["dense", "fan_in"])
def test_exactly_the_units_that_did_not_fire_are_recycled(mixing_init):
    model = tiny_model("mlp", seed=7, vocab_size=V, context_length=T, hidden_size=D, mixing_init=mixing_init).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    warmup = [torch.randint(0, V, (16, T), generator=torch.Generator().manual_seed(s)) for s in range(2)]
    adam_steps(model, optimizer, warmup)  # moments of every entry non-zero
    mixing = model.model.mixing
    with torch.no_grad():  # plant dormant units: a unit is dead when its bias is far below any input's reach
        mixing.bias[2, 1] = -1e4  # one unit of position 2
        mixing.bias[4] = -1e4  # every unit of position 4
        mixing.bias[:, 3] = -1e4  # unit 3 at every position: its outgoing column can go too

    callback = RecycleDormantUnits(every=2)
    args, state, control = SimpleNamespace(seed=0), TrainerState(), TrainerControl()
    callback.on_train_begin(args, state, control, model=model)
    window = [torch.randint(0, V, (16, T), generator=torch.Generator().manual_seed(10 + s)) for s in range(2)]
    dormant = ~fired_by_a_plain_loop(model, window)  # the reference, before the window's steps
    # the window: forward passes in training mode, no optimizer step (so the weights stay the ones
    # the reference saw); the callback counts its steps at on_step_end
    before = copy.deepcopy(model.state_dict())
    moments_before = {name: copy.deepcopy(optimizer.state[p]) for name, p in model.named_parameters()}
    for step, ids in enumerate(window, 1):
        with torch.no_grad():
            model(input_ids=ids)
        state.global_step = step
        callback.on_step_end(args, state, control, model=model, optimizer=optimizer)

    planted = torch.zeros(T, D, dtype=torch.bool)
    planted[2, 1] = planted[4] = planted[:, 3] = True
    assert (dormant & planted).equal(planted) and dormant.sum() >= planted.sum()
    assert callback.recycled == [(2, int(dormant.sum()))]

    after = model.state_dict()
    weight, weight_before = after["model.mixing.weight"], before["model.mixing.weight"]
    bias, bias_before = after["model.mixing.bias"], before["model.mixing.bias"]
    states = {name: optimizer.state[p] for name, p in model.named_parameters()}
    for i in range(T):
        blocks = slice(i * (i + 1) // 2, (i + 1) * (i + 2) // 2)
        bound = 1 / math.sqrt((i + 1 if mixing_init == "fan_in" else T) * D)  # row i's init
        for u in range(D):
            new, old = weight[blocks, :, u], weight_before[blocks, :, u]
            moments = [states["model.mixing.weight"][k][blocks, :, u] for k in ("exp_avg", "exp_avg_sq")]
            moments_old = [moments_before["model.mixing.weight"][k][blocks, :, u] for k in ("exp_avg", "exp_avg_sq")]
            bias_moments = [states["model.mixing.bias"][k][i, u] for k in ("exp_avg", "exp_avg_sq")]
            if dormant[i, u]:  # re-drawn from the init, moments reset
                assert not torch.equal(new, old) and new.abs().max() <= bound
                assert abs(bias[i, u]) <= 1 / math.sqrt(T * D)  # the bias: the dense bound
                assert all(float(m.abs().max()) == 0 for m in moments + bias_moments)
            else:  # untouched, entry by entry
                assert torch.equal(new, old) and bias[i, u] == bias_before[i, u]
                assert all(torch.equal(m, o) for m, o in zip(moments, moments_old))
    reader = "model.mlp.layers.0.weight"  # (out, d): the shared next layer
    assert float(after[reader][:, 3].abs().max()) == 0  # dormant at every position: outgoing zeroed
    assert all(float(states[reader][k][:, 3].abs().max()) == 0 for k in ("exp_avg", "exp_avg_sq"))
    others = [u for u in range(D) if not dormant[:, u].all()]
    assert torch.equal(after[reader][:, others], before[reader][:, others])
    for name in after:  # every other parameter as it was
        if name not in ("model.mixing.weight", "model.mixing.bias", reader):
            assert torch.equal(after[name], before[name]), name
    # the recycled units fire again
    assert fired_by_a_plain_loop(model, window)[planted].any()


def test_the_threshold_is_redos_score():
    from hf_linear.training.redo import dormant_units

    sums = torch.tensor([[0.0, 1.0, 3.0, 4.0], [0.0, 0.0, 0.0, 0.0]])  # position 0: mean 2; position 1: dead
    assert dormant_units(sums, 0.0).tolist() == [[True, False, False, False], [True] * 4]
    assert dormant_units(sums, 0.5).tolist() == [[True, True, False, False], [True] * 4]  # ≤ 0.5 × 2


def test_a_run_with_it_trains_logs_and_records_it(tmp_path):
    config = tiny_config(tmp_path / "run", max_steps=8, logging_steps=2)
    config["optimizer"] = {"redo_every": 3, "redo_threshold": 0.1}
    train(check_config(config))
    history = json.loads((tmp_path / "run" / "trainer_state.json").read_text())["log_history"]
    counts = [entry["redo_recycled_units"] for entry in history if "redo_recycled_units" in entry]
    assert len(counts) == 2  # checks after steps 3 and 6, logged at steps 4 and 6
    saved = yaml.safe_load((tmp_path / "run" / "training_config.yaml").read_text())
    assert saved["optimizer"] == {"redo_every": 3, "redo_threshold": 0.1}


@pytest.mark.parametrize(
    "change,message",
    [
        ({"optimizer": {"redo_every": 0}}, "redo_every must be a positive number of steps, got 0"),
        ({"optimizer": {"redo_every": 5, "redo_threshold": -0.1}}, "redo_threshold must be >= 0"),
        ({"optimizer": {"redo_every": 5}, "model": {"type": "linear_lm"}}, "no ReLU after a masked map"),
        ({"optimizer": {"redo_every": 5}, "lora": {"r": 2}}, "under lora: they are frozen"),
    ],
)
def test_bad_settings_are_named(tmp_path, change, message):
    config = {**tiny_config(tmp_path / "run"), **change}
    with pytest.raises(ValueError, match=message):
        check_config(config)
