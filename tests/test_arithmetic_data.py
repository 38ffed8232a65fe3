"""Arithmetic datasets: fast path vs pure functions, split, determinism, stream, saving, Hub push."""

from __future__ import annotations

import itertools
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from datasets import load_from_disk
from transformers import AutoTokenizer

from hf_linear.data.arithmetic import (
    REGISTRY,
    ArithmeticSpec,
    ArithmeticStream,
    arithmetic_prompt,
    build_arguments_of,
    build_arithmetic_dataset,
    build_arithmetic_tokenizer,
    example_tokens,
    prompt_for,
    push_arithmetic_dataset_to_hub,
    render_dataset_card,
    save_arithmetic_dataset,
    spec_of,
    splits,
    text_of,
)
from hf_linear.data.arithmetic.strings import strings_of_ids
from hf_linear.output_dirs import OutputDirError

sys.path.insert(0, str(Path(__file__).parent))
from schoolbook import check_addition, check_multiplication, check_parity, check_parity_threshold

REPO_ROOT = Path(__file__).resolve().parent.parent
TOKENIZER = build_arithmetic_tokenizer()

# ----------------------------------------------------------------------------- independent split reference

MASK = (1 << 64) - 1


def splitmix64(x: int) -> int:
    z = (x + 0x9E3779B97F4A7C15) & MASK
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
    return z ^ (z >> 31)


def split_of(first: int, second: int) -> str:
    h = splitmix64(splitmix64(first) ^ second)
    if h % 4:
        return "train"
    return "test" if (h >> 2) % 2 else "validation"


def input_split(row: dict) -> str:
    if "bits" in row:
        return split_of(len(row["bits"]), int(row["bits"], 2))
    return split_of(row["a"], row["b"])


def input_of(row: dict) -> tuple:
    return (row["bits"],) if "bits" in row else (row["a"], row["b"])


# ----------------------------------------------------------------------------- fast path == reference

CASES = [
    ("multiplication", [4, 4], "paper", None),
    ("multiplication", [2, 3], "paper", None),
    ("multiplication", [4, 4], "direct", None),
    ("multiplication", [4, 4], "lsb", None),
    ("multiplication", [9, 9], "lsb", None),
    ("multiplication", [1, 5], "lsb", None),
    ("addition", [4, 4], "lsb", None),
    ("addition", [7, 2], "lsb", None),
    ("addition", [9, 9], "direct", None),
    ("parity", [8], "running", 3),
    ("parity", [64], "running", 7),
    ("parity", [9], "direct", None),
    ("parity", [8], "threshold", 1),
    ("parity", [64], "threshold", 5),
    ("parity", [20], "threshold", 18),
]


@pytest.mark.slow
@pytest.mark.parametrize("task, digits, cot, every", CASES)
def test_every_row_equals_the_pure_functions_and_schoolbook(task, digits, cot, every):
    dataset = build_arithmetic_dataset(task, digits, cot, train_size=150, validation_size=8, test_size=8, every=every)
    spec = ArithmeticSpec.create(task, digits, cot, every)
    for split in ("train", "validation", "test"):
        for row in dataset[split]:
            tokens = example_tokens(task, cot, input_of(row), spec.every)
            assert row["text"] == text_of(tokens)
            assert row["prompt"] == " ".join(tokens[: tokens.index("=") + 1])
            assert row["prompt_length"] == len(row["prompt"].split())
            assert row["input_ids"] == TOKENIZER(row["text"])["input_ids"]
            assert len(row["input_ids"]) == spec.length + 1
            if task == "multiplication":
                check_multiplication(tokens, row["a"], row["b"], cot)
            elif task == "addition":
                check_addition(tokens, row["a"], row["b"], cot)
            elif cot == "threshold":
                check_parity_threshold(tokens, row["bits"], spec.every)
            else:
                check_parity(tokens, row["bits"], spec.every)
            assert row["answer"] == " ".join(tokens[len(tokens) - 1 - tokens[::-1].index("=") + 1 :])
            assert input_split(row) == split


