"""The Trainer of a run: exact match by generation during evaluation, and a wall-clock budget."""

from __future__ import annotations

import math
import shutil
import time
from pathlib import Path

import torch
from safetensors import SafetensorError
from torch.optim.lr_scheduler import LambdaLR
from transformers import Trainer, TrainerCallback
from transformers.trainer_callback import ExportableState
from transformers.trainer_utils import IntervalStrategy

from hf_linear.analysis.dead_units import dead_positions
from hf_linear.analysis.row_scales import RowUpdateProbe, along_sequence, preactivation_rms
from hf_linear.data.collator import CausalLMCollator, training_columns
from hf_linear.evaluation.exact_match import exact_match_report, has_prompts
from hf_linear.run_files import TRAINER_STATE
from hf_linear.training.centered_gradient import center_mixing_gradient
from hf_linear.training.fan_in_lr import attach_fan_in_lr
from hf_linear.training.redo import RecycleDormantUnits

# evaluation examples whose masked-map outputs give the logged RMS (one cheap forward pass)
ROW_RMS_EXAMPLES = 64
# learning-rate shapes that can follow a budget: progress p in [0, 1] → factor
BUDGET_SCHEDULES = {
    "linear": lambda p: 1.0 - p,
    "cosine": lambda p: 0.5 * (1.0 + math.cos(math.pi * p)),
    "constant": lambda p: 1.0,
    "constant_with_warmup": lambda p: 1.0,
}


class TimeBudget(TrainerCallback, ExportableState):
    """Ends training once `max_minutes` of wall-clock time have passed (with the final save).

    The elapsed time is part of the checkpoint state, so a resumed run continues its budget
    instead of starting a new one.
    """

    def __init__(self, max_minutes: float, elapsed_seconds: float = 0.0):
        self.max_minutes = max_minutes
        self.elapsed_seconds = elapsed_seconds
        self._started = None

    def on_train_begin(self, args, state, control, **kwargs):
        self._started, self._elapsed_before = time.monotonic(), self.elapsed_seconds

    def elapsed(self) -> float:
        if self._started is None:
            return self.elapsed_seconds
        return self._elapsed_before + time.monotonic() - self._started

    def fraction(self) -> float:
        """Share of the budget spent, in [0, 1]."""
        return min(1.0, self.elapsed() / (60 * self.max_minutes))

    def on_step_end(self, args, state, control, **kwargs):
        self.elapsed_seconds = self.elapsed()
        if self.fraction() >= 1.0:
            control.should_training_stop = True
        return control

    def state(self) -> dict:
        return {"args": {"max_minutes": self.max_minutes, "elapsed_seconds": self.elapsed()}, "attributes": {}}


class RunClock(TrainerCallback):
    """Stamps every log entry with `wall_seconds`: wall-clock time since the run began (evaluations
    included), continued across resumes. The stamp lives in trainer_state.json's log_history, so a
    checkpoint carries the time spent up to it and a resumed run continues from the checkpoint's
    last stamp (at most `logging_steps` steps of time are lost per interruption); the Trainer's own
    `train_runtime` counts one process only."""

    def on_train_begin(self, args, state, control, **kwargs):
        before = [entry["wall_seconds"] for entry in state.log_history if "wall_seconds" in entry]
        self.started, self.offset = time.monotonic(), max(before, default=0.0)

    def on_log(self, args, state, control, logs=None, **kwargs):
        # Trainer appended the entry to log_history just before calling on_log
        if state.log_history:
            state.log_history[-1]["wall_seconds"] = round(self.offset + time.monotonic() - self.started, 3)


class ProbeStepsBeforeEvaluations(TrainerCallback):
    """Arms a `RowUpdateProbe` on every optimizer step an evaluation follows (eval_strategy
    "steps", and the last step), so that the evaluation logs that step's update ratios."""

    def __init__(self, probe: RowUpdateProbe):
        self.probe = probe

    def on_pre_optimizer_step(self, args, state, control, **kwargs):
        step = state.global_step + 1  # the step about to be taken
        if args.eval_strategy == IntervalStrategy.STEPS and state.eval_steps:
            self.probe.armed = step % state.eval_steps == 0 or step >= state.max_steps


