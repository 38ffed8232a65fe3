"""Program data as `datasets`: inputs, the hash split, DatasetDicts, an endless training stream,
the word-level tokenizer of a program's vocabulary, and the prompt helper.

The split is the arithmetic data's rule (`hf_linear.data.arithmetic.splits`) over a program's
input tuple: h = splitmix64 chained over (salt of the program's name, x_1, ..., x_k); h % 4 != 0
-> train, else validation or test by the next bit. Held-out sets are distinct inputs drawn with
a fixed seed (the same for every run), training inputs are drawn with replacement by `seed`.

Columns as the arithmetic data (so `hf-linear eval`, the metric and `eval --segments` work
unchanged): ``prompt``, ``text``, ``answer``, ``input_ids`` (ending with [EOS]),
``prompt_length``, and one int64 column per input number.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import yaml
from datasets import Dataset, DatasetDict, Features, List, Value
from transformers import PreTrainedTokenizerFast

from hf_linear.data.arithmetic.builder import check_split_sizes
from hf_linear.data.arithmetic.splits import (
    BLOCK,
    ENUMERATE_LIMIT,
    SPLITS,
    TEST,
    TRAIN,
    VALIDATION,
    first_inputs,
    split_of_hash,
    splitmix64,
)
from hf_linear.data.arithmetic.stream import SeededStream
from hf_linear.data.arithmetic.tokenizer import word_level_tokenizer
from hf_linear.data.io import build_record, push_dataset, recorded_splits, save_dataset
from hf_linear.data.programs.compiler import EOS, Program
from hf_linear.data.programs.library import compile_program, describe_program
from hf_linear.data.programs.proof import Proof
from hf_linear.paper import CITATION

FORMAT_VERSION = 1  # bump when a program's trace or the split changes; part of the fingerprint
LICENSE = "apache-2.0"
_DESCRIPTION_PREFIX = "hf-linear program dataset; build arguments: "
_TRAIN_STREAM, _ONLINE_STREAM, _HELDOUT_STREAM = 11, 12, 13  # kinds of random streams
_U64 = np.uint64


# ---------------------------------------------------------------------------------------------
# Inputs and the split


def _salt(program: Program) -> np.uint64:
    # an optimised program splits its inputs as the program it was optimised from: same held-out inputs
    name = (program.fusion.original if program.fusion is not None else program).name
    return _U64(int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "little"))


def split_codes(program: Program, inputs: tuple[np.ndarray, ...]) -> np.ndarray:
    """TRAIN / VALIDATION / TEST of every input tuple (see the module docstring)."""
    h = splitmix64(np.full(len(inputs[0]), _salt(program), dtype=_U64))
    for x in inputs:
        h = splitmix64(h ^ np.asarray(x, dtype=_U64))
    return split_of_hash(h)


def _draw(program: Program, rng: np.random.Generator, count: int) -> tuple[np.ndarray, ...]:
    return tuple(rng.integers(0, number.limit, size=count, dtype=np.int64) for number in program.inputs)


def _of_split(program: Program, inputs, split: int):
    keep = np.flatnonzero(split_codes(program, inputs) == split)
    return tuple(x[keep] for x in inputs)


def input_blocks(program: Program, split: int, rng: np.random.Generator) -> Iterator[tuple[np.ndarray, ...]]:
    """Endless blocks of random inputs of one split (with repetition), none of them empty."""
    while True:
        block = _of_split(program, _draw(program, rng, BLOCK), split)
        if len(block[0]) == 0:
            raise ValueError(
                f"{program.name}: no {SPLITS[split]} input among {BLOCK} random inputs (use larger inputs)"
            )
        yield block


def train_inputs(program: Program, count: int, seed: int) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(np.random.SeedSequence([_TRAIN_STREAM, seed]))
    return first_inputs(input_blocks(program, TRAIN, rng), count)


def heldout_inputs(program: Program, split: int, count: int) -> tuple[np.ndarray, ...]:
    """`count` distinct inputs of a held-out split, the same on every run (fixed seed)."""
    rng = np.random.default_rng(np.random.SeedSequence([_HELDOUT_STREAM, split]))
    name, size = f"{SPLITS[split]}_size", program.input_space_size
    if size <= ENUMERATE_LIMIT:
        grids = np.meshgrid(*(np.arange(n.limit, dtype=np.int64) for n in program.inputs), indexing="ij")
        pool = _of_split(program, tuple(g.ravel() for g in grids), split)
        if count > len(pool[0]):
            raise ValueError(f"{name}={count} exceeds the {len(pool[0])} {SPLITS[split]} inputs of {program.name}")
        order = rng.permutation(len(pool[0]))[:count]
        return tuple(x[order] for x in pool)
    if count > size // 16:
        raise ValueError(
            f"{name}={count} is too many for {program.name}: at most {size // 16} distinct held-out inputs"
        )
    found: dict[tuple, None] = {}
    for _ in range(4 * (count * 16 // BLOCK + 1)):  # bounded: a block holds ~BLOCK/8 new inputs
        for row in zip(*(x.tolist() for x in _of_split(program, _draw(program, rng, BLOCK), split))):
            found.setdefault(row)
            if len(found) == count:
                return tuple(np.array(column, dtype=np.int64) for column in zip(*found))
    raise ValueError(f"{name}={count}: too few distinct {SPLITS[split]} inputs of {program.name} found")


# ---------------------------------------------------------------------------------------------
# Tokenizer, prompts


def build_program_tokenizer(program: Program) -> PreTrainedTokenizerFast:
    """Word-level tokenizer of the program's vocabulary (ids = `program.token_ids()`); left
    padding, no added specials: texts hold their [BOS] and [EOS], as the arithmetic data's."""
    return word_level_tokenizer(program.token_ids())