def random_inputs(spec: ArithmeticSpec, count: int, rng: np.random.Generator) -> tuple:
    """Uniform inputs with the extremes (smallest and largest operands, all zeros / all ones) first."""
    if spec.task == "parity":
        n = spec.digits[0]
        bits = rng.integers(0, 2**n - 1, size=count, dtype=np.uint64, endpoint=True)
        bits[:2] = [0, 2**n - 1]
        return (bits,)
    operands = []
    for d in spec.digits:
        x = rng.integers(10 ** (d - 1), 10**d - 1, size=count, endpoint=True)
        x[:2] = [10 ** (d - 1), 10**d - 1]
        operands.append(x)
    return tuple(operands)


def operands_of(spec: ArithmeticSpec, inputs: tuple, index: int) -> tuple:
    if spec.task == "parity":
        return (format(int(inputs[0][index]), f"0{spec.digits[0]}b"),)
    return tuple(int(x[index]) for x in inputs)


@pytest.mark.parametrize("task, cot", sorted(REGISTRY))
def test_every_registered_format_fast_path_equals_its_reference(task, cot):
    """For each row of the registry: the numpy builder writes the reference tokens, and the lengths
    derived from it (length, prompt, answer) are the reference's, for many operand sizes."""
    rng = np.random.default_rng(0)
    vocabulary = TOKENIZER.convert_ids_to_tokens(list(range(119)))
    if task == "parity":
        stepped = REGISTRY[task, cot].stepped
        sizes = [
            ([n], k if stepped else None)
            for n in (1, 2, 5, 8, 13, 64)
            for k in {1, 2, 3, n}
            if k <= n and (cot != "threshold" or k <= 18)
        ]
    else:
        sizes = [([n, m], None) for n, m in [(1, 1), (1, 4), (4, 1), (2, 3), (4, 4), (5, 7), (9, 9)]]
    for digits, every in sizes:
        spec = ArithmeticSpec.create(task, digits, cot, every)
        inputs = random_inputs(spec, 20, rng)
        ids = spec.ids(inputs)
        assert ids.shape == (20, spec.length) and ids.dtype == np.int32
        for index, row in enumerate(ids.tolist()):
            tokens = example_tokens(task, cot, operands_of(spec, inputs, index), every)
            assert [vocabulary[i] for i in row] == tokens
            assert spec.prompt_length == tokens.index("=") + 1
            assert spec.answer_length == tokens[::-1].index("=")


def test_strings_of_ids_with_fixed_and_varying_token_widths():
    vocabulary = TOKENIZER.convert_ids_to_tokens(list(range(119)))
    rng = np.random.default_rng(0)
    varying = rng.integers(0, 119, size=(50, 7)).astype(np.int32)  # widths differ between rows
    fixed = np.stack([rng.integers(2, 12, 50), rng.integers(17, 117, 50), np.full(50, 117)], axis=1).astype(np.int32)
    for ids in (varying, fixed, varying[:, :1], varying[:0]):
        assert strings_of_ids(ids).to_pylist() == [" ".join(vocabulary[i] for i in row) for row in ids.tolist()]


def test_operands_have_the_requested_digits():
    dataset = build_arithmetic_dataset(
        "multiplication", [3, 5], "direct", train_size=2000, validation_size=50, test_size=50
    )
    for split in dataset.values():
        assert all(100 <= a <= 999 for a in split["a"]) and all(10_000 <= b <= 99_999 for b in split["b"])


# ----------------------------------------------------------------------------- splits


