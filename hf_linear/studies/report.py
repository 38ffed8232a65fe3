"""Write a study's REPORT.md with its plots, from STUDY_DIR/results.jsonl.

    hf-linear report STUDY_DIR

Plots (PNG, matplotlib Agg): held-out metric against training tokens and against wall-clock
minutes for every run; final exact match against the length of an example (the paper's length
complexity), with the paper's MLP-775M beside it; training tokens to reach the target accuracy
against the example length and against the study's x axis; and the block norms of the masked
map of the best run (`hf-linear inspect`); where the runs logged it, the masked map's scale along
the sequence (pre-activation RMS and update ratio of its first, middle and last rows, and an
MLP's dead positions) against training tokens. A table lists every run with its config and run
directory, so that each number can be traced to them; a study with `seeds:` gets, per group of
seeds, the share reaching the target and the interquartile mean with its bootstrap interval
(hf_linear.studies.seed_statistics).

Settings, from the study file's `report:` section:

    target: 0.99                      # accuracy whose training tokens are reported
    x: every                          # an axis, or a results.jsonl field (every, sequence_tokens,
                                      # ...): final accuracy and tokens to target against it
    series: [task, model.type]        # axes or fields whose values get one line each
    x_label: "k (bits per CoT step)"  # the x axis title, with its unit
    log_x: true                       # x axis on a log scale (base 2)
    segments: true                    # the teacher-forced accuracy per CoT segment of each
                                      # arithmetic run (hf_linear.analysis.segments)
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, never a window
import matplotlib.pyplot as plt
import yaml
from matplotlib.ticker import NullFormatter

from hf_linear import paper
from hf_linear.atomic import write_json_atomically, write_text_atomically
from hf_linear.data.sources import data_source
from hf_linear.model_types import is_hf_linear
from hf_linear.run_files import (
    EVAL_RESULTS,
    REPORT,
    SEGMENT_ACCURACY,
    STUDY_RESULTS,
    STUDY_SPEC,
    TRAINER_STATE,
    TRAINING_CONFIG,
)
from hf_linear.studies.results import eval_curve, first_reaching, machine_kind, read_results
from hf_linear.studies.seed_statistics import seed_lines

DEFAULT_TARGET = 0.99  # the accuracy whose training tokens reports (and reproduce's claims) count
FIGURE_SIZE, DPI = (7.0, 4.2), 100  # ~30-90 KB per PNG

# The paper's numbers (hf_linear.paper), matched to runs by the data they trained on
PAPER_RESULTS = [
    {
        "task": "4x4-digit multiplication",
        "cot": "paper",
        "exact_match": paper.MULTIPLICATION_EXACT_MATCH,
        "sequence_tokens": paper.MULTIPLICATION_SEQUENCE_TOKENS,
        "text": paper.MULTIPLICATION_RESULT,
    },
]


def paper_result(record: dict) -> dict | None:
    return next((p for p in PAPER_RESULTS if p["task"] == record.get("task") and p["cot"] == record.get("cot")), None)


def is_lm(record: dict) -> bool:
    """Language-model data (TinyStories): perplexity instead of exact match."""
    return "exact_match" not in record["final"]


def metric_of(record: dict, split: str = "held-out") -> tuple[str, str]:
    """(curve key, axis label) of a run's main metric."""
    return ("perplexity", f"{split} perplexity") if is_lm(record) else ("exact_match", f"{split} exact match (%)")


def shown(value: float, metric: str) -> float:
    return 100 * value if metric != "perplexity" else value