class HFLinearTrainer(Trainer):
    """Trainer whose evaluation adds exact match by greedy generation to the loss (or, with
    `report_perplexity`, for language-model data, the perplexity exp(loss)), whose
    learning-rate schedule follows a `TimeBudget` when the run has one, and whose optimizer steps
    the masked map's rows at rates scaled by their fan-in when `mixing_lr_fan_in_reference` is
    set (hf_linear.training.fan_in_lr), and by its weight gradient from batch-centred inputs with
    `center_mixing_gradient` (hf_linear.training.centered_gradient). Its evaluations also log
    the masked map's scale along the sequence (hf_linear.analysis.row_scales): `row_rms_*`, the pre-activation RMS at the first,
    middle and last positions of the evaluated examples, and `row_update_ratio_*`, ‖ΔW_i‖ / ‖W_i‖
    of those rows in the optimizer step just before the evaluation.

    The prompts are sharded over processes and the counts summed, so that 2-process runs
    evaluate each prompt once.
    """

    def __init__(
        self,
        *args,
        generation_eval_dataset=None,
        generation_batch_size=256,
        report_perplexity=False,
        mixing_lr_fan_in_reference=None,
        center_mixing_gradient=False,
        **kwargs,
    ):
        super().__init__(*args, **kwargs)
        self.generation_eval_dataset = generation_eval_dataset
        self.generation_batch_size = generation_batch_size
        self.report_perplexity = report_perplexity
        self.mixing_lr_fan_in_reference = mixing_lr_fan_in_reference
        self.center_mixing_gradient = center_mixing_gradient
        self.row_updates = RowUpdateProbe()
        self.add_callback(ProbeStepsBeforeEvaluations(self.row_updates))

    def create_optimizer(self, model=None):
        had_optimizer = self.optimizer is not None
        optimizer = super().create_optimizer(model)
        if not had_optimizer:  # hooked once, on the optimizer made here
            model = self.model if model is None else model
            if self.mixing_lr_fan_in_reference:
                attach_fan_in_lr(optimizer, model, self.mixing_lr_fan_in_reference)
            if self.center_mixing_gradient:
                center_mixing_gradient(model)
            self.row_updates.attach(optimizer, model)  # after the rescaling hooks: it sees the applied step
        return optimizer

    # --- the schedule of a budgeted run ------------------------------------------------------

    def _time_budget(self) -> TimeBudget | None:
        # looked up on every step: resuming replaces the callback by one restored from the checkpoint
        return next((c for c in self.callback_handler.callbacks if isinstance(c, TimeBudget)), None)

    def create_scheduler(self, num_training_steps: int, optimizer=None):
        if self._time_budget() is None:
            return super().create_scheduler(num_training_steps, optimizer)
        if self.lr_scheduler is None:
            shape = BUDGET_SCHEDULES[str(getattr(self.args.lr_scheduler_type, "value", self.args.lr_scheduler_type))]
            warmup = self.args.get_warmup_steps(num_training_steps)

            def factor(step: int) -> float:
                # progress: whichever ends training first, the budget or max_steps
                progress = max(self._time_budget().fraction(), step / max(1, num_training_steps))
                return min(1.0, (step + 1) / warmup if warmup else 1.0) * max(0.0, shape(min(1.0, progress)))

            self.lr_scheduler = LambdaLR(optimizer if optimizer is not None else self.optimizer, factor)
            self._created_lr_scheduler = True
        return self.lr_scheduler

    # --- checkpoints -----------------------------------------------------------------------------

    def _save_checkpoint(self, model, trial):
        try:
            super()._save_checkpoint(model, trial)
        except (OSError, RuntimeError, SafetensorError) as error:
            # a full disk surfaces as torch's "PytorchStreamWriter failed writing file"
            # (RuntimeError), safetensors' error or an OSError: one line naming the checkpoint
            checkpoint = Path(self._get_output_dir(trial)) / f"checkpoint-{self.state.global_step}"
            if not (checkpoint / TRAINER_STATE).is_file():  # incomplete: its space is better freed
                shutil.rmtree(checkpoint, ignore_errors=True)
            reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise ValueError(
                f"saving {checkpoint} failed ({reason}); the earlier checkpoints are kept: free space "
                "(or set a lower training.save_total_limit) and continue with --resume"
            ) from error

    # --- evaluation ----------------------------------------------------------------------------

    def evaluate(self, eval_dataset=None, ignore_keys=None, metric_key_prefix="eval"):
        metrics = super().evaluate(eval_dataset, ignore_keys, metric_key_prefix)
        if self.report_perplexity and f"{metric_key_prefix}_loss" in metrics:
            perplexity = {f"{metric_key_prefix}_perplexity": math.exp(metrics[f"{metric_key_prefix}_loss"])}
            self.log(perplexity)
            metrics.update(perplexity)
        data = self.generation_eval_dataset
        if not data:
            return metrics
        rank, world = self.args.process_index, self.args.world_size
        shard = data.select(range(rank, len(data), world))
        model = self.accelerator.unwrap_model(self.model)
        report = exact_match_report(model, self.processing_class, shard, self.generation_batch_size, num_examples=0)
        n = report["num_samples"]
        counts = torch.tensor(
            [report["exact_match"] * n, report["per_digit_accuracy"] * n, n],
            dtype=torch.float64,
            device=self.args.device,
        )
        if world > 1:
            counts = self.accelerator.reduce(counts, reduction="sum")
        exact, per_digit, n = counts.tolist()
        generated = {
            f"{metric_key_prefix}_exact_match": exact / n,
            f"{metric_key_prefix}_per_digit_accuracy": per_digit / n,
        }
        # an MLPLM's positions whose units all died can never learn again: count them (on the whole
        # split on every rank: the same count everywhere)
        dead = dead_positions(model, data["input_ids"], self.generation_batch_size)
        if dead is not None:
            generated[f"{metric_key_prefix}_dead_positions"] = len(dead)
        generated.update(
            self.row_scale_metrics(model, data.select(range(min(len(data), ROW_RMS_EXAMPLES))), metric_key_prefix)
        )
        self.log(generated)
        metrics.update(generated)
        return metrics

    def row_scale_metrics(self, model, examples, prefix: str) -> dict:
        """First, middle and last values, over the positions that predict a trained token, of the
        masked map's pre-activation RMS on `examples` and of the update ratios the probe measured
        since the last evaluation."""
        metrics = {}
        rows = examples["input_ids"]
        trained = self.trained_positions(examples)
        rms = preactivation_rms(model, rows, self.generation_batch_size)
        if rms is not None:
            metrics.update(along_sequence(rms, f"{prefix}_row_rms", trained))
        if self.row_updates.ratios is not None:
            metrics.update(along_sequence(self.row_updates.ratios, f"{prefix}_row_update_ratio", trained))
            self.row_updates.ratios = None
        return metrics

    def trained_positions(self, examples) -> range:
        """Positions p whose prediction (of token p + 1) the loss covers: after the prompt when the
        collator masks it, never the last token's."""
        first = 0
        if getattr(self.data_collator, "mask_prompt", False) and "prompt_length" in examples.column_names:
            first = max(0, min(examples["prompt_length"]) - 1)
        return range(first, max(len(row) for row in examples["input_ids"]) - 1)


