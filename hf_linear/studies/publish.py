"""Publish one finished training run: everything a reader needs to check its numbers, but the weights.

    hf-linear publish RUN_DIR [--name NAME] [--reports reports]

writes REPORTS/runs/NAME/ (NAME: the run directory's name unless given):

    README.md               the run in one page, dated: held-out metrics with sample counts, steps,
                            training tokens, wall time, machine kind and precision, commit, curves
    training_config.yaml    the config as run (`hf-linear train training_config.yaml` runs it again)
    eval_results.json       the final held-out evaluation, as train wrote it
    trainer_state.json      the Trainer's log: every logged loss and evaluation
    curve.jsonl             one line per evaluation: step, training tokens, validation metrics
    results.jsonl           the run as one record (the same form as a study's line), read by
                            `hf-linear reproduce` to rebuild RESULTS.md
    plots/curve_*.png       validation exact match and per-digit accuracy against training tokens
    segment_accuracy.json   teacher-forced accuracy per CoT segment (arithmetic and program data)

Training tokens are the Trainer's count of input tokens (`num_input_tokens_seen`: batch × world
size × gradient accumulation × sequence length per step); the wall time is the run's clock
across resumes, evaluations during training included (hf_linear.studies.results.run_record). A directory the project did not write is
never replaced.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import sys
from pathlib import Path

from hf_linear.atomic import staged_directory, write_text_atomically
from hf_linear.output_dirs import check_output_dir
from hf_linear.run_files import EVAL_RESULTS, EVIDENCE_FILES, STUDY_RESULTS, TRAINER_STATE, TRAINING_CONFIG
from hf_linear.studies.report import (
    DEFAULT_TARGET,
    format_tokens,
    is_lm,
    percent,
    plot_curves,
    segment_lines,
)
from hf_linear.studies.results import first_reaching, machine_kind, run_record

PUBLISHED_RUNS = "runs"  # REPORTS/runs/NAME
README = "README.md"
CURVE = "curve.jsonl"


def published_run_dir(reports_dir: str | Path, name: str) -> Path:
    if not name or Path(name).name != name or name in (".", ".."):
        raise ValueError(f"--name {name!r}: a published run's name is one plain directory name (no '/')")
    return Path(reports_dir) / PUBLISHED_RUNS / name


def finished_run(run_dir: Path) -> Path:
    """`run_dir`, checked to be a finished `hf-linear train` run."""
    if not run_dir.is_dir():
        raise ValueError(f"{run_dir}: no such run directory")
    missing = [name for name in (TRAINING_CONFIG, EVAL_RESULTS, TRAINER_STATE) if not (run_dir / name).is_file()]
    if missing:
        raise ValueError(
            f"{run_dir} has no {', '.join(missing)}: not a finished run (`hf-linear train` writes them at its end)"
        )
    return run_dir


def run_date(run_dir: Path) -> str:
    """The day the run ended: when train wrote its final evaluation (UTC)."""
    written = (run_dir / EVAL_RESULTS).stat().st_mtime
    return dt.datetime.fromtimestamp(written, dt.timezone.utc).date().isoformat()


def describe_data(record: dict) -> str:
    if record.get("program"):
        return f"compiled program `{record['task']}`: {record['sequence_tokens']:,} tokens per example (CoT {record['cot_tokens']:,})"
    if record.get("sequence_tokens"):
        return f"{record['task']}, `{record['cot']}` CoT: {record['sequence_tokens']:,} tokens per example"
    return str(record.get("dataset"))


def held_out_cells(record: dict) -> list[tuple[str, str]]:
    final = record["final"]
    count = f"{final['num_samples']:,}" if final.get("num_samples") else "?"
    split = record.get("split") or "held-out"
    if is_lm(record):
        return [(f"{split} perplexity", f"**{final['perplexity']:.2f}** on {count} windows")]
    unit = "bit" if record.get("program") else "digit"
    return [
        ("held-out exact match", f"**{percent(final.get('exact_match'))}** of {count} examples ({split} split)"),
        (f"per answer {unit}", percent(final.get("per_digit_accuracy"))),
    ]


def commit_cell(record: dict) -> str:
    commit = record.get("commit")
    if not commit:
        return "not recorded by the run"
    return f"`{commit}`" + (" with local changes to hf_linear/" if record.get("source_modified") else "")


def curve_lines(curve: list[dict]) -> list[str]:
    """The validation curve as a table: one row per evaluation."""
    metrics = [m for m in ("exact_match", "per_digit_accuracy", "perplexity", "loss") if any(m in p for p in curve)]
    if not curve or not metrics:
        return []
    shown = {
        "exact_match": percent,
        "per_digit_accuracy": percent,
        "perplexity": "{:.2f}".format,
        "loss": "{:.3g}".format,
    }
    lines = [
        "| step | training tokens | " + " | ".join(f"validation {m.replace('_', ' ')}" for m in metrics) + " |",
        "|---|---|" + "---|" * len(metrics),
    ]
    for point in curve:
        cells = [shown[m](point[m]) if m in point else "—" for m in metrics]
        lines.append(f"| {point['step']:,} | {format_tokens(point.get('tokens'))} | " + " | ".join(cells) + " |")
    return lines


def readme(name: str, record: dict, plots: list[tuple[str, str]], segments: list[str]) -> str:
    reached = None if is_lm(record) else first_reaching(record["curve"], "exact_match", DEFAULT_TARGET)
    minutes = f"{record['wall_seconds'] / 60:.1f} min" if record.get("wall_seconds") else "not recorded"
    machine = record.get("machine") or {}
    rows = [
        ("date", record["date"]),
        ("model", f"`{record['model_type']}`, {record['parameters']:,} trainable parameters"),
        ("data", describe_data(record)),
        *held_out_cells(record),
        (
            f"validation exact match ≥ {100 * DEFAULT_TARGET:g}% first at",
            f"step {reached['step']:,}, {format_tokens(reached['tokens'])} training tokens"
            if reached
            else "not reached",
        )
        if not is_lm(record)
        else None,
        ("training", f"{record['steps']:,} steps, {record['tokens']:,} training tokens, {minutes}"),
        ("machine", f"{machine_kind(machine)}, {machine.get('threads', '?')} threads"),
        ("precision", record["precision"]),
        ("commit", commit_cell(record)),
        ("note", record["provenance_note"]) if record.get("provenance_note") else None,
    ]
    lines = [
        f"# Published run: {name}",
        "",
        "Everything of this training run but its weights; every figure below is read from the files beside "
        f"this page (`{EVAL_RESULTS}`, `{TRAINER_STATE}`, `{TRAINING_CONFIG}`). "
        f"`hf-linear train {TRAINING_CONFIG}` trains it again.",
        "",
        "| | |",
        "|---|---|",
        *(f"| {key} | {value} |" for key, value in (row for row in rows if row)),
        "",
        "## Validation during training",
        "",
        *curve_lines(record["curve"]),
        "",
    ]
    for title, plot in plots:
        lines += [f"![{title}](plots/{plot})", ""]
    lines += segments
    return "\n".join(lines)


def publish_run(run_dir: str | Path, reports_dir: str | Path = "reports", name: str | None = None) -> Path:
    """Write REPORTS/runs/NAME (NAME: the run directory's name unless given); returns its path."""
    run_dir = finished_run(Path(run_dir))
    name = name or run_dir.resolve().name
    destination = check_output_dir(published_run_dir(reports_dir, name), overwrite=True, what="the published run")
    record = run_record(run_dir, name, {}, run_dir / TRAINING_CONFIG, run_dir)
    final = json.loads((run_dir / EVAL_RESULTS).read_text())
    record["source_modified"] = final.get("training", {}).get("source_modified")
    record["provenance_note"] = final.get("training", {}).get("provenance_note")  # facts added after the run
    record["date"] = run_date(run_dir)
    # the per-segment table reads the weights once and caches its numbers in the run directory
    segments = [] if is_lm(record) else segment_lines(run_dir, [record])
    with staged_directory(destination, written_by="hf-linear publish") as staging:
        for file in EVIDENCE_FILES:
            if (run_dir / file).is_file():
                shutil.copy2(run_dir / file, staging / file)
        (staging / "plots").mkdir()
        axis = "training tokens (log scale)"
        plots = [
            (
                "validation against training tokens",
                plot_curves([record], staging / "plots", "tokens", axis, 1.0, "curve_tokens.png"),
            ),
            (
                "validation per-digit accuracy against training tokens",
                plot_curves([record], staging / "plots", "tokens", axis, 1.0, "curve_per_digit.png", per_digit=True),
            ),
        ]
        plots = [(title, plot) for title, plot in plots if plot]
        write_text_atomically(staging / CURVE, "".join(json.dumps(point) + "\n" for point in record["curve"]))
        write_text_atomically(staging / STUDY_RESULTS, json.dumps(record) + "\n")
        write_text_atomically(staging / README, readme(name, record, plots, segments))
    return destination


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="hf-linear publish", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("run_dir", help="a finished run directory of `hf-linear train`")
    parser.add_argument("--name", help="the published name (default: the run directory's name)")
    parser.add_argument("--reports", default="reports", help="the reports folder (default: reports/)")
    args = parser.parse_args(argv)
    try:
        print(publish_run(args.run_dir, args.reports, args.name))
    except ValueError as error:
        parser.exit(2, f"{parser.prog}: error: {error}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
