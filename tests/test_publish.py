"""`hf-linear publish RUN_DIR`: a finished run's evidence, everything but the weights, in reports/runs/NAME."""

from __future__ import annotations

from pathlib import Path

import pytest

from hf_linear.runtime import machine_description

CPUINFO = Path("/proc/cpuinfo")


@pytest.mark.skipif(not CPUINFO.is_file(), reason="no /proc/cpuinfo")
def test_machine_description_reads_the_cpu_model_and_its_flags():
    lines = CPUINFO.read_text().splitlines()
    model = next(line.split(":", 1)[1].strip() for line in lines if line.startswith("model name"))
    flags = set(next(line.split(":", 1)[1].split() for line in lines if line.startswith("flags")))
    machine = machine_description()
    assert machine["cpu"] == model
    assert machine["native_bf16"] == bool(flags & {"avx512_bf16", "amx_bf16"})
    assert machine["amx_bf16"] == ("amx_bf16" in flags)
