"""The linear_universality study read against the paper's title claim: a *linear* next-token
predictor learns every compiled program (`hf_linear.data.programs`), and the wiring it learns is
compared with the certificate's (the positions each compiled step reads)."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

from hf_linear.atomic import write_json_atomically
from hf_linear.studies.report import format_tokens, percent
from hf_linear.studies.results import first_reaching

TARGET = 0.99
WIRING_FILE = "wiring.json"  # cached in each LinearLM run directory


def run_wiring(run_dir: Path, program: str, size: int) -> dict | None:
    """`wiring_agreement` of a finished LinearLM run with its program's certificate (cached)."""
    cache = run_dir / WIRING_FILE
    if cache.is_file():
        return json.loads(cache.read_text())
    if not (run_dir / "model.safetensors").is_file():
        return None
    from hf_linear.checkpoints import load_model
    from hf_linear.data.programs import compile_program
    from hf_linear.data.programs.certificate import wiring_agreement

    agreement = wiring_agreement(load_model(run_dir), compile_program(program, size))
    write_json_atomically(cache, agreement)
    return agreement


def claims_linear_universality(records: dict[str, dict], study_dir: Path | None = None) -> list[str]:
    programs = defaultdict(dict)  # program -> model type -> records by example length
    for record in records.values():
        if record.get("program"):
            programs[record["program"]].setdefault(record["model_type"], []).append(record)
    if not programs:
        return []
    lines, linear_all, linear_total = [], 0, 0
    for program, by_model in sorted(programs.items()):
        parts = []
        for model_type, runs in sorted(by_model.items()):
            described = []
            for r in sorted(runs, key=lambda r: r["sequence_tokens"]):
                point = first_reaching(r.get("curve", []), "exact_match", TARGET)
                exact = r["final"].get("exact_match", 0.0)
                text = f"size {r['size']}: {r['cot_tokens']}-token CoT, {percent(exact)}"
                text += f" ({format_tokens(point['tokens'])} tokens to {100 * TARGET:g}%)" if point else " (target not reached)"
                if model_type == "linear_lm":
                    linear_total += 1
                    linear_all += exact >= TARGET
                    wiring = run_wiring(study_dir / r["run_dir"], r["program"], r["size"]) if study_dir else None
                    if wiring:
                        text += f", {percent(wiring['mean_share_on_compiled_reads'])} of its influence on the compiled reads"
                described.append(text)
            parts.append(f"`{model_type}` " + "; ".join(described))
        lines.append(f"* **{program}** — " + ". ".join(parts) + ".")
    lines.append(
        f"* **The title claim, run**: a LinearLM reached {100 * TARGET:g}% held-out exact match on {linear_all} of "
        f"{linear_total} compiled programs and sizes within the budget (every CoT token a linear-threshold step of "
        "earlier tokens; certificates, LinearLMs built from the compiled steps, reach 100% on each). The influence share "
        "says how much of a trained LinearLM's dependence on earlier tokens sits where the compiled circuit reads "
        "(1.0 for the certificate, ~3% for a random model)."
    )
    return lines