@pytest.mark.slow
def test_split_proportions_and_disjointness():
    counts = {"train": 0, "validation": 0, "test": 0}
    for a in range(100, 1000, 7):  # every 7th a: 129 x 900 pairs, plain loop
        for b in range(100, 1000):
            counts[split_of(a, b)] += 1
    total = sum(counts.values())
    assert abs(counts["train"] / total - 0.75) < 0.01
    assert abs(counts["validation"] / total - 0.125) < 0.01
    # the whole 2x2 space, built as splits: disjoint, and each input where the hash puts it
    dataset = build_arithmetic_dataset(
        "multiplication", 2, "direct", train_size=40_000, validation_size=900, test_size=900
    )
    inputs = {split: {(r["a"], r["b"]) for r in dataset[split]} for split in dataset}
    assert not inputs["train"] & inputs["validation"]
    assert not inputs["train"] & inputs["test"]
    assert not inputs["validation"] & inputs["test"]
    assert len(dataset["validation"]) == len(inputs["validation"])  # held-out inputs are distinct
    train_pool = {(a, b) for a in range(10, 100) for b in range(10, 100) if split_of(a, b) == "train"}
    assert inputs["train"] <= train_pool and len(inputs["train"]) > 0.98 * len(train_pool)  # 1 - e^-6.6 expected


def test_heldout_sets_are_distinct_fixed_and_shared_by_formats_and_seeds():
    paper = build_arithmetic_dataset(
        "multiplication", 4, "paper", train_size=10, validation_size=300, test_size=300, seed=1
    )
    lsb = build_arithmetic_dataset(
        "multiplication", 4, "lsb", train_size=10, validation_size=100, test_size=300, seed=2
    )
    for split in ("validation", "test"):
        pairs = list(zip(paper[split]["a"], paper[split]["b"]))
        assert len(set(pairs)) == len(pairs)
        assert all(split_of(a, b) == split for a, b in pairs)
        other = list(zip(lsb[split]["a"], lsb[split]["b"]))
        assert other == pairs[: len(other)]  # same inputs; a smaller set is a prefix


def test_train_draw_is_seeded_and_prefix_stable():
    first = build_arithmetic_dataset("multiplication", 4, "lsb", train_size=500, validation_size=0, test_size=0, seed=3)
    longer = build_arithmetic_dataset(
        "multiplication", 4, "lsb", train_size=800, validation_size=0, test_size=0, seed=3
    )
    other = build_arithmetic_dataset("multiplication", 4, "lsb", train_size=500, validation_size=0, test_size=0, seed=4)
    assert first["train"]["text"] == longer["train"]["text"][:500]
    assert first["train"]["a"] != other["train"]["a"]
    assert len(first["validation"]) == 0 and first["validation"].features == first["train"].features


def test_same_arguments_give_identical_bytes_and_fingerprints(tmp_path):
    arguments = dict(
        task="addition", digits=[5, 3], cot="lsb", train_size=300, validation_size=20, test_size=20, seed=7
    )
    first, second = build_arithmetic_dataset(**arguments), build_arithmetic_dataset(**arguments)
    for split in first:
        assert first[split]._fingerprint == second[split]._fingerprint
    assert first["train"]._fingerprint != build_arithmetic_dataset(**{**arguments, "seed": 8})["train"]._fingerprint
    save_arithmetic_dataset(first, tmp_path / "one")
    save_arithmetic_dataset(second, tmp_path / "two")
    files = sorted(p.relative_to(tmp_path / "one") for p in (tmp_path / "one").rglob("*") if p.is_file())
    assert len(files) >= 10
    assert files == sorted(p.relative_to(tmp_path / "two") for p in (tmp_path / "two").rglob("*") if p.is_file())
    for name in files:
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes(), name
    assert build_arguments_of(load_from_disk(str(tmp_path / "one"))) == {**arguments, "every": None}


# ----------------------------------------------------------------------------- the stream


def _prompt(input_ids: list[int]) -> tuple[int, ...]:
    return tuple(input_ids[: input_ids.index(16) + 1])  # up to the first "="


def test_stream_examples_are_training_examples_of_the_format():
    stream = ArithmeticStream("multiplication", [3, 4], "lsb", seed=5)
    for item in itertools.islice(iter(stream), 300):
        text = TOKENIZER.decode(item["input_ids"])
        tokens = text.split()[:-1]
        a = int("".join(tokens[1:4]))
        b = int("".join(tokens[5:9]))
        assert text == text_of(example_tokens("multiplication", "lsb", (a, b)))
        assert item["prompt_length"] == 10
        assert split_of(a, b) == "train"


