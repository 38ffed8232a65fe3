"""Growing the window and the vocabulary of a trained model (resize_context_length,
resize_token_embeddings, hf_linear.model_surgery.adapt_pretrained).

The reference for a longer window is the old model itself: with its sliding window it already
defines outputs for inputs longer than T, and the grown model must reproduce them.
"""

from __future__ import annotations

import copy
from functools import partial

import pytest
import torch
from helpers import tiny_model
from transformers import AutoModelForCausalLM

import hf_linear  # noqa: F401
from hf_linear import LinearLMConfig, LinearLMModel
from hf_linear.model_surgery import adapt_pretrained

V, T, D = 17, 5, 4
tiny = partial(tiny_model, vocab_size=V, context_length=T, hidden_size=D)


def random_ids(batch, length, seed=0, vocab=V):
    return torch.randint(0, vocab, (batch, length), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("kind", ["linear", "mlp"])
@pytest.mark.parametrize("new_T", [T + 1, 2 * T + 3])
def test_grown_window_computes_what_the_old_sliding_window_computed(kind, new_T):
    old = tiny(kind)
    grown = copy.deepcopy(old)
    grown.resize_context_length(new_T)
    assert grown.config.context_length == new_T == grown.model.mixing.context_length
    assert grown.model.mixing.weight.shape == (new_T * (new_T + 1) // 2, D, D)
    ids = random_ids(3, new_T + 4, seed=new_T)
    with torch.no_grad():
        for length in range(1, T + 1):  # inputs of up to the old T: bit-identical logits
            assert torch.equal(grown(ids[:, :length]).logits, old(ids[:, :length]).logits)
        # longer inputs: the old model slides (row T-1 over the last T tokens) — the grown one
        # must give the same logits, both inside its new window and when it slides itself
        torch.testing.assert_close(grown(ids).logits, old(ids).logits, rtol=1e-5, atol=1e-5)
        # and the generation path (last position of a window of up to new_T tokens)
        torch.testing.assert_close(
            grown(ids, logits_to_keep=1).logits[:, -1], old(ids).logits[:, -1], rtol=1e-5, atol=1e-5
        )


def test_new_rows_are_the_last_row_shifted():
    old = tiny()
    grown = copy.deepcopy(old)
    grown.resize_context_length(T + 2)
    w_old, w_new = old.model.mixing.weight, grown.model.mixing.weight
    block = lambda w, i, j: w[i * (i + 1) // 2 + j]  # noqa: E731
    for i in range(T, T + 2):
        shift = i - T + 1
        for j in range(i + 1):
            expected = block(w_old, T - 1, j - shift) if j >= shift else torch.zeros(D, D)
            assert torch.equal(block(w_new, i, j), expected), (i, j)
        assert torch.equal(grown.model.mixing.bias[i], old.model.mixing.bias[T - 1])


def test_grown_checkpoint_round_trip_and_training(tmp_path):
    model = tiny("mlp")
    model.resize_context_length(T + 3)
    model.save_pretrained(tmp_path)
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path)
    assert loaded.config.context_length == T + 3
    ids = random_ids(2, T + 5)
    with torch.no_grad():
        torch.testing.assert_close(loaded(ids).logits, model(ids).logits, rtol=0, atol=0)
    loaded.train()
    loaded(ids, labels=ids).loss.backward()  # the new rows are ordinary trainable parameters
    assert loaded.model.mixing.weight.grad[-1].abs().sum() > 0


def test_base_model_grows_too_and_shrinking_is_an_error():
    base = LinearLMModel(LinearLMConfig(vocab_size=V, context_length=T, hidden_size=D)).eval()
    ids = random_ids(1, T)
    with torch.no_grad():
        before = base(ids).last_hidden_state
        base.resize_context_length(T + 2)
        assert torch.equal(base(ids).last_hidden_state, before)
    model = tiny()
    with pytest.raises(ValueError, match="only grow"):
        model.resize_context_length(T - 1)
    with pytest.raises(ValueError, match="only grow"):
        model.resize_context_length(0)
    model.resize_context_length(T)  # same size: nothing to do
    assert model.config.context_length == T


@pytest.mark.parametrize("kind", ["linear", "mlp"])
def test_resize_token_embeddings_keeps_old_tokens(kind):
    model = tiny(kind)
    old_head = (model.lm_head.weight.detach().clone(), model.lm_head.bias.detach().clone())
    old_embeddings = model.model.embed_tokens.weight.detach().clone()
    ids = random_ids(2, T + 2)
    with torch.no_grad():
        before = model(ids).logits
    model.resize_token_embeddings(V + 3)
    assert model.config.vocab_size == V + 3
    assert model.lm_head.weight.shape == (V + 3, model.lm_head.in_features)
    assert model.lm_head.bias.shape == (V + 3,)  # the output layer's bias grows with it
    assert torch.equal(model.lm_head.weight[:V], old_head[0]) and torch.equal(model.lm_head.bias[:V], old_head[1])
    assert torch.equal(model.model.embed_tokens.weight[:V], old_embeddings)
    assert torch.isfinite(model.lm_head.bias[V:]).all()
    new_ids = random_ids(2, T + 2, vocab=V + 3, seed=1)
    with torch.no_grad():
        after = model(ids).logits
        model(new_ids)  # the new tokens are accepted as input
    assert after.shape[-1] == V + 3
    torch.testing.assert_close(after[..., :V], before, rtol=1e-6, atol=1e-6)


def test_adapt_pretrained_grows_both_and_checks_the_architecture():
    model = tiny("mlp", num_mlp_layers=1)
    ids = random_ids(2, T)
    with torch.no_grad():
        before = model(ids).logits
    adapt_pretrained(
        model,
        context_length=T + 4,
        vocab_size=V + 2,
        hidden_size=D,
        model_type="mlp_lm",
        num_mlp_layers=1,
        mlp_hidden_size=None,
        pad_token_id=V + 1,
        mixing_chunk_size=2,
    )
    assert (model.config.context_length, model.config.vocab_size, model.config.pad_token_id) == (T + 4, V + 2, V + 1)
    assert model.config.mixing_chunk_size == 2 == model.model.mixing.chunk_size
    with torch.no_grad():
        torch.testing.assert_close(model(ids).logits[..., :V], before, rtol=1e-6, atol=1e-6)

    for bad, message in (
        ({"hidden_size": D + 1}, "hidden_size"),
        ({"model_type": "linear_lm"}, "model_type"),
        ({"num_mlp_layers": 2}, "num_mlp_layers"),
        ({"mlp_hidden_size": D + 3}, "mlp_hidden_size"),
        ({"vocab_size": V - 1}, "shrink"),
        ({"context_length": T - 1}, "only grow"),
        ({"n_layer": 2}, "unknown"),
        ({"pad_token_id": V + 5}, "pad_token_id"),
    ):
        with pytest.raises(ValueError, match=message):
            adapt_pretrained(tiny("mlp"), **bad)
    with pytest.raises(ValueError, match="model_type"):
        adapt_pretrained(tiny("linear"), model_type="mlp_lm")