def program_prompt(
    program: str | Program, size: int | None = None, *numbers: int, trust_program_code: bool = False
) -> str:
    """The prompt text of one input, e.g. program_prompt("multiplication", 10000, 4321, 8765);
    refuses inputs outside the program's input space (`Program.check_numbers`)."""
    if isinstance(program, str):
        program = compile_program(program, size, trust_program_code=trust_program_code)
    return " ".join(program.tokens(*numbers)[: program.prompt_length])


# ---------------------------------------------------------------------------------------------
# Datasets


def features_of(program: Program) -> Features:
    return Features(
        {
            "prompt": Value("string"),
            "text": Value("string"),
            "answer": Value("string"),
            "input_ids": List(Value("int32")),
            "prompt_length": Value("int32"),
            **{number.name: Value("int64") for number in program.inputs},
        }
    )


def with_eos(program: Program, trace: np.ndarray) -> np.ndarray:
    return np.concatenate([trace, np.full((len(trace), 1), program.token_ids()[EOS], dtype=np.int32)], axis=1)


def examples_table(program: Program, inputs: tuple[np.ndarray, ...]) -> pa.Table:
    """The Arrow table of the examples of `inputs`: the program's traces, as words and as ids."""
    vocabulary = np.array(program.vocabulary, dtype=object)
    ids = with_eos(program, program.run(inputs)) if len(inputs[0]) else np.zeros((0, program.length + 1), np.int32)
    texts = [" ".join(row) for row in vocabulary[ids]]
    columns = {
        "prompt": [" ".join(row[: program.prompt_length]) for row in vocabulary[ids]],
        "text": texts,
        "answer": [" ".join(row[program.answer_start : -1]) for row in vocabulary[ids]],
        "input_ids": ids.tolist(),
        "prompt_length": [program.prompt_length] * len(ids),
        **{number.name: x.tolist() for number, x in zip(program.inputs, inputs)},
    }
    return pa.Table.from_pydict(columns, schema=features_of(program).arrow_schema)


