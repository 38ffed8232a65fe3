"""Speed and size of hf-linear's models vs the authors' dense weight × mask formulation,
measured so that the figures hold still on a shared machine.

    python bench/bench_models.py                      # estimated 3-5 minutes on 2 quiet CPU cores
    python bench/bench_models.py --json out.json      # also write every raw timing
    python bench/bench_models.py --quick              # tiny shapes, 2 repeats (a smoke run, seconds)

Method (why the old one-after-the-other figures moved 2x between runs: other processes change
the machine's load over seconds to minutes, and a figure measured a minute after another sees a
different machine):

* Interleaving. All variants compared in a table run once per *round* (A B C, then C B A, …);
  one warm-up round is discarded, then --repeats rounds are timed. Every figure is the median of
  its rounds with min–max; a ratio is computed per round (A and B of the same round saw nearly
  the same load), then its median and min–max. Alternating the order cancels a steady drift
  that would otherwise favour whichever variant always ran first.
* Reference ceilings measured in the same run: fp32 and bf16 matmul peaks (4096²), a matmul of
  the masked map's chunk shape inside the training rounds, and a large memory copy inside the
  decoding rounds. So FLOP/s are also given as a fraction of a matmul peak (MFU) and decoding
  bandwidth as a fraction of copy bandwidth.
* Precision per machine. bf16 runs only where the CPU has native bf16 matmuls (avx512_bf16 or
  amx_bf16, `hf_linear.runtime.cpu_has_native_bf16()`); without them oneDNN emulates bf16 at
  ~1/60 of fp32 speed, which measures the emulation, not the models. --bf16 on/off overrides.

Sections:
  0. peaks: fp32 / bf16 matmul GFLOP/s, memory copy GB/s;
  1. training tokens/s (forward + backward + fused AdamW step) of both formulations, and the
     useful FLOP/s of the step against the matmul peaks;
  2. greedy decoding at T=64 d=256 V=50258: `generate()` (the window's last position per new
     token) vs recomputing the full window; at batch 1 also the bytes of weights read per token
     × tokens/s = achieved bandwidth against the copy bandwidth;
  3. parameter count and fp32 checkpoint bytes (deterministic, not timed).

Both formulations run with fused AdamW (Trainer's default) and the same process-wide allocator
setting (`hf_linear.runtime.tune_cpu_allocator`, as `hf-linear train` uses).
"""

from __future__ import annotations

import argparse
import copy
import gc
import json
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import hf_linear  # noqa: F401  first: sets the OpenMP wait policy before torch loads (hf_linear/omp_policy.py)

# isort: split
import torch
import torch.nn.functional as F
from torch import nn

from hf_linear import LinearLMConfig, LinearLMForCausalLM, MLPLMConfig, MLPLMForCausalLM
from hf_linear.masked_mixing import MaskedPositionMixing, num_masked_map_blocks
from hf_linear.runtime import (
    cpu_has_native_bf16,
    machine_description,
    tune_cpu_allocator,
)

# --------------------------------------------------------------------------------------------
# The authors' formulation


class DenseMaskedLM(nn.Module):
    """The authors' formulation: a dense nn.Linear(T·d, T·d) whose weight is multiplied by the
    block-lower-triangular mask on every forward; inputs padded to T; all positions computed.
    With mlp=True, ReLU → Linear(d, d) → ReLU after the map (the MLP model, one hidden layer)."""

    def __init__(self, vocab_size: int, context_length: int, hidden_size: int, mlp: bool):
        super().__init__()
        t, d = context_length, hidden_size
        self.t, self.d, self.mlp = t, d, mlp
        self.embed = nn.Embedding(vocab_size, d)
        self.mixing = nn.Linear(t * d, t * d)
        self.register_buffer("mask", torch.kron(torch.tril(torch.ones(t, t)), torch.ones(d, d)), persistent=False)
        self.hidden = nn.Linear(d, d) if mlp else None
        self.out = nn.Linear(d, vocab_size)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        B, L = ids.shape  # L ≤ T
        x = F.pad(self.embed(ids), (0, 0, 0, self.t - L)).reshape(B, self.t * self.d)
        h = F.linear(x, self.mixing.weight * self.mask, self.mixing.bias).view(B, self.t, self.d)[:, :L]
        if self.mlp:
            h = F.relu(self.hidden(F.relu(h)))
        return self.out(h)


