"""Time to build and tokenize 1M 4x4 `paper` multiplication examples (target: <= 60 s on 2 cores).

    python bench/bench_arithmetic_build.py [--train-size 1000000] [--reference-size 20000] [--save]

Side by side:
* fast path: `build_arithmetic_dataset` (vectorised numpy ids, texts assembled from the ids as
  bytes, Arrow tables written directly) — the complete DatasetDict with train / validation / test;
* reference: the readable per-example path (`example_tokens` -> text -> `tokenizer(texts)` in
  batches of 1000), timed on --reference-size examples and extrapolated linearly to --train-size.
With --save, also the time of `save_arithmetic_dataset` (save_to_disk + tokenizer + card).
"""

from __future__ import annotations

import argparse
import os
import random
import tempfile
import time

import hf_linear  # noqa: F401  first: sets the OpenMP wait policy before torch loads (hf_linear/omp_policy.py)

# isort: split
import datasets
import torch

from hf_linear.data.arithmetic import (
    build_arithmetic_dataset,
    build_arithmetic_tokenizer,
    example_tokens,
    save_arithmetic_dataset,
    text_of,
)


def reference_seconds(count: int) -> float:
    tokenizer = build_arithmetic_tokenizer()
    rng = random.Random(0)
    start = time.perf_counter()
    for _ in range(0, count, 1000):
        texts = [
            text_of(example_tokens("multiplication", "paper", (rng.randint(1000, 9999), rng.randint(1000, 9999))))
            for _ in range(1000)
        ]
        tokenizer(texts)["input_ids"]
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--train-size", type=int, default=1_000_000)
    parser.add_argument("--reference-size", type=int, default=20_000)
    parser.add_argument("--save", action="store_true")
    args = parser.parse_args()
    datasets.disable_progress_bars()
    print(f"machine: {os.cpu_count()} cores, torch threads {torch.get_num_threads()}, load {os.getloadavg()[0]:.2f}")

    start = time.perf_counter()
    dataset = build_arithmetic_dataset("multiplication", [4, 4], "paper", train_size=args.train_size)
    fast = time.perf_counter() - start
    tokens = len(dataset["train"]) * len(dataset["train"][0]["input_ids"])  # every example has 308 ids
    print(
        f"fast path: {len(dataset['train']):,} train examples (+{len(dataset['validation'])} validation, "
        f"+{len(dataset['test'])} test), {tokens:,} train tokens, built and tokenized in {fast:.1f} s "
        f"(target <= 60 s)"
    )

    measured = reference_seconds(args.reference_size)
    extrapolated = measured * args.train_size / args.reference_size
    print(
        f"reference (pure functions + tokenizer): {args.reference_size:,} examples in {measured:.1f} s "
        f"-> {extrapolated:.0f} s for {args.train_size:,} (extrapolated)"
    )
    print(f"speed-up of the fast path: {extrapolated / fast:.1f}x")

    if args.save:
        with tempfile.TemporaryDirectory(dir=".") as directory:
            start = time.perf_counter()
            save_arithmetic_dataset(dataset, os.path.join(directory, "mul4x4-paper"))
            print(f"save_arithmetic_dataset (save_to_disk + tokenizer + card): {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