@pytest.mark.slow
def test_dataloader_workers_and_ranks_do_not_repeat_each_other():
    stream = ArithmeticStream("multiplication", 4, "paper", seed=0, rank=0)
    loader = torch.utils.data.DataLoader(stream, batch_size=None, num_workers=2)
    items = list(itertools.islice(iter(loader), 400))  # workers alternate: 200 each
    by_worker = [[_prompt(x["input_ids"]) for x in items[w::2]] for w in range(2)]
    assert len(set(by_worker[0]) | set(by_worker[1])) == 400  # no repeats (the authors' loader repeats all)
    # the same stream keys without a DataLoader give the same items: the worker id is in the seed
    solo = [_prompt(x["input_ids"]) for x in itertools.islice(iter(stream), 200)]
    assert solo == by_worker[0]
    other_rank = ArithmeticStream("multiplication", 4, "paper", seed=0, rank=1)
    assert not set(solo) & {_prompt(x["input_ids"]) for x in itertools.islice(iter(other_rank), 200)}
    stream.set_epoch(1)
    assert not set(solo) & {_prompt(x["input_ids"]) for x in itertools.islice(iter(stream), 200)}
    stream.set_epoch(0)
    assert [_prompt(x["input_ids"]) for x in itertools.islice(iter(stream), 200)] == solo  # deterministic


def test_stream_rank_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("RANK", "3")
    assert ArithmeticStream("parity", [10], "running", every=2, seed=9).stream_key() == (9, 0, 3, 0)


# ----------------------------------------------------------------------------- bad arguments


@pytest.mark.parametrize(
    "arguments, name",
    [
        (dict(digits=[0, 4]), "digits"),
        (dict(digits=[4, 10]), "digits"),
        (dict(digits=[4, 4, 4]), "digits"),
        (dict(cot="chain"), "cot"),
        (dict(task="division"), "task"),
        (dict(train_size=-1), "train_size"),
        (dict(validation_size=-5), "validation_size"),
        (dict(test_size=1.5), "test_size"),
        (dict(seed=-1), "seed"),
        (dict(every=2), "every"),
        (dict(task="parity", digits=[8], cot="running", every=9), "every"),
        (dict(task="parity", digits=[8], cot="running", every=0), "every"),
        (dict(task="parity", digits=[8], cot="running"), "every"),
        (dict(digits=[1, 1], validation_size=500), "validation_size"),  # 1x1 has ~10 validation pairs
    ],
)
def test_bad_arguments_raise_value_error_naming_them(arguments, name):
    base = dict(task="multiplication", digits=[4, 4], cot="lsb", train_size=10, validation_size=5, test_size=5)
    with pytest.raises(ValueError, match=rf"\b{name}="):
        build_arithmetic_dataset(**{**base, **arguments})


def test_tiny_input_spaces_say_which_split_is_too_small():
    assert [split_of(1, bits) for bits in (0, 1)] == ["train", "train"]  # 1 bit: no held-out input at all
    with pytest.raises(ValueError, match="validation_size=1 exceeds the 0 validation inputs of parity of 1 bits"):
        build_arithmetic_dataset("parity", [1], "direct", train_size=5, validation_size=1, test_size=0)
    only_train = build_arithmetic_dataset("parity", [1], "direct", train_size=50, validation_size=0, test_size=0)
    assert set(only_train["train"]["bits"]) == {"0", "1"}


