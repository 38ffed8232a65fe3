"""Build TinyStories in T-token windows (thin CLI over `hf_linear.data.tinystories`).

    python dataset_scripts/build_tinystories.py --out data/tinystories-64          # the paper's data
    python dataset_scripts/build_tinystories.py --source ../shared/data/tinystories \\
        --tokenizer ../shared/data/gpt2-tokenizer --out data/tinystories-sample
    python dataset_scripts/build_tinystories.py --source ../shared/data/tinystories --train-bpe 4096 \\
        --context-length 64 --max-stories 500 --out data/tinystories-bpe [--overwrite --push-to-hub REPO]

Writes a `DatasetDict` (train / validation, column `input_ids` of exactly T tokens) with
`save_to_disk` into --out, together with the tokenizer (`AutoTokenizer.from_pretrained(out)`)
and a README.md dataset card; with --push-to-hub also pushes it to a Hub dataset repo.

As a library call (what a training config's `dataset.tinystories:` section maps to):
`build_tinystories_dataset(source=..., tokenizer=..., context_length=..., bpe_vocab_size=...,
max_stories=..., num_proc=...) -> DatasetDict`.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from hf_linear.data.io import add_output_arguments
from hf_linear.data.tinystories import (
    DEFAULT_SOURCE,
    DEFAULT_TOKENIZER,
    build_tinystories_dataset,
    push_tinystories_dataset_to_hub,
    save_tinystories_dataset,
    tinystories_tokenizer,
)
from hf_linear.output_dirs import check_output_dir


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--source",
        default=DEFAULT_SOURCE,
        help="dataset repo id / load_dataset path, or a directory of TinyStories *train*.txt and "
        "*valid*.txt files (default: %(default)s)",
    )
    tokenizer = parser.add_mutually_exclusive_group()
    tokenizer.add_argument("--tokenizer", default=None, help=f"tokenizer name or path (default: {DEFAULT_TOKENIZER})")
    tokenizer.add_argument(
        "--train-bpe",
        type=int,
        metavar="VOCAB",
        default=None,
        help="train a byte-level BPE of VOCAB tokens on the train stories instead",
    )
    parser.add_argument(
        "--context-length",
        type=int,
        default=64,
        help="T, the model's window; windows hold T+1 tokens (default: %(default)s)",
    )
    parser.add_argument("--stride", type=int, default=None, help="tokens between window starts (default: T)")
    parser.add_argument("--max-stories", type=int, default=None, help="only the first N stories of each split")
    parser.add_argument(
        "--num-proc",
        type=int,
        default=min(4, os.cpu_count() or 1),
        help="tokenization processes (default: %(default)s)",
    )
    add_output_arguments(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    arguments = {
        "source": args.source,
        "tokenizer": args.tokenizer,
        "context_length": args.context_length,
        "bpe_vocab_size": args.train_bpe,
        "max_stories": args.max_stories,
        "stride": args.stride,
    }
    try:
        check_output_dir(args.out, args.overwrite, "--out")  # fail before building, not after
        start = time.perf_counter()
        dataset_dict = build_tinystories_dataset(**arguments, num_proc=args.num_proc)
        tokenizer = tinystories_tokenizer(args.source, args.tokenizer, args.train_bpe, args.max_stories)
        built = time.perf_counter()
        out = save_tinystories_dataset(dataset_dict, tokenizer, args.out, overwrite=args.overwrite)
        print(
            f"built {sum(map(len, dataset_dict.values()))} windows of {args.context_length} tokens "
            f"(V = {len(tokenizer)}) in {built - start:.1f} s, saved to {out}"
        )
        print(dataset_dict)
        if args.push_to_hub:
            push_tinystories_dataset_to_hub(
                dataset_dict, tokenizer, args.push_to_hub, token=args.hub_token, private=args.private
            )
            print(f"pushed to the Hub dataset repo {args.push_to_hub}")
    except (ValueError, FileExistsError) as error:
        print(f"build_tinystories.py: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
