"""A training step of the main job on an idle CPU and beside one busy process, with OpenMP's
default wait policy and with OMP_WAIT_POLICY=PASSIVE (the one hf-linear chooses, hf_linear/omp_policy.py).

    python bench/bench_contention.py              # main-job shape, 5 rounds: measure on an otherwise idle machine
    python bench/bench_contention.py --quick      # tiny shape, a few steps, one round: a smoke run (seconds)
    python bench/bench_contention.py --json out.json

Each measurement is a fresh interpreter (libgomp reads its policy once, when torch loads) that
builds the model, takes `--warmup` untimed steps and times `--steps` steps of forward, backward
and fused AdamW; its figure is the median step. The busy neighbour is `while True: pass` in
another process (one core's worth of load, as another user's job), started for the busy
half of a round and killed after it; it also ends by itself after `BUSY_LIMIT_S`, so it never
outlives the bench. Interleaved as bench_models.py: every round runs all four variants, in
alternating order; the figures are medians (min-max) over rounds, the ratios computed per round.
The child reports libgomp's own spin count (OMP_DISPLAY_ENV=verbose) to show which policy ran.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time

BUSY_LIMIT_S = 600  # a busy neighbour ends by itself after this, whatever happens to the bench
POLICIES = {"default": None, "PASSIVE": "PASSIVE"}
SPIN_COUNTS = {"0": "PASSIVE", "300000": "default", "30000000000": "ACTIVE"}
MAIN_JOB = {
    "hidden_size": 32,
    "context_length": 81,
    "vocab_size": 119,
    "batch": 256,
}  # MLPLM d=32, 4x4 lsb: the main job until 2026-12-06 (bench/README.md's figures)
TINY = {"hidden_size": 8, "context_length": 27, "vocab_size": 40, "batch": 32}

# torch before hf_linear: the variant's environment alone decides the policy (hf_linear would
# choose PASSIVE when none is set)
CHILD = """
import json, sys, time
import torch
from hf_linear import MLPLMConfig, MLPLMForCausalLM
from hf_linear.runtime import tune_cpu_allocator

shape, warmup, steps = json.loads(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
tune_cpu_allocator()  # as `hf-linear train`
torch.manual_seed(0)
config = MLPLMConfig(hidden_size=shape["hidden_size"], context_length=shape["context_length"], vocab_size=shape["vocab_size"])
model = MLPLMForCausalLM(config)
optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, fused=True)
ids = torch.randint(0, shape["vocab_size"], (shape["batch"], shape["context_length"]))
seconds = []
for step in range(warmup + steps):
    started = time.perf_counter()
    model(ids, labels=ids).loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    if step >= warmup:
        seconds.append(time.perf_counter() - started)
print(json.dumps({"step_seconds": seconds, "threads": torch.get_num_threads()}))
"""


def measure(policy: str, shape: dict, warmup: int, steps: int) -> dict:
    """One fresh process with `policy`: its median step and what libgomp says it ran with."""
    env = {key: value for key, value in os.environ.items() if key != "OMP_WAIT_POLICY"}
    env["OMP_DISPLAY_ENV"] = "verbose"
    if POLICIES[policy]:
        env["OMP_WAIT_POLICY"] = POLICIES[policy]
    result = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps(shape), str(warmup), str(steps)],
        env=env,
        capture_output=True,
        text=True,
        timeout=BUSY_LIMIT_S,
        check=True,
    )
    spin = re.search(r"GOMP_SPINCOUNT = '(\d+)'", result.stderr)
    out = json.loads(result.stdout.strip().splitlines()[-1])
    ran = SPIN_COUNTS.get(spin.group(1), spin.group(1)) if spin else "unknown"
    if ran != policy:
        raise RuntimeError(f"asked for the {policy} policy, libgomp ran with {ran}")
    return {
        "median_s": statistics.median(out["step_seconds"]),
        "step_seconds": out["step_seconds"],
        "threads": out["threads"],
    }


class BusyNeighbour:
    """`while True: pass` in another process while the block runs (bounded: BUSY_LIMIT_S)."""

    def __enter__(self):
        code = f"import time\nend = time.monotonic() + {BUSY_LIMIT_S}\nwhile time.monotonic() < end: pass"
        self.process = subprocess.Popen([sys.executable, "-c", code])
        time.sleep(0.2)  # running before the measurement starts
        return self

    def __exit__(self, *exc):
        self.process.kill()
        self.process.wait(timeout=10)


def run(rounds: int, shape: dict, warmup: int, steps: int, warmup_round: bool) -> list[dict]:
    """Per round {(load, policy): measurement}; the order alternates between rounds."""
    results = []
    for number in range(rounds + warmup_round):
        order = list(POLICIES) if number % 2 == 0 else list(POLICIES)[::-1]
        loads = ("idle", "busy") if number % 2 == 0 else ("busy", "idle")
        figures = {}
        for load in loads:
            if load == "busy":
                with BusyNeighbour():
                    figures |= {f"{load}/{policy}": measure(policy, shape, warmup, steps) for policy in order}
            else:
                figures |= {f"{load}/{policy}": measure(policy, shape, warmup, steps) for policy in order}
        if number >= warmup_round:
            results.append(figures)
        print(
            f"round {number + 1 - warmup_round}{' (warm-up, discarded)' if number < warmup_round else ''}: "
            + ", ".join(f"{name} {1000 * m['median_s']:.1f} ms" for name, m in figures.items()),
            flush=True,
        )
    return results


def spread(values: list[float], unit: float = 1.0, digits: int = 1) -> str:
    values = [v * unit for v in values]
    return f"{statistics.median(values):.{digits}f} ({min(values):.{digits}f}–{max(values):.{digits}f})"


def summary(results: list[dict]) -> list[str]:
    lines = ["", "median step, ms (min–max over rounds):"]
    for name in results[0]:
        lines.append(f"  {name:<16} {spread([r[name]['median_s'] for r in results], 1000)}")
    lines.append("ratios, per round (median (min–max)):")
    for label, a, b in (
        ("PASSIVE / default, idle", "idle/PASSIVE", "idle/default"),
        ("PASSIVE / default, busy", "busy/PASSIVE", "busy/default"),
        ("busy / idle, default", "busy/default", "idle/default"),
        ("busy / idle, PASSIVE", "busy/PASSIVE", "idle/PASSIVE"),
    ):
        lines.append(f"  {label:<26} {spread([r[a]['median_s'] / r[b]['median_s'] for r in results], digits=2)}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--quick", action="store_true", help="tiny shape, 1 warm-up + 3 steps, one round: a smoke run, no figures"
    )
    parser.add_argument(
        "--rounds", type=int, default=5, help="timed rounds (default 5; one warm-up round is discarded)"
    )
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps per process (default 3)")
    parser.add_argument("--steps", type=int, default=20, help="timed steps per process (default 20)")
    parser.add_argument("--json", help="also write every raw timing here")
    args = parser.parse_args(argv)
    shape = TINY if args.quick else MAIN_JOB
    rounds, warmup, steps = (1, 1, 3) if args.quick else (args.rounds, args.warmup, args.steps)
    print(
        f"shape {shape}, {rounds} round(s) of {steps} steps per process ({warmup} untimed), load average at start "
        f"{os.getloadavg()[0]:.2f}",
        flush=True,
    )
    results = run(rounds, shape, warmup, steps, warmup_round=not args.quick)
    print("\n".join(summary(results)))
    print(f"load average at the end {os.getloadavg()[0]:.2f}")
    if args.json:
        with open(args.json, "w") as out:
            json.dump({"shape": shape, "warmup": warmup, "steps": steps, "rounds": results}, out, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