def logits_of(model, ids: torch.Tensor) -> torch.Tensor:
    return model(ids) if isinstance(model, DenseMaskedLM) else model(ids).logits


def loss_of(model, ids: torch.Tensor) -> torch.Tensor:
    if isinstance(model, DenseMaskedLM):
        logits = model(ids)
        return F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1))
    return model(ids, labels=ids).loss


@dataclass(frozen=True)
class Shape:
    """One model shape; `ours()` and `dense()` build the two formulations of it."""

    mlp: bool
    vocab_size: int
    context_length: int
    hidden_size: int

    @property
    def label(self) -> str:
        return f"{'MLP' if self.mlp else 'linear'} T={self.context_length} d={self.hidden_size} V={self.vocab_size}"

    def config(self) -> LinearLMConfig:
        kwargs = {"vocab_size": self.vocab_size, "context_length": self.context_length, "hidden_size": self.hidden_size}
        return MLPLMConfig(**kwargs) if self.mlp else LinearLMConfig(**kwargs)

    def ours(self) -> LinearLMForCausalLM:
        return (MLPLMForCausalLM if self.mlp else LinearLMForCausalLM)(self.config())

    def dense(self) -> DenseMaskedLM:
        return DenseMaskedLM(self.vocab_size, self.context_length, self.hidden_size, self.mlp)


# --------------------------------------------------------------------------------------------
# Measurement helpers: interleaved rounds, medians with ranges, per-round ratios


def interleave(variants: dict[str, Callable[[], object]], repeats: int, warmup: int = 1) -> dict[str, list[float]]:
    """Seconds of each variant over `repeats` rounds, after `warmup` discarded rounds.

    Every round runs every variant once: in the given order on even rounds, reversed on odd ones.
    Round r of every list belongs together (same load), which is what `Rounds.ratios` pairs up.
    """
    names = list(variants)
    seconds: dict[str, list[float]] = {name: [] for name in names}
    for r in range(warmup + repeats):
        for name in names if r % 2 == 0 else reversed(names):
            start = time.perf_counter()
            variants[name]()
            elapsed = time.perf_counter() - start
            if r >= warmup:
                seconds[name].append(elapsed)
    return seconds


def summary(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


@dataclass
class Rounds:
    """Timed samples of several variants measured in the same rounds.

    seconds[name][r]: duration of round r's sample; work[name]: units per sample (tokens, FLOPs
    or bytes, see the caller), so that work / seconds is a rate.
    """

    seconds: dict[str, list[float]]
    work: dict[str, float]

    def rates(self, name: str, scale: float = 1.0) -> list[float]:
        return [scale * self.work[name] / s for s in self.seconds[name]]

    def ratios(self, a: str, b: str, scale: float = 1.0) -> list[float]:
        """scale × rate(a) / rate(b), one per round: rates of the same round are compared."""
        return [scale * ra / rb for ra, rb in zip(self.rates(a), self.rates(b))]

    def to_json(self) -> dict:
        return {"seconds": self.seconds, "work_per_sample": self.work}


def measure(variants: dict[str, tuple[Callable[[], object], float]], repeats: int) -> Rounds:
    """variants: name → (run one sample, work per sample). Interleaved, see `interleave`."""
    seconds = interleave({name: run for name, (run, _) in variants.items()}, repeats)
    return Rounds(seconds, {name: work for name, (_, work) in variants.items()})


def num(x: float) -> str:
    """About 3 significant digits, thousands separated: 302,673 / 89.9 / 1.41 / 0.0123."""
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    if abs(x) >= 100:
        return f"{x:.0f}"
    if abs(x) >= 10:
        return f"{x:.1f}"
    if abs(x) >= 1:
        return f"{x:.2f}"
    return f"{x:.3g}"


def fmt(values: list[float], suffix: str = "") -> str:
    """'median (min–max)' of per-round values."""
    s = summary(values)
    return f"{num(s['median'])}{suffix} ({num(s['min'])}–{num(s['max'])})"


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths)) + " |"

    return "\n".join([line(header), line(["-" * w for w in widths]), *map(line, rows)])