def test_heldout_sizes_beyond_a_sampled_split_raise_instead_of_hanging():
    # 2**24 inputs, too many to enumerate: held-out inputs are sampled, at most 2**24 / 16 per split
    assert splits.input_space_size(ArithmeticSpec.create("parity", [24], "running", 4)) > splits.ENUMERATE_LIMIT
    with pytest.raises(ValueError, match=r"test_size=10000000 is too many: .* at most 1048576 distinct"):
        build_arithmetic_dataset("parity", [24], "running", every=4, train_size=10, test_size=10**7)
    with pytest.raises(ValueError, match=r"validation_size=5062501 is too many"):  # 81e6 / 16 = 5062500
        build_arithmetic_dataset("multiplication", [4, 4], "lsb", train_size=10, validation_size=5_062_501)


def test_drawing_loops_end_with_a_value_error_when_a_split_is_empty(monkeypatch):
    """The loops' exits, reached by a hash that puts every input in one split."""
    spec = ArithmeticSpec.create("parity", [30], "running", 3)
    monkeypatch.setattr(splits, "split_codes", lambda spec, inputs: np.full(len(inputs[0]), splits.TRAIN, np.int8))
    with pytest.raises(ValueError, match=r"test_size=10: only 0 distinct test inputs"):
        splits.heldout_inputs(spec, splits.TEST, 10)
    monkeypatch.setattr(splits, "split_codes", lambda spec, inputs: np.full(len(inputs[0]), splits.TEST, np.int8))
    with pytest.raises(ValueError, match="no train input among"):
        splits.train_inputs(spec, 10, seed=0)


# ----------------------------------------------------------------------------- prompts for a trained model


def test_prompt_helpers_build_the_datasets_prompts():
    dataset = build_arithmetic_dataset("multiplication", [3, 2], "paper", train_size=5, validation_size=5, test_size=5)
    for row in dataset["test"]:
        assert prompt_for(spec_of(dataset), (row["a"], row["b"])) == row["prompt"]
    assert arithmetic_prompt("multiplication", 4, "paper", 1234, 5678) == "[BOS] 1 2 3 4 x 5 6 7 8 ="
    assert arithmetic_prompt("addition", [3, 2], "lsb", "987", np.int64(65)) == "[BOS] 9 8 7 + 6 5 ="
    assert arithmetic_prompt("parity", 6, "threshold", "010011", every=2) == "[BOS] 0 1 0 0 1 1 ="


@pytest.mark.parametrize(
    "operands, message",
    [
        ((123, 5678), r"a=123 must be a 4-digit integer from 1000 to 9999: the operands of 4x4-digit"),
        ((1234, 56789), r"b=56789 must be a 4-digit"),
        ((-1234, 5678), r"a=-1234 must be"),
        ((1234.0, 5678), r"a=1234.0 must be a 4-digit integer from 1000 to 9999, not a float"),
        (("0123", 5678), r"a='0123' .* without leading zeros"),
        (("12 34", 5678), r"a='12 34' .* digits only"),
        ((True, 5678), r"a=True must be"),
        ((1234,), r"operands=\(1234,\): 4x4-digit multiplication takes 2"),
    ],
)
def test_prompt_helpers_refuse_operands_the_dataset_never_holds(operands, message):
    with pytest.raises(ValueError, match=message):
        arithmetic_prompt("multiplication", [4, 4], "lsb", *operands)


@pytest.mark.parametrize("bits", ["01001", "0100110", "01002x", 10011])
def test_parity_prompt_refuses_other_bit_strings(bits):
    with pytest.raises(ValueError, match=r"bits=.* must be a string of exactly 6 characters"):
        prompt_for(ArithmeticSpec.create("parity", [6], "running", 2), (bits,))


# ----------------------------------------------------------------------------- saving, CLI, card, Hub


