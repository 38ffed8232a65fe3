"""A checkpoint as the demo uses it: model, tokenizer, and the task it was trained on.

The task (an arithmetic format or a compiled program, `demo.tasks`) comes from where
`hf-linear inspect` finds it, the run's `training_config.yaml` (its `dataset` section): beside the
weights, one level up for a `checkpoint-N` directory, or in the Hub repo (`hf-linear push`
uploads it). As for `hf-linear eval`, explicit arguments (`--arithmetic` or `--program` JSON)
replace it. A checkpoint without such a task is a text model.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch
from transformers import AutoConfig

from hf_linear.analysis.block_norms import block_norms
from hf_linear.checkpoints import load_model, load_tokenizer
from hf_linear.demo.tasks import Task, task_from_arguments, task_from_dataset
from hf_linear.model_types import is_hf_linear, model_type_of, type_names
from hf_linear.run_files import read_training_config


@dataclass
class DemoModel:
    """One checkpoint of the demo."""

    name: str  # as the user gave it: a directory or a Hub repo id
    model: torch.nn.Module
    tokenizer: object
    task: Task | None  # the arithmetic or program task, or None for a text model

    @property
    def description(self) -> str:
        row = model_type_of(self.model)
        kind = f"{row.label} (exact attribution)" if row.linear_in_inputs else row.label
        config = self.model.config
        shape = f"T={config.context_length}, d={config.hidden_size}, V={config.vocab_size}"
        task = self.task.describe() if self.task else "text"
        return f"{kind}, {shape}; {task}"

    @functools.cached_property
    def block_norms(self) -> torch.Tensor:
        """(T, T) ‖W[i, j]‖_F of the masked map, as `hf-linear inspect` draws them."""
        return block_norms(self.model)


def load_demo_model(
    checkpoint: str, arithmetic: dict | None = None, program: dict | None = None, trust_program_code: bool = False
) -> DemoModel:
    """Load an hf-linear checkpoint for the demo; ValueError naming it when it is not one. The task
    is `arithmetic` or `program` when given (JSON of the CLI), else the training config's; a
    "module:function" program is imported only with `trust_program_code`."""
    given = task_from_arguments(arithmetic, program, trust_program_code)  # refused before anything is loaded
    try:  # the config first: no need to load the weights of another kind of model
        model_type = AutoConfig.from_pretrained(checkpoint).model_type
    except (OSError, ValueError):
        model_type = None  # load_model says why
    if model_type is not None and not is_hf_linear(model_type):
        raise ValueError(f"checkpoint {checkpoint} is a {model_type!r} model, not an hf-linear one ({type_names()})")
    model = load_model(checkpoint).eval()
    tokenizer = load_tokenizer(checkpoint)
    if given is None:
        given = task_from_dataset((read_training_config(checkpoint) or {}).get("dataset"), trust_program_code)
    task = given
    return DemoModel(checkpoint, model, tokenizer, task)
