"""TinyStories: stories → tokenizer → T-token windows (local files, local Hub, BPE), saving and
pushing with a card, the language-model evaluation, and a short training run."""

from __future__ import annotations

import io
import json
import math
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
import torch.nn.functional as F
from datasets import Dataset, load_from_disk
from helpers import tiny_model
from transformers import AutoTokenizer

from hf_linear import LinearLMConfig, LinearLMForCausalLM
from hf_linear.data.tinystories import (
    build_record_of,
    build_tinystories_dataset,
    full_windows,
    push_tinystories_dataset_to_hub,
    render_dataset_card,
    save_tinystories_dataset,
    split_stories,
    tinystories_tokenizer,
)
from hf_linear.evaluation.lm_report import (
    distinct_n,
    new_token_count,
    repetition_rate,
    sample_continuations,
    text_statistics,
    validation_loss,
)
from hf_linear.output_dirs import OutputDirError

SEPARATOR = "<|endoftext|>"


@pytest.fixture(scope="module")
def sample(shared_data_dir):
    return {"stories": shared_data_dir / "tinystories", "tokenizer": str(shared_data_dir / "gpt2-tokenizer")}


def plain_stories(path: Path) -> list[str]:
    """The reference split: plain str.split on the separator."""
    return [s.strip() for s in path.read_text(encoding="utf-8").split(SEPARATOR) if s.strip()]


