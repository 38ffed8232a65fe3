"""The reproduction report: run every shipped study, publish its report, regenerate RESULTS.md.

    hf-linear reproduce                    # all of configs/studies/*.yaml (~5 h on 2 CPU cores)
    hf-linear reproduce --only formats_4x4 --quick

For each study file (in name order) this runs `hf-linear study` (finished runs are skipped, an
interrupted one resumes: rerunning after a stop continues where it was), writes its REPORT.md,
and publishes the study to REPORTS/NAME/ — REPORT.md, the plots, results.jsonl, the study and
run configs, and per run the small files that every number comes from (eval_results.json,
trainer_state.json, training_config.yaml, segment_accuracy.json; no weights). Then the part of
RESULTS.md between the two markers below is replaced by a summary of all studies: per study its
runs, and the paper's claims checked against the measured numbers (computed here, from the
results; nothing is typed in by hand). The rest of RESULTS.md is left as it is.
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

from hf_linear.atomic import staged_directory, write_text_atomically
from hf_linear.model_types import LINEAR_LM, MLP_LM
from hf_linear.output_dirs import check_output_dir

# the paper's 4x4 result, under the names the claims below use
from hf_linear.paper import MULTIPLICATION_EXACT_MATCH as PAPER_EXACT_MATCH
from hf_linear.paper import MULTIPLICATION_SEQUENCE_TOKENS as PAPER_SEQUENCE_TOKENS
from hf_linear.paper import MULTIPLICATION_TRAINING_TOKENS as PAPER_TRAINING_TOKENS
from hf_linear.resources import packaged_config
from hf_linear.run_files import EVAL_RESULTS, SEGMENT_ACCURACY, TRAINER_STATE, TRAINING_CONFIG
from hf_linear.studies.report import DEFAULT_TARGET, format_tokens, percent, write_report
from hf_linear.studies.results import first_reaching, read_results
from hf_linear.studies.study import Study, default_study_dir, run_study
from hf_linear.studies.universality import claims_linear_universality

BEGIN = "<!-- BEGIN hf-linear reproduce: generated, do not edit by hand -->"
END = "<!-- END hf-linear reproduce -->"
RUN_FILES = (EVAL_RESULTS, TRAINER_STATE, TRAINING_CONFIG, SEGMENT_ACCURACY)
STUDY_FILES = ("REPORT.md", "results.jsonl", "study.yaml")

TARGET = DEFAULT_TARGET
FIT_LEVELS = (TARGET, 0.9, 0.5)  # accuracy levels tried, in order, for the scaling fit


# ---------------------------------------------------------------------------------------------
# Running and publishing


def study_files(directory: Path, only: list[str] | None) -> list[Path]:
    paths = sorted(Path(directory).glob("*.yaml"))
    if only:
        names = {path.stem for path in paths}
        unknown = sorted(set(only) - names)
        if unknown:
            raise ValueError(
                f"--only: no study {', '.join(unknown)} in {directory} (studies: {', '.join(sorted(names))})"
            )
        paths = [path for path in paths if path.stem in only]
    if not paths:
        raise ValueError(f"no study files (*.yaml) in {directory}")
    return paths


def publish(study_dir: Path, destination: Path) -> Path:
    """Copy a study's report and the small files of its runs to `destination`, replacing what
    was there only once the new copy is complete."""
    with staged_directory(destination, written_by="hf-linear reproduce") as staging:
        for name in STUDY_FILES:
            if (study_dir / name).is_file():
                shutil.copy2(study_dir / name, staging / name)
        for folder, pattern in (("plots", "*"), ("configs", "*.yaml")):
            for path in sorted((study_dir / folder).glob(pattern)):
                (staging / folder).mkdir(exist_ok=True)
                shutil.copy2(path, staging / folder / path.name)
        for run_dir in sorted((study_dir / "runs").glob("*/")):
            for name in RUN_FILES:
                if (run_dir / name).is_file():
                    (staging / "runs" / run_dir.name).mkdir(parents=True, exist_ok=True)
                    shutil.copy2(run_dir / name, staging / "runs" / run_dir.name / name)
    return destination


def check_markers(document: Path) -> str:
    """The text of `document`, which must hold the BEGIN and END markers once each, in order."""
    text = document.read_text() if document.is_file() else ""
    if text.count(BEGIN) != 1 or text.count(END) != 1 or text.index(BEGIN) > text.index(END):
        raise ValueError(f"{document} needs the two marker lines, once each, in this order:\n{BEGIN}\n{END}")
    return text


def replace_section(document: Path, section: str) -> None:
    """Put `section` between the BEGIN / END markers of `document` (atomically); the markers
    must be there, once each, so that nothing outside them is ever touched."""
    text = check_markers(document)
    before, rest = text.split(BEGIN)
    _, after = rest.split(END)
    write_text_atomically(document, f"{before}{BEGIN}\n{section.strip()}\n{END}{after}")


# ---------------------------------------------------------------------------------------------
# Analysis: the paper's claims against the measured numbers


def power_law_fit(xs, ys) -> tuple[float, float]:
    """(c, p) of y = c * x^p, least squares in log-log."""
    if len(xs) < 2:
        raise ValueError("a power law needs at least two points")
    slope, intercept = np.polyfit(np.log(np.asarray(xs, float)), np.log(np.asarray(ys, float)), 1)
    return float(math.exp(intercept)), float(slope)


def tokens_to_per_digit(curve: list[dict], target: float) -> tuple[float, float] | None:
    """Extrapolate a learning curve: fit the per-digit error of the second half of the eval
    points as a power law of the training tokens, and return (tokens where the error falls to
    1 - target, the exponent). None when the curve is too short or does not improve."""
    points = [
        (p["tokens"], 1.0 - p["per_digit_accuracy"]) for p in curve if p.get("tokens") and "per_digit_accuracy" in p
    ]
    points = [(t, e) for t, e in points[len(points) // 2 :] if e > 0]
    if len(points) < 3:
        return None
    c, p = power_law_fit(*zip(*points))
    if p > -0.02:  # flat (or rising): the curve predicts nothing
        return None
    return math.exp((math.log(1.0 - target) - math.log(c)) / p), p


def minutes(record: dict) -> str:
    return f"{record['wall_seconds'] / 60:.1f} min" if record.get("wall_seconds") else "? min"


def reached(record: dict) -> dict | None:
    return first_reaching(record.get("curve", []), "exact_match", TARGET)


def paper_format_claims(paper: dict) -> list[str]:
    """The verdict on one run of the paper's 307-token 4x4 format, and the extrapolation of its
    per-digit learning curve to the paper's 96.9%."""
    exact = paper["final"].get("exact_match", 0.0)
    verdict = "**reproduced**" if exact >= PAPER_EXACT_MATCH - 0.02 else "**not reproduced at this budget**"
    lines = [
        f"* **The paper's 4×4 result** (MLP-775M, {100 * PAPER_EXACT_MATCH:.1f}% exact with its {PAPER_SEQUENCE_TOKENS}-token CoT "
        f"after {format_tokens(PAPER_TRAINING_TOKENS)} training tokens, ~17 A100-hours): {verdict}. Here the same format "
        f"with an MLPLM of {paper['parameters'] / 1e6:.1f}M parameters, {minutes(paper)}, {format_tokens(paper['tokens'])} "
        f"tokens ({paper['tokens'] / PAPER_TRAINING_TOKENS:.2%} of the paper's): {percent(exact)} exact, "
        f"{percent(paper['final'].get('per_digit_accuracy'))} of answer digits."
    ]
    answer_digits = paper.get("answer_tokens") or 8
    per_digit_needed = PAPER_EXACT_MATCH ** (1 / answer_digits)
    extrapolated = tokens_to_per_digit(paper["curve"], per_digit_needed)
    if extrapolated and extrapolated[0] > 1e15:
        lines.append(
            f"  Its per-digit error falls as tokens^{extrapolated[1]:.2f} over the second half of its evaluations: far too "
            f"slowly to extrapolate to {100 * PAPER_EXACT_MATCH:.1f}% (the fit would need {extrapolated[0]:.1e} tokens). "
            "A run this short measures the start of the curve, not its rate."
        )
    elif extrapolated:
        tokens, exponent = extrapolated
        speed = paper["tokens"] / paper["wall_seconds"] if paper.get("wall_seconds") else None
        lines.append(
            f"  Extrapolated from its curve (per-digit error ∝ tokens^{exponent:.2f}, fitted on the second half of "
            f"its evaluations; {100 * PAPER_EXACT_MATCH:.1f}% exact taken as {100 * per_digit_needed:.2f}% per digit, "
            f"i.e. independent digit errors): **{format_tokens(tokens)} tokens** "
            f"({tokens / PAPER_TRAINING_TOKENS:.2g}× the paper's budget) for this model size"
            + (f", ~{tokens / speed / 3600:,.0f} hours at this run's {format_tokens(speed)} tokens/s" if speed else "")
            + " — a rough figure from a short curve, not a prediction to rely on."
        )
    else:
        lines.append("  Its per-digit error does not fall along its curve yet: no extrapolation.")
    return lines


