"""Evaluation as in the paper: exact match of the final answer, generated greedily from the prompt."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import torch

from hf_linear.data.arithmetic import answer_of

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
    for start in range(0, len(prompts), batch_size):
        # left padding (batched generation continues right after each prompt), without
        # changing the caller's tokenizer
        batch = tokenizer(prompts[start : start + batch_size], return_tensors="pt", padding=True, padding_side="left")
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


def has_prompts(dataset) -> bool:
    """Whether held-out data is scored by exact match (prompt / answer) rather than as an LM."""
    return {"prompt", "answer"} <= set(dataset.column_names)


def answer_budget(dataset) -> int:
    """New tokens needed to generate every example's completion after its prompt (incl. [EOS])."""
    return max(len(ids) - n for ids, n in zip(dataset["input_ids"], dataset["prompt_length"]))


def exact_match_report(model, tokenizer, dataset, batch_size: int = 256, num_examples: int = 5) -> dict:
    """Greedy generation from every `prompt` of `dataset`, scored against its `answer`.

    Returns exact_match, per_digit_accuracy, num_samples and a few `examples`.
    """
    prompts, answers = list(dataset["prompt"]), list(dataset["answer"])
    completions = generate_completions(model, tokenizer, prompts, answer_budget(dataset), batch_size)
    predictions = [p + c for p, c in zip(prompts, completions)]  # each decoded token brings its space
    report = load_metric().compute(predictions=predictions, references=answers)
    report["examples"] = [
        {"prompt": p, "completion": c.replace(" [PAD]", "").strip(), "answer": a, "correct": answer_of(pred) == a}
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
