"""Batches for causal-LM training."""

from __future__ import annotations

import torch


class CausalLMCollator:
    """Batches of `input_ids` for causal-LM training: right-padded, with labels.

    With `mask_prompt` and a `prompt_length` column, the loss covers only the tokens after the
    prompt (the operands are given, not predicted), as in the paper's arithmetic training.
    """

    def __init__(self, pad_token_id: int, mask_prompt: bool = True):
        self.pad_token_id = pad_token_id
        self.mask_prompt = mask_prompt

    def __call__(self, examples: list[dict]) -> dict[str, torch.Tensor]:
        width = max(len(e["input_ids"]) for e in examples)
        input_ids = torch.full((len(examples), width), self.pad_token_id, dtype=torch.long)
        attention_mask = torch.zeros((len(examples), width), dtype=torch.long)
        labels = torch.full((len(examples), width), -100, dtype=torch.long)
        for row, example in enumerate(examples):
            ids = torch.as_tensor(example["input_ids"], dtype=torch.long)
            input_ids[row, : len(ids)] = ids
            attention_mask[row, : len(ids)] = 1
            first_label = int(example["prompt_length"]) if self.mask_prompt and "prompt_length" in example else 0
            labels[row, first_label : len(ids)] = ids[first_label:]
        if bool(attention_mask.all()):
            attention_mask = None  # no padding: let the model skip the mask handling
        batch = {"input_ids": input_ids, "labels": labels}
        if attention_mask is not None:
            batch["attention_mask"] = attention_mask
        return batch