def claims_formats(records: dict[str, dict]) -> list[str]:
    paper = next((r for r in records.values() if r.get("cot") == "paper" and r["model_type"] == MLP_LM), None)
    lines = paper_format_claims(paper) if paper else []
    by_cot = {r.get("cot"): r for r in records.values() if r["model_type"] == MLP_LM}
    if "lsb" in by_cot and "direct" in by_cot:
        lsb, direct = by_cot["lsb"], by_cot["direct"]
        lines.append(
            f"* **The CoT makes it learnable** (the paper's thesis): at equal wall-clock the MLPLM reaches "
            f"{percent(lsb['final'].get('exact_match'))} with the {lsb['sequence_tokens']}-token `lsb` CoT and "
            f"{percent(direct['final'].get('exact_match'))} with no CoT (`direct`, {percent(direct['final'].get('per_digit_accuracy'))} "
            "of digits)."
            + (
                f" `lsb` first reached {100 * TARGET:g}% after {format_tokens(reached(lsb)['tokens'])} tokens."
                if reached(lsb)
                else ""
            )
        )
    transformer = next((r for r in records.values() if r["model_type"] == "gpt2"), None)
    if transformer and "lsb" in by_cot:
        mlp = by_cot["lsb"]
        speed = (mlp["tokens"] / mlp["wall_seconds"]) / (transformer["tokens"] / transformer["wall_seconds"])
        lines.append(
            f"* **A transformer of the same size** (GPT-2, {transformer['parameters'] / 1e6:.2f}M parameters, same `lsb` data and "
            f"wall-clock): {percent(transformer['final'].get('exact_match'))} exact after {format_tokens(transformer['tokens'])} tokens, "
            f"against the MLPLM's {percent(mlp['final'].get('exact_match'))} after {format_tokens(mlp['tokens'])}: on these cores the "
            f"MLPLM trains on {speed:.0f}× more tokens per second (evaluations included)"
            + (
                ", and the transformer learns the format all the same."
                if transformer["final"].get("exact_match", 0) >= TARGET
                else ", so at equal wall-clock the transformer sees too little data to say whether it would learn the format."
            )
        )
    return lines