def test_save_refuses_to_overwrite_and_replaces_atomically(tmp_path):
    out = tmp_path / "data"
    out.mkdir()
    (out / "keep.txt").write_text("precious")
    small = build_arithmetic_dataset("multiplication", 2, "lsb", train_size=20, validation_size=5, test_size=5)
    with pytest.raises(OutputDirError, match="overwrite"):
        save_arithmetic_dataset(small, out)
    with pytest.raises(OutputDirError, match="not written by hf-linear"):  # not ours: never replaced
        save_arithmetic_dataset(small, out, overwrite=True)
    assert (out / "keep.txt").read_text() == "precious" and sorted(p.name for p in out.iterdir()) == ["keep.txt"]
    out = tmp_path / "built"
    save_arithmetic_dataset(small, out)
    out.chmod(0o750)
    save_arithmetic_dataset(small, out, overwrite=True)  # an earlier build: replaced, permissions kept
    assert out.stat().st_mode & 0o777 == 0o750
    assert sorted(p.name for p in tmp_path.iterdir()) == ["built", "data"]  # no temporary directory left behind
    loaded = load_from_disk(str(out))
    assert loaded["train"]["text"] == small["train"]["text"]
    tokenizer = AutoTokenizer.from_pretrained(out)
    assert tokenizer(loaded["test"][0]["text"])["input_ids"] == loaded["test"][0]["input_ids"]
    assert (out / "README.md").read_text().startswith("---\n")


def test_cli_builds_saves_and_reports_errors(tmp_path, capsys):
    sys.path.insert(0, str(REPO_ROOT / "dataset_scripts"))
    import build_arithmetic

    out = tmp_path / "parity"
    argv = [
        "--task",
        "parity",
        "--digits",
        "12",
        "--cot",
        "running",
        "--every",
        "4",
        "--train-size",
        "40",
        "--validation-size",
        "5",
        "--test-size",
        "5",
        "--out",
        str(out),
    ]
    assert build_arithmetic.main(argv) == 0
    loaded = load_from_disk(str(out))
    assert len(loaded["train"]) == 40 and loaded["train"][0]["text"].count("=") == 2
    assert build_arithmetic.main(argv) == 2  # out exists now
    assert "not empty" in capsys.readouterr().err
    assert build_arithmetic.main([*argv[:7], "13", *argv[8:], "--overwrite"]) == 2
    assert "every=13" in capsys.readouterr().err


def test_dataset_card_has_metadata_example_lengths_and_citation():
    dataset = build_arithmetic_dataset("multiplication", [4, 4], "lsb", train_size=30, validation_size=5, test_size=5)
    card = render_dataset_card(dataset)
    metadata = card.split("---\n")[1]
    assert "license: apache-2.0" in metadata and "- text-generation" in metadata and "path: data/train-*" in metadata
    assert dataset["train"][0]["text"] in card
    assert "| 4x4 | 307 | 19 | 80 |" in card
    assert all(f"`{cot}` — " in card for cot in ("paper", "direct", "lsb", "running", "threshold"))
    assert "Auto-Regressive Next-Token Predictors are Universal Learners" in card and "2309.06979" in card
    assert "$" not in card  # every placeholder rendered


@pytest.mark.slow
def test_push_to_local_hub_then_load(hub_server):
    from datasets import load_dataset
    from huggingface_hub import DatasetCard, snapshot_download

    dataset = build_arithmetic_dataset("addition", [3, 3], "lsb", train_size=40, validation_size=6, test_size=6)
    repo_id = hub_server.repo_id("arithmetic")
    push_arithmetic_dataset_to_hub(dataset, repo_id)
    loaded = load_dataset(repo_id)
    for split in dataset:
        assert loaded[split]["text"] == dataset[split]["text"]
        assert loaded[split]["input_ids"] == dataset[split]["input_ids"]
    metadata = DatasetCard.load(repo_id, repo_type="dataset").data.to_dict()
    assert metadata["license"] == "apache-2.0" and metadata["task_categories"] == ["text-generation"]
    assert {c["config_name"] for c in metadata["configs"]} == {"default"} and "dataset_info" in metadata
    local = snapshot_download(repo_id, repo_type="dataset")
    tokenizer = AutoTokenizer.from_pretrained(local, subfolder="tokenizer")
    assert tokenizer(dataset["test"][0]["text"])["input_ids"] == dataset["test"][0]["input_ids"]
