"""A learning rate for each output position of the masked map that shrinks with its fan-in.

Row i of the masked map reads the i + 1 positions before it ((i+1)·d inputs). Adam moves every
weight by about the learning rate whatever its gradient's size, so one step changes position i's
pre-activation by up to ~lr·(i+1)·d: at a learning rate that the short rows of a CoT need, the
long rows' steps can dwarf their initial scale, and their ReLU units die (all zero on every
example: no gradient reaches them again). Measured on 8x8 `lsb` multiplication (T = 271,
RESULTS.md, 2026-12-06): the alive units per position fall with the position, and six positions of
the last CoT row end with none.

`mixing_lr_fan_in_reference: N` gives row i the learning rate lr · min(1, N / (i+1)) — the
1/fan-in rule of μP for Adam, applied along the sequence — so rows up to N positions long keep
the run's learning rate. It scales the update the optimizer applies to the map's weight (its
decoupled weight decay included); the optimizer's moments and every other parameter are untouched.
"""

from __future__ import annotations

import torch

from hf_linear.analysis.dead_units import masked_map_of
from hf_linear.masked_mixing import MaskedPositionMixing


def row_scales(context_length: int, reference: int) -> torch.Tensor:
    """(T,) learning-rate factor of each output position: min(1, reference / (i+1))."""
    return (reference / torch.arange(1, context_length + 1, dtype=torch.float64)).clamp(max=1.0)


class FanInScaledMixingLR:
    """Scales each optimizer step of the masked map's weight by its rows' `row_scales`.

    Hooked on the optimizer: before a step the weight is copied, after it the step is rescaled,
    w ← w_before + s_i · (w_after − w_before), block by block ((T(T+1)/2, d, d) blocks, row-major).
    """

    def __init__(self, optimizer: torch.optim.Optimizer, mixing: MaskedPositionMixing, reference: int):
        weight = mixing.weight
        rows = torch.arange(1, mixing.context_length + 1)
        # block k of row i gets row i's factor: row i owns blocks i(i+1)/2 … i(i+1)/2 + i
        scales = row_scales(mixing.context_length, reference).repeat_interleave(rows)
        self.weight = weight
        self.block_scales = scales.to(weight.device, weight.dtype).view(-1, 1, 1)
        self.before = torch.empty_like(weight, memory_format=torch.contiguous_format)
        optimizer.register_step_pre_hook(self._copy)
        optimizer.register_step_post_hook(self._rescale)

    @torch.no_grad()
    def _copy(self, optimizer, args, kwargs):
        self.before.copy_(self.weight)

    @torch.no_grad()
    def _rescale(self, optimizer, args, kwargs):
        # in place, no temporary of the weight's size: w ← (w − w_before)·s + w_before
        self.weight.sub_(self.before).mul_(self.block_scales).add_(self.before)


def attach_fan_in_lr(optimizer: torch.optim.Optimizer, model: torch.nn.Module, reference: int) -> FanInScaledMixingLR:
    """Hook `FanInScaledMixingLR` for the masked map of `model` (found inside wrappers) onto `optimizer`."""
    mixing = masked_map_of(model)
    if mixing is None:
        raise ValueError(
            "optimizer.mixing_lr_fan_in_reference: the model has no masked map (a linear_lm or mlp_lm model has one)"
        )
    if not mixing.weight.requires_grad:
        raise ValueError(
            "optimizer.mixing_lr_fan_in_reference: the masked map's weight is not trained "
            "(under a LoRA adapter the base weight is frozen); leave it out"
        )
    return FanInScaledMixingLR(optimizer, mixing, reference)