def operand_size(record: dict) -> str:
    """ "4x4" of a "4x4-digit multiplication" run."""
    return record.get("task", record["name"]).split("-digit")[0]


def claims_scaling(records: dict[str, dict]) -> list[str]:
    arithmetic = sorted((r for r in records.values() if r.get("sequence_tokens")), key=lambda r: r["sequence_tokens"])
    hit = [(r["sequence_tokens"], point["tokens"], r) for r in arithmetic if (point := reached(r))]
    missed = [r for r in arithmetic if not reached(r)]
    line = "* **Tokens to 99% against the length of an example** (`lsb`, MLPLM d=32): " + (
        ", ".join(f"{operand_size(r)}: {format_tokens(t)} ({L} tokens/example)" for L, t, r in hit) or "none"
    )
    if missed:
        line += ". Not reached within the budget: " + ", ".join(
            f"{operand_size(r)} ({percent(r['final'].get('exact_match'))} after {minutes(r)})" for r in missed
        )
    lines = [line + "."]
    # the fit needs three sizes: at the highest validation exact match that three of them reached
    for level in FIT_LEVELS:
        points = [
            (r["sequence_tokens"], point["tokens"], r)
            for r in arithmetic
            if (point := first_reaching(r["curve"], "exact_match", level))
        ]
        if len(points) >= 3:
            c, p = power_law_fit([L for L, _, _ in points], [t for _, t, _ in points])
            predicted = c * PAPER_SEQUENCE_TOKENS**p
            sizes = ", ".join(operand_size(r) for _, _, r in points)
            lines.append(
                f"  Fitted on the sizes that reached {100 * level:g}% validation exact match ({sizes}): tokens to {100 * level:g}% ≈ "
                f"{c:.3g} · L^{p:.2f} for examples of L tokens. At the paper's L = {PAPER_SEQUENCE_TOKENS} this predicts "
                f"{format_tokens(predicted)} tokens ({predicted / PAPER_TRAINING_TOKENS:.2g}× the paper's {format_tokens(PAPER_TRAINING_TOKENS)}) "
                "for a format of the `lsb` kind at d=32 — the paper's own format is harder per token (see formats_4x4)."
            )
            break
    return lines


