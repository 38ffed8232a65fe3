"""TinyStories for the paper's first experiment: stories → tokenizer → T-token windows.

Malach (ICML 2024) §4.1 trains the linear next-token predictor on TinyStories (Eldan & Li 2023)
with the tokenizer of roneneldan/TinyStories-33M (the GPT-2 BPE, 50,257 tokens) plus a `[PAD]`
token (V = 50,258), on stories "split into 64-token chunks, only full chunks kept".

Main entry points
-----------------
* `build_tinystories_dataset(source, tokenizer, context_length, ...) -> DatasetDict` (train /
  validation, one column `input_ids` of exactly T+1 tokens: T inputs, T targets) — its keyword arguments are the
  `dataset.tinystories:` section of a training config;
* `tinystories_tokenizer(...)` — the tokenizer those ids belong to (same arguments);
* `save_tinystories_dataset(...)` / `push_tinystories_dataset_to_hub(...)` — with the tokenizer
  and a dataset card.

Sources (`source`)
------------------
* `"roneneldan/TinyStories"` (default) or any other dataset repo id or path `load_dataset` reads,
  with splits `train` and `validation` and a column `text` holding one story per row;
* a local directory holding one `*train*.txt` and one `*valid*.txt` file in the format of the
  original TinyStories-{train,valid}.txt: stories separated by lines that read `<|endoftext|>`.

Tokenizer and special tokens
----------------------------
`tokenizer` is a name or path for `AutoTokenizer.from_pretrained` (default: the paper's
`roneneldan/TinyStories-33M`; `gpt2` and `../shared/data/gpt2-tokenizer` are the same BPE), or
`bpe_vocab_size=N` trains a byte-level BPE of N tokens (including `<|endoftext|>`) on the train
stories with `tokenizers` (deterministic), wrapped as `PreTrainedTokenizerFast`. Either way, as
the authors' code does, `[PAD]` is added as the pad token when the tokenizer has none
(GPT-2: V = 50,258; BPE: V = N + 1). BOS, EOS and UNK stay the tokenizer's own (GPT-2 and our
BPE: `<|endoftext|>`). Padding is on the left, for batched generation; training windows are
never padded.

Windows
-------
Every story is tokenized on its own with the tokenizer's defaults (the GPT-2 BPE adds no special
tokens), with NO end-of-story token appended — as the authors' code, whose `text` rows never
contain one — and cut into windows of T+1 tokens every T tokens from its first token (T inputs
and their T targets, so that every row of a model of window T is trained; see `full_windows`:
the paper's T-token chunks leave the last row untrained, and it is the row a sliding window
uses past T); the last,
partial window of each story is dropped (`full_windows`). The authors' code intends the same
(`return_overflowing_tokens` chunks, kept when `length == T`), but it also passes
`padding=True`, under which the tokenizer reports the padded length (checked with transformers
5.23), so their training data also held `[PAD]`-padded tails; we keep full windows only, as the
paper states.
"""

from __future__ import annotations

import functools
import json
import os
import string
from collections.abc import Iterable, Iterator
from pathlib import Path

from datasets import Dataset, DatasetDict, Features, List, Value, load_dataset
from datasets.exceptions import DatasetGenerationError
from huggingface_hub import DatasetCard, DatasetCardData
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

from hf_linear.checkpoints import load_named_tokenizer
from hf_linear.data.io import build_record, push_dataset, save_dataset, size_category
from hf_linear.paper import CITATION as PAPER_CITATION
from hf_linear.resources import card_template

DEFAULT_SOURCE = "roneneldan/TinyStories"
DEFAULT_TOKENIZER = "roneneldan/TinyStories-33M"  # the paper's tokenizer (the GPT-2 BPE)
STORY_SEPARATOR = "<|endoftext|>"  # a line of its own in the original text files
PAD_TOKEN = "[PAD]"  # the pad token the authors' code adds
SPLITS = ("train", "validation")
FILE_PATTERNS = {"train": "*train*.txt", "validation": "*valid*.txt"}
MIN_BPE_VOCAB_SIZE = 257  # the 256 byte tokens + <|endoftext|>

