"""Build the Chain-of-Thought data of a compiled program (thin CLI over `hf_linear.data.programs`).

    python dataset_scripts/build_program.py --program multiplication --size 10000 --train-size 100000 \\
        --out data/program-mul10000 [--validation-size N --test-size N --seed S --overwrite \\
        --push-to-hub REPO --private --certify N --no-prove --optimize]

Writes a `DatasetDict` with `save_to_disk` into --out, with the program's tokenizer and a
README.md dataset card that states the CoT length, the vocabulary and the certificate's size, and
what was checked: the proof (every step on every combination of its reads' values, exact: all
inputs; an unproved program is an error; --no-prove skips it) and the certificate (a LinearLM
whose weights are the compiled steps, run through `generate` on N test examples and compared
token for token; default 200, 0 skips it). --optimize writes the optimised program's CoT (steps
fused into composite tokens wherever one linear step still writes them: a shorter CoT, the same
prompts and answers). With --push-to-hub also pushes it to a Hub dataset repo.

As a library call (what a training config's `dataset.program:` section maps to):
`build_program_dataset(program=..., size=..., train_size=..., validation_size=..., test_size=..., seed=...,
optimize=...)`.
"""

from __future__ import annotations

import argparse
import sys
import time

from hf_linear.data.io import add_output_arguments
from hf_linear.data.programs import PROGRAMS
from hf_linear.data.programs.certificate import certify
from hf_linear.data.programs.dataset import (
    build_program_dataset,
    program_of,
    push_program_dataset_to_hub,
    save_program_dataset,
)
from hf_linear.data.programs.proof import prove
from hf_linear.output_dirs import check_output_dir


def _parser() -> argparse.ArgumentParser:
    programs = "; ".join(
        f"{name}: {family.description} (size: {family.size_meaning})" for name, family in PROGRAMS.items()
    )
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--program", required=True, help=f"a shipped program ({programs}), or module:function with --trust-program-code"
    )
    parser.add_argument(
        "--trust-program-code",
        action="store_true",
        help="import a module:function program (importing runs its code: your own, or trusted)",
    )
    parser.add_argument("--size", required=True, type=int, help="input bound: numbers below SIZE, or SIZE bits")
    parser.add_argument("--train-size", type=int, required=True)
    parser.add_argument("--validation-size", type=int, default=1000)
    parser.add_argument("--test-size", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0, help="seed of the training draw (held-out sets are fixed)")
    parser.add_argument(
        "--certify",
        type=int,
        default=200,
        metavar="N",
        help="run the certificate on N test examples and state its result in the card (0: skip)",
    )
    parser.add_argument(
        "--optimize",
        action="store_true",
        help="fuse steps into composite tokens wherever one linear step still writes them (a shorter CoT)",
    )
    parser.add_argument(
        "--prove",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="prove every step on every combination of its reads' values (all inputs; default: on)",
    )
    add_output_arguments(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        check_output_dir(args.out, args.overwrite, "--out")  # fail before building, not after
        if args.certify < 0:
            raise ValueError(f"--certify {args.certify} must be >= 0")
        start = time.perf_counter()
        dataset_dict = build_program_dataset(
            args.program,
            args.size,
            args.train_size,
            args.validation_size,
            args.test_size,
            args.seed,
            args.optimize,
            trust_program_code=args.trust_program_code,
        )
        program, certificate, proof = program_of(dataset_dict, args.trust_program_code), None, None
        print(program.summary())
        if args.prove:
            proof = prove(program)
            print(proof.describe())
            if not proof.proved:
                raise ValueError(proof.describe())
        else:
            print("proof: not run (--no-prove)")
        if args.certify and len(dataset_dict["test"]):
            test = dataset_dict["test"].select(range(min(args.certify, len(dataset_dict["test"]))))
            certificate = certify(program, test)
            print(
                f"certificate: {100 * certificate['exact_match']:.2f}% of {certificate['num_samples']} test "
                "examples generated token for token (a LinearLM whose weights are the compiled steps; "
                f"answers right on {100 * certificate['answer_exact_match']:.2f}%)"
            )
        else:
            print("certificate: not run")
        built = time.perf_counter()
        out = save_program_dataset(
            dataset_dict,
            args.out,
            overwrite=args.overwrite,
            certificate=certificate,
            trust_program_code=args.trust_program_code,
            proof=proof,
        )
        print(
            f"built {sum(map(len, dataset_dict.values()))} examples of {program.length} tokens "
            f"(CoT {program.cot_length}) in {built - start:.1f} s, saved to {out}"
        )
        print(dataset_dict)
        if args.push_to_hub:
            push_program_dataset_to_hub(
                dataset_dict,
                args.push_to_hub,
                token=args.hub_token,
                private=args.private,
                certificate=certificate,
                trust_program_code=args.trust_program_code,
                proof=proof,
            )
            print(f"pushed to the Hub dataset repo {args.push_to_hub}")
    except (ValueError, OSError) as error:
        print(f"build_program.py: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
