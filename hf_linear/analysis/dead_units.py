"""Positions of an MLPLM that can no longer learn: every unit after the masked map's ReLU is
zero on every example, so no gradient reaches the position's blocks and its prediction is a
constant (its tokens at chance). Found in an 8x8 `lsb` run (RESULTS.md, 2026-12-06), where six
positions of the last CoT row died at a high learning rate and never recovered, and the alive
units per position fell with the position (the fan-in: see hf_linear.training.fan_in_lr).
"""

from __future__ import annotations

import torch

from hf_linear.masked_mixing import MaskedPositionMixing
from hf_linear.model_types import model_type_of


def masked_map_of(model) -> MaskedPositionMixing | None:
    """The masked map of `model`, wherever a wrapper keeps it (under a LoRA adapter: its base
    layer, whose output leaves out the adapter's delta); None for a model without one."""
    return next((m for m in model.modules() if isinstance(m, MaskedPositionMixing)), None)


def masked_map_outputs(model, rows, batch_size: int = 250):
    """The masked map's outputs (B, L, d) on `rows` (an (N, L) tensor or token id lists of one
    length), batch by batch, without gradients."""
    input_ids = torch.as_tensor(rows, device=model.device)
    outputs = []
    hook = masked_map_of(model).register_forward_hook(lambda module, args, output: outputs.append(output))
    try:
        with torch.no_grad():
            for start in range(0, len(input_ids), batch_size):
                batch = input_ids[start : start + batch_size]
                model(input_ids=batch, attention_mask=torch.ones_like(batch))
                yield outputs.pop()
    finally:
        hook.remove()


def alive_units(model, rows, batch_size: int = 250) -> list[int] | None:
    """For each position p (< the window) of `rows` (token id lists of one length, or an (N, L)
    tensor): how many units after the masked map's ReLU are > 0 on at least one row. None for a
    model without that ReLU (a LinearLM has no units to die) or rows of different lengths (one
    template is compared)."""
    row_type = model_type_of(model)
    if row_type is None or not row_type.relu_after_mixing or len({len(row) for row in rows}) != 1:
        return None
    fired = None
    for output in masked_map_outputs(model, rows, batch_size):
        active = (output > 0).any(dim=0)  # (L, d): the unit fired on some row of the batch
        fired = active if fired is None else fired | active
    return fired.sum(dim=-1).tolist()


def dead_positions(model, rows, batch_size: int = 250) -> list[int] | None:
    """Positions of `rows` none of whose units fire (`alive_units` 0); None as for alive_units."""
    return without_units(alive_units(model, rows, batch_size))


def without_units(alive: list[int] | None) -> list[int] | None:
    """The positions of an `alive_units` answer with no unit alive."""
    return None if alive is None else [position for position, units in enumerate(alive) if units == 0]
