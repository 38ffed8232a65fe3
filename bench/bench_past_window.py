"""Is a trained model as good past its window T as inside it? Perplexity by position on held-out text.

    python bench/bench_past_window.py runs/tinystories-linear [--stories ../shared/data/tinystories]

Every validation story is scored whole (the model slides its window past T), and each token's
cross-entropy is put in a bucket by its position in the story: [1, T/2), [T/2, T) and >= T.
A model trained on windows of T+1 tokens (every row of the masked map has a target) keeps its
perplexity past T; one trained on T-token windows (row T-1 untrained) does not. Also prints
samples of 4T tokens and the text statistics of their first and later windows.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import hf_linear  # noqa: F401  first: sets the OpenMP wait policy before torch loads (hf_linear/omp_policy.py)

# isort: split
import torch
import torch.nn.functional as F

from hf_linear.checkpoints import load_model, load_tokenizer
from hf_linear.data.tinystories import load_stories
from hf_linear.evaluation.lm_report import text_statistics
from hf_linear.paper import STORY_PROMPT

REPO_ROOT = Path(__file__).resolve().parents[1]


@torch.no_grad()
def perplexity_by_position(model, tokenizer, stories: list[str], skip: int = 0) -> dict[str, dict]:
    """Token perplexity by position bucket; `skip` drops each story's first tokens, so that every
    window starts mid-story (without that, positions < T always see the story's beginning,
    which positions >= T never do: an easier context, not a better row)."""
    T = model.config.context_length
    buckets = {"[1, T/2)": (1, T // 2), "[T/2, T)": (T // 2, T), "[T, end)": (T, 10**9)}
    sums = {name: [0.0, 0] for name in buckets}
    for story in stories:
        ids = torch.tensor([tokenizer(story)["input_ids"][skip:]])
        if ids.shape[1] < 2:
            continue
        logits = model(input_ids=ids).logits[0, :-1].float()  # position p predicts token p+1
        losses = F.cross_entropy(logits, ids[0, 1:], reduction="none")
        for name, (lo, hi) in buckets.items():
            part = losses[max(lo - 1, 0) : hi - 1]  # targets at positions lo..hi-1
            sums[name][0] += part.sum().item()
            sums[name][1] += part.numel()
    return {
        name: {"perplexity": math.exp(total / count), "tokens": count} for name, (total, count) in sums.items() if count
    }


@torch.no_grad()
def perplexity_by_context(
    model, tokenizer, stories: list[str], contexts: list[int], batch_size: int = 256
) -> dict[int, float]:
    """Like for like: the SAME targets (every token at story position >= T) predicted from the k
    tokens before them, for each k in `contexts` (k = T is what every position past the window
    sees; k < T is row k-1 inside a window)."""
    T = model.config.context_length
    sums = {k: [0.0, 0] for k in contexts}
    for story in stories:
        ids = tokenizer(story)["input_ids"]
        targets = range(T, len(ids))
        for k in contexts:
            windows = torch.tensor([ids[q - k : q] for q in targets]) if len(targets) else None
            for start in range(0, len(targets), batch_size):
                logits = model(input_ids=windows[start : start + batch_size], logits_to_keep=1).logits[:, -1].float()
                gold = torch.tensor([ids[q] for q in targets[start : start + batch_size]])
                sums[k][0] += F.cross_entropy(logits, gold, reduction="sum").item()
                sums[k][1] += len(gold)
    return {k: math.exp(total / count) for k, (total, count) in sums.items() if count}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint")
    parser.add_argument("--stories", default=str(REPO_ROOT.parent / "shared" / "data" / "tinystories"))
    parser.add_argument("--max-stories", type=int, default=None)
    parser.add_argument("--samples", type=int, default=8)
    args = parser.parse_args()

    model, tokenizer = load_model(args.checkpoint).eval(), load_tokenizer(args.checkpoint)
    T = model.config.context_length
    stories = list(load_stories(args.stories, args.max_stories)["validation"]["text"])
    print(f"{args.checkpoint}: T={T}, {len(stories)} validation stories")
    for skip, title in (
        (0, "stories from their first token"),
        (T, f"stories from their token {T} (windows start mid-story)"),
    ):
        table = perplexity_by_position(model, tokenizer, stories, skip)
        inside, past = table["[T/2, T)"]["perplexity"], table["[T, end)"]["perplexity"]
        print(f"\n{title}\n| positions | tokens | perplexity |\n|---|---|---|")
        for name, row in table.items():
            print(f"| {name} | {row['tokens']:,} | {row['perplexity']:.1f} |")
        print(f"past the window / inside it (T/2..T-1): {past / inside:.3f}")
    by_context = perplexity_by_context(model, tokenizer, stories, list(range(T // 2, T + 1)))
    inside = math.exp(sum(math.log(by_context[k]) for k in range(T // 2, T)) / (T - T // 2))  # same token counts
    print("\nthe same targets (every token at story position >= T) from the k tokens before them")
    print("| k (context) | row | perplexity |\n|---|---|---|")
    for k in (T // 2, 3 * T // 4, T - 1, T):
        print(f"| {k} | {k - 1}{' (every position past T)' if k == T else ''} | {by_context[k]:.1f} |")
    print(f"| {T // 2}..{T - 1} | {T // 2 - 1}..{T - 2} (inside the window) | {inside:.1f} |")
    print(f"past the window (k = T) / inside it (rows T/2-1..T-2), same targets: {by_context[T] / inside:.3f}")

    torch.manual_seed(0)
    prompt = tokenizer(STORY_PROMPT, return_tensors="pt")
    out = model.generate(
        **prompt,
        do_sample=True,
        temperature=0.5,
        max_new_tokens=4 * T,
        num_return_sequences=args.samples,
        pad_token_id=tokenizer.pad_token_id,
    )
    first = [tokenizer.decode(row[:T], skip_special_tokens=True) for row in out]
    later = [tokenizer.decode(row[T:], skip_special_tokens=True) for row in out]
    stats = {"first window": text_statistics(first), "tokens T..4T": text_statistics(later)}
    print(json.dumps(stats, indent=1))
    print("sample:", tokenizer.decode(out[0], skip_special_tokens=True))


if __name__ == "__main__":
    main()
