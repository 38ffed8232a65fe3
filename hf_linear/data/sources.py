"""Where a training or evaluation dataset comes from: one small class per kind of `dataset:` section.

The `dataset:` section of a training config names exactly one source:

    arithmetic: {task: multiplication, digits: [4, 4], cot: lsb, train_size: 100000}   # built now
    arithmetic_stream: {task: multiplication, digits: [4, 4], cot: paper, seed: 0}     # endless train
    arithmetic_mixture: [{task: multiplication, digits: [5, 5], ...}, {digits: [4, 4], ...}]
    program: {program: multiplication, size: 10000, train_size: 100000}             # compiled CoT
    program_stream: {program: multiplication, size: 10000, seed: 0}                 # endless train
    tinystories: {source: roneneldan/TinyStories, context_length: 64}   # windows built now
    path: data/mul4x4-paper           # a DatasetDict written by save_to_disk (a dataset script)
    hub: user/mul4x4-paper            # a dataset repo, loaded with datasets.load_dataset

and optionally `tokenizer:` (a name or path for AutoTokenizer; default: the tokenizer that belongs
to the data, see each source) and `allow_sliding: true` (train on sequences longer than the
model's window, which then slides). Each source checks its arguments, loads the DatasetDict,
gives its tokenizer, describes itself in one line, and says how long its sequences are.
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path

import pyarrow.compute as pc
from datasets import DatasetDict, concatenate_datasets, load_dataset, load_from_disk
from huggingface_hub import snapshot_download

from hf_linear.checkpoints import load_named_tokenizer
from hf_linear.data.arithmetic import (
    ArithmeticSpec,
    ArithmeticStream,
    build_arithmetic_dataset,
    build_arithmetic_tokenizer,
)
from hf_linear.data.programs import compile_program
from hf_linear.data.programs.dataset import ProgramStream, build_program_dataset, build_program_tokenizer
from hf_linear.data.tinystories import DEFAULT_SOURCE, build_tinystories_dataset, tinystories_tokenizer

OPTIONS = ("tokenizer", "allow_sliding")


class DataSource:
    """One kind of `dataset:` section. Subclasses set `key` and implement the methods."""

    key: str

    def __init__(self, arguments, tokenizer: str | None = None, trust_program_code: bool = False):
        self.arguments = arguments
        self.tokenizer_name = tokenizer
        # import a "module:function" program: granted by the caller (a flag the user typed), never
        # by the section itself, which may come from a downloaded file
        self.trust_program_code = trust_program_code
        self.check()

    def check(self) -> None:
        """Raise ValueError naming what is wrong with the arguments, before anything is built."""

    def load(self) -> DatasetDict:
        raise NotImplementedError

    def tokenizer(self):
        if self.tokenizer_name:
            return _load_tokenizer(self.tokenizer_name)
        return self.default_tokenizer()

    def default_tokenizer(self):
        raise ValueError(f"dataset.tokenizer: no tokenizer given and none belongs to a {self.key} source")

    def describe(self) -> str:
        return str(self.arguments)

    def example_lengths(self) -> dict:
        """Tokens per example (prompt + CoT + answer, without [EOS]: the paper's "307 tokens"), of
        its parts, and what the examples are (`task`); empty for language-model data."""
        return {}

    def held_out(self) -> DatasetDict:
        """The held-out splits (for evaluation: no training examples need be built)."""
        return self.load()

    def _check_required(self, build) -> None:
        """The arguments `build` has no default for are given (else its TypeError would follow)."""
        parameters = inspect.signature(build).parameters.items()
        for required in (name for name, parameter in parameters if parameter.default is parameter.empty):
            if self.arguments.get(required) is None:
                raise ValueError(f"dataset.{self.key}.{required} is required")

    def _check_keyword_arguments(self, accepted: set[str]) -> None:
        if not isinstance(self.arguments, dict):
            raise ValueError(f"dataset.{self.key} must be a mapping of arguments, got {self.arguments!r}")
        unknown = sorted(set(self.arguments) - accepted)
        if unknown:
            raise ValueError(
                f"dataset.{self.key}: unknown key(s) {', '.join(unknown)} (accepted: {', '.join(sorted(accepted))})"
            )


class ArithmeticSource(DataSource):
    """CoT arithmetic built now by `build_arithmetic_dataset` (train / validation / test)."""

    key = "arithmetic"
    HELDOUT_ARGUMENTS = ("task", "digits", "cot", "every", "validation_size", "test_size")

    def accepted_keys(self) -> set[str]:
        return set(inspect.signature(build_arithmetic_dataset).parameters)

    def check(self):
        self._check_keyword_arguments(self.accepted_keys())
        self._check_required(self.builder())

    def builder(self):
        """What builds the examples from the arguments (its required parameters are required keys)."""
        return build_arithmetic_dataset

    def load(self):
        return _named(self.key, build_arithmetic_dataset, **self.arguments)

    def held_out(self):
        arguments = {key: value for key, value in self.arguments.items() if key in self.HELDOUT_ARGUMENTS}
        return _named(self.key, build_arithmetic_dataset, **arguments, train_size=0)

    def example_lengths(self):
        spec = ArithmeticSpec.from_arguments(self.arguments)
        return {
            "sequence_tokens": spec.length,
            "prompt_tokens": spec.prompt_length,
            "answer_tokens": spec.answer_length,
            "cot_tokens": spec.length - spec.prompt_length - spec.answer_length,
            "task": spec.describe(),
            "cot": spec.cot,
            "every": spec.every,
        }

    def tokenizer(self):
        # the data's token ids are the arithmetic vocabulary's, whatever tokenizer is named
        arithmetic = build_arithmetic_tokenizer()
        if self.tokenizer_name:
            named, vocabulary = _load_tokenizer(self.tokenizer_name), arithmetic.get_vocab()
            wrong = [t for t, i in vocabulary.items() if named.convert_tokens_to_ids(t) != i]
            if wrong:
                raise ValueError(
                    f"dataset.tokenizer: {self.tokenizer_name!r} does not give the arithmetic tokens "
                    f"their ids (e.g. {wrong[0]!r}); arithmetic data needs the arithmetic tokenizer "
                    "(leave dataset.tokenizer out)"
                )
            return named
        return arithmetic

    def describe(self):
        digits = self.arguments.get("digits")
        digits = "x".join(map(str, digits)) if isinstance(digits, (list, tuple)) else digits
        every = f" every={self.arguments['every']}" if self.arguments.get("every") else ""
        return f"{self.arguments.get('task')} {digits} cot={self.arguments.get('cot')}{every}"


class ArithmeticStreamSource(ArithmeticSource):
    """Endless training examples drawn on the fly (`ArithmeticStream`), held-out splits built now."""

    key = "arithmetic_stream"
    HELDOUT_KEYS = ("validation_size", "test_size")

    def accepted_keys(self) -> set[str]:
        return set(inspect.signature(ArithmeticStream).parameters) - {"rank"} | set(self.HELDOUT_KEYS)

    def builder(self):
        return ArithmeticStream

    def load(self):
        stream = dict(self.arguments)
        held_out = {key: stream.pop(key) for key in self.HELDOUT_KEYS if key in stream}
        splits = _named(self.key, build_arithmetic_dataset, **stream, train_size=0, **held_out)
        splits["train"] = _named(self.key, ArithmeticStream, **stream)
        return splits


class ArithmeticMixtureSource(DataSource):
    """Several arithmetic datasets trained on together, e.g. 5x5 with some 4x4 mixed in so that a
    fine-tuned 4x4 model keeps its skill. A list of `arithmetic` sections: the train splits are
    concatenated; validation and test are the FIRST
    part's (the target task), the others' held-out splits are kept as `validation_<i>` and
    `test_<i>`."""

    key = "arithmetic_mixture"

    def check(self):
        if not isinstance(self.arguments, list) or len(self.arguments) < 2:
            raise ValueError(
                f"dataset.{self.key} must be a list of at least two arithmetic sections, got {self.arguments!r}"
            )
        self.parts = [ArithmeticSource(part) for part in self.arguments]

    def load(self):
        built = [part.load() for part in self.parts]
        columns = set.intersection(*(set(d["train"].column_names) for d in built))
        train = concatenate_datasets([d["train"].select_columns(sorted(columns)) for d in built])
        splits = {"train": train}  # in order: Trainer samples the training examples at random
        splits.update(validation=built[0]["validation"], test=built[0]["test"])
        for index, dataset in enumerate(built[1:], start=1):
            splits.update({f"validation_{index}": dataset["validation"], f"test_{index}": dataset["test"]})
        return DatasetDict(splits)

    tokenizer = ArithmeticSource.tokenizer

    def describe(self):
        return " + ".join(part.describe() for part in self.parts)


class ProgramSource(DataSource):
    """A compiled program's CoT data built now by `build_program_dataset` (hf_linear.data.programs)."""

    key = "program"
    HELDOUT_ARGUMENTS = ("program", "size", "validation_size", "test_size", "optimize")

    def accepted_keys(self) -> set[str]:
        return set(inspect.signature(build_program_dataset).parameters) - {"trust_program_code"}

    def builder(self):
        return build_program_dataset

    def check(self):
        self._check_keyword_arguments(self.accepted_keys())
        self._check_required(self.builder())
        self.compiled = _named(
            self.key,
            compile_program,
            name=self.arguments["program"],
            size=self.arguments["size"],
            trust_program_code=self.trust_program_code,
            optimize=self.arguments.get("optimize", False),
        )

    def load(self):
        return _named(self.key, build_program_dataset, **self.arguments, trust_program_code=self.trust_program_code)

    def held_out(self):
        arguments = {key: value for key, value in self.arguments.items() if key in self.HELDOUT_ARGUMENTS}
        return _named(
            self.key, build_program_dataset, **arguments, train_size=0, trust_program_code=self.trust_program_code
        )

    def example_lengths(self):
        program = self.compiled
        answer = program.length - program.answer_start
        return {
            "sequence_tokens": program.length,
            "prompt_tokens": program.prompt_length,
            "answer_tokens": answer,
            "cot_tokens": program.cot_length,
            "task": program.name,
            "program": self.arguments["program"],
            "size": self.arguments["size"],
        }

    def tokenizer(self):
        if self.tokenizer_name:
            raise ValueError("dataset.tokenizer: program data has its own tokenizer (leave dataset.tokenizer out)")
        return build_program_tokenizer(self.compiled)

    def describe(self):
        return f"program {self.compiled.name}"


class ProgramStreamSource(ProgramSource):
    """Endless training examples of a compiled program (`ProgramStream`), held-out splits built now."""

    key = "program_stream"
    HELDOUT_KEYS = ("validation_size", "test_size")

    def accepted_keys(self) -> set[str]:
        return set(inspect.signature(ProgramStream).parameters) - {"rank", "trust_program_code"} | set(
            self.HELDOUT_KEYS
        )

    def builder(self):
        return ProgramStream

    def load(self):
        stream = dict(self.arguments)
        held_out = {key: stream.pop(key) for key in self.HELDOUT_KEYS if key in stream}
        trust = {"trust_program_code": self.trust_program_code}
        splits = _named(self.key, build_program_dataset, **stream, train_size=0, **held_out, **trust)
        splits["train"] = _named(self.key, ProgramStream, **stream, **trust)
        return splits


class TinyStoriesSource(DataSource):
    """TinyStories stories → tokenizer → windows of T+1 tokens (`build_tinystories_dataset`)."""

    key = "tinystories"
    TOKENIZER_KEYS = ("source", "tokenizer", "bpe_vocab_size", "max_stories")

    def check(self):
        self._check_keyword_arguments(set(inspect.signature(build_tinystories_dataset).parameters))
        if self.tokenizer_name:
            raise ValueError("dataset.tokenizer: for tinystories, name the tokenizer in dataset.tinystories.tokenizer")

    def load(self):
        return _named(self.key, build_tinystories_dataset, **self.arguments)

    def default_tokenizer(self):
        keys = {key: self.arguments[key] for key in self.TOKENIZER_KEYS if key in self.arguments}
        return _named(self.key, tinystories_tokenizer, **keys)

    def describe(self):
        return (
            f"TinyStories {self.arguments.get('source', DEFAULT_SOURCE)} T={self.arguments.get('context_length', 64)}"
        )


class PathSource(DataSource):
    """A DatasetDict saved with `save_to_disk` (what the dataset scripts write), with the tokenizer
    files saved beside it."""

    key = "path"

    def check(self):
        if not isinstance(self.arguments, str) or not self.arguments:
            raise ValueError(f"dataset.path must be a directory, got {self.arguments!r}")
        if not (Path(self.arguments) / "dataset_dict.json").is_file():
            raise ValueError(
                f"dataset.path: {self.arguments} is not a DatasetDict saved with save_to_disk (no dataset_dict.json)"
            )
        empty = [split for split in self._saved_splits() if self._data_files(split) == []]
        if empty:
            # load_from_disk fails on a split saved without rows (an IndexError inside datasets)
            raise ValueError(
                f"dataset.path: {self.arguments} holds split(s) without rows ({', '.join(empty)}), which "
                "datasets cannot load: rebuild it with examples in every split"
            )

    def _saved_splits(self) -> list[str]:
        """The splits dataset_dict.json lists (none if it cannot be read: load_from_disk then says why)."""
        try:
            return list(json.loads((Path(self.arguments) / "dataset_dict.json").read_text())["splits"])
        except (OSError, ValueError, KeyError, TypeError):
            return []

    def _data_files(self, split: str) -> list | None:
        """The Arrow files of a saved split (save_to_disk's state.json: none for a split of 0 rows);
        None if that cannot be read."""
        try:
            return json.loads((Path(self.arguments) / split / "state.json").read_text())["_data_files"]
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def load(self):
        return load_from_disk(self.arguments)

    def default_tokenizer(self):
        if (Path(self.arguments) / "tokenizer_config.json").is_file():
            return _load_tokenizer(self.arguments)
        raise ValueError(f"dataset.tokenizer: no tokenizer given and none saved in {self.arguments}")

    def describe(self):
        return self.arguments


class HubSource(DataSource):
    """A dataset repo on the Hub, loaded with `datasets.load_dataset`; its tokenizer is the one
    pushed with it (`tokenizer/` in the repo, as `hf-linear`'s dataset scripts push it)."""

    key = "hub"

    def check(self):
        if not isinstance(self.arguments, str) or not self.arguments:
            raise ValueError(f"dataset.hub must be a dataset repo id, got {self.arguments!r}")

    def load(self):
        try:
            return load_dataset(self.arguments)
        except Exception as error:  # the Hub is down, the repo is missing or private, ...
            raise ValueError(
                f"dataset.hub: {self.arguments!r} is no local directory and could not be loaded from the Hub: {error}"
            ) from error

    def default_tokenizer(self):
        try:
            folder = snapshot_download(self.arguments, repo_type="dataset", allow_patterns=["tokenizer/*"])
            return load_named_tokenizer(Path(folder) / "tokenizer", f"dataset repo {self.arguments!r}")
        except Exception as error:
            raise ValueError(
                f"dataset.tokenizer: none given, and dataset repo {self.arguments!r} carries no "
                f"tokenizer/ folder ({type(error).__name__})"
            ) from error

    def describe(self):
        return self.arguments


# the sources whose `dataset:` arguments describe one arithmetic task (task, digits, cot, every)
ARITHMETIC_SOURCES = (ArithmeticSource.key, ArithmeticStreamSource.key)
# sources whose examples are generated from their arguments (train, validation and test sizes)
GENERATED_SOURCES = (*ARITHMETIC_SOURCES, ProgramSource.key, ProgramStreamSource.key)

SOURCES: dict[str, type[DataSource]] = {
    source.key: source
    for source in (
        ArithmeticSource,
        ArithmeticStreamSource,
        ArithmeticMixtureSource,
        ProgramSource,
        ProgramStreamSource,
        TinyStoriesSource,
        PathSource,
        HubSource,
    )
}


def arithmetic_source(dataset: dict) -> str | None:
    """Which arithmetic source (`arithmetic` / `arithmetic_stream`) a dataset section uses, or None (LM data)."""
    return next((key for key in ARITHMETIC_SOURCES if isinstance(dataset.get(key), dict)), None)


def arithmetic_section(dataset: dict) -> dict | None:
    """The `arithmetic` / `arithmetic_stream` arguments of a dataset section, or None (LM data)."""
    key = arithmetic_source(dataset)
    return None if key is None else dataset[key]


def arithmetic_spec(dataset: dict) -> ArithmeticSpec | None:
    """The ArithmeticSpec of a run's dataset section (None for language-model data)."""
    arguments = arithmetic_section(dataset)
    if arguments is None:
        return None
    return ArithmeticSpec.from_arguments(arguments)


def data_source(config: dict, trust_program_code: bool = False) -> DataSource:
    """The source of a `dataset:` section; ValueError naming what is wrong. `trust_program_code`
    lets a program source import a "module:function" program (see `compile_program`)."""
    if not isinstance(config, dict):
        raise ValueError(f"dataset: must be a mapping, got {config!r}")
    unknown = sorted(set(config) - set(SOURCES) - set(OPTIONS))
    if unknown:
        raise ValueError(
            f"dataset: unknown key(s) {', '.join(unknown)} (expected one of {', '.join(SOURCES)}, "
            f"and {', '.join(OPTIONS)})"
        )
    given = [key for key in SOURCES if config.get(key) is not None]
    if len(given) != 1:
        raise ValueError(f"dataset: give exactly one of {', '.join(SOURCES)} (got {', '.join(given) or 'none'})")
    if not isinstance(config.get("allow_sliding", False), bool):
        raise ValueError(f"dataset.allow_sliding must be true or false, got {config['allow_sliding']!r}")
    return SOURCES[given[0]](config[given[0]], tokenizer=config.get("tokenizer"), trust_program_code=trust_program_code)


def section_from_json(option: str, text: str | None) -> dict | None:
    """The arguments of a generated dataset section given on a command line as JSON (`--arithmetic`,
    `--program` of `hf-linear eval` and `demo`); None when not given; ValueError naming the option."""
    if not text:
        return None
    try:
        arguments = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"--{option} is not valid JSON: {error}") from None
    if not isinstance(arguments, dict):
        raise ValueError(f"--{option} must be a JSON object of the {option} section's arguments, got {text}")
    return arguments


def longest_sequence(dataset) -> int:
    """Length of the longest `input_ids` of a Dataset (read from Arrow, not row by row)."""
    if not hasattr(dataset, "data"):  # a stream: its examples all have one length (a fixed template)
        return len(next(iter(dataset))["input_ids"])
    if len(dataset) == 0:
        return 0
    return pc.max(pc.list_value_length(dataset.data.column("input_ids"))).as_py()


def _load_tokenizer(name: str):
    return load_named_tokenizer(name, f"dataset.tokenizer {name!r}")


def _named(key: str, build, **arguments):
    """Call a builder; its ValueErrors name the config section they came from."""
    try:
        return build(**arguments)
    except ValueError as error:
        raise ValueError(f"dataset.{key}: {error}") from error
