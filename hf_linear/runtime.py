"""Process-level settings that make CPU training of these models fast.

Each training step allocates and frees tensors of tens to hundreds of MB (the gathered chunk
weights of the masked map, their gradients). glibc serves allocations above 32 MB with fresh
mmap'd pages and unmaps them on free, so every step pays page faults for all of them: measured on
the MLP bench shape (T=307, d=32, batch 128, bf16) that is 0.27 s of kernel time in a 0.37 s step.
Keeping freed memory in the heap for reuse removes it (0.19 s per step). PyTorch's CPU tuning
guide recommends jemalloc/tcmalloc for the same reason; this needs no preloaded library.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform
import sys

import torch

_M_TRIM_THRESHOLD = -1  # glibc mallopt parameters (malloc.h)
_M_MMAP_MAX = -4
_tuned = False


def tune_cpu_allocator() -> bool:
    """Make glibc keep freed memory for reuse instead of returning it to the OS.

    Only on Linux with glibc; a no-op elsewhere or when HF_LINEAR_NO_MALLOC_TUNING=1.
    Peak memory is unchanged; the process keeps its high-water mark instead of shrinking.
    Returns True when the setting is in force.
    """
    global _tuned
    if _tuned:
        return True
    if not sys.platform.startswith("linux") or os.environ.get("HF_LINEAR_NO_MALLOC_TUNING") == "1":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (e.g. musl)
        return False
    # no mmap for large blocks, and never trim the heap top
    _tuned = bool(mallopt(_M_MMAP_MAX, 0)) and bool(mallopt(_M_TRIM_THRESHOLD, 2**31 - 1))
    return _tuned


def machine_description() -> dict:
    """What a measured figure ran on: CPU model, whether it has AMX bf16 tiles (Intel Xeon: bf16
    matmuls ~6x fp32), the threads torch uses and their OpenMP wait policy (hf_linear.omp_policy)."""

    model, flags = platform.processor() or "unknown", set()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name") and model in ("unknown", "", platform.processor()):
                    model = line.split(":", 1)[1].strip()
                elif line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    break  # the first processor's flags (every core of a CPU lists the same)
    except OSError:
        pass
    return {
        "cpu": model,
        "amx_bf16": "amx_bf16" in flags,
        "native_bf16": bool(flags & BF16_FLAGS),
        "threads": torch.get_num_threads(),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "default"),
    }


# CPU instructions that make bf16 matmuls fast: AVX512-BF16 (AMD Zen 4, Intel Cooper Lake+) and
# AMX (Intel Sapphire Rapids+). Without them (e.g. an AVX2-only EPYC) oneDNN emulates bf16 and a
# bf16 matmul runs ~60x slower than fp32 (measured: 2 vs 120 GFLOP/s on such a machine).
BF16_FLAGS = {"avx512_bf16", "amx_bf16"}


def cpu_has_native_bf16() -> bool:
    return machine_description()["native_bf16"]