_DESCRIPTION_PREFIX = "hf-linear TinyStories windows; build record: "
LICENSE = "cdla-sharing-1.0"
TINYSTORIES_CITATION = """@article{eldan2023tinystories,
  title   = {TinyStories: How Small Can Language Models Be and Still Speak Coherent English?},
  author  = {Eldan, Ronen and Li, Yuanzhi},
  journal = {arXiv preprint arXiv:2305.07759},
  year    = {2023}
}"""


# ---------------------------------------------------------------------------------------------
# Pure functions: stories and windows


def split_stories(lines: Iterable[str]) -> Iterator[str]:
    """Stories of a TinyStories text file: the text between lines that read `<|endoftext|>`
    (surrounding whitespace ignored), stripped; empty stories are skipped."""
    story: list[str] = []
    for line in lines:
        if line.strip() == STORY_SEPARATOR:
            text = "".join(story).strip()
            if text:
                yield text
            story = []
        else:
            story.append(line)
    text = "".join(story).strip()
    if text:
        yield text


def full_windows(ids: list[int], context_length: int, stride: int | None = None) -> list[list[int]]:
    """Windows of exactly T+1 tokens (T = `context_length`) every T tokens from the start of
    `ids`: T inputs and their T next-token targets, so that every row of the masked map is
    trained — with T-token windows the last position has no target and row T-1, which a
    sliding window uses for every position >= T, would keep its initial weights. Consecutive
    windows share one token (the last target of one is the first input of the next), so every
    token after the first is a target exactly once; a shorter tail is dropped (the paper keeps
    only full chunks). A `stride` < T makes windows overlap: every row of the window is then
    trained at more offsets into the stories (a sliding window evaluates the last row at all of
    them), at the cost of more (correlated) windows."""
    span = context_length + 1
    return [ids[start : start + span] for start in range(0, len(ids) - span + 1, stride or context_length)]


def windows_of_batch(batch: dict, tokenizer, context_length: int, stride: int | None = None) -> dict:
    """`Dataset.map(batched=True)` function: a batch of stories (`text`) → its windows (`input_ids`)."""
    ids = tokenizer(batch["text"])["input_ids"]
    return {"input_ids": [window for story in ids for window in full_windows(story, context_length, stride)]}


# ---------------------------------------------------------------------------------------------
# Loading the stories


def _stories_of_file(path: str, stamp: tuple[int, int]) -> Iterator[dict]:
    """`Dataset.from_generator` generator. `stamp` (size, mtime) is unused here but part of the
    datasets cache key, so an edited file is read again."""
    with open(path, encoding="utf-8") as f:
        for story in split_stories(f):
            yield {"text": story}


def story_files(directory: Path) -> dict[str, Path]:
    """The train and validation text files of a local TinyStories directory."""
    files = {}
    for split, pattern in FILE_PATTERNS.items():
        found = sorted(directory.glob(pattern))
        if len(found) != 1:
            names = ", ".join(p.name for p in found) or "none"
            raise ValueError(
                f"tinystories source {directory}: expected exactly one {pattern} file for the "
                f"{split} split, found {names}"
            )
        files[split] = found[0]
    return files


def _stories_dataset(path: Path, split: str) -> Dataset:
    """The stories of one text file as a Dataset (column `text`)."""
    stat = path.stat()
    try:
        return Dataset.from_generator(
            _stories_of_file,
            features=Features({"text": Value("string")}),
            gen_kwargs={"path": str(path.resolve()), "stamp": (stat.st_size, stat.st_mtime_ns)},
            split=split,
        )
    except DatasetGenerationError as error:  # datasets wraps what the generator raised
        if isinstance(error.__cause__, UnicodeDecodeError):
            raise ValueError(f"tinystories source {path}: not UTF-8 text ({error.__cause__})") from None
        raise


def _is_text_directory(source: str) -> bool:
    path = Path(source)
    return path.is_dir() and any(path.glob("*.txt"))