def claims_parity(records: dict[str, dict]) -> list[str]:
    groups = defaultdict(list)
    for r in records.values():
        groups[r["model_type"], r.get("cot")].append(r)
    lines = []
    for (model_type, cot), runs in sorted(groups.items()):
        best = max(r["final"].get("exact_match", 0.0) for r in runs)
        done = [r for r in runs if reached(r)]
        by_n = defaultdict(list)
        for r in done:
            by_n[r.get("task")].append((r.get("every"), reached(r)["tokens"]))
        detail = "; ".join(
            f"{task}: " + ", ".join(f"k={k}: {format_tokens(t)}" for k, t in sorted(points))
            for task, points in sorted(by_n.items())
        )
        lines.append(
            f"* `{model_type}` on `{cot}`: {len(done)} of {len(runs)} runs reached {100 * TARGET:g}% "
            f"(best held-out exact {percent(best)})"
            + (f". Tokens to {100 * TARGET:g}%: {detail}" if detail else "")
            + "."
        )
    linear_running = groups.get((LINEAR_LM, "running"), [])
    linear_threshold = groups.get((LINEAR_LM, "threshold"), [])
    if linear_running and linear_threshold:
        with_cot = [
            r for r in linear_running if r.get("every") and r.get("task") and r["every"] < int(r["task"].split()[2])
        ]
        fails = all(not reached(r) for r in with_cot)
        learns = any(reached(r) for r in linear_threshold)
        lines.append(
            "* **The theorem made visible**: a LinearLM "
            + (
                "cannot learn the running-parity CoT at any k"
                if fails
                else "learned the running-parity CoT in some runs (unexpected)"
            )
            + (
                " and learns the linear-threshold CoT"
                if learns
                else " and did not learn the threshold CoT within the budget either"
            )
            + " — each threshold step is a linear-threshold function of earlier tokens, each running step an XOR."
        )
    return lines


