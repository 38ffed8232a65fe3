"""Positions of an MLPLM that can no longer learn: every unit after the masked map's ReLU is
zero on every example, so no gradient reaches the position's blocks and its prediction is a
constant (its tokens at chance). Found in an 8x8 `lsb` run (RESULTS.md, 2026-12-06), where six
positions of the last CoT row died early at a high learning rate and never recovered.
"""

from __future__ import annotations

import torch

from hf_linear.model_types import MLP_LM
from hf_linear.modeling_hf_linear import MaskedPositionMixing


def dead_positions(model, rows, batch_size: int = 250) -> list[int] | None:
    """Positions p (< the window) whose ReLU(masked map) units are all 0 for every one of `rows`
    (token id lists of one length, or an (N, L) tensor); None for a model without that ReLU (a
    LinearLM has no units to die) or rows of different lengths (one template is compared)."""
    if model.config.model_type != MLP_LM or len({len(row) for row in rows}) != 1:
        return None
    input_ids = torch.as_tensor(rows, device=model.device)
    # the masked map, wherever a wrapper keeps it (under a LoRA adapter: its base layer, whose
    # output leaves out the adapter's delta)
    mixing = next(m for m in model.modules() if isinstance(m, MaskedPositionMixing))
    alive = None
    outputs = []
    hook = mixing.register_forward_hook(lambda module, args, output: outputs.append(output))
    try:
        with torch.no_grad():
            for start in range(0, len(input_ids), batch_size):
                batch = input_ids[start : start + batch_size]
                model(input_ids=batch, attention_mask=torch.ones_like(batch))
                active = (outputs.pop() > 0).any(dim=0).any(dim=-1)  # (L,): a unit fired on some row
                alive = active if alive is None else alive | active
    finally:
        hook.remove()
    return torch.nonzero(~alive).flatten().tolist()
