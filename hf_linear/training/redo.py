"""Recycling dormant units after the masked map's ReLU (ReDo: Sokar, Agarwal, Castro and Evci,
"The Dormant Neuron Phenomenon in Deep Reinforcement Learning", ICML 2023).

An MLPLM's unit u at position i is the ReLU of output u of the masked map's row i. Once it is
zero on every example, no gradient reaches row i's weights into it and it stays dead; when all of
a position's units are dead its prediction is a constant (hf_linear.analysis.dead_units: six
positions of the last CoT row of 8x8 `lsb` on seed 1, RESULTS.md). ReDo recycles such units.

`optimizer: {redo_every: N, redo_threshold: τ}`: every N optimizer steps, the units whose mean
activation over the training batches of those N steps is at most τ times the mean activation
of their position's units (ReDo's score; τ = 0: the units that did not fire once) are recycled:

* incoming weights re-drawn from the model's initialisation: the column u of row i's blocks
  W[i, 0..i] (the bound of `MaskedPositionMixing.row_init_bound` for the model's
  `mixing_init`) and the bias b[i, u] (the dense bound, as at initialisation);
* outgoing weights zeroed where that cuts the unit alone: the next layer (the first per-position
  layer, or the output layer) is shared by all positions, so its column u is zeroed only for a
  unit dormant at every position; a unit recycled at some positions only keeps the shared
  column, which also lets its new incoming weights learn from the first step (its position's
  prediction, being dead, had nothing to lose);
* the optimizer's moments of every re-drawn or zeroed entry reset to zero.

The re-draws use a generator seeded by the run's seed and the step (deterministic, and the run's
own random stream is untouched). Recycled units per check are added to the next training log
entry (`redo_recycled_units`).
"""

from __future__ import annotations

import torch
from transformers import TrainerCallback

from hf_linear.analysis.dead_units import masked_map_of
from hf_linear.masked_mixing import MaskedPositionMixing, num_masked_map_blocks
from hf_linear.model_types import model_type_of


def dormant_units(activation_sums: torch.Tensor, threshold: float) -> torch.Tensor:
    """(T, d) bool: ReDo's dormant units from per-(position, unit) sums of the ReLU's output: a
    unit's mean activation ≤ threshold × its position's mean over units (0 ≤ 0 where none fired)."""
    position_mean = activation_sums.mean(dim=1, keepdim=True)  # (T, 1)
    return activation_sums <= threshold * position_mean


def next_layer(model) -> torch.nn.Linear:
    """The layer that reads the units after the masked map's ReLU: the first per-position layer,
    or the output layer when there is none."""
    base = model.base_model
    layers = getattr(getattr(base, "mlp", None), "layers", None)
    return layers[0] if layers else model.get_output_embeddings()


class RecycleDormantUnits(TrainerCallback):
    """ReDo for the units after the masked map's ReLU, every `every` optimizer steps."""

    def __init__(self, every: int, threshold: float = 0.0):
        self.every, self.threshold = every, threshold
        self.sums: torch.Tensor | None = None  # (T, d) float64: summed ReLU outputs of this window
        self.steps = 0  # optimizer steps in this window
        self.seen = 0  # positions the window's training examples reached
        self.recycled: list[tuple[int, int]] = []  # (step, units) of every check
        self._pending: int | None = None  # units of the last check, for the next log entry
        self._hook = None

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        mixing = check_recyclable(model)
        if self._hook is not None:  # a search's next trial: a new model
            self._hook.remove()
        self.sums, self.steps, self.seen = None, 0, 0
        self._hook = mixing.register_forward_hook(self._accumulate)

    def on_train_end(self, args, state, control, **kwargs):
        if self._hook is not None:
            self._hook.remove()
            self._hook = None

    @torch.no_grad()
    def _accumulate(self, module: MaskedPositionMixing, args, output: torch.Tensor):
        if not module.training:  # evaluations and generation are not training batches
            return
        n = min(output.shape[1], module.context_length)  # positions ≥ T slide through row T-1: not counted
        batch = output[:, :n].detach().clamp(min=0).sum(dim=0, dtype=torch.float64)  # (n, d)
        if self.sums is None:
            self.sums = torch.zeros(module.context_length, module.hidden_size, dtype=torch.float64)
        self.sums[:n] += batch.cpu()
        self.seen = max(self.seen, n)

    def on_step_end(self, args, state, control, model=None, optimizer=None, **kwargs):
        self.steps += 1
        if self.steps < self.every or self.sums is None:
            return
        dormant = torch.zeros_like(self.sums, dtype=torch.bool)  # positions no example reached: left alone
        dormant[: self.seen] = dormant_units(self.sums[: self.seen], self.threshold)
        generator = torch.Generator().manual_seed(args.seed * 1_000_003 + state.global_step)
        count = recycle(model, optimizer, dormant, generator)
        self.recycled.append((state.global_step, count))
        self._pending = count
        self.sums, self.steps, self.seen = None, 0, 0

    def on_log(self, args, state, control, logs=None, **kwargs):
        # Trainer appended the entry to log_history just before calling on_log (as RunClock does)
        if self._pending is not None and logs and "loss" in logs and state.log_history:
            state.log_history[-1]["redo_recycled_units"] = self._pending
            self._pending = None