def claims_tinystories(records: dict[str, dict]) -> list[str]:
    ranked = sorted((r for r in records.values() if "perplexity" in r["final"]), key=lambda r: r["final"]["perplexity"])
    if not ranked:
        return []
    perplexities = ", ".join(
        f"{r['model_type']} {r['final']['perplexity']:.1f} ({r['parameters'] / 1e6:.1f}M parameters, "
        f"{format_tokens(r['tokens'])} tokens)"
        for r in ranked
    )
    return [
        (
            "* **TinyStories at CPU scale** (the paper's §4.1 trains a 162M LinearLM for 5.5 A100-hours and grades samples "
            f"with GPT-4, which is not possible offline): validation perplexity {perplexities} at equal wall-clock."
        )
    ]


def claims_one_hour(records: dict[str, dict]) -> list[str]:
    """Issue 11's hour-long runs: the largest operands learned in an hour, the paper's format."""
    lines = []
    for r in sorted(records.values(), key=lambda r: r["name"]):
        if r.get("cot") == "paper":
            lines += paper_format_claims(r)
            continue
        exact = r["final"].get("exact_match", 0.0)
        milestones = ", ".join(
            f"{100 * level:g}% after {format_tokens(point['tokens'])} tokens"
            for level in (0.5, 0.9, TARGET)
            if (point := first_reaching(r["curve"], "exact_match", level))
        )
        lines.append(
            f"* **{operand_size(r)} with `{r.get('cot')}` in {minutes(r)}** (target ≥ {100 * TARGET:g}% held out): "
            f"{'**met**' if exact >= TARGET else '**not met**'} — {percent(exact)} exact, "
            f"{percent(r['final'].get('per_digit_accuracy'))} of answer digits on {r['final'].get('num_samples')} held-out pairs, "
            f"after {r['steps']:,} steps and {format_tokens(r['tokens'])} tokens"
            + (f"; validation exact match {milestones}" if milestones else "")
            + "."
        )
    return lines


def claims_seeds(records: dict[str, dict]) -> list[str]:
    """A recipe over training seeds (issue 20's main-job target: >= 99% held out on 3 of 3 seeds)."""
    runs = sorted(records.values(), key=lambda r: r["name"])
    if not runs:
        return []
    held = [r for r in runs if r["final"].get("exact_match", 0.0) >= TARGET]
    tokens = max(r["tokens"] for r in runs)
    walls = [(r.get("wall_seconds") or 0) / 60 for r in runs]
    per_seed = ", ".join(
        f"{r['name']}: {percent(r['final'].get('exact_match'))} of {r['final'].get('num_samples')}"
        + (f" (99% validation after {format_tokens(point['tokens'])})" if (point := reached(r)) else "")
        for r in runs
    )
    return [
        f"* **The recipe over seeds** (target ≥ {100 * TARGET:g}% held out on every seed within {format_tokens(tokens)} "
        f"training tokens): {'**met**' if len(held) == len(runs) else '**not met**'} on {len(held)} of {len(runs)} seeds — "
        f"{per_seed}; {min(walls):.1f}–{max(walls):.1f} min of training each."
    ]


CLAIMS = {
    "main_job_seeds": claims_seeds,
    "formats_4x4": claims_formats,
    "multiplication_scaling": claims_scaling,
    "parity_length_complexity": claims_parity,
    "tinystories": claims_tinystories,
    "one_hour": claims_one_hour,
    "linear_universality": claims_linear_universality,
}
NEEDS_STUDY_DIR = {"linear_universality"}  # claims that read the run directories too


