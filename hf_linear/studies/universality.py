"""The linear_universality study read against the paper's title claim: a *linear* next-token
predictor learns every compiled program (`hf_linear.data.programs`), and the wiring it learns is
compared with the certificate's (the positions each compiled step reads). Its rows of RESULTS.md:
`hf_linear.studies.claims.claims_linear_universality`."""

from __future__ import annotations

import json
from pathlib import Path

from hf_linear.atomic import write_json_atomically
from hf_linear.run_files import WIRING


def run_wiring(run_dir: Path, program: str, size: int) -> dict | None:
    """`wiring_agreement` of a finished LinearLM run with its program's certificate (cached)."""
    cache = run_dir / WIRING
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
