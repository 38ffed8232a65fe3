"""Saving and pushing a built DatasetDict with its tokenizer and card: one path for every builder.

* `recorded_splits(...)` / `build_record(...)`: the splits of a built dataset with its build
  arguments written into their info, and reading them back;
* `save_dataset(...)`: `save_to_disk` + tokenizer files + README.md card, written into a
  temporary sibling directory and renamed into place, so an interrupted run never leaves a
  half-written output (nor loses the previous one);
* `push_dataset(...)`: `DatasetDict.push_to_hub` (Parquet), then the card, rendered with the
  metadata the Hub wrote (configs, dataset_info), and the tokenizer under `tokenizer/`, in one
  more commit. Load back with `load_dataset(repo_id)` and
  `AutoTokenizer.from_pretrained(snapshot_download(repo_id, repo_type="dataset"), subfolder="tokenizer")`.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path

import pyarrow as pa
from datasets import Dataset, DatasetDict, DatasetInfo, Features
from datasets.table import InMemoryTable
from huggingface_hub import CommitOperationAdd, DatasetCard, HfApi

from hf_linear.atomic import staged_directory
from hf_linear.output_dirs import check_output_dir

# the Hub's size categories of a dataset card (`size_categories` metadata), by upper bound
SIZE_CATEGORIES = (
    (1_000, "n<1K"),
    (10_000, "1K<n<10K"),
    (100_000, "10K<n<100K"),
    (1_000_000, "100K<n<1M"),
    (10_000_000, "1M<n<10M"),
    (100_000_000, "10M<n<100M"),
    (1_000_000_000, "100M<n<1B"),
)


def size_category(count: int) -> str:
    """The Hub's size category of a dataset of `count` examples."""
    return next((label for bound, label in SIZE_CATEGORIES if count < bound), "1B<n<10B")


def save_dataset(
    dataset_dict: DatasetDict, tokenizer, card: str, out: str | os.PathLike, overwrite: bool = False
) -> Path:
    """Write dataset, tokenizer and card (README.md) to `out`; see the module docstring. `out`
    follows the project's output-directory rule (`hf_linear.output_dirs`)."""
    out = check_output_dir(out, overwrite, "--out")
    try:
        with staged_directory(out, written_by="an hf-linear dataset builder") as staging:
            dataset_dict.save_to_disk(str(staging))
            tokenizer.save_pretrained(str(staging))
            (staging / "README.md").write_text(card)
    except OSError as error:  # e.g. a read-only file system, a full disk: nothing was replaced
        raise ValueError(f"--out {out}: cannot be written ({error.strerror or error})") from None
    return out


def push_dataset(
    dataset_dict: DatasetDict,
    tokenizer,
    render_card: Callable[[dict], str],
    repo_id: str,
    token: str | None = None,
    private: bool = False,
) -> str:
    """Push dataset, card (`render_card(hub_metadata)`) and tokenizer; returns the repo id."""

    dataset_dict.push_to_hub(repo_id, token=token, private=private)
    pushed_metadata = DatasetCard.load(repo_id, repo_type="dataset", token=token).data.to_dict()
    hub_metadata = {key: pushed_metadata[key] for key in ("configs", "dataset_info") if key in pushed_metadata}
    with tempfile.TemporaryDirectory() as directory:
        tokenizer.save_pretrained(directory)
        operations = [CommitOperationAdd("README.md", render_card(hub_metadata).encode())]
        operations += [
            CommitOperationAdd(f"tokenizer/{name}", str(Path(directory) / name))
            for name in sorted(os.listdir(directory))
        ]
        HfApi(token=token).create_commit(
            repo_id, operations, commit_message="Add dataset card and tokenizer", repo_type="dataset"
        )
    return repo_id


def recorded_splits(
    tables: Mapping[str, pa.Table],
    features: Features,
    arguments: dict,
    *,
    prefix: str,
    format_version: int,
    license: str,
    citation: str,
) -> DatasetDict:
    """A DatasetDict of one Arrow table per split, each split recording how it was built.

    Its info description is `prefix` + the JSON of `arguments` (read back by `build_record`), and
    its fingerprint a hash of `format_version`, `arguments` and the split's name, not of the rows:
    the same arguments give the same fingerprints, and a changed format (a new `format_version`)
    new ones.
    """
    description = prefix + json.dumps(arguments, sort_keys=True)
    splits = {}
    for name, table in tables.items():
        info = DatasetInfo(description=description, citation=citation, license=license, features=features)
        fingerprint = hashlib.sha256(json.dumps([format_version, arguments, name], sort_keys=True).encode())
        splits[name] = Dataset(InMemoryTable(table), info=info, split=name, fingerprint=fingerprint.hexdigest()[:16])
    return DatasetDict(splits)


def build_record(dataset, prefix: str, builder: str) -> dict:
    """The JSON a builder stored after `prefix` in a dataset's info description (its build
    arguments), from a Dataset or the first split of a DatasetDict."""
    if isinstance(dataset, DatasetDict):
        dataset = next(iter(dataset.values()))
    description = dataset.info.description or ""
    if not description.startswith(prefix):
        raise ValueError(f"this dataset was not built by {builder} (no build record in its info)")
    return json.loads(description[len(prefix) :])


def add_output_arguments(parser) -> None:
    """The output and Hub options every dataset script shares."""
    parser.add_argument("--out", required=True, help="output directory (save_to_disk)")
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace a non-empty --out written by an earlier build (never other files)",
    )
    parser.add_argument("--push-to-hub", metavar="REPO", default=None, help="also push to this Hub dataset repo")
    parser.add_argument("--private", action="store_true", help="create the Hub repo private")
    parser.add_argument("--hub-token", default=None, help="Hub token (default: HF_TOKEN or the saved login)")
