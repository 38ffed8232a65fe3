"""A run stops at the first optimizer step that leaves a trained weight non-finite.

A loss that overflows (a learning rate of 1e30) or turns NaN makes NaN gradients, and the step
writes them into the weights (clipping scales by a NaN norm, Adam divides by NaN moments). The
Trainer's logs hide it: `logging_nan_inf_filter` replaces a non-finite loss by the mean of the
earlier ones (a diverged run once logged loss 0.0). Nothing else stops such a run, and it saves
a NaN model as its final one. Checked after every step, before the Trainer logs or saves that
step: no NaN checkpoint or final model is written, and the error names the step. A step skipped
by a mixed-precision loss scaler leaves the weights finite and is not an error.

Cost: one sum per trained weight per step. Measured on the 8x8 MLPLM shape (T=271, d=32, 37.8M
weights; 2026-12-07, 2 shared cores of an AMD EPYC without native bf16): 16 ms per check against a
4.3 s fp32 step of batch 256, 0.4%.
"""

from __future__ import annotations

import torch
from transformers import TrainerCallback


class TrainingDiverged(ValueError):
    """The weights are not finite after a step (a user-facing error: the CLIs print one line)."""


class StopOnNonFiniteWeights(TrainerCallback):
    """Raises `TrainingDiverged` naming the step and a weight once a step leaves a trained weight
    with a NaN or an infinity."""

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        # the trained weights only: a frozen one (under LoRA) cannot change
        self.weights = [(name, p) for name, p in model.named_parameters() if p.requires_grad]

    @torch.no_grad()
    def on_step_end(self, args, state, control, **kwargs):
        # a sum holding a NaN or an inf is not finite, so finite sums prove finite weights; a
        # sum is ~10x faster than isfinite(w).all(), which runs only when a sum overflowed
        sums = torch.stack([p.sum().float() for _, p in self.weights])  # (W,) one sync below
        if torch.isfinite(sums).all():
            return control
        name = next((name for name, p in self.weights if not torch.isfinite(p).all()), None)
        if name is not None:
            raise TrainingDiverged(
                f"training diverged at step {state.global_step}: weight {name} is not finite (NaN or inf) "
                f"after the optimizer step (loss overflowed or NaN; learning rate {args.learning_rate:g}); "
                "stopped before this step is logged or saved, with no final model"
            )
        return control