def build_program_dataset(
    program: str,
    size: int,
    train_size: int,
    validation_size: int = 1000,
    test_size: int = 1000,
    seed: int = 0,
    optimize: bool = False,
    *,
    trust_program_code: bool = False,
) -> DatasetDict:
    """Train / validation / test of one compiled program (see the module docstring).

    Args:
        program: a key of `PROGRAMS` (parity, addition, comparison, multiplication, tm-increment, ...).
        size: the input bound: numbers below `size`, or `size` bits (`PROGRAMS[program].size_meaning`).
        train_size: training examples, drawn with replacement from the train inputs.
        validation_size, test_size: distinct held-out inputs each (fixed, seed-independent).
        seed: seed of the training draw; same arguments -> same bytes and fingerprints.
        optimize: the optimised program's CoT (fused steps, `fusion.optimize`): the same prompts,
            answers and held-out inputs, a shorter CoT.
        trust_program_code: import a "module:function" program (see `compile_program`).
    """
    compiled = compile_program(program, size, trust_program_code=trust_program_code, optimize=optimize)
    sizes = check_split_sizes(train_size, validation_size, test_size, seed)
    arguments = {
        "program": program,
        "size": size,
        "train_size": train_size,
        "validation_size": validation_size,
        "test_size": test_size,
        "seed": seed,
        **({"optimize": True} if optimize else {}),  # unoptimised records (and fingerprints) as before
    }
    inputs = {
        "train": train_inputs(compiled, sizes["train"], seed),
        "validation": heldout_inputs(compiled, VALIDATION, sizes["validation"]),
        "test": heldout_inputs(compiled, TEST, sizes["test"]),
    }
    return recorded_splits(
        {name: examples_table(compiled, inputs[name]) for name in SPLITS},
        features_of(compiled),
        arguments,
        prefix=_DESCRIPTION_PREFIX,
        format_version=FORMAT_VERSION,
        license=LICENSE,
        citation=CITATION,
    )


def program_of(dataset: Dataset | DatasetDict, trust_program_code: bool = False) -> Program:
    """The compiled program a built (or loaded) program dataset holds. Its name is read from the
    dataset's files, so a "module:function" program is imported only when trusted."""
    arguments = build_record(dataset, _DESCRIPTION_PREFIX, "build_program_dataset")
    return compile_program(
        arguments["program"],
        arguments["size"],
        trust_program_code=trust_program_code,
        optimize=arguments.get("optimize", False),
    )


class ProgramStream(SeededStream):
    """Endless training examples ``{"input_ids", "prompt_length"}`` of a program, drawn from the
    train inputs; each (seed, epoch, rank, worker) its own random stream (as `ArithmeticStream`)."""

    def __init__(
        self,
        program: str,
        size: int,
        seed: int = 0,
        rank: int | None = None,
        *,
        trust_program_code: bool = False,
        optimize: bool = False,
    ):
        super().__init__(seed, rank)
        self.program = compile_program(program, size, trust_program_code=trust_program_code, optimize=optimize)

    def __iter__(self) -> Iterator[dict]:
        rng = np.random.default_rng(np.random.SeedSequence([_ONLINE_STREAM, *self.stream_key()]))
        for block in input_blocks(self.program, TRAIN, rng):
            for start in range(0, len(block[0]), 1024):
                trace = with_eos(self.program, self.program.run(tuple(x[start : start + 1024] for x in block)))
                for row in trace.tolist():
                    yield {"input_ids": row, "prompt_length": self.program.prompt_length}


# ---------------------------------------------------------------------------------------------
# Card, saving, pushing