def check_recyclable(model) -> MaskedPositionMixing:
    """The masked map of a model whose units after it can be recycled; ValueError otherwise."""
    row = model_type_of(model)
    if row is None or not row.relu_after_mixing:
        raise ValueError(
            "optimizer.redo_every: recycling needs a ReLU after the masked map (an mlp_lm model), "
            f"not {getattr(model.config, 'model_type', type(model).__name__)}"
        )
    mixing = masked_map_of(model)
    if not mixing.weight.requires_grad:
        raise ValueError(
            "optimizer.redo_every: the masked map's weight is not trained (under a LoRA adapter it is frozen)"
        )
    return mixing


@torch.no_grad()
def recycle(model, optimizer, dormant: torch.Tensor, generator: torch.Generator) -> int:
    """Recycle the (position, unit) pairs marked in `dormant` (T, d) as the module docstring says;
    returns how many."""
    mixing = masked_map_of(model)
    weight, bias = mixing.weight, mixing.bias
    states = optimizer_states(optimizer)
    mixing_init = getattr(model.config, "mixing_init", "dense")
    positions = dormant.any(dim=1).nonzero().flatten().tolist()
    for i in positions:
        units = dormant[i].nonzero().flatten().to(weight.device)  # (k,)
        blocks = slice(num_masked_map_blocks(i), num_masked_map_blocks(i + 1))  # W[i, 0..i]: (i+1, d_in, d_out)
        bound = mixing.row_init_bound(i, mixing_init)
        fresh = torch.empty(i + 1, mixing.hidden_size, len(units), dtype=torch.float32)
        weight[blocks, :, units] = fresh.uniform_(-bound, bound, generator=generator).to(weight.dtype)
        bias_bound = mixing.row_init_bound(0)  # the dense bound of every row's bias at initialisation
        fresh_bias = torch.empty(len(units), dtype=torch.float32).uniform_(-bias_bound, bias_bound, generator=generator)
        bias[i, units] = fresh_bias.to(bias.dtype)
        for moment in moments(states, weight):
            moment[blocks, :, units] = 0
        for moment in moments(states, bias):
            moment[i, units] = 0
    everywhere = dormant.all(dim=0).nonzero().flatten()  # units dormant at every position
    if len(everywhere):
        reader = next_layer(model).weight  # (out, d): column u reads unit u
        reader[:, everywhere] = 0
        for moment in moments(states, reader):
            moment[:, everywhere] = 0
    return int(dormant.sum())


def optimizer_states(optimizer) -> dict:
    """The per-parameter state of a (possibly accelerate-wrapped) torch optimizer."""
    return getattr(optimizer, "optimizer", optimizer).state if optimizer is not None else {}


def moments(states: dict, parameter: torch.Tensor) -> list[torch.Tensor]:
    """The optimizer's running moments of `parameter` (Adam's exp_avg and exp_avg_sq, any other
    state of its shape); none before its first step."""
    state = states.get(parameter, {})
    return [value for value in state.values() if torch.is_tensor(value) and value.shape == parameter.shape]
