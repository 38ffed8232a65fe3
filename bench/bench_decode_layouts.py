"""Why batch-1 decoding reads two weights transposed: the matrix-vector products of one
decoding step in both layouts, as GB/s of weight bytes read (fp32).

    python bench/bench_decode_layouts.py [--vocab 50258 --hidden 256 --context 64]

Rows: the output layer as stored by nn.Linear, (V, d), against its (d, V) copy (what
`generate()` reads, see `DecodingLayouts` in hf_linear/masked_mixing.py), and one row of
the masked map as stored, (T·d, d), against its (d, T·d) copy; a plain read (sum) of the
output layer's bytes is the reference. Timed as bench_models.py times: the variants
interleaved round by round, median (min–max) over rounds; one thread count after the other.
"""

from __future__ import annotations

import argparse

import hf_linear  # noqa: F401  first: sets the OpenMP wait policy before torch loads (hf_linear/omp_policy.py)

# isort: split
import torch
import torch.nn.functional as F
from bench_models import fmt, measure  # beside this file (run as python bench/...)

CALLS_PER_SAMPLE = 50  # one timed sample: this many products (a single one lasts ~1 ms)


def repeated(fn):
    """One timed sample: `fn` called CALLS_PER_SAMPLE times."""

    def run():
        for _ in range(CALLS_PER_SAMPLE):
            fn()

    return run


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vocab", type=int, default=50258)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--context", type=int, default=64)
    parser.add_argument("--threads", type=int, nargs="+", default=[torch.get_num_threads()])
    parser.add_argument("--repeats", type=int, default=7, help="timed rounds (after one warm-up round)")
    args = parser.parse_args(argv)
    V, d, T = args.vocab, args.hidden, args.context
    torch.manual_seed(0)
    head, bias, h = torch.randn(V, d), torch.randn(V), torch.randn(1, d)
    head_t = head.t().contiguous()  # (d, V)
    row, x = torch.randn(T * d, d), torch.randn(1, T * d)  # (T·d, d): blocks W[T-1, j] stacked
    row_t = row.t().contiguous()  # (d, T·d)
    torch.testing.assert_close(torch.addmm(bias, h, head_t), F.linear(h, head, bias), rtol=1e-4, atol=1e-3)
    torch.testing.assert_close(F.linear(x, row_t), x @ row, rtol=1e-4, atol=1e-3)
    cases = [
        (f"output layer as stored ({V}, {d}): F.linear", head, lambda: F.linear(h, head, bias)),
        (f"output layer copy ({d}, {V}): addmm", head, lambda: torch.addmm(bias, h, head_t)),
        (f"map row as stored ({T * d}, {d}): x @ row", row, lambda: x @ row),
        (f"map row copy ({d}, {T * d}): F.linear", row, lambda: F.linear(x, row_t)),
        ("plain read of the output layer (sum)", head, lambda: head.sum()),
    ]
    # work per sample: the weight's bytes, read once per call
    variants = {name: (repeated(fn), CALLS_PER_SAMPLE * weight.numel() * 4) for name, weight, fn in cases}
    threads_before = torch.get_num_threads()
    try:
        with torch.no_grad():
            for threads in args.threads:
                torch.set_num_threads(threads)
                rounds = measure(variants, args.repeats)
                print(f"threads: {threads} (median (min–max) over {args.repeats} interleaved rounds)")
                for name in variants:
                    print(f"  {name:<48} {fmt(rounds.rates(name, 1e-9), ' GB/s')}")
    finally:
        torch.set_num_threads(threads_before)


if __name__ == "__main__":
    main()