# --------------------------------------------------------------------------------------------
# Work counts: FLOPs of a training step, bytes read per decoded token


def chunk_size(shape: Shape) -> int:
    """Positions per chunk of the masked map's training schedule, as the model chooses it."""
    with torch.device("meta"):  # no memory: only the constructor's choice is wanted
        return MaskedPositionMixing(
            shape.context_length, shape.hidden_size, shape.config().mixing_chunk_size
        ).chunk_size


def matmul_flops(m: int, k: int, n: int) -> int:
    return 2 * m * k * n


def masked_map_useful_flops(length: int, hidden_size: int) -> int:
    """Forward FLOPs of the masked map for one sequence of `length` positions: output i reads the
    i+1 unmasked d×d blocks W[i, 0..i], i.e. length(length+1)/2 blocks of d² multiply-adds."""
    return 2 * num_masked_map_blocks(length) * hidden_size**2


def training_flops(shape: Shape, batch: int) -> dict[str, int]:
    """FLOPs of one training step on (batch, T) sequences.

    useful: what the model mathematically needs — masked map (unmasked blocks only), the MLP's
    per-position layer, the output layer; forward + backward = 3 × forward (backward computes
    the gradients of both the input and the weight of each matmul; the embedding output needs its
    gradient too). Not counted (no matmul: memory-bound elementwise work): the embedding lookup
    and its scatter-add backward, biases, ReLU, the cross-entropy, the weight × mask product of
    the dense formulation, AdamW.
    ours_executed / dense_executed: what each formulation's matmuls really multiply: ours
    computes the chunk schedule's diagonal blocks in full (≈ +c/T), dense the whole (T·d)² map.
    """
    T, d, V = shape.context_length, shape.hidden_size, shape.vocab_size
    chunk = chunk_size(shape)
    per_position = matmul_flops(1, d, V) + (matmul_flops(1, d, d) if shape.mlp else 0)
    rest = batch * T * per_position
    useful_map = batch * masked_map_useful_flops(T, d)
    chunks = [(s, min(s + chunk, T)) for s in range(0, T, chunk)]
    ours_map = sum(matmul_flops(batch, e * d, (e - s) * d) for s, e in chunks)
    dense_map = matmul_flops(batch, T * d, T * d)
    return {
        "useful": 3 * (useful_map + rest),
        "ours_executed": 3 * (ours_map + rest),
        "dense_executed": 3 * (dense_map + rest),
    }


def chunk_matmul_shape(shape: Shape, batch: int) -> tuple[int, int, int]:
    """(m, k, n) of the masked map's largest training matmul: the last chunk of c positions reads
    the whole window, (B, T·d) @ (T·d, c·d)."""
    T, d = shape.context_length, shape.hidden_size
    return batch, T * d, min(chunk_size(shape), T) * d


def decode_weight_bytes(shape: Shape, formulation: str, element_size: int) -> int:
    """Bytes of parameters (and the dense mask) one decoding step reads at least once for one new
    token, window full (n = T tokens), batch 1.

    last_position (ours, generate()): row T-1 of the masked map (T blocks of d²) and its bias,
    the output layer (d×V + V) and the T embedding rows of the window.
    full_window_ours: all T(T+1)/2 blocks and T biases instead of one row.
    full_window_dense: the dense (T·d)² weight and its (T·d)² mask (both read every forward;
    their product is written and read again, not counted) and T·d biases.
    A lower bound on traffic: activations, logits and the gather copies are not counted.
    """
    T, d, V = shape.context_length, shape.hidden_size, shape.vocab_size
    common = d * V + V + T * d  # output layer + embeddings of the window
    mixing = {
        "last_position": T * d * d + d,
        "full_window_ours": num_masked_map_blocks(T) * d * d + T * d,
        "full_window_dense": 2 * (T * d) ** 2 + T * d,
    }[formulation]
    return element_size * (mixing + common)


