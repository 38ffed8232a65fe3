"""Language-model evaluation of TinyStories models (the paper's linear model, MLP, GPT-2 baseline).

The paper graded completions with GPT-4, which is not possible offline. Instead:

* validation loss and perplexity: the mean next-token cross-entropy over every predicted token
  of the validation windows (T-1 per window of T), and its exp;
* samples from the paper's prompt "Once upon a" at temperature 0.5 (plain temperature sampling,
  no top-k or top-p, as the authors' code), by default up to T tokens in all (prompt included,
  as the authors' code), and the generation speed in new tokens per second;
* automatic statistics of the sampled continuations (the prompt excluded), on whitespace-
  separated words so that they compare across tokenizers:
  - distinct-n (Li et al. 2016): distinct n-grams / all n-grams, over all samples together;
  - repetition rate: the fraction of a sample's 4-grams that repeat an earlier 4-gram of the
    same sample, summed over samples: Σ (n-grams − distinct n-grams) / Σ n-grams.
"""

from __future__ import annotations

import math
import time

import torch
import torch.nn.functional as F

from hf_linear.paper import STORY_PROMPT, STORY_TEMPERATURE

PAPER_PROMPT, PAPER_TEMPERATURE = STORY_PROMPT, STORY_TEMPERATURE  # the paper's §4.1 sampling (hf_linear.paper)
MAX_LOGITS_PER_FORWARD = 2**26  # 256 MB of float32 logits: caps windows per forward at large V


# ---------------------------------------------------------------------------------------------
# Text statistics (pure functions on strings)


def ngrams(words: list[str], n: int) -> list[tuple[str, ...]]:
    return [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]


def distinct_n(texts: list[str], n: int) -> float:
    """Distinct n-grams / all n-grams of the whitespace-separated words of all `texts` (0 if none)."""
    grams = [gram for text in texts for gram in ngrams(text.split(), n)]
    return len(set(grams)) / len(grams) if grams else 0.0


def repetition_rate(texts: list[str], n: int = 4) -> float:
    """Fraction of n-grams that repeat an earlier n-gram of the same text (0 if there are none)."""
    total = repeated = 0
    for text in texts:
        grams = ngrams(text.split(), n)
        total += len(grams)
        repeated += len(grams) - len(set(grams))
    return repeated / total if total else 0.0


def text_statistics(texts: list[str]) -> dict[str, float]:
    return {
        "distinct_1": distinct_n(texts, 1),
        "distinct_2": distinct_n(texts, 2),
        "distinct_3": distinct_n(texts, 3),
        "repetition_4": repetition_rate(texts, 4),
        "mean_words": sum(len(t.split()) for t in texts) / len(texts) if texts else 0.0,
    }


# ---------------------------------------------------------------------------------------------
# Perplexity


@torch.no_grad()
def validation_loss(model, windows, batch_size: int = 64) -> dict[str, float]:
    """Mean next-token cross-entropy over all `windows` (a Dataset of equal-length `input_ids`).

    Returns loss, perplexity = exp(loss), num_samples (windows), num_tokens (predicted tokens).
    """
    model.eval()
    total, count = 0.0, 0
    if len(windows) == 0:
        raise ValueError("validation_loss: no windows to evaluate")
    width = len(windows[0]["input_ids"])
    step = max(1, min(batch_size, MAX_LOGITS_PER_FORWARD // (width * model.config.vocab_size)))
    for start in range(0, len(windows), step):
        rows = windows[start : start + step]["input_ids"]
        ids = torch.as_tensor(rows, dtype=torch.long, device=model.device)
        logits = model(input_ids=ids).logits[:, :-1].float()
        targets = ids[:, 1:]
        total += F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), reduction="sum").item()
        count += targets.numel()
    loss = total / count
    return {"loss": loss, "perplexity": math.exp(loss), "num_samples": len(windows), "num_tokens": count}


# ---------------------------------------------------------------------------------------------
# Samples


def default_max_new_tokens(model, prompt_length: int) -> int:
    """Up to the model's window in all (prompt included), as the authors' sampling loop."""
    window = getattr(model.config, "context_length", None) or model.config.n_positions
    return max(1, window - prompt_length)


