"""Where a training or evaluation dataset comes from, and how its batches are made.

The `dataset:` section of a training config names exactly one source:

    arithmetic: {task: multiplication, digits: [4, 4], cot: lsb, train_size: 100000}   # built now
    arithmetic_stream: {task: multiplication, digits: [4, 4], cot: paper, seed: 0}     # endless train
    path: data/mul4x4-paper           # a DatasetDict written by save_to_disk (a dataset script)
    hub: user/mul4x4-paper            # a dataset repo, loaded with datasets.load_dataset
    tinystories: {source: roneneldan/TinyStories, context_length: 64}   # windows built now

and optionally `tokenizer:` (a name or path for AutoTokenizer; default: the arithmetic tokenizer
for arithmetic data, the tokenizer saved inside a `path` dataset, or for tinystories the one
its own `tokenizer` / `bpe_vocab_size` keys name, see hf_linear.data.tinystories).
"""

from __future__ import annotations

import inspect
from pathlib import Path

import torch
from datasets import DatasetDict

SOURCES = ("arithmetic", "arithmetic_stream", "tinystories", "path", "hub")
# held-out splits of an arithmetic_stream source (its training examples are drawn on the fly)
STREAM_HELDOUT_KEYS = ("validation_size", "test_size")


def check_dataset_config(config: dict) -> None:
    """Raise ValueError naming what is wrong with a `dataset:` section."""
    if not isinstance(config, dict):
        raise ValueError(f"dataset: must be a mapping, got {config!r}")
    unknown = sorted(set(config) - set(SOURCES) - {"tokenizer"})
    if unknown:
        raise ValueError(f"dataset: unknown key(s) {', '.join(unknown)} (expected one of {', '.join(SOURCES)}, and tokenizer)")
    given = [key for key in SOURCES if config.get(key) is not None]
    if len(given) != 1:
        raise ValueError(f"dataset: give exactly one of {', '.join(SOURCES)} (got {', '.join(given) or 'none'})")
    if given[0] in ("arithmetic", "arithmetic_stream", "tinystories"):
        from hf_linear.data.arithmetic.dataset import ArithmeticStream, build_arithmetic_dataset
        from hf_linear.data.tinystories import build_tinystories_dataset

        source = given[0]
        arguments = config[source]
        if not isinstance(arguments, dict):
            raise ValueError(f"dataset.{source} must be a mapping of arguments, got {arguments!r}")
        if source == "arithmetic":
            accepted = set(inspect.signature(build_arithmetic_dataset).parameters)
        elif source == "tinystories":
            accepted = set(inspect.signature(build_tinystories_dataset).parameters)
            if config.get("tokenizer"):
                raise ValueError("dataset.tokenizer: for tinystories, name the tokenizer in dataset.tinystories.tokenizer")
        else:
            accepted = set(inspect.signature(ArithmeticStream).parameters) - {"rank"} | set(STREAM_HELDOUT_KEYS)
        unknown = sorted(set(arguments) - accepted)
        if unknown:
            raise ValueError(f"dataset.{source}: unknown key(s) {', '.join(unknown)} (accepted: {', '.join(sorted(accepted))})")
    if "path" in given and not (Path(config["path"]) / "dataset_dict.json").exists():
        raise ValueError(f"dataset.path: {config['path']} is not a DatasetDict saved with save_to_disk (no dataset_dict.json)")


def load_dataset_dict(config: dict) -> DatasetDict:
    """The DatasetDict of a `dataset:` section (see the module docstring). For arithmetic_stream,
    "train" is an endless `ArithmeticStream` (train with max_steps) beside held-out Datasets."""
    check_dataset_config(config)
    if config.get("arithmetic") is not None:
        from hf_linear.data.arithmetic.dataset import build_arithmetic_dataset

        return build_arithmetic_dataset(**config["arithmetic"])
    if config.get("arithmetic_stream") is not None:
        from hf_linear.data.arithmetic.dataset import ArithmeticStream, build_arithmetic_dataset

        stream = dict(config["arithmetic_stream"])
        held_out = {key: stream.pop(key) for key in STREAM_HELDOUT_KEYS if key in stream}
        splits = build_arithmetic_dataset(**stream, train_size=0, **held_out)
        splits["train"] = ArithmeticStream(**stream)
        return splits
    if config.get("tinystories") is not None:
        from hf_linear.data.tinystories import build_tinystories_dataset

        return build_tinystories_dataset(**config["tinystories"])
    if config.get("path") is not None:
        from datasets import load_from_disk

        return load_from_disk(config["path"])
    from datasets import load_dataset

    return load_dataset(config["hub"])


def load_tokenizer(config: dict):
    """The tokenizer of a `dataset:` section."""
    from transformers import AutoTokenizer

    if config.get("tokenizer"):
        return AutoTokenizer.from_pretrained(config["tokenizer"])
    if config.get("tinystories") is not None:
        from hf_linear.data.tinystories import tinystories_tokenizer

        keys = ("source", "tokenizer", "bpe_vocab_size", "max_stories")
        return tinystories_tokenizer(**{key: config["tinystories"][key] for key in keys if key in config["tinystories"]})
    if config.get("path") and (Path(config["path"]) / "tokenizer.json").exists():
        return AutoTokenizer.from_pretrained(config["path"])
    if config.get("arithmetic") is not None or config.get("arithmetic_stream") is not None or config.get("hub"):
        from hf_linear.data.arithmetic.tokenizer import build_arithmetic_tokenizer

        return build_arithmetic_tokenizer()
    raise ValueError("dataset.tokenizer: no tokenizer given and none saved with the dataset")


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
