"""Why batch-1 decoding reads two weights transposed: the matrix-vector products of one
decoding step in both layouts, as GB/s of weight bytes read (fp32).

    python bench/bench_decode_layouts.py [--vocab 50258 --hidden 256 --context 64]

Rows: the output layer as stored by nn.Linear, (V, d), against its (d, V) copy (what
`generate()` reads, see `decoding_layout` in hf_linear/modeling_hf_linear.py), and one row of
the masked map as stored, (T·d, d), against its (d, T·d) copy; a plain read (sum) of the
output layer's bytes is the reference. Alone on the machine, one thread count after the other.
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F


def milliseconds(fn, repeats: int = 200) -> float:
    for _ in range(10):
        fn()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats * 1e3


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vocab", type=int, default=50258)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--context", type=int, default=64)
    parser.add_argument("--threads", type=int, nargs="+", default=[torch.get_num_threads()])
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
    with torch.no_grad():
        for threads in args.threads:
            torch.set_num_threads(threads)
            print(f"threads: {threads}")
            for name, weight, fn in cases:
                ms = milliseconds(fn)
                print(f"  {name:<48} {ms:7.3f} ms  {weight.numel() * 4 / ms / 1e6:6.1f} GB/s")


if __name__ == "__main__":
    main()
