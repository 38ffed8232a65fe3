"""Why a model writes the token it writes: the share of each input (position, token) in its logit.

For a LinearLM the answer is exact. The logits at output position p are

    logit_v(p) = b_head[v] + u_v · (b_mix[i] + Σ_j E[x_j] @ W[i, j])

where the window is the last n ≤ T tokens up to p, i is p's row of the masked map (p itself for
p < T, T-1 for a sliding window), j runs over the window, E is the embedding, u_v the row of
the output layer for token v. So every input (position j, token x_j) adds one number,
u_v · (E[x_j] @ W[i, j]), and the biases add the rest: the parts plus the bias ARE the logit.
The margin over the runner-up token r splits the same way (u_v - u_r in place of u_v).

An MLPLM puts ReLU layers between the masked map and the output, so no such split exists. We
use gradient × input at the masked map's output h: with g = ∂logit/∂h, input j gets g · (its
term of h). For a ReLU network logit = g · h + (a constant of the current ReLU pattern), so the
parts plus the "bias" still add up to the logit, but they are a local linearisation: changing
one input can switch ReLUs and change every other part. It is labelled as an approximation.

Usable without Gradio: `attribute_token(model, ids, position)`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from hf_linear.model_types import model_type_of

EXACT_METHOD = "exact: the linear model's logit is a sum of one term per input (position, token) plus its biases"
APPROXIMATE_METHOD = (
    "approximation: gradient × input at the masked map's output (a local linearisation "
    "of the MLP; the parts add up to the logit, but changing one input can change the others)"
)


@dataclass(frozen=True)
class TokenAttribution:
    """The contributions to one logit (and margin) at output position `position`."""

    position: int  # output position p: its logits predict the token at p + 1
    map_row: int  # the row i of the masked map that computes position p (p, or T-1 past the window)
    token_id: int  # the token explained
    runner_up_id: int  # the other token with the highest logit at p
    input_positions: list[int]  # the window read, oldest first: p-n+1 .. p
    input_ids: list[int]
    to_logit: torch.Tensor  # (n,) share of each input in logit(token)
    to_margin: torch.Tensor  # (n,) share of each input in logit(token) - logit(runner-up)
    logit_bias: float  # what no input contributes (the biases; for MLPLM also the ReLU pattern's offset)
    margin_bias: float
    logit: float  # the model's own logit of the token at p (from its forward)
    runner_up_logit: float
    exact: bool
    method: str

    @property
    def margin(self) -> float:
        return self.logit - self.runner_up_logit


def window_of(context_length: int, position: int) -> tuple[int, int]:
    """(first input position, map row) of output position p: the window is the last T tokens."""
    start = max(0, position - context_length + 1)
    return start, position - start


@torch.no_grad()
def input_terms(model, input_ids: torch.Tensor, position: int) -> tuple[torch.Tensor, torch.Tensor, int, int]:
    """The masked map's output at position p, split by input: (terms (n, d), bias (d,), start, row)
    with h = bias + terms.sum(0); terms[j] = E[x_{start+j}] @ W[row, j]."""
    base = model.base_model
    mixing = base.mixing
    d = mixing.hidden_size
    start, row = window_of(mixing.context_length, position)
    embedded = base.embed_tokens(input_ids[start : position + 1]).float()  # (n, d)
    blocks = mixing.row_weight(row).float().reshape(row + 1, d, d)  # W[row, 0..row], each (d_in, d_out)
    terms = torch.einsum("jd,jde->je", embedded, blocks)
    return terms, mixing.bias[row].float(), start, row


def attribute_token(
    model, input_ids: Sequence[int] | torch.Tensor, position: int, token_id: int | None = None
) -> TokenAttribution:
    """Contributions of every input (position, token) of the window to the logit of `token_id` at
    output position `position` (default: the token the sequence holds at position + 1, else the
    model's top token), and to its margin over the runner-up. fp32 throughout."""
    ids = torch.as_tensor(
        list(input_ids) if not isinstance(input_ids, torch.Tensor) else input_ids, dtype=torch.long
    ).reshape(-1)
    if not 0 <= position < len(ids):
        raise ValueError(f"position={position} is outside the sequence of {len(ids)} tokens")
    with torch.no_grad():
        logits = model(ids[None, : position + 1]).logits[0, -1].float()  # the model's own forward
    if token_id is None:
        token_id = int(ids[position + 1]) if position + 1 < len(ids) else int(logits.argmax())
    others = logits.clone()
    others[token_id] = float("-inf")
    runner_up_id = int(others.argmax())

    terms, mixing_bias, start, row = input_terms(model, ids, position)
    if model_type_of(model).linear_in_inputs:
        to_logit, logit_bias = _linear_parts(model, terms, mixing_bias, token_id)
        to_runner_up, runner_up_bias = _linear_parts(model, terms, mixing_bias, runner_up_id)
        exact, method = True, EXACT_METHOD
    else:
        to_logit, logit_bias = _gradient_parts(model, terms, mixing_bias, token_id, float(logits[token_id]))
        to_runner_up, runner_up_bias = _gradient_parts(
            model, terms, mixing_bias, runner_up_id, float(logits[runner_up_id])
        )
        exact, method = False, APPROXIMATE_METHOD
    return TokenAttribution(
        position=position,
        map_row=row,
        token_id=token_id,
        runner_up_id=runner_up_id,
        input_positions=list(range(start, position + 1)),
        input_ids=ids[start : position + 1].tolist(),
        to_logit=to_logit,
        to_margin=to_logit - to_runner_up,
        logit_bias=logit_bias,
        margin_bias=logit_bias - runner_up_bias,
        logit=float(logits[token_id]),
        runner_up_logit=float(logits[runner_up_id]),
        exact=exact,
        method=method,
    )


@torch.no_grad()
def _linear_parts(model, terms: torch.Tensor, mixing_bias: torch.Tensor, token_id: int) -> tuple[torch.Tensor, float]:
    """LinearLM: input j adds u_v · terms[j]; the biases add u_v · b_mix + b_head[v]."""
    direction = model.lm_head.weight[token_id].float()
    head_bias = model.lm_head.bias[token_id].float() if model.lm_head.bias is not None else 0.0
    return terms @ direction, float(mixing_bias @ direction + head_bias)


def _gradient_parts(
    model, terms: torch.Tensor, mixing_bias: torch.Tensor, token_id: int, logit: float
) -> tuple[torch.Tensor, float]:
    """MLPLM: gradient × input at the masked map's output h; the rest of the logit (the bias
    through the gradient and the ReLU pattern's offset) is the "bias" part."""
    hidden = (mixing_bias + terms.sum(0)).detach().requires_grad_(True)
    with torch.enable_grad():
        output = model.lm_head(model.base_model.features(hidden[None].to(model.dtype)))[0, token_id].float()
        (gradient,) = torch.autograd.grad(output, hidden)
    parts = terms @ gradient
    return parts, logit - float(parts.sum())
