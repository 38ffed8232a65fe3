"""bench/bench_linear_throughput.py's counts and plumbing (not a benchmark: tiny shapes): its shapes
are the compiler's, its weight counts the model's and the chunk schedule's, a batch sweep reports
every batch against the bound, and --quick runs end to end."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch

from hf_linear.data.programs import compile_program

_BENCH = Path(__file__).resolve().parent.parent / "bench"


def load_script(name: str):
    """A bench script as a module (registered first: dataclasses and sibling imports look it up)."""
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, _BENCH / f"{name}.py")
        sys.modules[name] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(sys.modules[name])
    return sys.modules[name]


load_script("bench_models")  # imported by the bench as its sibling, as when run as a script
bench = load_script("bench_linear_throughput")


@pytest.mark.slow
def test_the_shapes_are_the_optimised_multiplications_windows():
    for (T, V, d), limit in zip(bench.SHAPES.values(), (10**8, 10**12)):
        program = compile_program("multiplication", limit, optimize=True)
        assert (T, V, d) == (program.length + 1, len(program.vocabulary), 8)


@pytest.mark.parametrize("T, d", [(5, 3), (17, 8), (868, 8)])
def test_weight_counts_are_the_models_and_the_chunk_schedules(T, d):
    model, _ = bench.build((T, 7, d))
    mixing = model.model.mixing
    assert bench.masked_map_weights(T, d) == mixing.weight.numel()
    (source, _, _), _ = mixing._chunk_layout(T, torch.device("cpu"))
    assert bench.gathered_weights(T, d) == source.numel() * d  # gathered rows of d entries each
    parameters = sum(p.numel() for p in model.parameters())
    P = mixing.weight.numel()
    assert bench.weight_traffic_bytes(T, d, parameters, 4) == 12 * P + 28 * parameters  # fp32: 3 passes of W
    assert bench.weight_traffic_bytes(T, d, parameters, 2) == 6 * P + 28 * parameters
    assert bench.implemented_traffic_bytes(T, d, parameters, 4) > bench.weight_traffic_bytes(T, d, parameters, 4)


def test_a_batch_sweep_puts_every_batch_against_the_bound(capsys):
    result = bench.bench_batches("tiny", (16, 13, 8), (2, 4), bf16=False, copy_bytes=2**20, repeats=2)
    assert result["best_batch"] in (2, 4)
    assert set(result["seconds"]) == {"B=2", "B=4", "copy"} and all(len(s) == 2 for s in result["seconds"].values())
    assert result["work_per_sample"]["B=4"] == 4 * 16 and result["work_per_sample"]["copy"] == 2 * 2**20
    printed = capsys.readouterr().out
    assert "tiny B=2" in printed and "tiny B=4" in printed and "best batch:" in printed


@pytest.mark.slow
def test_quick_runs_end_to_end_and_writes_json(tmp_path):
    out = tmp_path / "throughput.json"
    record = bench.main(["--quick", "--json", str(out)])
    assert json.loads(out.read_text())["precision"] == record["precision"]
    assert [sweep["label"] for sweep in record["batches"]] == list(bench.QUICK_SHAPES)
    compiled = record["compile"]
    assert compiled["backend"] == "aot_eager" and compiled["graphs"] >= 1
    assert len(compiled["reasons"]) <= compiled["graph_breaks"]
    assert len(compiled["seconds"]["eager"]) == len(compiled["seconds"]["compiled"]) == 1
