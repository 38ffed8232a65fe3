"""What the main job's DataLoader costs per batch: the per-row collator of 2026-12-06 on every
column of the dataset vs today's (one tensor conversion and one mask, only the columns it reads),
measured in the same interleaved rounds.

    python bench/bench_data_path.py                 # main job's data, batch 256; ~30 s
    python bench/bench_data_path.py --train-size 2000 --batches 2 --repeats 2   # a smoke run

The data is the main job's (configs/cpu/mul4x4_lsb_mlp.yaml: 4x4 multiplication, `lsb` CoT, 81
tokens), built with --train-size examples (the per-batch cost does not depend on how many);
batches are drawn as `Trainer` draws them (DataLoader, random sampler, batch 256, no workers).
One timed sample = --batches batches; medians (min–max) over --repeats interleaved rounds, and
the per-round ratio to the old path. Both collators' batches are checked equal first.
"""

from __future__ import annotations

import argparse

import hf_linear  # noqa: F401  first: sets the OpenMP wait policy before torch loads (hf_linear/omp_policy.py)

# isort: split
import torch
from bench_models import fmt, measure  # beside this file (run as python bench/...)
from torch.utils.data import DataLoader, RandomSampler

from hf_linear.data.collator import CausalLMCollator, training_columns
from hf_linear.data.sources import data_source


def per_row_collator(pad_token_id: int):
    """The collator as it was until 2026-12-06: a tensor and three row writes per example."""

    def collate(examples):
        width = max(len(e["input_ids"]) for e in examples)
        input_ids = torch.full((len(examples), width), pad_token_id, dtype=torch.long)
        attention_mask = torch.zeros((len(examples), width), dtype=torch.long)
        labels = torch.full((len(examples), width), -100, dtype=torch.long)
        for row, example in enumerate(examples):
            ids = torch.as_tensor(example["input_ids"], dtype=torch.long)
            input_ids[row, : len(ids)] = ids
            attention_mask[row, : len(ids)] = 1
            first_label = int(example["prompt_length"]) if "prompt_length" in example else 0
            labels[row, first_label : len(ids)] = ids[first_label:]
        batch = {"input_ids": input_ids, "labels": labels}
        if not bool(attention_mask.all()):
            batch["attention_mask"] = attention_mask
        return batch

    return collate


def batches(dataset, collate, batch_size: int, count: int):
    """One timed sample: `count` batches as Trainer's DataLoader draws them."""
    loader = DataLoader(dataset, batch_size=batch_size, sampler=RandomSampler(dataset), collate_fn=collate)

    def run():
        it = iter(loader)
        for _ in range(count):
            next(it)

    return run


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train-size", type=int, default=50_000)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--batches", type=int, default=20, help="batches per timed sample")
    parser.add_argument("--repeats", type=int, default=7, help="timed rounds (after one warm-up round)")
    args = parser.parse_args(argv)
    source = data_source(
        {
            "arithmetic": {
                "task": "multiplication",
                "digits": [4, 4],
                "cot": "lsb",
                "train_size": args.train_size,
                "validation_size": 1,
                "test_size": 1,
                "seed": 0,
            }
        }
    )
    train = source.load()["train"]
    pad = source.tokenizer().pad_token_id
    old, new, slim = per_row_collator(pad), CausalLMCollator(pad), training_columns(train)
    sample = [train[i] for i in range(args.batch)]
    a, b = old(sample), new([slim[i] for i in range(args.batch)])
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), "the two collators disagree"
    cases = {
        "per-row collator, every column (before)": (train, old),
        "per-row collator, training columns": (slim, old),
        "today: one conversion, training columns": (slim, new),
    }
    variants = {
        name: (batches(data, collate, args.batch, args.batches), args.batches)
        for name, (data, collate) in cases.items()
    }
    rounds = measure(variants, args.repeats)
    before = next(iter(cases))
    print(f"columns: {', '.join(train.column_names)} -> {', '.join(slim.column_names)}")
    print(f"ms per batch of {args.batch}, median (min–max) over {args.repeats} interleaved rounds; speed-up per round")
    for name in cases:
        ms = [1e3 * s / args.batches for s in rounds.seconds[name]]
        print(f"  {name:<42} {fmt(ms, ' ms')}   {fmt(rounds.ratios(name, before), '×')}")


if __name__ == "__main__":
    main()
