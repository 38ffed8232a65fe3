"""`build_arithmetic_dataset`: inputs -> token ids (vectorised) -> Arrow tables -> DatasetDict.

Columns: ``prompt`` (str, up to the first "="), ``text`` (str, tokens + [EOS]), ``answer`` (str,
after the last "="), ``input_ids`` (list[int32], ids of ``text``), ``prompt_length`` (int32,
number of prompt tokens incl. [BOS]), and the inputs: ``a``, ``b`` (int64) or ``bits`` (str).

Each dataset records its build arguments in its info (read back by `build_arguments_of`), and
its fingerprint is a hash of them and FORMAT_VERSION: same arguments, same bytes and fingerprints.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict

import numpy as np
import pyarrow as pa
from datasets import Dataset, DatasetDict, Features, List, Value

from hf_linear.data.arithmetic.spec import ArithmeticSpec
from hf_linear.data.arithmetic.splits import BLOCK, SPLITS, TEST, VALIDATION, heldout_inputs, train_inputs
from hf_linear.data.arithmetic.strings import bit_strings, strings_of_ids
from hf_linear.data.arithmetic.tokenizer import TOKEN_TO_ID
from hf_linear.data.io import build_record, recorded_splits
from hf_linear.paper import CITATION

FORMAT_VERSION = 1  # bump when a format or the split changes; part of the dataset fingerprint

LICENSE = "apache-2.0"
_DESCRIPTION_PREFIX = "hf-linear arithmetic dataset; build arguments: "


def features_of(spec: ArithmeticSpec) -> Features:
    inputs = {"bits": Value("string")} if spec.bits else {"a": Value("int64"), "b": Value("int64")}
    return Features(
        {
            "prompt": Value("string"),
            "text": Value("string"),
            "answer": Value("string"),
            "input_ids": List(Value("int32")),
            "prompt_length": Value("int32"),
            **inputs,
        }
    )


def _record_batch(spec: ArithmeticSpec, inputs: tuple[np.ndarray, ...]) -> pa.RecordBatch:
    count = len(inputs[0])
    ids = spec.ids(inputs)
    with_eos = np.concatenate([ids, np.full((count, 1), TOKEN_TO_ID["[EOS]"], dtype=np.int32)], axis=1)
    id_offsets = (np.arange(count + 1) * with_eos.shape[1]).astype(np.int32)
    columns = {
        "prompt": strings_of_ids(ids[:, : spec.prompt_length]),
        "text": strings_of_ids(with_eos),
        "answer": strings_of_ids(ids[:, ids.shape[1] - spec.answer_length :]),
        "input_ids": pa.ListArray.from_arrays(pa.array(id_offsets), pa.array(with_eos.ravel())),
        "prompt_length": pa.array(np.full(count, spec.prompt_length, dtype=np.int32)),
    }
    if spec.bits:
        columns["bits"] = bit_strings(inputs[0], spec.digits[0])
    else:
        columns["a"], columns["b"] = pa.array(inputs[0]), pa.array(inputs[1])
    return pa.RecordBatch.from_pydict(columns, schema=features_of(spec).arrow_schema)


def examples_table(spec: ArithmeticSpec, inputs: tuple[np.ndarray, ...]) -> pa.Table:
    """The Arrow table of the examples of `inputs`, built block by block."""
    count = len(inputs[0])
    batches = [_record_batch(spec, tuple(x[start : start + BLOCK] for x in inputs)) for start in range(0, count, BLOCK)]
    return pa.Table.from_batches(batches, schema=features_of(spec).arrow_schema)


def check_count(name: str, value: int) -> int:
    """A size or a seed: an integer >= 0, else ValueError naming it."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name}={value!r} must be an integer >= 0")
    return value


def check_split_sizes(train_size: int, validation_size: int, test_size: int, seed: int) -> dict[str, int]:
    """The size of each split by name; a bad size or seed raises ValueError naming it, before
    anything is drawn."""
    sizes = {
        name: check_count(f"{name}_size", size) for name, size in zip(SPLITS, (train_size, validation_size, test_size))
    }
    check_count("seed", seed)
    return sizes


def build_arithmetic_dataset(
    task: str,
    digits: int | Sequence[int],
    cot: str,
    train_size: int,
    validation_size: int = 1000,
    test_size: int = 1000,
    seed: int = 0,
    every: int | None = None,
) -> DatasetDict:
    """Build a train / validation / test `DatasetDict` of one arithmetic task and CoT format.

    Args:
        task: "multiplication", "addition" or "parity".
        digits: operand sizes [n, m] (one int n means n x n), from 1 to 9 digits each; for
            parity the number of bits [n], 1 to 64.
        cot: the format (`FORMATS[task]`) — multiplication: "paper", "direct", "lsb"; addition:
            "lsb", "direct"; parity: "running", "direct", "threshold" (see
            `hf_linear.data.arithmetic.registry`).
        train_size: training examples, drawn with replacement from the train inputs.
        validation_size, test_size: distinct held-out inputs each (fixed, seed-independent).
        seed: seed of the training draw; same arguments -> same dataset bytes and fingerprints.
        every: parity "running" and "threshold" only: one step every `every` bits.

    Every bad argument raises ValueError naming it (also a held-out size larger than its split).
    """
    spec = ArithmeticSpec.create(task, digits, cot, every)
    sizes = check_split_sizes(train_size, validation_size, test_size, seed)
    arguments = {
        **asdict(spec),
        "digits": list(spec.digits),
        "train_size": train_size,
        "validation_size": validation_size,
        "test_size": test_size,
        "seed": seed,
    }
    inputs = {
        "train": train_inputs(spec, sizes["train"], seed),
        "validation": heldout_inputs(spec, VALIDATION, sizes["validation"]),
        "test": heldout_inputs(spec, TEST, sizes["test"]),
    }
    return recorded_splits(
        {name: examples_table(spec, inputs[name]) for name in SPLITS},
        features_of(spec),
        arguments,
        prefix=_DESCRIPTION_PREFIX,
        format_version=FORMAT_VERSION,
        license=LICENSE,
        citation=CITATION,
    )


def build_arguments_of(dataset: Dataset | DatasetDict) -> dict:
    """The `build_arithmetic_dataset` arguments a dataset was built with (kept in its info)."""

    return build_record(dataset, _DESCRIPTION_PREFIX, "build_arithmetic_dataset")


def spec_of(dataset: Dataset | DatasetDict) -> ArithmeticSpec:
    """The spec of a built (or loaded) dataset, e.g. for `prompt_for(spec_of(dataset), (a, b))`."""
    return ArithmeticSpec.from_arguments(build_arguments_of(dataset))