def render_dataset_card(
    dataset_dict: DatasetDict,
    certificate: dict | None = None,
    hub_metadata: dict | None = None,
    trust_program_code: bool = False,
    proof: Proof | None = None,
) -> str:
    """README.md of a program dataset: the program, its CoT length (the measured length
    complexity) beside its width (vocabulary, certificate parameters), the steps it is made of,
    an example, and what was checked: the proof (every step, every input) and the certificate
    (a sample of held-out traces through `generate`), each stated as done or not run."""
    arguments = build_record(dataset_dict, _DESCRIPTION_PREFIX, "build_program_dataset")
    program = program_of(dataset_dict, trust_program_code)
    steps = ", ".join(f"{kind} {count}" for kind, count in program.describe_steps().items())
    rows = "\n".join(f"| {name} | {len(split):,} |" for name, split in dataset_dict.items())
    proved = "not run" if proof is None else proof.describe()
    certified = (
        "not run"
        if certificate is None
        else f"{100 * certificate['exact_match']:.2f}% of {certificate['num_samples']} held-out examples generated "
        f"token for token (CoT, answer and [EOS]) through `generate`"
        + (
            f"; answers right on {100 * certificate['answer_exact_match']:.2f}%"
            if "answer_exact_match" in certificate
            else ""
        )
    )
    checks = "".join(f"\nChecked when compiled: {check}." for check in program.checks)
    optimized = (
        ""
        if program.fusion is None
        else f", optimised (`optimize=True`: steps fused into composite tokens; CoT "
        f"{program.fusion.original.cot_length} -> {program.cot_length} tokens, vocabulary "
        f"{len(program.fusion.original.vocabulary)} -> {len(program.vocabulary)})"
    )
    example = dataset_dict["validation"][0]["text"] if len(dataset_dict["validation"]) else ""
    metadata = {
        "license": LICENSE,
        "task_categories": ["text-generation"],
        "tags": ["chain-of-thought", "universal-learners", "hf-linear"],
        **(hub_metadata or {}),
    }
    return f"""---
{yaml.safe_dump(metadata, sort_keys=False).strip()}
---
# {program.name}: a compiled Chain of Thought

{describe_program(arguments["program"])}{optimized}; inputs: {", ".join(f"`{n.name}` in [0, {n.limit})" for n in program.inputs)}.
Every CoT token is the argmax of a sum of one term per (earlier position, token): a step a
*linear* next-token predictor can write (Malach, "Auto-Regressive Next-Token Predictors are
Universal Learners", ICML 2024). Built by hf-linear's program compiler
(`build_program_dataset(program={arguments["program"]!r}, size={arguments["size"]}{", optimize=True" if program.fusion else ""})`).

| | tokens |
| --- | --- |
| example (without [EOS]) | {program.length} |
| prompt | {program.prompt_length} |
| chain of thought (length complexity) | {program.cot_length} |
| answer | {program.length - program.answer_start} |
| vocabulary | {len(program.vocabulary)} |
| certificate parameters (T(T+1)/2 · V², the width cost) | {program.certificate_parameters:,} |

Steps: {steps}.{checks}

**Proof** (every step, on every combination of the values its reads can hold, in exact
arithmetic: all inputs): {proved}.

**Certificate** (a LinearLM whose weights are the compiled steps, no training; a sample of
inputs): {certified}.

| split | examples |
| --- | --- |
{rows}

Example: `{example}`

Splits: a fixed hash of the input (75% train, 12.5% validation, 12.5% test), so held-out inputs
never appear in training; validation and test are the same for every seed.

```bibtex
{CITATION}
```
"""


def save_program_dataset(
    dataset_dict: DatasetDict,
    out: str | os.PathLike,
    overwrite: bool = False,
    certificate: dict | None = None,
    trust_program_code: bool = False,
    proof: Proof | None = None,
) -> Path:
    program = program_of(dataset_dict, trust_program_code)
    card = render_dataset_card(dataset_dict, certificate, trust_program_code=trust_program_code, proof=proof)
    return save_dataset(dataset_dict, build_program_tokenizer(program), card, out, overwrite)


def push_program_dataset_to_hub(
    dataset_dict: DatasetDict,
    repo_id: str,
    token: str | None = None,
    private: bool = False,
    certificate: dict | None = None,
    trust_program_code: bool = False,
    proof: Proof | None = None,
) -> str:
    program = program_of(dataset_dict, trust_program_code)
    return push_dataset(
        dataset_dict,
        build_program_tokenizer(program),
        lambda metadata: render_dataset_card(dataset_dict, certificate, metadata, trust_program_code, proof),
        repo_id,
        token,
        private,
    )


__all__ = ["ProgramStream", "build_program_dataset", "build_program_tokenizer", "program_of", "program_prompt"]
