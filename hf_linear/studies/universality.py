"""The linear_universality study read against the paper's title claim: a *linear* next-token
predictor learns every compiled program (`hf_linear.data.programs`), and the wiring it learns is
compared with the certificate's (the positions each compiled step reads). Its rows of RESULTS.md:
`hf_linear.studies.claims.claims_linear_universality`."""

from __future__ import annotations

import json
from pathlib import Path

from hf_linear.atomic import write_json_atomically

WIRING_FILE = "wiring.json"  # cached in each LinearLM run directory


def run_wiring(run_dir: Path, program: str, size: int) -> dict | None:
    """`wiring_agreement` of a finished LinearLM run with its program's certificate (cached)."""
    cache = run_dir / WIRING_FILE
    if cache.is_file():
        return json.loads(cache.read_text())
    if not (run_dir / "model.safetensors").is_file():
        return None
    from hf_linear.analysis.wiring import wiring_agreement
    from hf_linear.checkpoints import load_model
    from hf_linear.data.programs import compile_program

    agreement = wiring_agreement(load_model(run_dir), compile_program(program, size))
    write_json_atomically(cache, agreement)
    return agreement


def size_label(program: str, size: int) -> str:
    """ "16 bits" (parity, Turing machines), "8-bit operands" (numbers below 2^8), "operands < 10,000"."""
    from hf_linear.data.programs import PROGRAMS

    if program in PROGRAMS and PROGRAMS[program].size_meaning == "bits":
        return f"{size} bits"
    bits = size.bit_length() - 1
    return f"{bits}-bit operands" if size == 2**bits else f"operands < {size:,}"


def plot_wiring(model, program, path: Path, input_ids=None) -> dict:
    """Influence maps of `model` and of the program's certificate side by side (log colour
    scale, rows: the written position, columns: the read one); returns the agreement."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import torch

    from hf_linear.analysis.wiring import heldout_ids, influence_map, wiring_agreement
    from hf_linear.data.programs.certificate import certificate_model

    input_ids = heldout_ids(program) if input_ids is None else input_ids
    maps = {
        "certificate (compiled steps)": influence_map(certificate_model(program), program, input_ids),
        "trained": influence_map(model, program, input_ids),
    }
    agreement = wiring_agreement(model, program, input_ids)
    figure, axes = plt.subplots(1, 2, figsize=(11, 5.2))
    for axis, (title, influence) in zip(axes, maps.items()):
        shown = influence / influence.max()
        axis.imshow(torch.log10(shown + 1e-4).numpy(), cmap="magma", vmin=-4, vmax=0, interpolation="nearest")
        axis.set_title(f"{title}: {program.name}", fontsize=10)
        axis.set_xlabel("read position j")
        axis.set_ylabel("written position p")
    figure.suptitle(
        f"influence of position j on token p (log10, relative to each map's largest); trained: "
        f"{agreement['mean_share_on_compiled_reads']:.0%} on the compiled reads, strongest input a compiled "
        f"read in {agreement['steps_whose_top_input_is_a_compiled_read']:.0%} of steps",
        fontsize=9,
    )
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=90)
    plt.close(figure)
    return agreement


def cot_lengths(bits: range = range(4, 33, 4)) -> dict[str, list[tuple[int, int]]]:
    """(input bits, CoT tokens) of every shipped program: its length complexity, compiled."""
    from hf_linear.data.programs import PROGRAMS, compile_program

    lengths = {}
    for name, family in PROGRAMS.items():
        sizes = [(n, n if family.size_meaning == "bits" else 2**n) for n in bits]
        lengths[name] = [(n, compile_program(name, size).cot_length) for n, size in sizes]
    return lengths


def plot_cot_lengths(path: Path, bits: range = range(4, 33, 4)) -> dict[str, float]:
    """CoT length against input size (log-log) for every shipped program; returns each one's
    fitted exponent (1: linear, 2: quadratic)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    figure, axis = plt.subplots(figsize=(6.5, 4.5))
    exponents = {}
    for (name, points), marker in zip(cot_lengths(bits).items(), "osD^vP*Xh<>"):
        n, length = map(np.array, zip(*points))
        exponents[name] = float(np.polyfit(np.log(n), np.log(length), 1)[0])
        axis.plot(n, length, marker=marker, label=f"{name} (∝ n^{exponents[name]:.2f})")
    axis.set_xscale("log", base=2)
    axis.set_yscale("log")
    axis.set_xlabel("input size n (bits per operand, or bits)")
    axis.set_ylabel("CoT tokens (length complexity)")
    axis.set_title("Compiled programs: CoT length against input size", fontsize=10)
    axis.legend(fontsize=8)
    axis.grid(alpha=0.3, which="both")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=90)
    plt.close(figure)
    return exponents