def trainer_for(
    config, args, data, model=None, model_init=None, exact_match: bool = True, callbacks=(), trainer_class=None
) -> HFLinearTrainer:
    """The Trainer of a checked config (`RunConfig`) on its data (`RunData`): a model, or a search's
    `model_init`. During training the `during_training` examples are evaluated by their loss, and
    by exact match (prompts and answers, unless `exact_match` is false) or perplexity (language-model
    data); a clock stamps every log entry (`RunClock`) and a budget's clock runs as a callback. `trainer_class`: an HFLinearTrainer subclass (or a
    callable making one) to build instead (a search's SeedAveragingTrainer)."""
    during = data.during_training
    generation = during if during is not None and exact_match and has_prompts(during) else None
    trainer = (trainer_class or HFLinearTrainer)(
        model=model,
        model_init=model_init,
        args=args,
        train_dataset=training_columns(data.train),
        eval_dataset=training_columns(during) if during is not None else None,
        data_collator=CausalLMCollator(data.tokenizer.pad_token_id, config.evaluation.mask_prompt),
        processing_class=data.tokenizer,
        generation_eval_dataset=generation,
        generation_batch_size=config.evaluation.batch_size,
        report_perplexity=bool(during) and not has_prompts(during),
        mixing_lr_fan_in_reference=config.optimizer.mixing_lr_fan_in_reference,
        center_mixing_gradient=config.optimizer.center_mixing_gradient,
        callbacks=list(callbacks) or None,
    )
    trainer.add_callback(RunClock())
    if config.budget.max_minutes:
        trainer.add_callback(TimeBudget(config.budget.max_minutes))
    if config.optimizer.redo_every:
        trainer.add_callback(RecycleDormantUnits(config.optimizer.redo_every, config.optimizer.redo_threshold))
    return trainer
