"""Build a Chain-of-Thought arithmetic dataset (thin CLI over `hf_linear.data.arithmetic`).

    python dataset_scripts/build_arithmetic.py --task multiplication --digits 4 4 --cot paper \\
        --train-size 1000000 --out data/mul4x4-paper [--validation-size N --test-size N --seed S \\
        --every K --overwrite --push-to-hub REPO --private]

Writes a `DatasetDict` with `save_to_disk` into --out, together with the tokenizer (so that
`AutoTokenizer.from_pretrained(out)` works) and a README.md dataset card; with --push-to-hub also
pushes it to a Hub dataset repo (token from --hub-token or the usual HF_TOKEN / login).

As a library call (what a training config's `dataset:` section maps to):
`build_arithmetic_dataset(task=..., digits=..., cot=..., train_size=..., validation_size=...,
test_size=..., seed=..., every=...) -> DatasetDict`.
"""

from __future__ import annotations

import argparse
import sys
import time

from hf_linear.data.arithmetic import (
    FORMATS,
    build_arithmetic_dataset,
    push_arithmetic_dataset_to_hub,
    save_arithmetic_dataset,
)
from hf_linear.data.io import add_output_arguments
from hf_linear.output_dirs import check_output_dir

__all__ = ["build_arithmetic_dataset", "main"]


def _parser() -> argparse.ArgumentParser:
    formats = "; ".join(f"{task}: {', '.join(cots)}" for task, cots in FORMATS.items())
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--task", required=True, choices=sorted(FORMATS))
    parser.add_argument(
        "--digits",
        required=True,
        type=int,
        nargs="+",
        metavar="N",
        help="operand sizes n [m] (n alone: n x n); parity: the number of bits",
    )
    parser.add_argument("--cot", required=True, help=f"CoT format ({formats})")
    parser.add_argument(
        "--every", type=int, default=None, help="parity 'running' and 'threshold': one step every K bits"
    )
    parser.add_argument("--train-size", type=int, required=True)
    parser.add_argument("--validation-size", type=int, default=1000)
    parser.add_argument("--test-size", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0, help="seed of the training draw (held-out sets are fixed)")
    add_output_arguments(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        check_output_dir(args.out, args.overwrite, "--out")  # fail before building, not after
        start = time.perf_counter()
        dataset_dict = build_arithmetic_dataset(
            task=args.task,
            digits=args.digits,
            cot=args.cot,
            train_size=args.train_size,
            validation_size=args.validation_size,
            test_size=args.test_size,
            seed=args.seed,
            every=args.every,
        )
        built = time.perf_counter()
        out = save_arithmetic_dataset(dataset_dict, args.out, overwrite=args.overwrite)
        print(
            f"built {sum(map(len, dataset_dict.values()))} examples in {built - start:.1f} s, "
            f"saved to {out} in {time.perf_counter() - built:.1f} s"
        )
        print(dataset_dict)
        if args.push_to_hub:
            push_arithmetic_dataset_to_hub(dataset_dict, args.push_to_hub, token=args.hub_token, private=args.private)
            print(f"pushed to the Hub dataset repo {args.push_to_hub}")
    except (ValueError, FileExistsError) as error:
        print(f"build_arithmetic.py: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