def load_stories(source: str = DEFAULT_SOURCE, max_stories: int | None = None) -> DatasetDict:
    """DatasetDict(train, validation) with one column `text`, one story per row (see the module
    docstring for the sources); with `max_stories`, the first that many stories of each split."""

    if _is_text_directory(source):
        splits = {}
        for split, path in story_files(Path(source)).items():
            splits[split] = _stories_dataset(path, split)
        stories = DatasetDict(splits)
    else:
        try:
            stories = load_dataset(source)
        except OSError as error:  # not found (DatasetNotFoundError), or the Hub unreachable (ConnectionError)
            raise ValueError(
                f"tinystories source {source!r} could not be loaded (a local directory of TinyStories "
                f"text files, or a dataset load_dataset can find): {error}"
            ) from error
    missing = [split for split in SPLITS if split not in stories]
    if missing:
        raise ValueError(
            f"tinystories source {source!r} has no {' / '.join(missing)} split (splits: {', '.join(stories)})"
        )
    for split in SPLITS:
        if "text" not in stories[split].column_names:
            raise ValueError(
                f"tinystories source {source!r}: the {split} split has no 'text' column "
                f"(columns: {', '.join(stories[split].column_names)})"
            )
    stories = DatasetDict({split: stories[split].select_columns(["text"]) for split in SPLITS})
    if max_stories is not None:
        stories = DatasetDict({split: ds.select(range(min(max_stories, len(ds)))) for split, ds in stories.items()})
    return stories


# ---------------------------------------------------------------------------------------------
# The tokenizer


def train_byte_level_bpe(stories: Iterable[str], vocab_size: int):
    """A byte-level BPE of `vocab_size` tokens (the 256 bytes, `<|endoftext|>` = id 0, merges)
    trained on `stories`, as `PreTrainedTokenizerFast` with `<|endoftext|>` as BOS/EOS/UNK."""

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)  # as GPT-2
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[STORY_SEPARATOR],
        show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),  # every byte: no unknown input
    )
    bpe.train_from_iterator(stories, trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        bos_token=STORY_SEPARATOR,
        eos_token=STORY_SEPARATOR,
        unk_token=STORY_SEPARATOR,
        clean_up_tokenization_spaces=False,
    )


def with_pad_token(tokenizer):
    """`tokenizer` with the paper's `[PAD]` added when it has no pad token, padding on the left."""
    if tokenizer.pad_token is None:
        tokenizer.add_special_tokens({"pad_token": PAD_TOKEN})
    tokenizer.padding_side = "left"
    return tokenizer


@functools.lru_cache(maxsize=4)
def tinystories_tokenizer(
    source: str = DEFAULT_SOURCE,
    tokenizer: str | None = None,
    bpe_vocab_size: int | None = None,
    max_stories: int | None = None,
):
    """The tokenizer of `build_tinystories_dataset` with the same arguments (cached: a BPE is
    trained once per process; training is deterministic, so every process gets the same one)."""
    _check_tokenizer_arguments(tokenizer, bpe_vocab_size)
    if bpe_vocab_size is None:
        name = tokenizer or DEFAULT_TOKENIZER
        return with_pad_token(load_named_tokenizer(name, f"tokenizer {name!r} (a Hub name or a local directory)"))
    train = load_stories(source, max_stories)["train"]
    if len(train) == 0:
        raise ValueError(f"tinystories source {source!r} has no train stories to train a BPE on")
    batches = (batch["text"] for batch in train.iter(batch_size=1000))
    return with_pad_token(train_byte_level_bpe((text for batch in batches for text in batch), bpe_vocab_size))


def _check_tokenizer_arguments(tokenizer: str | None, bpe_vocab_size: int | None) -> None:
    if tokenizer is not None and bpe_vocab_size is not None:
        raise ValueError("give either tokenizer (a name or path) or bpe_vocab_size (train a BPE), not both")
    if tokenizer is not None and (not isinstance(tokenizer, str) or not tokenizer):
        raise ValueError(f"tokenizer must be a tokenizer name or path, got {tokenizer!r}")
    if bpe_vocab_size is not None and not _is_int(bpe_vocab_size, MIN_BPE_VOCAB_SIZE):
        raise ValueError(
            f"bpe_vocab_size must be an integer >= {MIN_BPE_VOCAB_SIZE} "
            f"(256 bytes + <|endoftext|>), got {bpe_vocab_size!r}"
        )


