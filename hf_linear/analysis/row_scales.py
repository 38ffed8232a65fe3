"""The masked map's scale along the sequence: a coordinate check over positions (as μP checks
widths). Row i of the masked map reads i + 1 positions, so its fan-in grows along the CoT; a
recipe that suits the short rows can leave the long rows' pre-activations far larger, or their
steps far bigger relative to their weights, and their ReLU units die (hf_linear.analysis.dead_units).

    preactivation_rms   per position: RMS of the masked map's output over examples and units
                        (what an MLPLM's ReLU reads); flat along the sequence under mixing_init
                        "fan_in" at initialisation, growing as √(i+1) under the dense default
    row_update_ratios   per row: ‖W_i − W_i'‖_F / ‖W_i'‖_F between two snapshots of the weight
                        (two checkpoints, or one optimizer step: `RowUpdateProbe`)
    along_sequence      first / middle / last values: what the Trainer's evaluations log
    add_row_scales      both, per CoT segment, beside the segment table of `eval --segments`
"""

from __future__ import annotations

import math

import torch

from hf_linear.analysis.dead_units import masked_map_of, masked_map_outputs
from hf_linear.analysis.segments import spans_with_predictors


def preactivation_rms(model, rows, batch_size: int = 250) -> list[float] | None:
    """For each position p of `rows` (token id lists of one length, or an (N, L) tensor): the RMS
    of the masked map's output at p over the rows and the d units. None for a model without a
    masked map or rows of different lengths."""
    if masked_map_of(model) is None or len({len(row) for row in rows}) != 1:
        return None
    power, count = None, 0
    for output in masked_map_outputs(model, rows, batch_size):  # (B, L, d)
        batch_power = output.float().pow(2).sum(dim=(0, 2))  # (L,)
        power = batch_power if power is None else power + batch_power
        count += output.shape[0] * output.shape[2]
    return (power / count).sqrt().tolist()


def row_norms(weight: torch.Tensor) -> torch.Tensor:
    """(T,) ‖W_i‖_F of each row of blocks of a packed weight (T(T+1)/2, d, d), in float64."""
    blocks = weight.detach().double().pow(2).sum(dim=(1, 2))  # (T(T+1)/2,)
    T = row_count(len(blocks))
    rows = torch.arange(T, device=blocks.device).repeat_interleave(torch.arange(1, T + 1, device=blocks.device))
    return torch.zeros(T, dtype=torch.float64, device=blocks.device).index_add_(0, rows, blocks).sqrt()


def row_count(blocks: int) -> int:
    """T of a packed weight of T(T+1)/2 blocks."""
    T = (math.isqrt(8 * blocks + 1) - 1) // 2
    if blocks != T * (T + 1) // 2:
        raise ValueError(f"{blocks} blocks are not the lower triangle of a masked map (T(T+1)/2 for some T)")
    return T


def row_update_ratios(before: torch.Tensor, after: torch.Tensor) -> list[float]:
    """Per row i: ‖after_i − before_i‖_F / ‖before_i‖_F of two snapshots of a packed weight."""
    if before.shape != after.shape:
        raise ValueError(
            f"the two masked maps differ in shape ({tuple(before.shape)} vs {tuple(after.shape)}): "
            "not snapshots of one model"
        )
    return (row_norms(after.detach().double() - before.detach().double()) / row_norms(before)).tolist()


class RowUpdateProbe:
    """Measures `row_update_ratios` of one optimizer step of the masked map's weight, when armed:
    before an armed step the weight is copied, after it the ratios are kept in `ratios` and the
    copy dropped (so no copy of the weight lives between measurements). Hooked after the hooks
    already on the optimizer (a per-row learning rate's rescaling included)."""

    def __init__(self):
        self.weight: torch.Tensor | None = None
        self.armed = False
        self.ratios: list[float] | None = None
        self._before: torch.Tensor | None = None

    def attach(self, optimizer: torch.optim.Optimizer, model) -> None:
        """Hook onto `optimizer` for `model`'s masked map (nothing to measure without one, or when
        it is frozen); a new optimizer (a search's next trial) replaces the last one."""
        self.weight, self.armed, self.ratios, self._before = None, False, None, None
        mixing = masked_map_of(model)
        if mixing is None or not mixing.weight.requires_grad:
            return
        self.weight = mixing.weight
        optimizer.register_step_pre_hook(self._copy)
        optimizer.register_step_post_hook(self._measure)

    @torch.no_grad()
    def _copy(self, optimizer, args, kwargs):
        if self.armed and self.weight is not None:
            self._before = self.weight.detach().clone()

    @torch.no_grad()
    def _measure(self, optimizer, args, kwargs):
        if self._before is not None:
            self.ratios = row_update_ratios(self._before, self.weight)
            self._before, self.armed = None, False


def along_sequence(values: list[float], name: str, trained: range | None = None) -> dict[str, float]:
    """{name_first, name_middle, name_last}: the values of the first, middle and last positions of
    `trained` (default: all). Pass the positions whose predictions carry loss: a position that
    predicts a prompt token, or nothing (the last), takes no gradient step, so its update ratio is 0
    and its scale says nothing about how the trained rows grow with their fan-in."""
    span = values[trained.start : trained.stop] if trained is not None else values
    span = span or values
    return {f"{name}_first": span[0], f"{name}_middle": span[len(span) // 2], f"{name}_last": span[-1]}


def add_row_scales(report: list[dict], rms: list[float] | None, ratios: list[float] | None = None) -> None:
    """Put on each segment and step of a segment report the mean pre-activation RMS and update
    ratio of the positions that predict its tokens (position p predicts token p + 1)."""
    for name, values in (("preactivation_rms", rms), ("update_ratio", ratios)):
        if values is None:
            continue
        for span, chosen in spans_with_predictors(report, values):
            span[name] = sum(chosen) / len(chosen)
