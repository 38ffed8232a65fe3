"""The dataset card (README.md) of a built dataset, and saving / pushing it with its tokenizer."""

from __future__ import annotations

import json
import os
import string
from pathlib import Path

from datasets import DatasetDict
from huggingface_hub import DatasetCard, DatasetCardData

from hf_linear.data.arithmetic.builder import build_arguments_of, spec_of
from hf_linear.data.arithmetic.registry import FORMATS, REGISTRY
from hf_linear.data.arithmetic.spec import ArithmeticSpec, sequence_length
from hf_linear.data.arithmetic.splits import SPLITS
from hf_linear.data.arithmetic.tokenizer import build_arithmetic_tokenizer
from hf_linear.data.io import push_dataset, save_dataset, size_category
from hf_linear.paper import CITATION
from hf_linear.resources import card_template


def _markdown_table(header: list[str], rows: list[list]) -> str:
    lines = [header, ["---"] * len(header), *rows]
    return "\n".join("| " + " | ".join(map(str, line)) + " |" for line in lines)


def _length_or_dash(task: str, digits: list[int], cot: str, every: int | None = None) -> int | str:
    try:
        return sequence_length(task, digits, cot, every)
    except ValueError:  # e.g. `threshold` with k > 18
        return "—"


def length_table(spec: ArithmeticSpec) -> str:
    """Markdown table of tokens per example (without [EOS]) for every format of the task."""
    if spec.bits:
        n = spec.digits[0]
        stepped = [cot for cot in FORMATS[spec.task] if REGISTRY[spec.task, cot].stepped]
        ks = sorted({1, 2, 4, 8, 16, 32, n, spec.every} & set(range(1, n + 1)))
        rows = [[n, k, *(_length_or_dash(spec.task, [n], cot, k) for cot in stepped)] for k in ks]
        return _markdown_table(["bits n", "k (every)", *(f"`{cot}`" for cot in stepped)], rows)
    formats = FORMATS[spec.task]
    sizes = sorted({(d, d) for d in range(1, 9)} | {spec.digits})
    rows = [[f"{n}x{m}", *(sequence_length(spec.task, [n, m], cot) for cot in formats)] for n, m in sizes]
    return _markdown_table(["n x m", *(f"`{cot}`" for cot in formats)], rows)


def format_list() -> str:
    """Markdown list of every registered format, by task, with its description."""
    lines = []
    for task, names in FORMATS.items():
        lines.append(f"* {task}:")
        lines += [f"  * `{name}` — {REGISTRY[task, name].description}" for name in names]
    return "\n".join(lines)


def _build_command(arguments: dict) -> str:
    digits = " ".join(map(str, arguments["digits"]))
    command = (
        f"python dataset_scripts/build_arithmetic.py --task {arguments['task']} --digits {digits} "
        f"--cot {arguments['cot']} --train-size {arguments['train_size']} "
        f"--validation-size {arguments['validation_size']} --test-size {arguments['test_size']} "
        f"--seed {arguments['seed']}"
    )
    return command + (f" --every {arguments['every']}" if arguments["task"] == "parity" else "") + " --out OUT"


def render_dataset_card(dataset_dict: DatasetDict, hub_metadata: dict | None = None) -> str:
    """README.md of a built dataset, from `model_cards/dataset_card_arithmetic.md`.

    `hub_metadata` (the YAML that `DatasetDict.push_to_hub` wrote: `configs`, `dataset_info`)
    is merged into the card's own metadata so that the Hub still finds the data files.
    """

    arguments = build_arguments_of(dataset_dict)
    spec = spec_of(dataset_dict)
    example = dataset_dict["train"][0] if len(dataset_dict["train"]) else dataset_dict["test"][0]
    sizes = {name: len(dataset_dict[name]) for name in SPLITS}
    what = spec.describe() + (f", one step every {spec.every} bits" if spec.format.stepped else "")
    values = {
        "pretty_name": f"CoT arithmetic: {what}, format {spec.cot}",
        "size_category": size_category(sum(sizes.values())),
        "task": spec.task,
        "cot": spec.cot,
        "description": what,
        "length": spec.length + 1,
        "prompt_length": spec.prompt_length,
        "example_prompt": example["prompt"],
        "example_text": example["text"],
        "example_answer": example["answer"],
        "format_list": format_list(),
        "length_table": length_table(spec),
        "train_size": sizes["train"],
        "validation_size": sizes["validation"],
        "test_size": sizes["test"],
        "seed": arguments["seed"],
        "build_command": _build_command(arguments),
        "arguments": json.dumps(arguments, sort_keys=True),
        "citation": CITATION,
    }
    card = DatasetCard(string.Template(card_template("dataset_card_arithmetic.md")).substitute(values))
    if hub_metadata:
        card.data = DatasetCardData(**{**card.data.to_dict(), **hub_metadata})
    return str(card)


def save_arithmetic_dataset(dataset_dict: DatasetDict, out: str | os.PathLike, overwrite: bool = False) -> Path:
    """`save_to_disk` the dataset into `out` with its tokenizer files and README.md card.

    Everything is written into a temporary sibling directory first, then renamed into place, so an
    interrupted run never leaves a half-written `out` (nor loses the old one).
    """
    return save_dataset(dataset_dict, build_arithmetic_tokenizer(), render_dataset_card(dataset_dict), out, overwrite)


def push_arithmetic_dataset_to_hub(
    dataset_dict: DatasetDict, repo_id: str, token: str | None = None, private: bool = False
) -> str:
    """Push the dataset (Parquet, via `DatasetDict.push_to_hub`) to the dataset repo `repo_id`, then
    its card (README.md) and the tokenizer files (under `tokenizer/`) in one more commit.

    Load it back with ``load_dataset(repo_id)`` and the tokenizer with
    ``AutoTokenizer.from_pretrained(snapshot_download(repo_id, repo_type="dataset"), subfolder="tokenizer")``.
    Returns the repo id.
    """
    return push_dataset(
        dataset_dict,
        build_arithmetic_tokenizer(),
        lambda hub_metadata: render_dataset_card(dataset_dict, hub_metadata),
        repo_id,
        token=token,
        private=private,
    )