def _is_int(value, minimum: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


# ---------------------------------------------------------------------------------------------
# The dataset


def build_tinystories_dataset(
    source: str = DEFAULT_SOURCE,
    tokenizer: str | None = None,
    context_length: int = 64,
    bpe_vocab_size: int | None = None,
    max_stories: int | None = None,
    num_proc: int | None = None,
    stride: int | None = None,
) -> DatasetDict:
    """TinyStories as windows of exactly `context_length` + 1 tokens for a model of window T
    (the paper: T = 64).

    Args:
        source: "roneneldan/TinyStories" (default), another dataset repo id or `load_dataset`
            path, or a local directory of TinyStories text files (see the module docstring).
        tokenizer: a name or path for `AutoTokenizer` (default: roneneldan/TinyStories-33M).
        context_length: T, the window of the model (the windows hold T+1 tokens).
        bpe_vocab_size: train a byte-level BPE of this many tokens instead of `tokenizer`.
        max_stories: use only the first that many stories of each split (quick runs).
        num_proc: processes for the tokenization `map` (results are cached by `datasets`).
        stride: tokens between window starts (default T: windows share only one token).

    Returns DatasetDict(train, validation) with column `input_ids` (int32, length T+1); the build
    arguments and story counts are kept in each split's `info.description`.
    """
    if not isinstance(source, str) or not source:
        raise ValueError(f"source must be a dataset name or path, got {source!r}")
    if not _is_int(context_length, 2):
        raise ValueError(
            f"context_length must be an integer >= 2 (a window needs a next token), got {context_length!r}"
        )
    if max_stories is not None and not _is_int(max_stories, 1):
        raise ValueError(f"max_stories must be an integer >= 1 or None, got {max_stories!r}")
    if num_proc is not None and not _is_int(num_proc, 1):
        raise ValueError(f"num_proc must be an integer >= 1 or None, got {num_proc!r}")
    if stride is not None and not (_is_int(stride, 1) and stride <= context_length):
        raise ValueError(f"stride must be an integer from 1 to context_length={context_length} or None, got {stride!r}")
    _check_tokenizer_arguments(tokenizer, bpe_vocab_size)

    stories = load_stories(source, max_stories)
    token_ids = tinystories_tokenizer(source, tokenizer, bpe_vocab_size, max_stories)
    features = Features({"input_ids": List(Value("int32"), length=context_length + 1)})
    record = {
        "arguments": {
            "source": source,
            "tokenizer": tokenizer,
            "context_length": context_length,
            "bpe_vocab_size": bpe_vocab_size,
            "max_stories": max_stories,
            "stride": stride,
        },
        "tokenizer_name": token_ids.name_or_path if bpe_vocab_size is None else f"byte-level BPE ({bpe_vocab_size})",
        "vocab_size": len(token_ids),
        "stories": {split: len(stories[split]) for split in SPLITS},
    }
    windows = {}
    for split in SPLITS:
        data = stories[split].map(
            windows_of_batch,
            batched=True,
            batch_size=1000,
            num_proc=num_proc,
            fn_kwargs={"tokenizer": token_ids, "context_length": context_length, "stride": stride},
            remove_columns=["text"],
            features=features,
            desc=f"Tokenizing {split} stories",
        )
        data.info.description = _DESCRIPTION_PREFIX + json.dumps(record, sort_keys=True)
        data.info.license = LICENSE
        data.info.citation = TINYSTORIES_CITATION
        if len(data) == 0:  # save_to_disk would write a dataset load_from_disk cannot read
            raise ValueError(
                f"context_length={context_length}: no {split} story has the {context_length + 1} tokens "
                f"of a window ({len(stories[split])} stories); lower context_length"
            )
        windows[split] = data
    return DatasetDict(windows)


def build_record_of(dataset: Dataset | DatasetDict) -> dict:
    """The build arguments, tokenizer and story counts a dataset was built with (from its info)."""

    return build_record(dataset, _DESCRIPTION_PREFIX, "build_tinystories_dataset")


# ---------------------------------------------------------------------------------------------
# Dataset card, saving, Hub


def build_command(arguments: dict) -> str:
    """The dataset_scripts/build_tinystories.py command that builds a dataset with `arguments`."""
    parts = ["python dataset_scripts/build_tinystories.py", f"--source {arguments['source']}"]
    if arguments["bpe_vocab_size"] is not None:
        parts.append(f"--train-bpe {arguments['bpe_vocab_size']}")
    elif arguments["tokenizer"] is not None:
        parts.append(f"--tokenizer {arguments['tokenizer']}")
    parts.append(f"--context-length {arguments['context_length']}")
    if arguments["max_stories"] is not None:
        parts.append(f"--max-stories {arguments['max_stories']}")
    if arguments.get("stride") is not None:
        parts.append(f"--stride {arguments['stride']}")
    return " ".join(parts + ["--out OUT"])


def render_dataset_card(dataset_dict: DatasetDict, tokenizer, hub_metadata: dict | None = None) -> str:
    """README.md of a built dataset, from `model_cards/dataset_card_tinystories.md`.

    `hub_metadata` (the YAML `DatasetDict.push_to_hub` wrote: `configs`, `dataset_info`) is
    merged into the card's metadata so that the Hub still finds the data files.
    """

    record = build_record_of(dataset_dict)
    T = record["arguments"]["context_length"]
    windows = {split: len(dataset_dict[split]) for split in SPLITS}
    rows = [
        f"| {split} | {record['stories'][split]:,} | {windows[split]:,} | {windows[split] * T:,} |" for split in SPLITS
    ]
    example = dataset_dict["train"][0]["input_ids"] if windows["train"] else []
    values = {
        "pretty_name": f"TinyStories in windows for T={T} ({record['tokenizer_name']})",
        "size_category": size_category(sum(windows.values())),
        "source": record["arguments"]["source"],
        "tokenizer": record["tokenizer_name"],
        "vocab_size": f"{record['vocab_size']:,}",
        "special_tokens": (
            f"BOS `{tokenizer.bos_token}`, EOS `{tokenizer.eos_token}` (id {tokenizer.eos_token_id}), "
            f"pad `{tokenizer.pad_token}` (id {tokenizer.pad_token_id})"
        ),
        "context_length": T,
        "split_table": "\n".join(["| split | stories | windows | tokens |", "|---|---|---|---|", *rows]),
        "example": tokenizer.decode(example).replace("```", "'''"),
        "build_command": build_command(record["arguments"]),
        "arguments": json.dumps(record["arguments"], sort_keys=True),
        "tinystories_citation": TINYSTORIES_CITATION,
        "paper_citation": PAPER_CITATION,
    }
    card = DatasetCard(string.Template(card_template("dataset_card_tinystories.md")).substitute(values))
    if hub_metadata:
        card.data = DatasetCardData(**{**card.data.to_dict(), **hub_metadata})
    return str(card)


def save_tinystories_dataset(
    dataset_dict: DatasetDict, tokenizer, out: str | os.PathLike, overwrite: bool = False
) -> Path:
    """`save_to_disk` the dataset into `out` with its tokenizer files and README.md card, so that
    `load_from_disk(out)` and `AutoTokenizer.from_pretrained(out)` both work.

    Everything is written into a temporary sibling directory first, then renamed into place: an
    interrupted run never leaves a half-written `out` (nor loses the old one).
    """

    return save_dataset(dataset_dict, tokenizer, render_dataset_card(dataset_dict, tokenizer), out, overwrite)


def push_tinystories_dataset_to_hub(
    dataset_dict: DatasetDict, tokenizer, repo_id: str, token: str | None = None, private: bool = False
) -> str:
    """Push the windows (Parquet, via `DatasetDict.push_to_hub`) to the dataset repo `repo_id`,
    then its card (README.md) and the tokenizer files (under `tokenizer/`) in one more commit.

    Load it back with ``load_dataset(repo_id)`` and the tokenizer with
    ``AutoTokenizer.from_pretrained(snapshot_download(repo_id, repo_type="dataset"), subfolder="tokenizer")``.
    Returns the repo id.
    """

    return push_dataset(
        dataset_dict,
        tokenizer,
        lambda hub_metadata: render_dataset_card(dataset_dict, tokenizer, hub_metadata),
        repo_id,
        token=token,
        private=private,
    )