# --------------------------------------------------------------------------------------------
# Samples: each callable runs one sample of work


def matmul_sample(m: int, k: int, n: int, dtype: torch.dtype) -> tuple[Callable[[], object], int]:
    a, b = torch.randn(m, k).to(dtype), torch.randn(k, n).to(dtype)
    out = torch.empty(m, n, dtype=dtype)
    return (lambda: torch.mm(a, b, out=out)), matmul_flops(m, k, n)


def copy_sample(nbytes: int) -> tuple[Callable[[], object], int]:
    """A large fp32 tensor copy (far beyond the caches); work = bytes read + bytes written, as in
    STREAM's copy. Both buffers are touched first so page faults are not timed."""
    src = torch.ones(nbytes // 4)
    dst = torch.zeros_like(src)
    return (lambda: dst.copy_(src)), 2 * src.numel() * 4


def training_sample(model, optimizer, ids: torch.Tensor, bf16: bool) -> Callable[[], None]:
    def step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = loss_of(model, ids)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step


@torch.no_grad()
def full_window_decode(model, prompt: torch.Tensor, new_tokens: int, T: int) -> None:
    """Greedy decoding that recomputes every position of the last-T window for each new token."""
    ids = prompt
    for _ in range(new_tokens):
        logits = logits_of(model, ids[:, -T:])
        ids = torch.cat([ids, logits[:, -1].argmax(-1, keepdim=True)], dim=1)


@torch.no_grad()
def last_position_decode(model, prompt: torch.Tensor, new_tokens: int, T: int) -> None:
    """Greedy decoding with the model's last-position path and nothing else, reading the weights
    as stored. `generate()` differs by transformers' per-step bookkeeping (logits processors,
    stopping criteria) and by reading the output layer and the map's last row in their faster
    decoding layout (`hf_linear.masked_mixing.DecodingLayouts`, made once per call)."""
    ids = prompt
    for _ in range(new_tokens):
        logits = model(ids[:, -T:], logits_to_keep=1).logits
        ids = torch.cat([ids, logits[:, -1].argmax(-1, keepdim=True)], dim=1)


def generate_decode(model, prompt: torch.Tensor, new_tokens: int) -> None:
    out = model.generate(
        prompt, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False, pad_token_id=0, eos_token_id=None
    )
    assert out.shape[1] == prompt.shape[1] + new_tokens


def checkpoint_bytes(model) -> int:
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # keep stderr clean: this is a table, not a download
    with tempfile.TemporaryDirectory() as tmp:
        model.save_pretrained(tmp)
        return os.path.getsize(os.path.join(tmp, "model.safetensors"))


# --------------------------------------------------------------------------------------------
# Settings


@dataclass
class Settings:
    repeats: int
    bf16: bool
    peak_size: int  # n of the n×n×n matmul peaks
    emulated_bf16_size: int  # smaller n for the bf16 peak where bf16 is emulated (for the record)
    copy_bytes: int
    training: list[tuple[Shape, int]]  # (shape, batch)
    decode_shape: Shape
    decode_batches: tuple[int, ...]
    generate_tokens: int  # new tokens per sample of generate() / the last-position loop
    full_window_tokens: dict[int, int]  # batch → new tokens per sample of the full-window decoders


def settings(quick: bool, repeats: int | None, bf16: bool) -> Settings:
    if quick:  # tiny shapes that still exercise the chunk schedule (T > chunk) and the MLP layer
        return Settings(
            repeats=repeats or 2,
            bf16=bf16,
            peak_size=256,
            emulated_bf16_size=128,
            copy_bytes=64 * 2**20,
            training=[(Shape(True, 17, 24, 8), 8), (Shape(False, 64, 16, 16), 4)],
            decode_shape=Shape(False, 97, 8, 16),
            decode_batches=(1, 4),
            generate_tokens=4,
            full_window_tokens={1: 2, 4: 1},
        )
    # The sizes of bench/README.md: MLP shape T=307 d=32 V=117 at batch 128 (the README's earlier
    # figures) and 256 (the batch the multiplication models train with), linear T=64 d=256 V=4096
    # at 64 for training (the TinyStories map with a smaller output layer, as in the earlier
    # figures); decoding at the paper's TinyStories shape V=50258.
    return Settings(
        repeats=repeats or 7,
        bf16=bf16,
        peak_size=4096,
        emulated_bf16_size=1024,
        copy_bytes=256 * 2**20,
        training=[
            (Shape(True, 117, 307, 32), 128),
            (Shape(True, 117, 307, 32), 256),
            (Shape(False, 4096, 64, 256), 64),
        ],
        decode_shape=Shape(False, 50258, 64, 256),
        decode_batches=(1, 64),
        generate_tokens=32,
        full_window_tokens={1: 3, 64: 1},
    )


# --------------------------------------------------------------------------------------------
# Sections


def bench_peaks(s: Settings) -> tuple[Rounds, list[list[str]]]:
    native = cpu_has_native_bf16()
    bf16_n = s.peak_size if native else s.emulated_bf16_size
    variants = {
        "fp32 matmul": matmul_sample(s.peak_size, s.peak_size, s.peak_size, torch.float32),
        "bf16 matmul": matmul_sample(bf16_n, bf16_n, bf16_n, torch.bfloat16),
        "memory copy": copy_sample(s.copy_bytes),
    }
    rounds = measure(variants, s.repeats)
    rows = [
        [f"fp32 matmul {s.peak_size}²", fmt(rounds.rates("fp32 matmul", 1e-9), " GFLOP/s")],
        [
            f"bf16 matmul {bf16_n}²" + ("" if native else " (emulated: no avx512_bf16/amx_bf16)"),
            fmt(rounds.rates("bf16 matmul", 1e-9), " GFLOP/s"),
        ],
        [
            f"memory copy {s.copy_bytes / 2**20:,.0f} MiB (read + write)",
            fmt(rounds.rates("memory copy", 1e-9), " GB/s"),
        ],
    ]
    return rounds, rows


def bench_training(s: Settings, peaks: Rounds) -> tuple[list[dict], list[list[str]], list[list[str]]]:
    """Both formulations' training steps, fp32 (and bf16 autocast when enabled), with the chunk
    matmul of each precision, all in the same rounds."""
    precisions = ["fp32", "bf16"] if s.bf16 else ["fp32"]
    dtypes = {"fp32": torch.float32, "bf16": torch.bfloat16}
    peak = {p: statistics.median(peaks.rates(f"{p} matmul")) for p in precisions}
    records, speed_rows, flops_rows = [], [], []
    for shape, batch in s.training:
        torch.manual_seed(0)
        models = {"ours": shape.ours(), "dense": shape.dense()}
        # fused AdamW: what Trainer uses by default (optim='adamw_torch_fused' for torch >= 2.8).
        # fp32 and bf16 samples of one formulation share model and optimizer: the step's cost
        # does not depend on the weights' values.
        optimizers = {
            k: torch.optim.AdamW(m.parameters(), lr=1e-4, weight_decay=0.1, fused=True) for k, m in models.items()
        }
        ids = torch.randint(
            0, shape.vocab_size, (batch, shape.context_length), generator=torch.Generator().manual_seed(0)
        )
        tokens = batch * shape.context_length
        variants = {}
        for p in precisions:
            for k, model in models.items():
                variants[f"{k} {p}"] = (training_sample(model, optimizers[k], ids, p == "bf16"), tokens)
            variants[f"chunk matmul {p}"] = matmul_sample(*chunk_matmul_shape(shape, batch), dtypes[p])
        rounds = measure(variants, s.repeats)
        flops = training_flops(shape, batch)
        name = f"{shape.label} B={batch}"
        records.append(
            {
                "shape": shape.__dict__,
                "label": name,
                "batch": batch,
                "tokens_per_step": tokens,
                "flops_per_step": flops,
                "chunk_matmul_mkn": chunk_matmul_shape(shape, batch),
                "peak_flops_median": peak,
                **rounds.to_json(),
            }
        )

        for p in precisions:
            speed_rows.append(
                [
                    f"{name} {p}",
                    fmt(rounds.rates(f"ours {p}")),
                    fmt(rounds.rates(f"dense {p}")),
                    fmt(rounds.ratios(f"ours {p}", f"dense {p}"), "×"),
                ]
            )
        if s.bf16:
            speed_rows.append(
                [
                    f"{name} ours bf16 vs dense fp32",
                    fmt(rounds.rates("ours bf16")),
                    fmt(rounds.rates("dense fp32")),
                    fmt(rounds.ratios("ours bf16", "dense fp32"), "×"),
                ]
            )

        m, k, n = chunk_matmul_shape(shape, batch)
        for p in precisions:
            chunk = f"chunk matmul {p}"
            flops_rows.append(
                [
                    f"{name} {p}: chunk matmul ({m}, {k}) @ ({k}, {n})",
                    "–",
                    fmt(rounds.rates(chunk, 1e-9)),
                    fmt(rounds.rates(chunk, 100 / peak[p]), "%"),
                    "100%",
                    "1.00",
                ]
            )
            for formulation in models:
                v = f"{formulation} {p}"
                # the rate of `v` in useful FLOP/s: tokens/s × useful FLOPs per token
                scale = flops["useful"] / tokens
                flops_rows.append(
                    [
                        f"{name} {p}: {'hf-linear' if formulation == 'ours' else 'dense × mask'}",
                        num(flops["useful"] / 1e9),
                        fmt(rounds.rates(v, scale * 1e-9)),
                        fmt(rounds.rates(v, scale * 100 / peak[p]), "%"),
                        fmt(rounds.ratios(v, chunk, scale * 100), "%"),
                        f"{flops[f'{formulation}_executed'] / flops['useful']:.2f}",
                    ]
                )
        del models, optimizers, variants, rounds
        gc.collect()
    return records, speed_rows, flops_rows


def bench_decoding(s: Settings) -> tuple[list[dict], list[list[str]], list[list[str]], LinearLMForCausalLM]:
    """generate() vs full-window recompute at each batch; at batch 1 also the bandwidth figures.
    Returns the fp32 model too (section 3 saves it)."""
    shape, T = s.decode_shape, s.decode_shape.context_length
    torch.manual_seed(0)
    ours = shape.ours().eval()
    dense = shape.dense().eval()
    ours_bf16 = copy.deepcopy(ours).to(torch.bfloat16) if s.bf16 else None  # bf16 weights for inference
    records, ratio_rows, bandwidth_rows = [], [], []
    for batch in s.decode_batches:
        prompt = torch.randint(0, shape.vocab_size, (batch, T), generator=torch.Generator().manual_seed(1))
        n_gen, n_full = s.generate_tokens, s.full_window_tokens[batch]
        gen_tokens, full_tokens = batch * n_gen, batch * n_full
        # partial binds this iteration's prompt and token counts (a lambda would see the last ones)
        variants = {
            "generate fp32": (partial(generate_decode, ours, prompt, n_gen), gen_tokens),
            "full window ours fp32": (partial(full_window_decode, ours, prompt, n_full, T), full_tokens),
            "full window dense fp32": (partial(full_window_decode, dense, prompt, n_full, T), full_tokens),
        }
        if batch == 1:  # the bandwidth figures, with the copy in the same rounds
            variants["last-position loop fp32"] = (partial(last_position_decode, ours, prompt, n_gen, T), gen_tokens)
            if ours_bf16 is not None:
                variants["generate bf16"] = (partial(generate_decode, ours_bf16, prompt, n_gen), gen_tokens)
                variants["last-position loop bf16"] = (
                    partial(last_position_decode, ours_bf16, prompt, n_gen, T),
                    gen_tokens,
                )
            variants["memory copy"] = copy_sample(s.copy_bytes)
        rounds = measure(variants, s.repeats)
        record = {"batch": batch, "shape": shape.__dict__, "prompt_tokens": T, **rounds.to_json()}

        for ref, label in (("full window ours fp32", "hf-linear"), ("full window dense fp32", "dense × mask")):
            ratio_rows.append(
                [
                    f"B={batch}: generate() vs {label} full window",
                    fmt(rounds.rates("generate fp32")),
                    fmt(rounds.rates(ref)),
                    fmt(rounds.ratios("generate fp32", ref), "×"),
                ]
            )

        if batch == 1:
            weight_bytes = {}
            for v, formulation, size in (
                ("generate fp32", "last_position", 4),
                ("last-position loop fp32", "last_position", 4),
                ("generate bf16", "last_position", 2),
                ("last-position loop bf16", "last_position", 2),
                ("full window ours fp32", "full_window_ours", 4),
                ("full window dense fp32", "full_window_dense", 4),
            ):
                if v not in variants:
                    continue
                weight_bytes[v] = nbytes = decode_weight_bytes(shape, formulation, size)
                bandwidth_rows.append(
                    [
                        v,
                        fmt(rounds.rates(v)),
                        num(nbytes / 1e6),
                        fmt(rounds.rates(v, nbytes * 1e-9)),
                        fmt(rounds.ratios(v, "memory copy", nbytes * 100), "%"),
                    ]
                )
            bandwidth_rows.append(
                [
                    f"memory copy {s.copy_bytes / 2**20:,.0f} MiB (read + write)",
                    "–",
                    "–",
                    fmt(rounds.rates("memory copy", 1e-9)),
                    "100%",
                ]
            )
            record["weight_bytes_per_token"] = weight_bytes
        records.append(record)
        del variants, rounds
        gc.collect()
    return records, ratio_rows, bandwidth_rows, ours  # dense and ours_bf16 are freed on return


def bench_sizes(decode_model, decode_shape: Shape) -> tuple[dict, list[list[str]]]:
    rows, record = [], {}
    for name, config in (("LinearLM T=64 d=256 V=50258", LinearLMConfig()), ("MLPLM T=307 d=128 V=117", MLPLMConfig())):
        t, d, v = config.context_length, config.hidden_size, config.vocab_size
        dense_params = v * d + (t * d) ** 2 + t * d + d * v + v + (d * d + d if config.model_type == "mlp_lm" else 0)
        with torch.device("meta"):
            params = (MLPLMForCausalLM if config.model_type == "mlp_lm" else LinearLMForCausalLM)(
                config
            ).num_parameters()
        record[name] = {"params": params, "dense_params": dense_params}
        rows.append(
            [name + " params", f"{params / 1e6:,.1f}M", f"{dense_params / 1e6:,.1f}M", f"{params / dense_params:.2f}×"]
        )
    ckpt = checkpoint_bytes(decode_model)
    dense_bytes = 4 * sum(p.numel() for p in decode_shape.dense().parameters())
    record["checkpoint"] = {"shape": decode_shape.__dict__, "bytes": ckpt, "dense_fp32_bytes": dense_bytes}
    rows.append(
        [
            f"{decode_shape.label} checkpoint (safetensors)",
            f"{num(ckpt / 2**20)} MiB",
            f"{num(dense_bytes / 2**20)} MiB",
            f"{ckpt / dense_bytes:.2f}×",
        ]
    )
    return record, rows


# --------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny shapes and 2 repeats: a smoke run of seconds")
    parser.add_argument("--repeats", type=int, default=None, help="timed rounds per table (default 7; --quick 2)")
    parser.add_argument(
        "--bf16",
        choices=("auto", "on", "off"),
        default="auto",
        help="also measure bf16: auto = only where the CPU has native bf16 matmuls",
    )
    parser.add_argument("--json", metavar="PATH", help="write all raw timings and the machine to PATH")
    args = parser.parse_args(argv)
    if args.repeats is not None and args.repeats < 1:
        parser.error("--repeats must be >= 1")

    native = cpu_has_native_bf16()
    use_bf16 = {"auto": native, "on": True, "off": False}[args.bf16]
    s = settings(args.quick, args.repeats, use_bf16)
    torch.manual_seed(0)
    allocator = tune_cpu_allocator()  # process-wide: both formulations run with the same allocator
    machine = machine_description()
    # Other processes' load is what moves the figures: record it, so a noisy run explains itself.
    load_start = os.getloadavg()
    started = time.perf_counter()

    print(
        f"machine: {machine['cpu']}, {machine['threads']} torch threads, native bf16: {native} "
        f"(amx_bf16: {machine['amx_bf16']}); torch {torch.__version__}; malloc tuned: {allocator}; "
        f"load average at start {load_start[0]:.2f} (1 min) on {os.cpu_count()} CPUs"
    )
    if use_bf16:
        why = (
            "native bf16"
            if native
            else "forced with --bf16 on: bf16 is EMULATED here, its figures measure the emulation"
        )
        print(f"precision: fp32 and bf16 ({why})")
    else:
        why = "--bf16 off" if native else "no avx512_bf16/amx_bf16 on this CPU: bf16 would be emulated, ~60x slower"
        print(f"precision: fp32 only ({why})")
    print(
        f"method: {s.repeats} interleaved rounds after 1 warm-up round; figures are median (min–max) over rounds, "
        "ratios are per round then median (min–max)\n"
    )

    print("## 0. Peaks measured in this run\n")
    peaks, peak_rows = bench_peaks(s)
    print(markdown_table(["measurement", "median (min–max)"], peak_rows))

    print("\n## 1. Training tokens/s (forward + backward + fused AdamW step; higher is better)\n")
    training, speed_rows, flops_rows = bench_training(s, peaks)
    print(markdown_table(["shape / precision", "hf-linear", "dense × mask", "ratio (per round)"], speed_rows))
    print(
        "\nUseful FLOPs: the unmasked blocks only (T(T+1)/2 of d² per sequence) + MLP layer + output layer, "
        "forward + backward = 3× forward; the same count for both formulations. MFU = useful FLOP/s over the "
        "median matmul peak of section 0 in the same precision, and over the chunk-shape matmul measured in "
        "the same round. executed/useful: FLOPs the formulation's matmuls really multiply.\n"
    )
    print(
        markdown_table(
            [
                "shape / precision: formulation",
                "useful GFLOP/step",
                "useful GFLOP/s",
                "MFU vs peak",
                "vs chunk matmul (per round)",
                "executed/useful",
            ],
            flops_rows,
        )
    )

    shape = s.decode_shape
    print(
        f"\n## 2. Greedy decoding tokens/s, {shape.label} (prompt = {shape.context_length} tokens; higher is better)\n"
    )
    decoding, ratio_rows, bandwidth_rows, decode_model = bench_decoding(s)
    print(markdown_table(["batch: comparison", "generate()", "full window", "ratio (per round)"], ratio_rows))
    print(
        "\nBatch 1: bytes of weights read per new token (the window's last row of blocks + output layer + the "
        "window's embeddings; full window: all blocks, or the dense weight and mask) × tokens/s, against the "
        "memory copy measured in the same rounds.\n"
    )
    print(
        markdown_table(["B=1 decoder", "tokens/s", "MB/token", "GB/s", "of copy bandwidth (per round)"], bandwidth_rows)
    )

    print("\n## 3. Parameters and fp32 checkpoint size (paper configurations)\n")
    sizes, size_rows = bench_sizes(decode_model, shape)
    print(markdown_table(["model", "hf-linear", "dense × mask", "ratio"], size_rows))

    elapsed = time.perf_counter() - started
    load_end = os.getloadavg()
    print(f"\n(total {elapsed:,.0f} s; load average at end {load_end[0]:.2f} (1 min))")
    result = {
        "machine": machine,
        "torch": torch.__version__,
        "malloc_tuned": allocator,
        "args": vars(args),
        "bf16_used": use_bf16,
        "repeats": s.repeats,
        "warmup_rounds": 1,
        "peaks": peaks.to_json(),
        "training": training,
        "decoding": decoding,
        "sizes": sizes,
        "elapsed_seconds": elapsed,
        "load_average_start": load_start,
        "load_average_end": load_end,
    }
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(result, f, indent=1)
        print(f"raw timings: {args.json}")
    return result


if __name__ == "__main__":
    main()
