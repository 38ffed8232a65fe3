"""Token attribution: for a LinearLM the parts plus the bias are the model's own logit."""

from __future__ import annotations

import pytest
import torch

from hf_linear import LinearLMConfig, LinearLMForCausalLM, MLPLMConfig, MLPLMForCausalLM
from hf_linear.analysis.attribution import attribute_token, window_of

V, T, D = 23, 9, 6


def random_model(model_class, config_class, seed: int):
    """A random model whose weights are large enough that every term matters (the default
    initialisation makes the masked map's terms tiny next to the biases)."""
    torch.manual_seed(seed)
    model = model_class(config_class(vocab_size=V, context_length=T, hidden_size=D)).eval()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.normal_(0.0, 1.0)
    return model


@pytest.mark.parametrize("seed", range(5))
def test_linear_attribution_sums_to_the_models_logit(seed):
    model = random_model(LinearLMForCausalLM, LinearLMConfig, seed)
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, V, (2 * T + 3,), generator=generator)
    with torch.no_grad():
        logits = model(ids[None]).logits[0]  # all positions at once: an independent path through the model
    for position in (0, 3, T - 1, T, 2 * T + 1):  # inside the window and sliding past it
        for token_id in (None, int(torch.randint(0, V, (1,), generator=generator))):
            parts = attribute_token(model, ids, position, token_id)
            assert parts.exact
            expected_token = int(ids[position + 1]) if token_id is None else token_id
            assert parts.token_id == expected_token and parts.runner_up_id != expected_token
            assert abs(float(parts.to_logit.sum()) + parts.logit_bias - float(logits[position, expected_token])) < 1e-4
            margin = float(logits[position, expected_token] - logits[position, parts.runner_up_id])
            assert abs(float(parts.to_margin.sum()) + parts.margin_bias - margin) < 1e-4
            # the runner-up is the best other token
            others = logits[position].clone()
            others[expected_token] = float("-inf")
            assert parts.runner_up_id == int(others.argmax())
            start, row = window_of(T, position)
            assert parts.input_positions == list(range(start, position + 1)) and parts.map_row == row
            assert parts.input_ids == ids[start : position + 1].tolist()


def test_linear_attribution_of_one_input_is_its_logit_change():
    """Exactness, input by input: replacing the embedding of one input by zero removes exactly its part."""
    model = random_model(LinearLMForCausalLM, LinearLMConfig, 7)
    ids = torch.randint(0, V, (T,), generator=torch.Generator().manual_seed(7))
    parts = attribute_token(model, ids, T - 1)
    zero_token = 0
    with torch.no_grad():
        model.model.embed_tokens.weight[zero_token] = 0.0
    ids_without = ids.clone()
    j = int(torch.nonzero(ids != zero_token)[0])
    ids_without[j] = zero_token
    removed = attribute_token(model, ids_without, T - 1, parts.token_id)
    assert abs((parts.logit - removed.logit) - float(parts.to_logit[j])) < 1e-4


def test_mlp_attribution_is_a_labelled_local_linearisation():
    model = random_model(MLPLMForCausalLM, MLPLMConfig, 3)
    ids = torch.randint(0, V, (T + 2,), generator=torch.Generator().manual_seed(3))
    parts = attribute_token(model, ids, T)
    assert not parts.exact and "approximation" in parts.method
    # each part is gradient × input: the logit's directional derivative along that input's
    # embedding, here measured by scaling the embedding by (1 + eps) (ReLU nets are piecewise
    # linear: exact while no unit changes sign)
    eps = 1e-3
    for j, position in enumerate(parts.input_positions):

        def scale_input(module, args, output, position=position):
            output = output.clone()
            output[:, position] *= 1 + eps
            return output

        hook = model.base_model.embed_tokens.register_forward_hook(scale_input)
        try:
            with torch.no_grad():
                moved = float(model(ids[None, : T + 1]).logits[0, -1, parts.token_id])
        finally:
            hook.remove()
        assert (moved - parts.logit) / eps == pytest.approx(float(parts.to_logit[j]), rel=2e-2, abs=2e-2)
    # without biases a ReLU network is linear along h: the inputs' parts alone make the logit
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if name.endswith("bias"):
                parameter.zero_()
    unbiased = attribute_token(model, ids, T)
    assert abs(unbiased.logit_bias) < 1e-4
    assert abs(float(unbiased.to_logit.sum()) - unbiased.logit) < 1e-4


def test_position_outside_the_sequence_is_an_error():
    model = random_model(LinearLMForCausalLM, LinearLMConfig, 0)
    with pytest.raises(ValueError, match="outside the sequence"):
        attribute_token(model, [1, 2, 3], 3)
