"""Positions of an MLPLM that can no longer learn: every unit after the masked map's ReLU is
zero on every example, so no gradient reaches the position's blocks and its prediction is a
constant (its tokens at chance). Found in an 8x8 `lsb` run (RESULTS.md, 2026-12-06), where six
positions of the last CoT row died at a high learning rate and never recovered, and the alive
units per position fell with the position (the fan-in: see hf_linear.training.fan_in_lr).

`dead_unit_inputs` says what holds a dead unit down. Its pre-activation at position i is
b_i + Σ_j W[i, j]·x_j over the inputs j ≤ i; split by input, a unit silenced by a few inputs it
reads (a learned "off" switch) looks different from one silenced by a small push of every input
at once, the coherent drift a long row's update makes when all its blocks move together (what
μP's 1/fan-in rule bounds). The inputs are split into those that are the same token on every
example (the template's [BOS], "x", "=", "+"…) and those that vary.
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


def has_units_to_check(model, rows) -> bool:
    """Whether `model` has ReLU units after its masked map (a LinearLM has none to die) and
    `rows` are of one length (one template is compared)."""
    row_type = model_type_of(model)
    return row_type is not None and row_type.relu_after_mixing and len({len(row) for row in rows}) == 1


def alive_units(model, rows, batch_size: int = 250) -> list[int] | None:
    """For each position p (< the window) of `rows` (token id lists of one length, or an (N, L)
    tensor): how many units after the masked map's ReLU are > 0 on at least one row. None for a
    model without that ReLU (a LinearLM has no units to die) or rows of different lengths (one
    template is compared)."""
    if not has_units_to_check(model, rows):
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


def dead_unit_inputs(model, rows, batch_size: int = 250) -> list[dict | None] | None:
    """For each position p (< the window) of `rows` (as `alive_units`): where the pre-activation
    of its dead units comes from, each a mean over those units and the rows: `bias`, `fixed`
    (Σ_j W[p, j]·x_j over the inputs that are the same token on every row), `varying` (the other
    inputs), with `units` the number of dead units; None at a position with none. None as for
    alive_units. The masked map is linear, so the fixed part is the map run on the embeddings with
    the varying inputs zeroed, less its bias, and the varying part the rest of its output."""
    if not has_units_to_check(model, rows):
        return None
    mixing = masked_map_of(model)
    input_ids = torch.as_tensor(rows, device=model.device)
    fixed = (input_ids == input_ids[0]).all(dim=0)[:, None].to(mixing.bias.dtype)  # (L, 1)
    n = min(input_ids.shape[1], mixing.context_length)
    fired = torch.zeros(n, mixing.hidden_size, dtype=torch.bool)
    sums = {"fixed": torch.zeros(n, mixing.hidden_size, dtype=torch.float64)}
    sums["varying"] = torch.zeros_like(sums["fixed"])
    with torch.no_grad():
        for start in range(0, len(input_ids), batch_size):
            x = model.get_input_embeddings()(input_ids[start : start + batch_size, :n])  # (B, n, d)
            bias = mixing.bias[:n]
            output = mixing(x)  # (B, n, d)
            fired |= (output > 0).any(dim=0)
            from_fixed = mixing(x * fixed[:n]) - bias
            parts = {"fixed": from_fixed, "varying": output - bias - from_fixed}
            for name, part in parts.items():
                sums[name] += part.sum(dim=0, dtype=torch.float64)  # (n, d)
    report = []
    for position in range(n):
        dead = ~fired[position]
        if not dead.any():
            report.append(None)
            continue
        report.append(
            {
                "units": int(dead.sum()),
                "bias": float(mixing.bias.detach()[position][dead].mean()),
                **{name: float(total[position][dead].mean()) / len(input_ids) for name, total in sums.items()},
            }
        )
    return report
