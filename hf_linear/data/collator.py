"""Batches for causal-LM training."""

from __future__ import annotations

import torch

IGNORE_INDEX = -100  # labels the loss skips (transformers' convention)


class CausalLMCollator:
    """Batches of `input_ids` for causal-LM training: right-padded, with labels.

    With `mask_prompt` and a `prompt_length` column, the loss covers only the tokens after the
    prompt (the operands are given, not predicted), as in the paper's arithmetic training.

    The batch is built with one tensor conversion and one mask rather than a loop over its rows,
    which took ~10% of the old main job's step (bench/bench_data_path.py, bench/README.md).
    """

    columns = ("input_ids", "prompt_length")  # all the collator reads (see `training_columns`)

    def __init__(self, pad_token_id: int, mask_prompt: bool = True):
        self.pad_token_id = pad_token_id
        self.mask_prompt = mask_prompt

    def __call__(self, examples: list[dict]) -> dict[str, torch.Tensor]:
        rows = [list(e["input_ids"]) for e in examples]
        lengths = torch.tensor([len(row) for row in rows])
        width = int(lengths.max())
        padded = bool((lengths < width).any())
        if padded:
            rows = [row + [self.pad_token_id] * (width - len(row)) for row in rows]
        input_ids = torch.tensor(rows, dtype=torch.long)  # (batch, width)
        positions = torch.arange(width)
        unlabelled = positions >= lengths[:, None]  # padding
        if self.mask_prompt and "prompt_length" in examples[0]:
            first_label = torch.tensor([int(e["prompt_length"]) for e in examples])
            unlabelled |= positions < first_label[:, None]
        batch = {"input_ids": input_ids, "labels": input_ids.masked_fill(unlabelled, IGNORE_INDEX)}
        if padded:  # only a padded batch has a mask: without one the model skips the mask handling
            batch["attention_mask"] = (positions < lengths[:, None]).long()
        return batch


def training_columns(dataset):
    """`dataset` with only the columns the collator reads: fetching a batch's prompt, answer and
    text strings too costs more than the collation itself. Streams already yield only these."""
    names = getattr(dataset, "column_names", None)
    if not isinstance(names, list):
        return dataset
    return dataset.select_columns([name for name in names if name in CausalLMCollator.columns])
