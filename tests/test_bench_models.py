"""Smoke tests of bench/bench_models.py's measurement helpers (not a benchmark: tiny shapes).

The FLOP counts are checked against torch's own FlopCounterMode on a real training step, and the
decoding byte count against the tensors the last-position path reads.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

_PATH = Path(__file__).resolve().parent.parent / "bench" / "bench_models.py"
_spec = importlib.util.spec_from_file_location("bench_models", _PATH)
bench = importlib.util.module_from_spec(_spec)
sys.modules["bench_models"] = bench  # dataclasses look their module up while the file executes
_spec.loader.exec_module(bench)


def test_interleave_alternates_order_and_drops_warmup():
    calls = []
    variants = {name: (lambda name=name: calls.append(name)) for name in "ABC"}
    seconds = bench.interleave(variants, repeats=3, warmup=1)
    assert calls == list("ABCCBAABCCBA")  # warm-up round, then 3 timed rounds
    assert {k: len(v) for k, v in seconds.items()} == {"A": 3, "B": 3, "C": 3}
    assert all(s >= 0 for v in seconds.values() for s in v)


def test_rounds_ratios_pair_samples_of_the_same_round():
    # A is 2x faster than B in every round although the load (absolute times) moves 3x
    rounds = bench.Rounds({"A": [1.0, 3.0, 2.0], "B": [2.0, 6.0, 4.0]}, {"A": 10, "B": 10})
    assert rounds.rates("A") == [10.0, 10 / 3, 5.0]
    assert rounds.ratios("A", "B") == pytest.approx([2.0, 2.0, 2.0])
    assert bench.summary(rounds.rates("A")) == {"median": 5.0, "min": 10 / 3, "max": 10.0}
    assert bench.fmt([1.5, 1.41, 2.0], "×") == "1.50× (1.41–2.00)"
    assert bench.fmt([302673.2, 89976.0, 1e6]) == "302,673 (89,976–1,000,000)"


def test_markdown_table_is_aligned():
    table = bench.markdown_table(["a", "bbb"], [["xx", "1"]]).splitlines()
    assert table == ["| a  | bbb |", "| -- | --- |", "| xx | 1   |"]


def test_masked_map_flops_count_the_unmasked_blocks():
    T, d = 5, 3
    by_loop = sum(2 * d * d for i in range(T) for j in range(i + 1))  # W[i, j] for j <= i
    assert bench.masked_map_useful_flops(T, d) == by_loop


@pytest.mark.parametrize("mlp", [True, False])
def test_training_flops_match_torch_flop_counter(mlp):
    """The executed FLOPs of both formulations are what FlopCounterMode sees in forward + backward
    (it counts matmuls only, as the bench does); the useful count is below both."""
    shape, batch = bench.Shape(mlp, 11, 10, 4), 3
    flops = bench.training_flops(shape, batch)
    ids = torch.randint(0, shape.vocab_size, (batch, shape.context_length))
    torch.manual_seed(0)
    for formulation, model in (("ours", shape.ours()), ("dense", shape.dense())):
        with FlopCounterMode(display=False) as counter:
            bench.loss_of(model, ids).backward()
        assert counter.get_total_flops() == flops[f"{formulation}_executed"], formulation
    assert flops["useful"] < flops["ours_executed"] < flops["dense_executed"]
    T, d = shape.context_length, shape.hidden_size
    assert bench.chunk_matmul_shape(shape, batch) == (batch, T * d, shape.ours().model.mixing.chunk_size * d)


def test_decode_bytes_are_the_tensors_the_last_position_reads():
    shape = bench.Shape(False, 13, 6, 4)
    model = shape.ours()
    T, d = shape.context_length, shape.hidden_size
    mixing, head = model.model.mixing, model.lm_head
    expected = mixing.row_weight(T - 1).numel() + d + head.weight.numel() + head.bias.numel() + T * d
    assert bench.decode_weight_bytes(shape, "last_position", 4) == 4 * expected
    assert bench.decode_weight_bytes(shape, "last_position", 2) == 2 * expected
    everything = sum(p.numel() for p in model.parameters()) - model.model.embed_tokens.weight.numel() + T * d
    assert bench.decode_weight_bytes(shape, "full_window_ours", 4) == 4 * everything


@pytest.mark.slow
def test_quick_run_writes_raw_timings(tmp_path, capsys):
    out = tmp_path / "bench.json"
    result = bench.main(["--quick", "--repeats", "1", "--bf16", "off", "--json", str(out)])
    printed = capsys.readouterr().out
    for heading in ("## 0. Peaks", "## 1. Training", "## 2. Greedy decoding", "## 3. Parameters", "MFU", "GB/s"):
        assert heading in printed
    saved = json.loads(out.read_text())
    assert saved["machine"] == result["machine"] and "native_bf16" in saved["machine"]
    assert saved["repeats"] == 1 and not saved["bf16_used"]
    for section in [saved["peaks"], *saved["training"], *saved["decoding"]]:
        assert section["seconds"] and all(len(v) == 1 for v in section["seconds"].values())
    assert "memory copy" in saved["decoding"][0]["seconds"]
    assert all("chunk matmul fp32" in t["seconds"] for t in saved["training"])


def test_decode_layouts_script_checks_both_layouts_and_prints_rates(capsys):
    """bench_decode_layouts.py (imports bench_models, registered above): each layout pair gives
    the same product (checked inside) and every case prints a median (min–max) rate."""
    path = _PATH.parent / "bench_decode_layouts.py"
    spec = importlib.util.spec_from_file_location("bench_decode_layouts", path)
    layouts = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(layouts)
    threads = torch.get_num_threads()
    layouts.main(["--vocab", "300", "--hidden", "16", "--context", "5", "--repeats", "2", "--threads", "1"])
    assert torch.get_num_threads() == threads  # the process's setting is given back
    lines = [line for line in capsys.readouterr().out.splitlines() if "GB/s" in line]
    assert len(lines) == 5 and all("(" in line and "–" in line for line in lines)


def test_data_path_script_checks_its_collators_agree_and_prints_each_path(capsys):
    """bench_data_path.py (imports bench_models, registered above) on tiny data: the old and the
    new collator give equal batches (checked inside), and each path prints ms and a ratio."""
    path = _PATH.parent / "bench_data_path.py"
    spec = importlib.util.spec_from_file_location("bench_data_path", path)
    data_path = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(data_path)
    data_path.main(["--train-size", "600", "--batch", "32", "--batches", "2", "--repeats", "2"])
    out = capsys.readouterr().out
    assert "-> input_ids, prompt_length" in out
    lines = [line for line in out.splitlines() if line.strip().endswith(")") and " ms (" in line]
    assert len(lines) == 3 and lines[0].rstrip().endswith("1.00× (1.00–1.00)")
