"""Side-by-side speed and size of hf-linear's models vs the authors' dense weight × mask formulation.

    python bench/bench_models.py            # about 4 minutes on 2 CPU cores
    python bench/bench_models.py --quick    # smaller batches, fewer steps (a smoke run)

Measured in one run on this machine, each row printing a ratio:
  1. training tokens/s (forward + backward + AdamW step), MLP shape T=307 d=32 V=117 and linear
     shape T=64 d=256 V=4096, fp32 and bf16 autocast for both formulations;
  2. greedy generation tokens/s at T=64 d=256 V=50258, batch 1 and 64: `generate()` (incremental:
     the window's last position per token) vs recomputing the full window per token, with our
     model and with the dense formulation;
  3. parameter count and fp32 checkpoint bytes of the paper's two configurations vs dense.

Both formulations run with fused AdamW (Trainer's default) and the same process-wide allocator
setting (`hf_linear.runtime.tune_cpu_allocator`, as `hf-linear train` uses).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import torch
import torch.nn.functional as F
from torch import nn

from hf_linear import LinearLMConfig, LinearLMForCausalLM, MLPLMConfig, MLPLMForCausalLM
from hf_linear.runtime import tune_cpu_allocator


class DenseMaskedLM(nn.Module):
    """The authors' formulation: a dense nn.Linear(T·d, T·d) whose weight is multiplied by the
    block-lower-triangular mask on every forward; inputs padded to T; all positions computed."""

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


def loss_of(model, ids):
    if isinstance(model, DenseMaskedLM):
        logits = model(ids)
        return F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1))
    return model(ids, labels=ids).loss


def training_tokens_per_s(model, vocab_size, batch, length, steps, bf16) -> float:
    # fused AdamW: what Trainer uses by default (optim='adamw_torch_fused' for torch >= 2.8)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.1, fused=True)
    ids = torch.randint(0, vocab_size, (batch, length), generator=torch.Generator().manual_seed(0))
    times = []
    for _ in range(steps + 1):  # the first step warms up allocator and optimizer state
        start = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = loss_of(model, ids)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - start)
    return batch * length / (sum(times[1:]) / steps)


@torch.no_grad()
def full_window_decode_tokens_per_s(model, prompt, new_tokens) -> float:
    """Greedy decoding that recomputes every position of the last-T window for each new token."""
    t = model.t if isinstance(model, DenseMaskedLM) else model.config.context_length
    ids = prompt
    start = time.perf_counter()
    for _ in range(new_tokens):
        window = ids[:, -t:]
        logits = model(window) if isinstance(model, DenseMaskedLM) else model(window).logits
        ids = torch.cat([ids, logits[:, -1].argmax(-1, keepdim=True)], dim=1)
    return prompt.shape[0] * new_tokens / (time.perf_counter() - start)


@torch.no_grad()
def generate_tokens_per_s(model, prompt, new_tokens) -> float:
    kwargs = dict(do_sample=False, pad_token_id=0, eos_token_id=None)
    model.generate(prompt, max_new_tokens=2, **kwargs)  # warm-up
    start = time.perf_counter()
    out = model.generate(prompt, max_new_tokens=new_tokens, min_new_tokens=new_tokens, **kwargs)
    elapsed = time.perf_counter() - start
    assert out.shape[1] == prompt.shape[1] + new_tokens
    return prompt.shape[0] * new_tokens / elapsed


def checkpoint_bytes(model) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        model.save_pretrained(tmp)
        return os.path.getsize(os.path.join(tmp, "model.safetensors"))


def row(*cells, widths=(34, 16, 16, 9)):
    print("| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths)) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller batches and fewer steps")
    args = parser.parse_args()
    torch.manual_seed(0)
    allocator = tune_cpu_allocator()  # process-wide: both formulations run with the same allocator
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, malloc tuned: {allocator}\n")

    print("## 1. Training tokens/s (forward + backward + AdamW step; higher is better)\n")
    row("shape / precision", "hf-linear", "dense × mask", "ratio")
    row("---", "---", "---", "---")
    shapes = [
        ("MLP T=307 d=32 V=117", dict(vocab_size=117, context_length=307, hidden_size=32), True, 32 if args.quick else 128),
        ("linear T=64 d=256 V=4096", dict(vocab_size=4096, context_length=64, hidden_size=256), False, 16 if args.quick else 64),
    ]
    steps = 2 if args.quick else 4
    for name, shape, mlp, batch in shapes:
        ours = (MLPLMForCausalLM(MLPLMConfig(**shape)) if mlp else LinearLMForCausalLM(LinearLMConfig(**shape)))
        dense = DenseMaskedLM(shape["vocab_size"], shape["context_length"], shape["hidden_size"], mlp)
        results = {}
        for bf16 in (False, True):
            results[bf16] = (
                training_tokens_per_s(ours, shape["vocab_size"], batch, shape["context_length"], steps, bf16),
                training_tokens_per_s(dense, shape["vocab_size"], batch, shape["context_length"], steps, bf16),
            )
            a, b = results[bf16]
            row(f"{name} {'bf16' if bf16 else 'fp32'} B={batch}", f"{a:,.0f}", f"{b:,.0f}", f"{a / b:.2f}×")
        a, b = results[True][0], results[False][1]
        row(f"{name} ours bf16 vs dense fp32", f"{a:,.0f}", f"{b:,.0f}", f"{a / b:.2f}×")
        del ours, dense

    print("\n## 2. Greedy generation tokens/s, T=64 d=256 V=50258 (prompt = 64 tokens; higher is better)\n")
    row("batch", "generate()", "full window", "ratio")
    row("---", "---", "---", "---")
    shape = dict(vocab_size=50258, context_length=64, hidden_size=256)
    ours = LinearLMForCausalLM(LinearLMConfig(**shape)).eval()
    dense = DenseMaskedLM(50258, 64, 256, mlp=False).eval()
    for batch in (1, 64):
        prompt = torch.randint(0, 50258, (batch, 64), generator=torch.Generator().manual_seed(1))
        incremental = generate_tokens_per_s(ours, prompt, 16 if args.quick else 64)
        slow_steps = 2 if args.quick else (8 if batch == 1 else 3)
        recompute = full_window_decode_tokens_per_s(ours, prompt, slow_steps)
        recompute_dense = full_window_decode_tokens_per_s(dense, prompt, slow_steps)
        row(f"B={batch}: vs hf-linear full window", f"{incremental:,.1f}", f"{recompute:,.1f}", f"{incremental / recompute:.1f}×")
        row(f"B={batch}: vs dense × mask full window", f"{incremental:,.1f}", f"{recompute_dense:,.1f}", f"{incremental / recompute_dense:.1f}×")
    del dense

    print("\n## 3. Parameters and fp32 checkpoint size (paper configurations)\n")
    row("model", "hf-linear", "dense × mask", "ratio")
    row("---", "---", "---", "---")
    for name, config in (("LinearLM T=64 d=256 V=50258", LinearLMConfig()), ("MLPLM T=307 d=128 V=117", MLPLMConfig())):
        t, d, v = config.context_length, config.hidden_size, config.vocab_size
        dense_params = v * d + (t * d) ** 2 + t * d + d * v + v + (d * d + d if config.model_type == "mlp_lm" else 0)
        with torch.device("meta"):
            params = (MLPLMForCausalLM if config.model_type == "mlp_lm" else LinearLMForCausalLM)(config).num_parameters()
        row(name + " params", f"{params / 1e6:,.1f}M", f"{dense_params / 1e6:,.1f}M", f"{params / dense_params:.2f}×")
    ckpt = checkpoint_bytes(ours)
    dense_bytes = 4 * (sum(p.numel() for p in DenseMaskedLM(50258, 64, 256, mlp=False).parameters()))
    row("LinearLM checkpoint (safetensors)", f"{ckpt / 2**20:,.0f} MiB", f"{dense_bytes / 2**20:,.0f} MiB", f"{ckpt / dense_bytes:.2f}×")


if __name__ == "__main__":
    main()
