"""Training throughput of the LinearLM at the long-multiplication shapes, against the weight-traffic
bound, and torch.compile of the training step against eager.

    python bench/bench_linear_throughput.py                  # 44 s on 2 quiet cores of an AMD EPYC without
                                                             # native bf16 (2026-12-07), 18 s of it inductor compiling
    python bench/bench_linear_throughput.py --quick          # tiny shapes: a smoke run (< 20 s)
    python bench/bench_linear_throughput.py --json out.json  # also every raw timing and the machine
    python bench/bench_linear_throughput.py --no-compile     # the batch sweep only

Shapes (d = 8, V = 13): multiplication of operands below 10^8 from the optimised CoT (T = 868
with [EOS]: configs/cpu/program_mul100000000_linear_optimized.yaml) and below 10^12 (T = 1,804);
batches 16, 32, 64, 128. The step is the one `hf-linear train` runs: forward with labels, backward,
gradient clipping at 1, fused AdamW (Trainer's default), bf16 autocast where the CPU has native
bf16 (`hf_linear.runtime.cpu_has_native_bf16()`, else fp32; --bf16 overrides).

At d = 8 the step moves the masked map's T(T+1)/2·d² weights several times and multiplies each
by only a batch of rows: it is bound by memory traffic, not arithmetic. `weight_traffic_bytes`
counts the least a step must move; that count over the copy bandwidth measured in the same rounds
(STREAM's copy: bytes read + written) is the fastest a step can be, and tokens/s at that speed is
the bound each batch is compared with (per round). The bytes do not depend on the batch, so the
bound grows with it until the step turns compute-bound: the batch that maximises tokens/s is
printed with its ratio to the bound.

torch.compile: `torch.compile(model)` (what Trainer's `torch_compile: true` does) against the same
model eager, interleaved, at the 10^8 shape and its best batch; `torch._dynamo.explain` names the
graph breaks. --quick compiles with the aot_eager backend (no code generation: it checks the
path, not the speed).

Method as bench/bench_models.py (interleaved rounds, one warm-up round discarded, median and
min–max; ratios per round) and its helpers.
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import os
import statistics
import time

import hf_linear  # noqa: F401  first: sets the OpenMP wait policy before torch loads (hf_linear/omp_policy.py)

# isort: split
import torch
from bench_models import copy_sample, fmt, markdown_table, measure, num  # beside this file (run as python bench/...)

from hf_linear import LinearLMConfig, LinearLMForCausalLM
from hf_linear.runtime import cpu_has_native_bf16, machine_description, tune_cpu_allocator

# (T, V, d): windows of compile_program("multiplication", limit, optimize=True) with [EOS]
SHAPES = {"operands < 10^8": (868, 13, 8), "operands < 10^12": (1804, 13, 8)}
BATCHES = (16, 32, 64, 128)
QUICK_SHAPES = {"tiny T=64": (64, 13, 8), "tiny T=96": (96, 13, 8)}
QUICK_BATCHES = (4, 8)
COPY_BYTES, QUICK_COPY_BYTES = 256 * 2**20, 32 * 2**20
# the recipe of the LinearLM multiplications (configs/cpu/program_mul10000_linear.yaml)
LEARNING_RATE, BETA2, MAX_GRAD_NORM = 1e-2, 0.95, 1.0


def build(shape: tuple[int, int, int]) -> tuple[LinearLMForCausalLM, torch.optim.Optimizer]:
    T, V, d = shape
    torch.manual_seed(0)
    model = LinearLMForCausalLM(LinearLMConfig(vocab_size=V, context_length=T, hidden_size=d)).train()
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=LEARNING_RATE, betas=(0.9, BETA2), weight_decay=0.0, fused=True
    )
    return model, optimizer


def training_step(model, optimizer, ids: torch.Tensor, bf16: bool, forward=None):
    """One training step as Trainer runs it; `forward`: the module to call (a compiled one)."""
    forward = model if forward is None else forward

    def step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = forward(input_ids=ids, labels=ids).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), MAX_GRAD_NORM)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step


def token_ids(shape: tuple[int, int, int], batch: int) -> torch.Tensor:
    T, V, _ = shape
    return torch.randint(0, V, (batch, T), generator=torch.Generator().manual_seed(0))  # (B, T)


# --------------------------------------------------------------------------------------------
# Bytes per step


def masked_map_weights(T: int, d: int) -> int:
    return T * (T + 1) // 2 * d * d


def gathered_weights(T: int, d: int) -> int:
    """Entries of the chunk matrices the training schedule gathers (hf_linear.masked_mixing: ~8
    chunks of c positions, chunk [s, e) an (e·d, (e-s)·d) matrix): the stored blocks plus each
    chunk's zeroed upper triangle."""
    c = max(1, -(-T // 8))
    return sum(e * (e - s) * d * d for s, e in ((s, min(s + c, T)) for s in range(0, T, c)))


def weight_traffic_bytes(T: int, d: int, parameters: int, matmul_bytes: int) -> int:
    """The least a training step moves, P = the masked map's weights, s = bytes of the matmul dtype
    (2 under bf16 autocast, 4 in fp32), 4 bytes an fp32 parameter or optimizer state:

        forward    read W                                         s·P
        backward   read W (input gradient), write dW              2·s·P
        AdamW      read W, dW, m, v; write W, m, v (fp32)         7 · 4 · parameters

    `parameters` counts every trainable tensor (the map's P and its bias, embedding, output layer)."""
    return 3 * matmul_bytes * masked_map_weights(T, d) + 7 * 4 * parameters


def implemented_traffic_bytes(T: int, d: int, parameters: int, matmul_bytes: int) -> int:
    """What this implementation's passes over the weights add up to (a count, not a measurement),
    with G = `gathered_weights` (≈ 1.125 P):

        bf16 only  cast W to bf16 (read 4P, write 2P); its gradient back (read 2P, write 4P)
        forward    gather the chunk matrices (read s·G, write s·G), the matmuls read them (s·G)
        backward   the matmuls read them (s·G) and write their gradient (s·G); inverse gather (s·P, s·P)
        clipping   the norm reads dW (4P), the scaling reads and writes it (8P)
        AdamW      7 · 4 · parameters, as in the bound"""
    P, G, s = masked_map_weights(T, d), gathered_weights(T, d), matmul_bytes
    casts = 12 * P if s == 2 else 0
    return casts + 5 * s * G + 2 * s * P + 12 * P + 7 * 4 * parameters


# --------------------------------------------------------------------------------------------
# Sections


def bench_batches(label: str, shape, batches, bf16: bool, copy_bytes: int, repeats: int) -> dict:
    """Tokens/s of every batch with the copy in the same rounds; each against the bound."""
    T, _, d = shape
    model, optimizer = build(shape)  # one model for every batch: a step's cost does not depend on the values
    parameters = sum(p.numel() for p in model.parameters())
    s = 2 if bf16 else 4
    bound_bytes = weight_traffic_bytes(T, d, parameters, s)
    implemented = implemented_traffic_bytes(T, d, parameters, s)
    variants = {f"B={b}": (training_step(model, optimizer, token_ids(shape, b), bf16), b * T) for b in batches}
    variants["copy"] = copy_sample(copy_bytes)
    rounds = measure(variants, repeats)
    rows, best = [], None
    for b in batches:
        name = f"B={b}"
        tokens = rounds.rates(name)
        # tokens/s ÷ (copy bytes/s × tokens per step ÷ bound bytes per step), per round
        ratio = rounds.ratios(name, "copy", bound_bytes / (b * T) * 100)
        bound = [c * b * T / bound_bytes for c in rounds.rates("copy")]
        median = statistics.median(tokens)
        if best is None or median > best[1]:
            best = (b, median, ratio)
        rows.append(
            [
                f"{label} B={b}",
                fmt([1000 * x for x in rounds.seconds[name]], " ms"),
                fmt(tokens),
                fmt(bound),
                fmt(ratio, "%"),
            ]
        )
    print(
        f"\n### {label}: T = {T:,}, d = {d}, masked map {masked_map_weights(T, d):,} weights "
        f"({parameters:,} parameters), {'bf16 autocast' if bf16 else 'fp32'}\n"
    )
    print(
        f"bound: {bound_bytes / 1e9:.2f} GB a step (`weight_traffic_bytes`) at the copy's "
        f"{fmt(rounds.rates('copy', 1e-9), ' GB/s')}; this implementation's passes: {implemented / 1e9:.2f} GB "
        f"({implemented / bound_bytes:.2f}× the bound)\n"
    )
    print(markdown_table(["shape, batch", "step", "tokens/s", "bound tokens/s", "of the bound"], rows))
    b, tokens, ratio = best
    print(f"\nbest batch: {b} ({num(tokens)} tokens/s, {fmt(ratio, '%')} of the bound)")
    result = {
        "label": label,
        "shape": {"T": T, "V": shape[1], "d": d},
        "parameters": parameters,
        "bound_bytes_per_step": bound_bytes,
        "implemented_bytes_per_step": implemented,
        "best_batch": b,
        **rounds.to_json(),
    }
    del model, optimizer, variants, rounds
    gc.collect()
    return result


def graph_breaks(model, ids: torch.Tensor, bf16: bool) -> dict:
    """`torch._dynamo.explain` of the forward with labels: graphs, breaks and their reasons."""
    import torch._dynamo

    torch._dynamo.reset()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        explained = torch._dynamo.explain(model)(input_ids=ids, labels=ids)
    reasons = []
    for reason in explained.break_reasons:
        frame = reason.user_stack[-1] if reason.user_stack else None
        where = f" ({os.path.basename(frame.filename)}:{frame.lineno})" if frame else ""
        text = reason.reason.strip().splitlines()[0][:160] + where
        if text not in reasons:
            reasons.append(text)
    torch._dynamo.reset()
    return {"graphs": explained.graph_count, "graph_breaks": explained.graph_break_count, "reasons": reasons}


def bench_compile(label: str, shape, batch: int, bf16: bool, repeats: int, backend: str) -> dict:
    """Eager against torch.compile(model) on one model and optimizer, interleaved."""
    logging.getLogger("torch._dynamo").setLevel(logging.ERROR)  # the breaks are listed below, once each
    model, optimizer = build(shape)
    ids = token_ids(shape, batch)
    breaks = graph_breaks(model, ids, bf16)
    compiled = torch.compile(model, backend=backend)
    eager_step = training_step(model, optimizer, ids, bf16)
    compiled_step = training_step(model, optimizer, ids, bf16, forward=compiled)
    start = time.perf_counter()
    compiled_step()  # compiles forward and backward
    compile_seconds = time.perf_counter() - start
    tokens = batch * shape[0]
    rounds = measure({"eager": (eager_step, tokens), "compiled": (compiled_step, tokens)}, repeats)
    print(f"\n## 2. torch.compile (backend {backend}) of the training step vs eager: {label}, B={batch}\n")
    print(
        markdown_table(
            ["step", "tokens/s", "compiled ÷ eager (per round)"],
            [
                ["eager", fmt(rounds.rates("eager")), "–"],
                ["torch.compile(model)", fmt(rounds.rates("compiled")), fmt(rounds.ratios("compiled", "eager"), "×")],
            ],
        )
    )
    print(f"\ncompiling (first step): {compile_seconds:.1f} s")
    print(f"torch._dynamo.explain: {breaks['graphs']} graph(s), {breaks['graph_breaks']} graph break(s)")
    for reason in breaks["reasons"]:
        print(f"  - {reason}")
    result = {
        "label": label,
        "batch": batch,
        "backend": backend,
        "compile_seconds": compile_seconds,
        **breaks,
        **rounds.to_json(),
    }
    del model, optimizer, compiled, rounds
    gc.collect()
    return result


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny shapes, 1 round: a smoke run (< 20 s)")
    parser.add_argument("--repeats", type=int, default=None, help="timed rounds (default 3; --quick 1)")
    parser.add_argument(
        "--bf16", choices=("auto", "on", "off"), default="auto", help="auto: where the CPU has native bf16"
    )
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile section")
    parser.add_argument(
        "--compile-backend", default=None, help="torch.compile backend (default inductor; --quick aot_eager)"
    )
    parser.add_argument("--json", metavar="PATH", help="write all raw timings and the machine to PATH")
    args = parser.parse_args(argv)
    if args.repeats is not None and args.repeats < 1:
        parser.error("--repeats must be >= 1")
    repeats = args.repeats or (1 if args.quick else 3)
    shapes, batches = (QUICK_SHAPES, QUICK_BATCHES) if args.quick else (SHAPES, BATCHES)
    copy_bytes = QUICK_COPY_BYTES if args.quick else COPY_BYTES
    backend = args.compile_backend or ("aot_eager" if args.quick else "inductor")
    native = cpu_has_native_bf16()
    bf16 = {"auto": native, "on": True, "off": False}[args.bf16]

    allocator = tune_cpu_allocator()  # as `hf-linear train` runs
    machine = machine_description()
    load = os.getloadavg()
    started = time.perf_counter()
    print(
        f"machine: {machine['cpu']}, {machine['threads']} torch threads, native bf16: {native}; torch "
        f"{torch.__version__}; malloc tuned: {allocator}; load average at start {load[0]:.2f} on {os.cpu_count()} CPUs"
    )
    print(
        f"precision: {'bf16 autocast' if bf16 else 'fp32'}"
        + ("" if bf16 == native else " (forced; bf16 is emulated without native support)" if bf16 else " (forced)")
    )
    print(f"method: {repeats} interleaved round(s) after 1 warm-up round; median (min–max); ratios per round")
    print("\n## 1. Training tokens/s against the weight-traffic bound (higher is better)")
    sweeps = [bench_batches(label, shape, batches, bf16, copy_bytes, repeats) for label, shape in shapes.items()]
    compiled = None
    if not args.no_compile:
        label, shape = next(iter(shapes.items()))
        compiled = bench_compile(label, shape, sweeps[0]["best_batch"], bf16, repeats, backend)
    seconds = time.perf_counter() - started
    print(f"\ntotal {seconds:.0f} s; load average at the end {os.getloadavg()[0]:.2f}")
    record = {
        "machine": machine,
        "torch": torch.__version__,
        "precision": "bf16" if bf16 else "fp32",
        "repeats": repeats,
        "batches": sweeps,
        "compile": compiled,
        "seconds": seconds,
    }
    if args.json:
        with open(args.json, "w") as out:
            json.dump(record, out, indent=1)
    return record


if __name__ == "__main__":
    main()
