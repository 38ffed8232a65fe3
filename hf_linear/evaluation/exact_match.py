"""Evaluation as in the paper: exact match of the final answer, generated greedily from the prompt.

    hf-linear eval CHECKPOINT --dataset data/mul4x4-lsb [--split test --num-samples 1000]
    hf-linear eval CHECKPOINT --arithmetic '{"task": "multiplication", "digits": [4, 4], "cot": "lsb"}'
    hf-linear eval CHECKPOINT --dataset data/tinystories-64 --split validation   # language-model data

Data with `prompt` / `answer` columns is scored by exact match; language-model data (windows of
`input_ids` only, e.g. TinyStories) by perplexity, with samples from "Once upon a" at
temperature 0.5 and their distinct-n / repetition statistics (hf_linear.evaluation.lm_report).

writes a JSON report (default: CHECKPOINT/eval_results.json, which `hf-linear push` puts into the
model card) and prints a table and a few sample generations.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from functools import lru_cache
from pathlib import Path

import torch

METRIC_PATH = Path(__file__).resolve().parent / "metrics" / "cot_exact_match"


@lru_cache(maxsize=1)
def load_metric():
    """The `evaluate` module of `METRIC_PATH`, loaded by path (no Hub download)."""
    import evaluate

    return evaluate.load(str(METRIC_PATH))


@torch.no_grad()
def generate_completions(model, tokenizer, prompts: list[str], max_new_tokens: int, batch_size: int = 256) -> list[str]:
    """Greedy continuations of `prompts` (text after each prompt, special tokens kept), batched
    with left padding, decoding stopping at the tokenizer's EOS."""
    model.eval()
    completions = []
    tokenizer.padding_side = "left"
    for start in range(0, len(prompts), batch_size):
        batch = tokenizer(prompts[start : start + batch_size], return_tensors="pt", padding=True)
        batch = {k: v.to(model.device) for k, v in batch.items() if k in ("input_ids", "attention_mask")}
        out = model.generate(
            **batch,
            max_new_tokens=max_new_tokens,
            do_sample=False,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
        completions += tokenizer.batch_decode(out[:, batch["input_ids"].shape[1] :], skip_special_tokens=False)
    return completions


def answer_budget(dataset) -> int:
    """New tokens needed to generate every example's completion after its prompt (incl. [EOS])."""
    return max(len(ids) - n for ids, n in zip(dataset["input_ids"], dataset["prompt_length"]))


def exact_match_report(model, tokenizer, dataset, batch_size: int = 256, num_examples: int = 5) -> dict:
    """Greedy generation from every `prompt` of `dataset`, scored against its `answer`.

    Returns exact_match, per_digit_accuracy, num_samples and a few `examples`.
    """
    prompts, answers = list(dataset["prompt"]), list(dataset["answer"])
    completions = generate_completions(model, tokenizer, prompts, answer_budget(dataset), batch_size)
    predictions = [f"{p} {c}" for p, c in zip(prompts, completions)]
    report = load_metric().compute(predictions=predictions, references=answers)
    from hf_linear.data.arithmetic.formats import answer_of

    report["examples"] = [
        {"prompt": p, "completion": c.replace(" [PAD]", ""), "answer": a, "correct": answer_of(pred) == a}
        for p, c, a, pred in list(zip(prompts, completions, answers, predictions))[:num_examples]
    ]
    return report


def format_report(report: dict) -> str:
    lines = [
        "| metric | value |",
        "| --- | --- |",
        f"| exact match | {100 * report['exact_match']:.2f}% |",
        f"| per-digit accuracy | {100 * report['per_digit_accuracy']:.2f}% |",
        f"| held-out samples | {report['num_samples']} |",
    ]
    if report.get("dataset"):
        lines.append(f"| dataset | {report['dataset']} ({report.get('split', '')}) |")
    for example in report.get("examples", []):
        mark = "✓" if example["correct"] else "✗"
        lines.append(f"\n{mark} {example['prompt']} {example['completion']}\n  expected answer: {example['answer']}")
    return "\n".join(lines)


def write_json_atomically(path: Path, data: dict) -> None:
    """Write JSON next to `path` and rename it into place: a crash never leaves half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        json.dump(data, f, indent=2)
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="hf-linear eval", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", help="a checkpoint directory or Hub repo id")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--dataset", help="a DatasetDict saved with save_to_disk (a directory), or a Hub dataset repo id")
    source.add_argument("--arithmetic", help="JSON of build_arithmetic_dataset arguments (built on the fly)")
    parser.add_argument("--split", default="test")
    parser.add_argument("--num-samples", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--show", type=int, default=5, help="sample generations to print")
    parser.add_argument("--output", help="JSON report path (default: CHECKPOINT/eval_results.json)")
    args = parser.parse_args(argv)
    if args.num_samples < 1 or args.batch_size < 1:
        parser.error("--num-samples and --batch-size must be >= 1")

    from transformers import AutoModelForCausalLM, AutoTokenizer

    import hf_linear  # noqa: F401  (registers the model types)
    from hf_linear.data.sources import load_dataset_dict

    if args.arithmetic:
        try:
            spec = json.loads(args.arithmetic)
        except json.JSONDecodeError as error:
            parser.error(f"--arithmetic is not valid JSON: {error}")
        dataset_config, dataset_name = {"arithmetic": spec}, f"arithmetic {spec}"
    else:
        source = "path" if Path(args.dataset).is_dir() else "hub"
        dataset_config, dataset_name = {source: args.dataset}, args.dataset
    try:
        datasets = load_dataset_dict(dataset_config)
    except ValueError as error:
        parser.error(str(error))
    if args.split not in datasets:
        parser.error(f"--split {args.split!r} not in the dataset (splits: {', '.join(datasets)})")
    split = datasets[args.split]
    split = split.select(range(min(args.num_samples, len(split))))

    model = AutoModelForCausalLM.from_pretrained(args.checkpoint)
    tokenizer = AutoTokenizer.from_pretrained(args.checkpoint)
    if {"prompt", "answer"} <= set(split.column_names):
        report = exact_match_report(model, tokenizer, split, args.batch_size, args.show)
        formatter = format_report
    else:
        from hf_linear.evaluation.lm_report import format_lm_report, lm_report

        report = lm_report(model, tokenizer, split, batch_size=args.batch_size, num_examples=args.show)
        formatter = format_lm_report
    report.update(dataset=dataset_name, split=args.split, checkpoint=str(args.checkpoint))
    print(formatter(report))
    output = Path(args.output) if args.output else Path(args.checkpoint) / "eval_results.json"
    if not args.output and not Path(args.checkpoint).is_dir():
        output = Path("eval_results.json")
    write_json_atomically(output, report)
    print(f"\nreport written to {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
