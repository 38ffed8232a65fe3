"""Length and width of every shipped program before and after the optimising pass.

    python bench/program_lengths.py [--json out.json]

Per program and size: the CoT length (the length complexity), the vocabulary, the certificate's
parameters (T(T+1)/2 · V², the width cost), what the pass fused, and its time. Every optimised
program is `prove`d by the pass itself before it is returned, and its traces are checked here
against the original's (decoded back, token for token) on 1,000 random inputs.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

import hf_linear  # noqa: F401  first: sets the OpenMP wait policy before torch loads (hf_linear/omp_policy.py)
from hf_linear.data.programs import PROGRAMS, compile_program, optimize, unfuse
from hf_linear.runtime import machine_description

SIZES = {
    "parity": (16, 40),
    "addition": (2**16, 2**40),
    "comparison": (2**16, 2**40),
    "multiplication": (2**8, 2**14, 2**27, 2**40),
    "tm-increment": (8, 16),
    "tm-double": (8, 16),
}


def measure(name: str, size: int) -> dict:
    original = compile_program(name, size)
    start = time.perf_counter()
    optimized = optimize(original)
    seconds = time.perf_counter() - start
    rng = np.random.default_rng(0)
    inputs = [rng.integers(0, number.limit, 1000) for number in original.inputs]
    same = bool((unfuse(optimized, optimized.run(inputs)) == original.run(inputs)).all())
    fused = {kind: count for kind, count in optimized.describe_steps().items() if "+" in kind}
    return {
        "program": name,
        "size": size,
        "cot_tokens": [original.cot_length, optimized.cot_length],
        "vocabulary": [len(original.vocabulary), len(optimized.vocabulary)],
        "certificate_parameters": [original.certificate_parameters, optimized.certificate_parameters],
        "fused_steps": fused,
        "traces_equal_on_1000_inputs": same,
        "optimize_seconds": round(seconds, 2),
    }


def size_label(name: str, size: int) -> str:
    if PROGRAMS[name].size_meaning == "bits":
        return f"{size} bits"
    return f"{(size - 1).bit_length()}-bit operands"


def table(rows: list[dict]) -> str:
    lines = [
        "| program | size | CoT tokens | vocabulary | certificate parameters | fused into one token |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for row in rows:
        (c0, c1), (v0, v1), (p0, p1) = row["cot_tokens"], row["vocabulary"], row["certificate_parameters"]
        fused = ", ".join(f"{kind} ×{count}" for kind, count in row["fused_steps"].items()) or "nothing"
        lines.append(
            f"| {row['program']} | {size_label(row['program'], row['size'])} | {c0:,} → {c1:,} | {v0} → {v1} "
            f"| {p0:,} → {p1:,} | {fused} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", help="also write the rows and the machine description here")
    args = parser.parse_args(argv)
    rows = [measure(name, size) for name, sizes in SIZES.items() for size in sizes]
    print(table(rows))
    if not all(row["traces_equal_on_1000_inputs"] for row in rows):
        print("error: an optimised trace differs from the original's")
        return 1
    print(f"\noptimising took {sum(row['optimize_seconds'] for row in rows):.1f} s in all; {machine_description()}")
    if args.json:
        with open(args.json, "w") as file:
            json.dump({"rows": rows, "machine": machine_description()}, file, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
