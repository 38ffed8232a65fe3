"""The masked map's weight gradient from batch-centred inputs (optimizer.center_mixing_gradient),
against a plain dense masked matmul whose weight reads x − x̄."""

from __future__ import annotations

import pytest
import torch
from helpers import tiny_config, tiny_model, trained_with_and_without

from hf_linear.masked_mixing import MaskedPositionMixing
from hf_linear.training.centered_gradient import center_mixing_gradient
from hf_linear.training.config import check_config


def dense_weight(mixing: MaskedPositionMixing) -> torch.Tensor:
    """(T·d, T·d): block (j, i) = W[i, j] for j ≤ i, zero above (a plain loop over the blocks)."""
    T, d = mixing.context_length, mixing.hidden_size
    rows = []
    for i in range(T):
        column = torch.zeros(T * d, d)
        for j in range(i + 1):
            column[j * d : (j + 1) * d] = mixing.weight[i * (i + 1) // 2 + j]
        rows.append(column)
    return torch.cat(rows, dim=1)


@pytest.mark.parametrize("length", [7, 5])  # the whole window, and a shorter batch
def test_gradients_match_a_dense_map_reading_centred_inputs(length):
    T, d, B = 7, 3, 6
    torch.manual_seed(0)
    mixing = MaskedPositionMixing(T, d, chunk_size=3)
    torch.nn.init.normal_(mixing.weight)
    torch.nn.init.normal_(mixing.bias)
    x = torch.randn(B, length, d) + 2.0  # inputs with a mean: the part the centring takes out
    upstream = torch.randn(B, length, d)

    def grads(center: bool):
        mixing.zero_grad()
        mixing.center_weight_gradient = center
        inputs = x.clone().requires_grad_()
        (mixing(inputs) * upstream).sum().backward()
        return mixing.weight.grad.clone(), mixing.bias.grad.clone(), inputs.grad

    # reference: y = (x − x̄) W + x̄ W.detach() + b: the same outputs; W's gradient from x − x̄
    W = dense_weight(mixing).detach().requires_grad_()
    bias = mixing.bias.detach().clone().requires_grad_()
    inputs = x.clone().requires_grad_()
    flat = inputs.reshape(B, -1)
    mean = flat.mean(0, keepdim=True)
    n = length * d
    y = (flat - mean) @ W[:n, :n] + mean @ W[:n, :n].detach() + bias[:length].reshape(-1)
    torch.testing.assert_close(y.view(B, length, d), mixing(x).detach(), rtol=1e-5, atol=1e-5)
    (y.view(B, length, d) * upstream).sum().backward()

    weight_grad, bias_grad, input_grad = grads(center=True)
    for i in range(length):
        for j in range(i + 1):
            expected = W.grad[j * d : (j + 1) * d, i * d : (i + 1) * d]
            torch.testing.assert_close(weight_grad[i * (i + 1) // 2 + j], expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(bias_grad[:length], bias.grad[:length])
    torch.testing.assert_close(input_grad, inputs.grad, rtol=1e-5, atol=1e-5)

    plain_weight, plain_bias, plain_input = grads(center=False)
    assert not torch.allclose(plain_weight, weight_grad, atol=1e-3)  # the inputs' mean was taken out
    torch.testing.assert_close(plain_bias, bias_grad)
    torch.testing.assert_close(plain_input, input_grad)


def test_centred_updates_cannot_move_a_units_mean_through_its_weights():
    """The same output gradient on every example is a pure "shift the mean" signal: the centred
    weight gradient is zero, and the bias takes it all."""
    T, d, B = 5, 2, 8
    torch.manual_seed(1)
    mixing = MaskedPositionMixing(T, d)
    torch.nn.init.normal_(mixing.weight)
    torch.nn.init.zeros_(mixing.bias)
    mixing.center_weight_gradient = True
    x = torch.randn(B, T, d) + 3.0
    mixing(x).sum().backward()  # the same gradient for every example: a pure "shift the mean" signal
    assert mixing.weight.grad.abs().max() < 1e-5  # nothing for the weight to learn
    assert torch.equal(mixing.bias.grad, torch.full((T, d), float(B)))  # the bias takes it all


def test_a_run_with_it_trains_and_records_it(tmp_path):
    weights, saved = trained_with_and_without(tmp_path, {"center_mixing_gradient": True}, max_steps=10)
    assert not torch.equal(weights[0]["model.mixing.weight"], weights[1]["model.mixing.weight"])
    assert saved[0]["optimizer"] == {"center_mixing_gradient": True}


@pytest.mark.parametrize(
    "change,message",
    [
        ({"optimizer": {"center_mixing_gradient": "yes"}}, "center_mixing_gradient"),
        ({"optimizer": {"center_mixing_gradient": True}, "lora": {"r": 2}}, "under lora"),
        (
            {"optimizer": {"center_mixing_gradient": True}, "model": {"type": "gpt2"}},
            "model type gpt2 has no masked map",
        ),
    ],
)
def test_bad_settings_are_named(tmp_path, change, message):
    with pytest.raises(ValueError, match=message):
        check_config({**tiny_config(tmp_path / "run"), **change})


def test_a_model_without_a_masked_map_is_refused():
    with pytest.raises(ValueError, match="no masked map"):
        center_mixing_gradient(torch.nn.Linear(2, 2))
    model = tiny_model("mlp")
    assert center_mixing_gradient(model) is model.model.mixing and model.model.mixing.center_weight_gradient