def study_summary(name: str, study_dir: Path, reports_link: str) -> list[str]:
    records = read_results(study_dir)
    machines = sorted(
        {
            f"{m.get('cpu')}, {'native bf16' if m.get('native_bf16') else 'fp32 (no native bf16)'}"
            for m in (r.get("machine") for r in records.values())
            if m
        }
    )
    total = sum(r.get("wall_seconds") or 0 for r in records.values()) / 60
    lines = [
        f"### {name}",
        "",
        (
            f"{len(records)} runs, {total:.0f} minutes of training in all, on {'; '.join(machines) or 'an unrecorded machine'}. "
            f"Report with plots, per-run table, segment accuracy and configs: [{reports_link}/REPORT.md]({reports_link}/REPORT.md)."
        ),
        "",
    ]
    claims_of = CLAIMS.get(name, lambda records: [])
    claims = claims_of(records, study_dir) if name in NEEDS_STUDY_DIR else claims_of(records)
    return lines + (claims + [""] if claims else [])


def results_section(summaries: list[list[str]], quick: bool) -> str:
    lines = [
        "## The studies (regenerated by `hf-linear reproduce`)",
        "",
        "Every figure in this section is computed from the studies' `results.jsonl` by `hf-linear reproduce`; each "
        "study's REPORT.md links every run to its config and its run files."
        + (" **Quick mode: budgets scaled down ~20×, numbers meaningless.**" if quick else ""),
        "",
    ]
    for summary in summaries:
        lines += summary
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# Command line


def reproduce(
    studies_dir: Path, reports_dir: Path, results: Path | None, only=None, quick=False, runs_dir=None
) -> list[Path]:
    """Run (or finish) every study (or those in `only`), publish each to reports_dir/NAME, and
    regenerate the section of `results`; returns the published report directories. Studies left
    out by `only` are not run, but keep their summary in the section if they have results."""
    if results is not None:
        check_markers(results)  # before hours of training, not after
    selected = {path.stem for path in study_files(studies_dir, only)}
    for name in selected:  # a report replaces only a report: checked before hours of training
        check_output_dir(Path(reports_dir) / name, overwrite=True, what="--reports")
    published, summaries = [], []
    for path in study_files(studies_dir, None):
        study = Study.load(path, quick=quick)
        study_dir = (
            Path(runs_dir) / (study.name + ("-quick" if quick else "")) if runs_dir else default_study_dir(study)
        )
        destination = Path(reports_dir) / study.name
        if path.stem in selected:
            print(f"\n##### study {study.name} -> {study_dir}", flush=True)
            outcome = run_study(study, study_dir, write_report=False)
            failed = [name for name, status in outcome.items() if status.startswith("failed")]
            if failed:
                print(
                    f"hf-linear reproduce: study {study.name}: runs {', '.join(failed)} failed (reported without them)",
                    file=sys.stderr,
                )
            write_report(study_dir)
            published.append(publish(study_dir, destination))
        elif not (study_dir / "results.jsonl").is_file():
            continue
        link = os.path.relpath(destination, results.parent) if results is not None else str(destination)
        summaries.append(study_summary(study.name, study_dir, link))
    if results is not None:
        replace_section(results, results_section(summaries, quick))
    return published


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="hf-linear reproduce", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--studies", default=None, help="folder of study files (default: the shipped configs/studies)")
    parser.add_argument("--only", help="comma-separated study names (file names without .yaml)")
    parser.add_argument("--quick", action="store_true", help="every study scaled down (a smoke test in minutes)")
    parser.add_argument("--runs", default=None, help="where the study directories go (default: runs/studies)")
    parser.add_argument("--reports", default="reports", help="where the published reports go (default: reports/)")
    parser.add_argument("--results", default="RESULTS.md", help="the document whose generated section is replaced")
    parser.add_argument("--no-results", action="store_true", help="do not touch the results document")
    args = parser.parse_args(argv)
    studies_dir = Path(args.studies) if args.studies else Path(str(packaged_config("studies")))
    try:
        reproduce(
            studies_dir,
            Path(args.reports),
            None if args.no_results else Path(args.results),
            only=args.only.split(",") if args.only else None,
            quick=args.quick,
            runs_dir=args.runs,
        )
    except ValueError as error:
        parser.exit(2, f"{parser.prog}: error: {error}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