def format_tokens(tokens) -> str:
    if tokens is None:
        return "—"
    for unit, size in (("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if tokens >= size:
            return f"{tokens / size:.3g}{unit}"
    return str(int(tokens))


def style_axes(axes, title: str, xlabel: str, ylabel: str) -> None:
    axes.set_title(title, fontsize=11)
    axes.set_xlabel(xlabel)
    axes.set_ylabel(ylabel)
    axes.grid(alpha=0.3)


def new_figure(title: str, xlabel: str, ylabel: str):
    figure, axes = plt.subplots(figsize=FIGURE_SIZE, dpi=DPI)
    style_axes(axes, title, xlabel, ylabel)
    return figure, axes


def new_panels(title: str, xlabel: str, ylabel: str, titles: list[str]):
    """Side-by-side axes, one per title, sharing both axes (so that their levels compare)."""
    figure, panels = plt.subplots(
        1, len(titles), figsize=(1.5 * FIGURE_SIZE[0], FIGURE_SIZE[1]), dpi=DPI, sharex=True, sharey=True, squeeze=False
    )
    figure.suptitle(title, fontsize=11)
    for index, (axes, name) in enumerate(zip(panels[0], titles)):
        style_axes(axes, name, xlabel, ylabel if index == 0 else "")
    return figure, list(panels[0])


def save_figure(figure, axes, path: Path, legend: bool = True) -> str:
    if legend and axes.get_legend_handles_labels()[0]:
        count = len(axes.get_legend_handles_labels()[0])
        axes.legend(fontsize=7 if count <= 10 else 5, ncol=1 if count <= 10 else 2, loc="best", framealpha=0.7)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
    return path.name


# ---------------------------------------------------------------------------------------------
# Plots


def draw_curves(axes, curves: list[tuple[str, list[dict]]], metric: str, x_key="tokens", scale=1.0, value=None):
    """One line per (run name, eval curve): `metric` (through `value`) against `x_key` × `scale`."""
    for name, curve in curves:
        points = [p for p in curve if x_key in p and metric in p]
        axes.plot(
            [p[x_key] * scale for p in points],
            [value(p[metric]) if value else p[metric] for p in points],
            marker=".",
            label=name,
        )


def plot_curves(
    records: list[dict], out: Path, x_key: str, xlabel: str, scale: float, name: str, per_digit: bool = False
) -> str | None:
    """Held-out metric (or, `per_digit`, the per-digit accuracy of the answer) against training
    tokens (or minutes) of every run with an eval curve."""
    with_curves = [r for r in records if any(x_key in p for p in r["curve"])]
    if per_digit:
        with_curves = [r for r in with_curves if any("per_digit_accuracy" in p for p in r["curve"])]
    if not with_curves:
        return None
    # during training, the validation split is evaluated (the final number: the held-out split)
    if per_digit:
        metric, ylabel = "per_digit_accuracy", "validation per-digit accuracy of the answer (%)"
    else:
        metric, ylabel = metric_of(with_curves[0], split="validation")
    figure, axes = new_figure(f"Learning curves: {ylabel.split(' (')[0]} vs {xlabel.split(' (')[0]}", xlabel, ylabel)
    curves = [(record["name"], record["curve"]) for record in with_curves]
    draw_curves(axes, curves, metric, x_key, scale, value=lambda v: shown(v, metric))
    if x_key == "tokens":
        axes.set_xscale("log")
    if metric == "perplexity":
        axes.set_yscale("log")
    else:
        axes.set_ylim(-3, 103)
    return save_figure(figure, axes, out / name)


def plot_final_vs_length(records: list[dict], out: Path) -> str | None:
    arithmetic = [r for r in records if not is_lm(r) and r.get("sequence_tokens")]
    if not arithmetic:
        return None
    figure, axes = new_figure(
        "Final accuracy vs length of an example (length complexity)",
        "tokens per example (prompt + CoT + answer)",
        "held-out exact match (%)",
    )
    for record in arithmetic:
        axes.scatter(record["sequence_tokens"], 100 * record["final"]["exact_match"], label=record["name"], s=25)
    for result in PAPER_RESULTS:
        axes.scatter(
            result["sequence_tokens"],
            100 * result["exact_match"],
            marker="*",
            s=150,
            color="black",
            label=f"paper: MLP-775M, 4x4, {result['sequence_tokens']}-token CoT",
        )
    axes.set_ylim(-3, 103)
    return save_figure(figure, axes, out / "final_vs_length.png")


def plot_tokens_to_target(records: list[dict], out: Path, target: float) -> str | None:
    reached = [
        (r, first_reaching(r["curve"], "exact_match", target))
        for r in records
        if not is_lm(r) and r.get("sequence_tokens")
    ]
    reached = [(r, p) for r, p in reached if p and "tokens" in p]
    if not reached:
        return None
    figure, axes = new_figure(
        f"Training tokens to reach {100 * target:g}% exact match",
        "tokens per example (prompt + CoT + answer)",
        "training tokens (first eval at target)",
    )
    for record, point in reached:
        axes.scatter(record["sequence_tokens"], point["tokens"], label=record["name"], s=25)
    axes.set_yscale("log")
    return save_figure(figure, axes, out / "tokens_to_target.png")


def axis_value(label: str):
    """An axis label as a number where it is one (so that k = 1, 2, 4, ... plot in order)."""
    try:
        return float(label.split("x")[0]) if "x" in label and label.replace("x", "").isdigit() else float(label)
    except ValueError:
        return None


def lookup(record: dict, key: str):
    """A run's value of `key`: the label of an axis it varied, else a field of its record
    (e.g. `every`, `task`, `cot`, `model_type`, `sequence_tokens`)."""
    value = record["varied"].get(key, record.get(key))
    return None if value is None else str(value)


LINE_STYLES, MARKERS = ("-", "--", ":", "-."), ("o", "s", "^", "D", "v", "P")


def series_styles(keys: list[tuple[str, ...]]) -> dict[tuple, dict]:
    """Matplotlib styles of the lines of `plot_against_axis`: the first series key picks the
    colour, the second the line style, the third the marker, so that a dozen lines stay
    distinguishable (colours alone repeat after ten)."""
    values = [sorted({key[i] for key in keys}) for i in range(len(keys[0]))]
    styles = {}
    for index, key in enumerate(sorted(keys)):
        if len(key) == 1:
            styles[key] = {"color": f"C{index % 10}", "linestyle": "-", "marker": "o"}
            continue
        positions = [values[i].index(key[i]) for i in range(len(key))]
        styles[key] = {
            "color": f"C{positions[0] % 10}",
            "linestyle": LINE_STYLES[positions[1] % len(LINE_STYLES)],
            "marker": MARKERS[(positions[2] if len(key) > 2 else 0) % len(MARKERS)],
        }
    return styles


def plot_against_axis(records: list[dict], out: Path, settings: dict, target: float) -> list[tuple[str, str]]:
    """Final metric and tokens to target against `report.x`, one line per value of `series`."""
    x_axis, series = settings.get("x"), settings.get("series") or []
    if not x_axis:
        return []
    lines = defaultdict(list)
    for record in records:
        label = lookup(record, x_axis)
        x = axis_value(label) if label is not None else None
        if x is None:
            continue
        key = tuple(lookup(record, s) or "-" for s in series) or ("runs",)
        lines[key].append((x, record))
    if not lines:
        return []
    styles = series_styles(list(lines))
    short = x_axis.split(".")[-1]
    xlabel = settings.get("x_label", short)
    metric, ylabel = metric_of(next(iter(lines.values()))[0][1])
    names = []
    figure, axes = new_figure(f"Final {ylabel.split(' (')[0]} vs {short}", xlabel, ylabel)
    for key, points in sorted(lines.items()):
        points.sort(key=lambda p: p[0])
        axes.plot(
            [x for x, _ in points],
            [shown(r["final"].get(metric, math.nan), metric) for _, r in points],
            label=", ".join(key),
            **styles[key],
        )
    if settings.get("log_x"):
        axes.set_xscale("log", base=2)
    names.append(
        (f"Final {ylabel.split(' (')[0]} against {short}", save_figure(figure, axes, out / f"final_vs_{short}.png"))
    )
    if metric == "exact_match":
        figure, axes = new_figure(
            f"Training tokens to {100 * target:g}% exact match vs {short}",
            xlabel,
            "training tokens (hollow: not reached, total trained)",
        )
        for key, points in sorted(lines.items()):
            reached = [(x, first_reaching(r["curve"], "exact_match", target)) for x, r in points]
            axes.plot(
                [x for x, p in reached if p],
                [p["tokens"] for _, p in reached if p],
                label=", ".join(key),
                **styles[key],
            )
            missed = [(x, r["tokens"]) for x, r in points if not first_reaching(r["curve"], "exact_match", target)]
            axes.scatter(
                [x for x, _ in missed],
                [t for _, t in missed],
                facecolors="none",
                edgecolors=styles[key]["color"],
                marker=styles[key]["marker"],
                s=40,
            )
        axes.set_yscale("log")
        if settings.get("log_x"):
            axes.set_xscale("log", base=2)
        names.append(
            (
                f"Training tokens to {100 * target:g}% against {short}",
                save_figure(figure, axes, out / f"tokens_to_target_vs_{short}.png"),
            )
        )
    return names


def plot_inspection(study_dir: Path, records: list[dict], out: Path) -> tuple[str, dict] | None:
    """The block-norm heatmap of the best run (highest exact match, else lowest perplexity), when
    it is an hf-linear model."""
    candidates = [r for r in records if is_hf_linear(r.get("model_type"))]
    if not candidates:
        return None
    best = max(
        candidates,
        key=lambda r: (
            r["final"].get("exact_match", -r["final"].get("perplexity", math.inf)),
            r["final"].get("per_digit_accuracy", 0.0),
        ),
    )
    from hf_linear.analysis.block_norms import inspect_checkpoint

    name = "inspect_best.png"
    try:
        inspect_checkpoint(study_dir / best["run_dir"], out / name, quiet=True)
    except (ValueError, OSError) as error:
        print(f"hf-linear report: no inspection of {best['name']}: {error}", file=sys.stderr)
        return None
    return name, best


# The masked map's scale along the sequence, logged by each evaluation (hf_linear.training.trainer,
# hf_linear.analysis.row_scales): per quantity, its values at the first, middle and last positions
POSITIONS = ("first", "middle", "last")
ROW_SCALES = (
    ("row_rms", "pre-activation RMS (log scale)", "Masked map: pre-activation RMS along the sequence"),
    ("row_update_ratio", "‖ΔW_i‖ / ‖W_i‖ of one step (log scale)", "Masked map: update ratio of its rows"),
)
ROW_SCALE_METRICS = tuple(f"{q}_{p}" for q, _, _ in ROW_SCALES for p in POSITIONS) + ("dead_positions",)


def row_scale_curves(study_dir: Path, records: list[dict]) -> list[tuple[str, list[dict]]]:
    """(run name, eval curve of ROW_SCALE_METRICS) of the runs that logged them, read from their
    trainer_state.json (results.jsonl's curve does not keep them); runs from before they were
    logged, or without their run directory, are left out."""
    curves = []
    for record in records:
        try:
            state = json.loads((study_dir / record["run_dir"] / TRAINER_STATE).read_text())
        except (OSError, ValueError, KeyError):
            continue
        tokens, steps = record.get("tokens"), record.get("steps")
        per_step = tokens / steps if tokens and steps else None
        curve = eval_curve(state.get("log_history", []), per_step, ROW_SCALE_METRICS)
        if curve:
            curves.append((record["name"], curve))
    return curves


def positive(value: float) -> float:
    # a row that took no step has ratio 0, which a log axis cannot show: the line breaks there
    return value if value > 0 else math.nan


def plot_row_scales(curves: list[tuple[str, list[dict]]], out: Path) -> list[tuple[str, str]]:
    """Per quantity of ROW_SCALES, a panel per position with a line per run (one colour per run
    in every panel), and the dead positions of the runs that counted them; (title, PNG) each."""
    xlabel = "training tokens (log scale)"
    names = []
    for quantity, ylabel, title in ROW_SCALES:
        logged = [(name, curve) for name, curve in curves if any(f"{quantity}_first" in p for p in curve)]
        if not logged:
            continue
        figure, panels = new_panels(title, xlabel, ylabel, [f"{position} position" for position in POSITIONS])
        for axes, position in zip(panels, POSITIONS):
            metric = f"{quantity}_{position}"
            draw_curves(axes, logged, metric, value=positive)
            axes.set_xscale("log")
            axes.xaxis.set_minor_formatter(NullFormatter())  # a narrow panel's minor labels overlap
            axes.set_yscale("log")
            if not any(p.get(metric, 0) > 0 for _, curve in logged for p in curve):
                axes.text(0.5, 0.5, "0 at every evaluation", transform=axes.transAxes, ha="center", color="gray")
        names.append((title, save_figure(figure, panels[-1], out / f"{quantity}.png")))
    dead = [(name, curve) for name, curve in curves if any("dead_positions" in p for p in curve)]
    if dead:
        title = "MLP: positions with no alive ReLU unit"
        figure, axes = new_figure(title, xlabel, "dead positions")
        draw_curves(axes, dead, "dead_positions")
        axes.set_xscale("log")
        names.append((title, save_figure(figure, axes, out / "dead_positions.png")))
    return names


def three_digits(value) -> str:
    return "—" if value is None else f"{value:.3g}"


def row_scale_lines(curves: list[tuple[str, list[dict]]], out: Path) -> list[str]:
    """The section on the masked map's scale along the sequence: what to look for, the last
    evaluation's values per run, and the plots."""
    if not curves:
        return []
    rows = []
    for name, curve in curves:
        last = curve[-1]
        rms = [last.get(f"row_rms_{p}") for p in POSITIONS]
        ratios = [last.get(f"row_update_ratio_{p}") for p in POSITIONS]
        spread = rms[2] / rms[0] if rms[0] and rms[2] is not None else None
        rows.append(
            f"| {name} | {' · '.join(map(three_digits, rms))} | {three_digits(spread)} | {' · '.join(map(three_digits, ratios))} | "
            f"{last.get('dead_positions', '—')} |"
        )
    lines = [
        "## Scale of the masked map along the sequence",
        "",
        "Row i of the masked map reads i + 1 positions, so its fan-in grows along the sequence; each evaluation "
        "checks, as μP checks widths, whether the rows stay on one scale (hf_linear.analysis.row_scales): at the "
        "first, middle and last of the positions the loss trains, the RMS of the masked map's output (the pre-activations) on validation "
        "examples, and ‖ΔW_i‖ / ‖W_i‖, the optimizer step before the evaluation relative to the row. Lines level "
        "across the three panels (which share their y axis) mean rows on the same scale; a late row whose RMS "
        "collapses, or whose update ratio races ahead of the earlier rows', signals the stall, its ReLU units "
        "dying (an MLP's dead positions, with no unit alive, can never learn again). A ratio of 0 is a row that "
        "took no step (runs trained before 2026-12-07 logged the window's first and last positions, which "
        "predict a prompt token or nothing), and is left off the log axis. The "
        "table holds the last evaluation's values.",
        "",
        "| run | RMS first · middle · last | RMS last / first | update ratio first · middle · last | dead positions |",
        "|---|---|---|---|---|",
        *rows,
        "",
    ]
    for title, name in plot_row_scales(curves, out):
        lines += [f"![{title}](plots/{name})", ""]
    return lines


SEGMENT_SAMPLES = 500  # held-out examples scored per run for the segment table
SEGMENTS_FILE = SEGMENT_ACCURACY  # cached in each run directory
SEGMENT_BATCH_SIZE = 250  # examples per teacher-forced forward pass


def run_segments(study_dir: Path, record: dict) -> list[dict] | None:
    """Teacher-forced accuracy per CoT segment of a finished arithmetic run, on its held-out
    split (cached in the run directory as segment_accuracy.json)."""
    run_dir = study_dir / record["run_dir"]
    cache = run_dir / SEGMENTS_FILE
    if cache.is_file():
        return json.loads(cache.read_text())
    config = yaml.safe_load((run_dir / TRAINING_CONFIG).read_text())
    source = data_source(config["dataset"])
    if not source.example_lengths() or not (run_dir / "model.safetensors").is_file():
        return None  # language-model data: no CoT segments
    from hf_linear.checkpoints import load_model, load_tokenizer
    from hf_linear.evaluation.held_out import evaluate_held_out, held_out_split

    split = held_out_split(source.held_out(), record.get("split") or "test", "evaluation.split")
    split = split.select(range(min(SEGMENT_SAMPLES, len(split))))
    # the run's exact match is in its record: only the segments are computed here
    report = evaluate_held_out(
        load_model(run_dir), load_tokenizer(run_dir), split, SEGMENT_BATCH_SIZE, segments=True, exact_match=False
    )["segments"]
    write_json_atomically(cache, report)
    return report


def weakest_step(segment: dict) -> str:
    """ ", weakest step k of K: token / whole" for a segment of "+"-joined steps, else ""; for an
    MLPLM with the alive units of the step's positions (mean / fewest of d) and, where some are
    dead, what holds them down (hf_linear.analysis.dead_units)."""
    steps = segment.get("steps") or []
    if len(steps) < 2:
        return ""
    k, step = min(enumerate(steps, 1), key=lambda item: (item[1]["segment_accuracy"], item[1]["token_accuracy"]))
    text = (
        f", weakest step {k} of {len(steps)}: {percent(step['token_accuracy'])} / {percent(step['segment_accuracy'])}"
    )
    alive, held = step.get("alive_units"), step.get("dead_unit_inputs")
    if alive:
        text += f" (alive units {alive['mean']:.1f}, fewest {alive['min']}"
        if held:
            text += f"; dead ones held at {held['fixed']:.2f} by fixed, {held['varying']:.2f} by varying inputs"
        text += ")"
    return text


def segment_lines(study_dir: Path, records: list[dict]) -> list[str]:
    """The "where the chain breaks" table: per run, each segment's teacher-forced token and
    whole-segment accuracy."""
    rows = []
    for record in records:
        if is_lm(record):
            continue
        try:
            parts = run_segments(study_dir, record)
        except (OSError, ValueError) as error:
            print(f"hf-linear report: no segment accuracy for {record['name']}: {error}", file=sys.stderr)
            continue
        if parts:
            cells = "; ".join(
                f"{p['name']} ({p['tokens']} tok): {percent(p['token_accuracy'])} / {percent(p['segment_accuracy'])}"
                + weakest_step(p)
                for p in parts
                if p["name"] != "prompt"
            )
            rows.append(f"| {record['name']} | {percent(record['final'].get('exact_match'))} | {cells} |")
    if not rows:
        return []
    return [
        "## Where the chain breaks (teacher-forced accuracy per CoT segment)",
        "",
        f"On {SEGMENT_SAMPLES} held-out examples the final model reads the true tokens so far and predicts the "
        "next one (greedy); per segment: token accuracy / share of examples whose whole segment is right (and, for a "
        "segment of `+`-joined steps, the same for its weakest step, with an MLPLM's alive ReLU units at the "
        "positions predicting it and the mean pre-activation of its dead units from the template's fixed tokens "
        "and from the varying ones). "
        "Exact match needs every segment right when generating on its own, so the weakest segment bounds it. "
        "`hf-linear eval RUN_DIR --arithmetic '{...}' --segments` prints the same for any checkpoint.",
        "",
        "| run | held-out exact match | segment (tokens): token accuracy / whole segment |",
        "|---|---|---|",
        *rows,
        "",
    ]


# ---------------------------------------------------------------------------------------------
# REPORT.md


def percent(value) -> str:
    return "—" if value is None else f"{100 * value:.1f}%"


def table(records: list[dict], target: float) -> list[str]:
    lines = [
        f"| run | varied | model | parameters | tokens/example | steps | training tokens | minutes | held-out | "
        f"per digit | tokens to {100 * target:g}% | paper | config · run dir |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in records:
        varied = ", ".join(f"{k.split('.')[-1]}={v}" for k, v in r["varied"].items())
        final = r["final"]
        held_out = f"ppl {final['perplexity']:.2f}" if is_lm(r) else percent(final.get("exact_match"))
        held_out += f" (n={final.get('num_samples', '?')})"
        reach = None if is_lm(r) else first_reaching(r["curve"], "exact_match", target)
        published = paper_result(r)
        minutes = f"{r['wall_seconds'] / 60:.{1 if r['wall_seconds'] >= 60 else 2}f}" if r.get("wall_seconds") else "—"
        lines.append(
            f"| {r['name']} | {varied} | {r['model_type']} | {r['parameters']:,} | {r.get('sequence_tokens', '—')} | "
            f"{r['steps']} | {format_tokens(r['tokens'])} | {minutes} | {held_out} | {percent(final.get('per_digit_accuracy'))} | "
            f"{format_tokens(reach['tokens']) if reach else ('—' if is_lm(r) else 'not reached')} | "
            f"{published['text'] if published else '—'} | [config]({r['config']}) · [run]({r['run_dir']}) |"
        )
    return lines


def write_report(study_dir: str | Path) -> Path:
    """Write STUDY_DIR/REPORT.md and its PNGs (in STUDY_DIR/plots); returns the REPORT.md path."""
    study_dir = Path(study_dir)
    records = list(read_results(study_dir).values())
    if not records:
        raise ValueError(f"{study_dir}: no {STUDY_RESULTS} lines yet (run `hf-linear study` first)")
    spec = yaml.safe_load((study_dir / STUDY_SPEC).read_text()) if (study_dir / STUDY_SPEC).is_file() else {}
    settings = spec.get("report") or {}
    target = settings.get("target", DEFAULT_TARGET)
    plots_dir = study_dir / "plots"
    plots_dir.mkdir(exist_ok=True)

    plots = [
        (
            "Learning curves against training tokens",
            plot_curves(records, plots_dir, "tokens", "training tokens (log scale)", 1.0, "curves_tokens.png"),
        ),
        (
            "Learning curves against wall-clock time",
            plot_curves(
                records,
                plots_dir,
                "wall_seconds",
                "wall-clock training time (minutes, evaluations included)",
                1 / 60,
                "curves_minutes.png",
            ),
        ),
        (
            "Per-digit accuracy of the answer against training tokens (progress before exact match moves)",
            plot_curves(
                records, plots_dir, "tokens", "training tokens (log scale)", 1.0, "curves_per_digit.png", per_digit=True
            ),
        ),
        ("Final accuracy against the length of an example", plot_final_vs_length(records, plots_dir)),
        (f"Training tokens to reach {100 * target:g}%", plot_tokens_to_target(records, plots_dir, target)),
    ] + plot_against_axis(records, plots_dir, settings, target)

    machines = sorted(
        {f"{machine_kind(m)} ({m.get('threads')} threads)" for m in (r.get("machine") for r in records) if m}
    )
    lines = [
        f"# Study: {spec.get('name', study_dir.name)}{' (quick: scaled down)' if spec.get('quick_run') else ''}",
        "",
        *([spec["description"].strip(), ""] if spec.get("description") else []),
        f"{len(records)} runs. Each run's config is `configs/NAME.yaml` (runnable with `hf-linear train`), its "
        f"outputs `runs/NAME/` ({EVAL_RESULTS}: final held-out metrics; {TRAINER_STATE}: the eval curve, "
        f"with `num_input_tokens_seen` and `wall_seconds` at each evaluation); `{STUDY_RESULTS}` holds one line per "
        f"run with everything below. Tokens to {100 * target:g}%: training tokens at the first evaluation at or "
        "above the target (an upper bound, at the resolution of `eval_steps`); during-training evaluations use "
        "the validation split, the final number the held-out split named in the config. Machine(s): "
        + ("; ".join(machines) or "not recorded")
        + ".",
        "",
        "## Runs",
        "",
        *table(records, target),
        "",
        *seed_lines(records, target),
    ]
    for title, name in plots:
        if name:
            lines += [f"## {title}", "", f"![{title}](plots/{name})", ""]
    lines += row_scale_lines(row_scale_curves(study_dir, records), plots_dir)
    if settings.get("segments", True):
        lines += segment_lines(study_dir, records)
    inspection = plot_inspection(study_dir, records, plots_dir)
    if inspection:
        name, best = inspection
        lines += [
            f"## Inside the best run: {best['name']}",
            "",
            f"Block norms ‖W[i, j]‖_F of the masked map of `{best['run_dir']}` (output position i reads input "
            'position j ≤ i); dashed lines: the "=" tokens of an example, i.e. the prompt and the CoT segments. '
            f"`hf-linear inspect {best['run_dir']}` prints, per output position, the inputs it reads most "
            f"(saved in `plots/{Path(name).stem}.json`).",
            "",
            f"![block norms](plots/{name})",
            "",
        ]
    path = study_dir / REPORT
    write_text_atomically(path, "\n".join(lines))
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="hf-linear report", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("study_dir", help="a study directory written by `hf-linear study`")
    args = parser.parse_args(argv)
    try:
        print(write_report(args.study_dir))
    except ValueError as error:
        parser.exit(2, f"{parser.prog}: error: {error}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
