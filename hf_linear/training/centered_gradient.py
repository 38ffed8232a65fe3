"""The masked map's weight learns what varies between examples; its bias learns the mean.

Unit u at position i of an MLPLM fires when b_i + Σ_j W[i, j]·x_j > 0. Write each input as its
batch mean plus the rest, x_j = x̄_j + δ_j: the weight's gradient splits into a part that
teaches the unit to tell examples apart, Σ_n g_n δ_nj, and a part that only shifts its mean,
(Σ_n g_n) x̄_j — the same push along every one of the i + 1 blocks at once. Adam moves each
weight by about the learning rate whatever its gradient's size, so that shift moves the unit's
pre-activation by ~lr·(i+1)·d·|x̄| a step while what it reads moves by ~lr per input: the longer
the row, the sooner a unit whose position has not learned yet is pushed below zero on every
example, and dead (no gradient reaches it again). Measured on 8x8 `lsb` multiplication (T = 271,
seed 1, RESULTS.md, 2026-12-07): at the six positions of the last CoT row left at chance, 26 of
32 units are dead at a mean pre-activation of −11, four fifths of it a small push from each of
the ~230 varying inputs (`hf-linear eval --segments`, "dead held by"), while those positions
already read the right two inputs, weakly. The per-row learning rate (fan_in_lr.py) slows the
shift and the reading alike.

`optimizer: {center_mixing_gradient: true}` takes the shift out of the weight's gradient: it is
computed from the batch-centred inputs, Σ_n (x_n − x̄)ᵀ g_n, so a unit's mean pre-activation is
moved by its bias alone (one parameter: ~lr a step, whatever the row's length). The bias's and
the inputs' gradients are unchanged, and so is the model: training only (the checkpoint is the
paper's MLP). The mean is over one process's micro-batch; meant for batches of one length (the
arithmetic and program data, TinyStories windows), where no padding enters the mean. Measured on
the same seed (reports/mul8x8_remedies): 27-32 of 32 units stay alive at those positions, and
over 400M tokens it reaches 99.9% of 1,000 held out (the per-row rate: 0% at 139M, stalled).
"""

from __future__ import annotations

import torch

from hf_linear.analysis.dead_units import masked_map_of
from hf_linear.masked_mixing import MaskedPositionMixing


def center_mixing_gradient(model: torch.nn.Module) -> MaskedPositionMixing:
    """Switch the masked map of `model` (found inside wrappers) to batch-centred weight gradients."""
    mixing = masked_map_of(model)
    if mixing is None:
        raise ValueError("optimizer.center_mixing_gradient: the model has no masked map to centre the gradient of")
    mixing.center_weight_gradient = True
    return mixing
