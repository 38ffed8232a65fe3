"""The TrainingArguments of a run: the project's policy over a checked `training:` section.

The `training:` section holds TrainingArguments fields; a run does not pass them on untouched:

* `report_to` defaults to TensorBoard, `include_num_input_tokens_seen` to true (RESULTS name
  training tokens, not only minutes);
* `use_cpu` defaults to "no GPU here": without it, `accelerate launch --multi_gpu` (torchrun)
  processes on a CPU-only machine each train alone instead of as one world of ranks over gloo;
* `bf16` on a CPU without native bf16 instructions trains in fp32 instead (emulated bf16
  autocast makes a step ~60x slower);
* `remove_unused_columns` is false: the collator needs `prompt_length`, not a forward() argument;
* `push_to_hub` and `resume_from_checkpoint` are the run's, not the Trainer's (`RunFacts`): the
  final model is pushed once by hf_linear.hub.push (Trainer's own push would upload pickles,
  training_args.bin, and a card without the held-out results), and the checkpoint to resume is
  checked before anything is built;
* with a time budget, the callbacks' state (the budget spent so far) is restored with a
  checkpoint, and the learning-rate schedule must be one that can follow the budget.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

import torch
from transformers import TrainingArguments
from transformers.integrations import get_available_reporting_integrations

from hf_linear.runtime import cpu_has_native_bf16
from hf_linear.training.config import RunConfig
from hf_linear.training.trainer import BUDGET_SCHEDULES


@dataclass(frozen=True)
class RunFacts:
    """What the `training:` section asks of the run itself rather than of the Trainer."""

    push_to_hub: bool = False  # push the final model with hf_linear.hub.push
    resume_from: str | bool | None = None  # training.resume_from_checkpoint: a checkpoint path (or true: the last)


def training_arguments_for(config: RunConfig, **fixed) -> tuple[TrainingArguments, RunFacts]:
    """TrainingArguments of a checked config, and what the run does itself. `fixed`: settings that
    replace the config's after the policy (a search's trials: their output directory, no checkpoints)."""
    training = dict(config.training)
    training.setdefault("report_to", ["tensorboard"])
    training.setdefault("use_cpu", not torch.cuda.is_available())
    if training.get("bf16") and training["use_cpu"] and not cpu_has_native_bf16():
        print(
            "hf-linear: this CPU has no native bf16 (avx512_bf16 / amx_bf16): training in fp32 "
            "instead of bf16 autocast",
            file=sys.stderr,
        )
        training["bf16"] = False
    training["remove_unused_columns"] = False
    facts = RunFacts(
        push_to_hub=training.pop("push_to_hub", False), resume_from=training.pop("resume_from_checkpoint", None)
    )
    if config.budget.max_minutes:
        training.setdefault("restore_callback_states_from_checkpoint", True)
        scheduler = str(training.get("lr_scheduler_type", "linear"))
        if scheduler not in BUDGET_SCHEDULES:
            raise ValueError(
                f"training.lr_scheduler_type={scheduler!r} cannot follow a time budget; "
                f"use one of {', '.join(BUDGET_SCHEDULES)}"
            )
    training.setdefault("include_num_input_tokens_seen", True)
    training.update(fixed)
    return training_arguments(training), facts


def training_arguments(training: dict) -> TrainingArguments:
    """TrainingArguments of a `training:` section; its own checks name the section, and every
    integration `report_to` names must be installed (Trainer would fail with a RuntimeError)."""
    try:
        args = TrainingArguments(**training)
    except (ValueError, TypeError) as error:
        raise ValueError(f"training: {error}") from None
    installed = get_available_reporting_integrations()
    missing = [name for name in args.report_to if name not in installed]
    if missing:
        raise ValueError(
            f"training.report_to: {missing[0]!r} is not an installed reporting integration "
            f"(installed: {', '.join(installed) or 'none'}); install it or leave it out"
        )
    return args