def reference_windows(stories: list[str], tokenizer, T: int) -> list[list[list[int]]]:
    """Per story, its full windows of T+1 tokens starting every T tokens, by a plain loop."""
    result = []
    for story in stories:
        ids = tokenizer(story)["input_ids"]
        result.append([ids[k * T : (k + 1) * T + 1] for k in range((len(ids) - 1) // T)])
    return result


def check_round_trip(windows_per_story, stories, tokenizer):
    for story, windows in zip(stories, windows_per_story):
        decoded = tokenizer.decode([i for w in windows for i in w[:-1]] + windows[-1][-1:] if windows else [])
        assert story.startswith(decoded), (story[:80], decoded[:80])


# ---------------------------------------------------------------------------------------------
# pure functions


def test_split_stories_on_separator_lines():
    lines = io.StringIO(f"One.\nTwo lines.\n{SEPARATOR}\n\n  {SEPARATOR}  \nB story\n{SEPARATOR}\nlast, no separator\n")
    assert list(split_stories(lines)) == ["One.\nTwo lines.", "B story", "last, no separator"]
    assert list(split_stories([f"a {SEPARATOR} b\n"])) == [f"a {SEPARATOR} b"]  # only whole lines separate


def test_full_windows_hold_t_inputs_and_t_targets():
    assert full_windows(list(range(10)), 4) == [[0, 1, 2, 3, 4], [4, 5, 6, 7, 8]]
    assert full_windows(list(range(9)), 4) == [[0, 1, 2, 3, 4], [4, 5, 6, 7, 8]]
    assert full_windows(list(range(8)), 4) == [[0, 1, 2, 3, 4]]
    assert full_windows([1, 2, 3, 4], 4) == []
    # overlapping windows: one every `stride` tokens
    assert full_windows(list(range(9)), 4, stride=2) == [[0, 1, 2, 3, 4], [2, 3, 4, 5, 6], [4, 5, 6, 7, 8]]


# ---------------------------------------------------------------------------------------------
# building


@pytest.mark.slow
def test_local_files_build_matches_a_plain_loop(sample):
    T, n = 64, 150
    dataset = build_tinystories_dataset(
        str(sample["stories"]), tokenizer=sample["tokenizer"], context_length=T, max_stories=n, num_proc=2
    )
    tokenizer = tinystories_tokenizer(str(sample["stories"]), sample["tokenizer"], None, n)
    # the paper's vocabulary: GPT-2 BPE + [PAD]
    assert len(tokenizer) == 50258 and tokenizer.pad_token == "[PAD]" and tokenizer.pad_token_id == 50257
    assert tokenizer.eos_token_id == tokenizer.bos_token_id == 50256
    plain_tokenizer = AutoTokenizer.from_pretrained(sample["tokenizer"])
    counts = {}
    for split, file in (("train", "tinystories_train.txt"), ("validation", "tinystories_valid.txt")):
        stories = plain_stories(sample["stories"] / file)[:n]
        counts[split] = len(stories)
        expected = reference_windows(stories, plain_tokenizer, T)
        assert dataset[split]["input_ids"] == [w for story in expected for w in story]
        assert len(dataset[split]) == sum((len(ids) - 1) // T for ids in plain_tokenizer(stories)["input_ids"])
        check_round_trip(expected, stories, tokenizer)
    assert build_record_of(dataset)["stories"] == counts == {"train": n, "validation": 147}  # the sample has 147
    assert 50257 not in {i for w in dataset["train"]["input_ids"] for i in w}  # never padded


@pytest.mark.slow
def test_local_hub_default_path_is_the_same_as_local_files(hub_server, sample, tmp_path):
    """The unchanged defaults, load_dataset("roneneldan/TinyStories") and
    AutoTokenizer.from_pretrained("roneneldan/TinyStories-33M"), served by the local Hub with the
    shared sample laid out as the real repos (Parquet shards under data/, text files at the root)."""
    from huggingface_hub import HfApi

    api = HfApi()
    api.create_repo("roneneldan/TinyStories", repo_type="dataset", exist_ok=True)
    upload = tmp_path / "upload"
    (upload / "data").mkdir(parents=True)
    for split, file in (("train", "tinystories_train.txt"), ("validation", "tinystories_valid.txt")):
        table = pa.table({"text": plain_stories(sample["stories"] / file)})
        pq.write_table(table, upload / "data" / f"{split}-00000-of-00001-0123456789abcdef.parquet")
        (upload / f"TinyStories-{split}.txt").write_bytes((sample["stories"] / file).read_bytes())
    (upload / "README.md").write_text("---\nlicense: cdla-sharing-1.0\n---\n# TinyStories (test copy)\n")
    api.upload_folder(folder_path=str(upload), repo_id="roneneldan/TinyStories", repo_type="dataset")
    api.create_repo("roneneldan/TinyStories-33M", exist_ok=True)
    api.upload_folder(folder_path=sample["tokenizer"], repo_id="roneneldan/TinyStories-33M")

    n = 60
    from_hub = build_tinystories_dataset(max_stories=n)
    local = build_tinystories_dataset(str(sample["stories"]), tokenizer=sample["tokenizer"], max_stories=n)
    assert len(from_hub["train"]) > 100
    for split in ("train", "validation"):
        assert from_hub[split]["input_ids"] == local[split]["input_ids"]
    assert len(tinystories_tokenizer(max_stories=n)) == 50258


@pytest.mark.slow
def test_trained_bpe_is_deterministic_and_round_trips(sample):
    T, n, vocab = 32, 80, 300
    source = str(sample["stories"])
    tinystories_tokenizer.cache_clear()
    dataset = build_tinystories_dataset(source, context_length=T, bpe_vocab_size=vocab, max_stories=n)
    tokenizer = tinystories_tokenizer(source, None, vocab, n)
    assert len(tokenizer) == vocab + 1 and tokenizer.pad_token_id == vocab  # + [PAD], as GPT-2's 50257 + 1
    assert tokenizer.eos_token == SEPARATOR and tokenizer.eos_token_id == 0
    stories = plain_stories(sample["stories"] / "tinystories_train.txt")[:n]
    expected = reference_windows(stories, tokenizer, T)
    assert dataset["train"]["input_ids"] == [w for story in expected for w in story]
    check_round_trip(expected, stories, tokenizer)
    assert max(max(w) for w in dataset["train"]["input_ids"]) < vocab

    tinystories_tokenizer.cache_clear()  # train again from scratch: same merges, same windows
    again = build_tinystories_dataset(source, context_length=T, bpe_vocab_size=vocab, max_stories=n)
    assert (
        tinystories_tokenizer(source, None, vocab, n).backend_tokenizer.to_str() == tokenizer.backend_tokenizer.to_str()
    )
    assert again["train"]["input_ids"] == dataset["train"]["input_ids"]


@pytest.mark.parametrize(
    "arguments,message",
    [
        ({"context_length": 1}, "context_length must be an integer >= 2"),
        ({"max_stories": 0}, "max_stories must be an integer >= 1"),
        ({"bpe_vocab_size": 100}, "bpe_vocab_size must be an integer >= 257"),
        ({"tokenizer": "gpt2", "bpe_vocab_size": 300}, "either tokenizer"),
        ({"source": "/nonexistent/tinystories"}, "tinystories source '/nonexistent/tinystories' could not be loaded"),
        ({"tokenizer": "/nonexistent/tokenizer"}, "tokenizer '/nonexistent/tokenizer' .*no tokenizer could be loaded"),
    ],
)
def test_bad_arguments_are_named(sample, arguments, message):
    arguments = {"source": str(sample["stories"]), "tokenizer": sample["tokenizer"], "max_stories": 5, **arguments}
    if "bpe_vocab_size" in arguments and arguments["tokenizer"] == sample["tokenizer"]:
        del arguments["tokenizer"]
    with pytest.raises(ValueError, match=message):
        build_tinystories_dataset(**arguments)


def test_a_directory_without_both_splits_is_named(tmp_path):
    (tmp_path / "stories-train.txt").write_text(f"A story.\n{SEPARATOR}\n")
    with pytest.raises(ValueError, match=r"expected exactly one \*valid\*.txt file"):
        build_tinystories_dataset(str(tmp_path), tokenizer="unused", max_stories=1)


# ---------------------------------------------------------------------------------------------
# saving, card, CLI, Hub


@pytest.mark.slow
def test_save_refuses_overwrite_and_reloads_with_tokenizer(sample, tmp_path):
    source, n = str(sample["stories"]), 40
    dataset = build_tinystories_dataset(source, tokenizer=sample["tokenizer"], context_length=16, max_stories=n)
    tokenizer = tinystories_tokenizer(source, sample["tokenizer"], None, n)
    out = save_tinystories_dataset(dataset, tokenizer, tmp_path / "ts")
    reloaded, reloaded_tokenizer = load_from_disk(str(out)), AutoTokenizer.from_pretrained(out)
    assert reloaded["validation"]["input_ids"] == dataset["validation"]["input_ids"]
    assert len(reloaded_tokenizer) == 50258 and reloaded_tokenizer.pad_token_id == 50257
    card = (out / "README.md").read_text()
    assert "license: cdla-sharing-1.0" in card and "T = 16 tokens" in card
    assert f"| train | {n} | {len(dataset['train']):,} | {16 * len(dataset['train']):,} |" in card
    assert "Eldan" in card and "2309.06979" in card and "$" not in card
    before = (out / "README.md").read_bytes()
    with pytest.raises(OutputDirError, match="not empty"):
        save_tinystories_dataset(dataset, tokenizer, out)
    assert (out / "README.md").read_bytes() == before
    save_tinystories_dataset(dataset, tokenizer, out, overwrite=True)
    assert load_from_disk(str(out))["train"]["input_ids"] == dataset["train"]["input_ids"]


@pytest.mark.slow
def test_cli_builds_and_refuses_an_existing_output(sample, tmp_path, capsys):
    import importlib.util

    script = Path(__file__).resolve().parents[1] / "dataset_scripts" / "build_tinystories.py"
    spec = importlib.util.spec_from_file_location("build_tinystories", script)
    build_tinystories = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build_tinystories)
    out = tmp_path / "cli"
    argv = [
        "--source",
        str(sample["stories"]),
        "--train-bpe",
        "300",
        "--context-length",
        "32",
        "--max-stories",
        "20",
        "--num-proc",
        "1",
        "--out",
        str(out),
    ]
    assert build_tinystories.main(argv) == 0
    assert len(AutoTokenizer.from_pretrained(out)) == 301 and len(load_from_disk(str(out))["train"]) > 0
    assert "--train-bpe 300 --context-length 32 --max-stories 20" in (out / "README.md").read_text()
    assert build_tinystories.main(argv) == 2
    assert "not empty" in capsys.readouterr().err


@pytest.mark.slow
def test_push_to_local_hub_with_card_then_load(hub_server, sample):
    from datasets import load_dataset
    from huggingface_hub import DatasetCard, snapshot_download

    source, n = str(sample["stories"]), 30
    dataset = build_tinystories_dataset(source, tokenizer=sample["tokenizer"], context_length=32, max_stories=n)
    tokenizer = tinystories_tokenizer(source, sample["tokenizer"], None, n)
    repo_id = hub_server.repo_id("tinystories-windows")
    push_tinystories_dataset_to_hub(dataset, tokenizer, repo_id)
    loaded = load_dataset(repo_id)
    for split in ("train", "validation"):
        assert loaded[split]["input_ids"] == dataset[split]["input_ids"]
    metadata = DatasetCard.load(repo_id, repo_type="dataset").data.to_dict()
    assert metadata["license"] == "cdla-sharing-1.0" and "dataset_info" in metadata
    assert {c["config_name"] for c in metadata["configs"]} == {"default"}
    pushed_tokenizer = AutoTokenizer.from_pretrained(
        snapshot_download(repo_id, repo_type="dataset"), subfolder="tokenizer"
    )
    assert pushed_tokenizer.pad_token_id == 50257 and len(pushed_tokenizer) == 50258
    assert (
        render_dataset_card(dataset, tokenizer).split("---\n")[2]
        in DatasetCard.load(repo_id, repo_type="dataset").content
    )


# ---------------------------------------------------------------------------------------------
# language-model evaluation


def test_distinct_n_and_repetition_by_hand():
    texts = ["a b a b", "a c"]
    assert distinct_n(texts, 1) == 3 / 6  # a b c among a b a b a c
    assert distinct_n(texts, 2) == 3 / 4  # (a b) (b a) (a b) (a c)
    assert repetition_rate(texts, 2) == 1 / 4  # the second (a b)
    looping = ["the cat sat on the cat sat on"]  # 5 four-grams, the last repeats the first
    assert repetition_rate(looping, 4) == 1 / 5
    assert repetition_rate(["too short"], 4) == 0.0 and distinct_n([], 1) == 0.0
    stats = text_statistics(texts)
    assert stats["distinct_1"] == 0.5 and stats["mean_words"] == 3.0


def test_perplexity_is_exp_of_the_mean_token_cross_entropy():
    model = tiny_model(vocab_size=11, context_length=6, hidden_size=4, eos_token_id=9, pad_token_id=10)
    rows = torch.randint(0, 11, (7, 6), generator=torch.Generator().manual_seed(1)).tolist()
    total, count = 0.0, 0
    with torch.no_grad():
        for row in rows:  # plain loop: one window, one position at a time
            for t in range(len(row) - 1):
                logits = model(torch.tensor([row[: t + 1]])).logits[0, -1]
                total -= F.log_softmax(logits.double(), dim=-1)[row[t + 1]].item()
                count += 1
    report = validation_loss(model, Dataset.from_dict({"input_ids": rows}), batch_size=3)
    assert report["num_tokens"] == count == 35 and report["num_samples"] == 7
    assert report["loss"] == pytest.approx(total / count, rel=1e-5)
    assert report["perplexity"] == pytest.approx(math.exp(total / count), rel=1e-5)


def test_new_token_count_stops_at_the_first_eos():
    new = torch.tensor([[5, 9, 1, 1], [5, 5, 5, 5], [9, 1, 1, 1]])
    assert new_token_count(new, eos_token_id=9) == 2 + 4 + 1
    assert new_token_count(new, eos_token_id=None) == 12


def test_samples_are_seeded_and_fill_the_window(sample):
    tokenizer = tinystories_tokenizer(str(sample["stories"]), None, 300, 80)
    torch.manual_seed(0)
    model = LinearLMForCausalLM(
        LinearLMConfig(
            vocab_size=len(tokenizer),
            context_length=12,
            hidden_size=4,
            eos_token_id=None,
            pad_token_id=tokenizer.pad_token_id,
        )
    ).eval()
    texts, speed = sample_continuations(model, tokenizer, "Once upon a", num_samples=3, temperature=0.5, seed=3)
    again, _ = sample_continuations(model, tokenizer, "Once upon a", num_samples=3, temperature=0.5, seed=3)
    other, _ = sample_continuations(model, tokenizer, "Once upon a", num_samples=3, temperature=0.5, seed=4)
    assert texts == again and texts != other and len(texts) == 3 and speed > 0
    prompt_length = len(tokenizer("Once upon a")["input_ids"])
    assert all(len(tokenizer(t)["input_ids"]) >= 12 - prompt_length - 2 for t in texts)  # up to T in all
    with pytest.raises(ValueError, match="temperature must be > 0"):
        sample_continuations(model, tokenizer, temperature=0)


# ---------------------------------------------------------------------------------------------
# training through hf_linear.training.train


def tiny_run(output_dir, model: dict, sample, max_steps: int) -> dict:
    return {
        "model": model,
        "dataset": {
            "tinystories": {
                "source": str(sample["stories"]),
                "tokenizer": sample["tokenizer"],
                "context_length": 16,
                "max_stories": 40,
            }
        },
        "training": {
            "output_dir": str(output_dir),
            "per_device_train_batch_size": 32,
            "learning_rate": 5e-2,
            "lr_scheduler_type": "constant",
            "max_steps": max_steps,
            "logging_steps": 1,
            "eval_strategy": "steps",
            "eval_steps": max_steps,
            "save_strategy": "no",
            "report_to": [],
            "disable_tqdm": True,
            "seed": 0,
        },
        "evaluation": {
            "split": "validation",
            "num_samples": 64,
            "during_training_samples": 64,
            "batch_size": 32,
            "num_generations": 4,
            "num_examples": 2,
        },
    }


@pytest.mark.slow
def test_linear_lm_trains_on_windows_and_reports_perplexity(sample, tmp_path):
    from transformers import AutoModelForCausalLM

    from hf_linear.training.config import check_config
    from hf_linear.training.train import train

    out = tmp_path / "run"
    report = train(check_config(tiny_run(out, {"type": "linear_lm", "hidden_size": 8}, sample, max_steps=15)))
    state = json.loads((out / "trainer_state.json").read_text())
    losses = [e["loss"] for e in state["log_history"] if "loss" in e]
    assert len(losses) == 15 and losses[-1] < losses[0] - 1.0, losses
    assert any("eval_perplexity" in e for e in state["log_history"])
    saved = json.loads((out / "eval_results.json").read_text())
    assert saved["perplexity"] == pytest.approx(math.exp(saved["loss"])) and saved["loss"] == report["loss"]
    assert saved["num_samples"] == 64 and saved["num_tokens"] == 64 * 16
    assert len(saved["examples"]) == 2 and all(e.startswith("Once upon a") for e in saved["examples"])
    assert 0 <= saved["distinct_2"] <= 1 and saved["generation_tokens_per_second"] > 0
    model = AutoModelForCausalLM.from_pretrained(out)
    assert (model.config.vocab_size, model.config.context_length, model.config.pad_token_id) == (50258, 16, 50257)


@pytest.mark.slow
def test_gpt2_baseline_eval_loss_is_the_mean_over_predicted_tokens(sample, tmp_path):
    """Trainer's eval_loss for GPT2LMHeadModel equals our mean over the T-1 predicted tokens of
    each window (without build_model's loss_type fix it is (T-1)/T of that)."""
    from hf_linear.training.config import check_config
    from hf_linear.training.train import train

    out = tmp_path / "gpt2"
    model = {"type": "gpt2", "n_embd": 8, "n_layer": 1, "n_head": 2}
    report = train(check_config(tiny_run(out, model, sample, max_steps=2)))
    state = json.loads((out / "trainer_state.json").read_text())
    eval_loss = next(e["eval_loss"] for e in state["log_history"] if "eval_loss" in e)
    assert eval_loss == pytest.approx(report["loss"], rel=1e-4)  # same 64 windows, same final model


@pytest.mark.slow
def test_eval_cli_scores_language_model_data_by_perplexity(sample, tmp_path, capsys):
    """`hf-linear eval` on windows without prompts: the LM report, equal to training's own."""
    from transformers import AutoTokenizer

    from hf_linear.evaluation.cli import main
    from hf_linear.training.config import check_config
    from hf_linear.training.train import train

    out = tmp_path / "run"
    trained = train(check_config(tiny_run(out, {"type": "linear_lm", "hidden_size": 8}, sample, max_steps=3)))
    windows = build_tinystories_dataset(str(sample["stories"]), sample["tokenizer"], context_length=16, max_stories=40)
    data = save_tinystories_dataset(windows, AutoTokenizer.from_pretrained(out), tmp_path / "windows")
    report_path = tmp_path / "report.json"
    assert (
        main(
            [
                str(out),
                "--dataset",
                str(data),
                "--split",
                "validation",
                "--num-samples",
                "64",
                "--batch-size",
                "32",
                "--output",
                str(report_path),
            ]
        )
        == 0
    )
    report = json.loads(report_path.read_text())
    assert report["num_samples"] == 64 and report["num_tokens"] == 64 * 16
    assert report["perplexity"] == pytest.approx(trained["perplexity"], rel=1e-5)
    assert "perplexity" in capsys.readouterr().out


def test_windows_of_t_plus_one_tokens_train_every_row_of_the_masked_map(sample):
    """The last row, which a sliding window uses for every position >= T, gets a gradient too."""
    from hf_linear.data.collator import CausalLMCollator

    T = 16
    windows = build_tinystories_dataset(str(sample["stories"]), sample["tokenizer"], context_length=T, max_stories=5)
    model = LinearLMForCausalLM(LinearLMConfig(vocab_size=50258, context_length=T, hidden_size=4, pad_token_id=50257))
    batch = CausalLMCollator(50257)([windows["train"][i] for i in range(4)])
    assert batch["input_ids"].shape == (4, T + 1)
    model(**batch).loss.backward()
    grad = model.model.mixing.weight.grad  # (T(T+1)/2, d, d): row i = blocks i(i+1)/2 .. i(i+1)/2 + i
    last_row = grad[(T - 1) * T // 2 :]
    assert last_row.abs().sum() > 0
    # the same model on T-token windows: row T-1 has no target and no gradient
    model.zero_grad()
    model(input_ids=batch["input_ids"][:, :T], labels=batch["labels"][:, :T]).loss.backward()
    assert model.model.mixing.weight.grad[(T - 1) * T // 2 :].abs().sum() == 0