@torch.no_grad()
def sample_continuations(
    model,
    tokenizer,
    prompt: str = PAPER_PROMPT,
    num_samples: int = 8,
    max_new_tokens: int | None = None,
    temperature: float = PAPER_TEMPERATURE,
    seed: int = 0,
) -> tuple[list[str], float]:
    """`num_samples` continuations of `prompt` sampled in one batch, and new tokens per second.

    Sampling stops at the tokenizer's EOS; the seed fixes the samples without touching the
    caller's random state.
    """
    if num_samples < 1:
        raise ValueError(f"num_samples must be >= 1, got {num_samples}")
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    model.eval()
    prompt_ids = tokenizer(prompt, return_tensors="pt")["input_ids"].to(model.device)
    if prompt_ids.shape[1] == 0:
        raise ValueError("the sample prompt is empty")
    if max_new_tokens is None:
        max_new_tokens = default_max_new_tokens(model, prompt_ids.shape[1])
    positions = getattr(model.config, "n_positions", None)  # models with absolute position embeddings
    if positions is not None and prompt_ids.shape[1] + max_new_tokens > positions:
        raise ValueError(
            f"prompt ({prompt_ids.shape[1]} tokens) + max_new_tokens={max_new_tokens} exceed the "
            f"model's {positions} positions"
        )
    batch = prompt_ids.repeat(num_samples, 1)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        start = time.perf_counter()
        out = model.generate(
            input_ids=batch,
            attention_mask=torch.ones_like(batch),
            do_sample=True,
            temperature=temperature,
            top_k=0,
            top_p=1.0,
            max_new_tokens=max_new_tokens,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
        seconds = time.perf_counter() - start
    new = out[:, prompt_ids.shape[1] :]
    generated = new_token_count(new, tokenizer.eos_token_id)
    texts = tokenizer.batch_decode(new, skip_special_tokens=True)
    return texts, generated / seconds


def new_token_count(new_ids: torch.Tensor, eos_token_id: int | None) -> int:
    """Tokens each row really generated: up to and including its first EOS (then padding)."""
    if eos_token_id is None:
        return new_ids.numel()
    is_eos = new_ids == eos_token_id
    ended = is_eos.any(dim=1)
    first_eos = is_eos.int().argmax(dim=1)
    return int(torch.where(ended, first_eos + 1, new_ids.shape[1]).sum())


# ---------------------------------------------------------------------------------------------
# The report


def lm_report(
    model,
    tokenizer,
    windows,
    *,
    batch_size: int = 64,
    prompt: str = PAPER_PROMPT,
    temperature: float = PAPER_TEMPERATURE,
    num_generations: int = 8,
    max_new_tokens: int | None = None,
    num_examples: int = 3,
    seed: int = 0,
) -> dict:
    """Validation loss / perplexity on `windows`, samples from `prompt`, their statistics and the
    generation speed. The metrics are top-level numbers (what `hf-linear push` puts in a card)."""
    report = validation_loss(model, windows, batch_size)
    texts, tokens_per_second = sample_continuations(
        model, tokenizer, prompt, num_generations, max_new_tokens, temperature, seed
    )
    report.update(text_statistics(texts))
    report.update(
        generation_tokens_per_second=tokens_per_second,
        num_generations=num_generations,
        prompt=prompt,
        temperature=temperature,
        examples=[prompt + text for text in texts[:num_examples]],
    )
    return report


def format_lm_report(report: dict) -> str:
    lines = [
        "| metric | value |",
        "| --- | --- |",
        f"| validation loss | {report['loss']:.4f} |",
        f"| perplexity | {report['perplexity']:.2f} |",
        f"| validation windows / tokens | {report['num_samples']} / {report['num_tokens']} |",
        f"| distinct-1 / 2 / 3 | {report['distinct_1']:.3f} / {report['distinct_2']:.3f} / {report['distinct_3']:.3f} |",
        f"| repeated 4-grams | {100 * report['repetition_4']:.1f}% |",
        f"| generation | {report['generation_tokens_per_second']:.1f} tokens/s ({report['num_generations']} samples) |",
    ]
    if report.get("dataset"):
        lines.append(f"| dataset | {report['dataset']} ({report.get('split', '')}) |")
    header = f"\nsamples (temperature {report['temperature']}):"
    return "\n".join(lines + [header] + [f"\n{text}" for text in report.get("examples", [])])
