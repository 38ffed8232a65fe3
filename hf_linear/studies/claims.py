"""RESULTS.md's generated part: the project's claims, each section one table of the current figures,
computed from what reports/ holds (`hf_linear.studies.evidence`); nothing is typed in by hand.

Sections, in order: the paper's results; the main job; universality; recipes and robustness;
speed. A row is one claim with its current figure, the machine kinds it was measured on and a
link to its evidence (a study's REPORT.md, a search's REPORT.md, a published run's README.md).
A study with a claim function below gets that function's rows; a study over seeds (`seeds:`, or
a grid of training seeds) one row per recipe, seed by seed, with a published run of its base
config as one more seed (`base_run_of`); any other study, search or run one row per run (or its
best trial). Rows go to the section their data belong to, so every study and run in reports/ is
listed.
"""

from __future__ import annotations

import copy
import math
import os
from collections import defaultdict
from pathlib import Path
from typing import NamedTuple

import numpy as np

from hf_linear.model_types import LINEAR_LM, MLP_LM, MODEL_TYPES
from hf_linear.paper import MULTIPLICATION_A100_HOURS, TINYSTORIES_A100_HOURS
from hf_linear.paper import MULTIPLICATION_EXACT_MATCH as PAPER_EXACT_MATCH
from hf_linear.paper import MULTIPLICATION_SEQUENCE_TOKENS as PAPER_SEQUENCE_TOKENS
from hf_linear.paper import MULTIPLICATION_TRAINING_TOKENS as PAPER_TRAINING_TOKENS
from hf_linear.studies.evidence import RUN, SEARCH, STUDY, Evidence
from hf_linear.studies.report import DEFAULT_TARGET, format_tokens, is_lm, percent
from hf_linear.studies.results import first_reaching, machine_kind
from hf_linear.studies.seed_statistics import bootstrap_interval, interquartile_mean, seed_groups
from hf_linear.studies.study import axis_choices, set_seed_of
from hf_linear.studies.universality import run_wiring, size_label

TARGET = DEFAULT_TARGET
FIT_LEVELS = (TARGET, 0.9, 0.5)  # accuracy levels tried, in order, for the scaling fit

Row = tuple[str, str]  # (claim, current figure)

PAPER = "The paper's results"
MAIN_JOB = "The main job"
UNIVERSALITY = "Universality: a linear predictor learns compiled programs"
RECIPES = "Recipes and robustness"
SPEED = "Speed"
SECTIONS = (PAPER, MAIN_JOB, UNIVERSALITY, RECIPES, SPEED)


# ---------------------------------------------------------------------------------------------
# Fits and small formatters


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


def held_out(record: dict) -> str:
    """ "99.5% of 1,000" (exact match and sample count), or a perplexity."""
    final = record["final"]
    if is_lm(record):
        return f"perplexity {final['perplexity']:.1f}"
    count = f" of {final['num_samples']:,}" if final.get("num_samples") else ""
    return f"{percent(final.get('exact_match'))}{count}"


def operand_size(record: dict) -> str:
    """ "4x4" of a "4x4-digit multiplication" run."""
    return record.get("task", record["name"]).split("-digit")[0]


# ---------------------------------------------------------------------------------------------
# The paper's results


def paper_format_claims(paper: dict) -> list[Row]:
    """The verdict on one run of the paper's 307-token 4x4 format, and the extrapolation of its
    per-digit learning curve to the paper's 96.9%."""
    exact = paper["final"].get("exact_match", 0.0)
    verdict = "**reproduced**" if exact >= PAPER_EXACT_MATCH - 0.02 else "**not reproduced at this budget**"
    rows = [
        (
            f"The paper's 4×4 result: MLP-775M, {100 * PAPER_EXACT_MATCH:.1f}% exact with its {PAPER_SEQUENCE_TOKENS}-token "
            f"CoT after {format_tokens(PAPER_TRAINING_TOKENS)} training tokens (~{MULTIPLICATION_A100_HOURS} A100-hours)",
            f"{verdict}: an MLPLM of {paper['parameters'] / 1e6:.1f}M parameters, {minutes(paper)}, "
            f"{format_tokens(paper['tokens'])} tokens ({paper['tokens'] / PAPER_TRAINING_TOKENS:.2%} of the paper's): "
            f"{held_out(paper)} exact, {percent(paper['final'].get('per_digit_accuracy'))} of answer digits",
        )
    ]
    answer_digits = paper.get("answer_tokens") or 8
    per_digit_needed = PAPER_EXACT_MATCH ** (1 / answer_digits)
    extrapolated = tokens_to_per_digit(paper["curve"], per_digit_needed)
    claim = f"Tokens to the paper's {100 * PAPER_EXACT_MATCH:.1f}%, extrapolated from that run's per-digit curve"
    if extrapolated and extrapolated[0] > 1e15:
        rows.append(
            (
                claim,
                f"none: its per-digit error falls as tokens^{extrapolated[1]:.2f}, far too slowly (the fit would need "
                f"{extrapolated[0]:.1e} tokens); a run this short measures the start of the curve, not its rate",
            )
        )
    elif extrapolated:
        tokens, exponent = extrapolated
        speed = paper["tokens"] / paper["wall_seconds"] if paper.get("wall_seconds") else None
        rows.append(
            (
                claim,
                f"**{format_tokens(tokens)} tokens** ({tokens / PAPER_TRAINING_TOKENS:.2g}× the paper's budget) for this "
                f"model size (per-digit error ∝ tokens^{exponent:.2f} over the second half of its evaluations; "
                f"{100 * PAPER_EXACT_MATCH:.1f}% exact taken as {100 * per_digit_needed:.2f}% per digit)"
                + (
                    f", ~{tokens / speed / 3600:,.0f} hours at this run's {format_tokens(speed)} tokens/s"
                    if speed
                    else ""
                )
                + "; a rough figure from a short curve",
            )
        )
    else:
        rows.append((claim, "none: its per-digit error does not fall along its curve yet"))
    return rows


def claims_formats(records: dict[str, dict]) -> list[Row]:
    paper = next((r for r in records.values() if r.get("cot") == "paper" and r["model_type"] == MLP_LM), None)
    rows = paper_format_claims(paper) if paper else []
    by_cot = {r.get("cot"): r for r in records.values() if r["model_type"] == MLP_LM}
    if "lsb" in by_cot and "direct" in by_cot:
        lsb, direct = by_cot["lsb"], by_cot["direct"]
        rows.append(
            (
                "The Chain of Thought makes 4×4 multiplication learnable (the paper's thesis): the same MLPLM at "
                "equal wall-clock",
                f"{held_out(lsb)} with the {lsb['sequence_tokens']}-token `lsb` CoT, {held_out(direct)} with no CoT "
                f"(`direct`, {percent(direct['final'].get('per_digit_accuracy'))} of digits)"
                + (
                    f"; `lsb` first at {100 * TARGET:g}% validation after {format_tokens(reached(lsb)['tokens'])} tokens"
                    if reached(lsb)
                    else ""
                ),
            )
        )
    transformer = next((r for r in records.values() if r["model_type"] == "gpt2"), None)
    if transformer and "lsb" in by_cot:
        mlp = by_cot["lsb"]
        speed = (mlp["tokens"] / mlp["wall_seconds"]) / (transformer["tokens"] / transformer["wall_seconds"])
        rows.append(
            (
                f"A transformer of the same size (GPT-2, {transformer['parameters'] / 1e6:.2f}M parameters), same `lsb` "
                "data and wall-clock",
                f"{held_out(transformer)} after {format_tokens(transformer['tokens'])} tokens, against the MLPLM's "
                f"{held_out(mlp)} after {format_tokens(mlp['tokens'])}: the MLPLM trains on {speed:.0f}× more tokens per "
                "second"
                + (
                    ", and the transformer learns the format all the same"
                    if transformer["final"].get("exact_match", 0) >= TARGET
                    else ", so at equal wall-clock the transformer sees too little data to say whether it would learn it"
                ),
            )
        )
    return rows


def claims_scaling(records: dict[str, dict]) -> list[Row]:
    arithmetic = sorted((r for r in records.values() if r.get("sequence_tokens")), key=lambda r: r["sequence_tokens"])
    hit = [(r["sequence_tokens"], point["tokens"], r) for r in arithmetic if (point := reached(r))]
    missed = [r for r in arithmetic if not reached(r)]
    figure = ", ".join(f"{operand_size(r)}: {format_tokens(t)} ({L} tokens/example)" for L, t, r in hit) or "none"
    if missed:
        figure += "; not reached within the budget: " + ", ".join(
            f"{operand_size(r)} ({percent(r['final'].get('exact_match'))} after {minutes(r)})" for r in missed
        )
    rows = [("Length complexity: training tokens to 99% against the length of an example (`lsb`, MLPLM)", figure)]
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
            rows.append(
                (
                    f"The same as a power law, fitted on the sizes that reached {100 * level:g}% validation ({sizes})",
                    f"tokens to {100 * level:g}% ≈ {c:.3g} · L^{p:.2f}; at the paper's L = {PAPER_SEQUENCE_TOKENS}: "
                    f"{format_tokens(predicted)} tokens ({predicted / PAPER_TRAINING_TOKENS:.2g}× the paper's "
                    f"{format_tokens(PAPER_TRAINING_TOKENS)}) for a format of the `lsb` kind",
                )
            )
            break
    return rows


def claims_parity(records: dict[str, dict]) -> list[Row]:
    groups = defaultdict(list)
    for r in records.values():
        groups[r["model_type"], r.get("cot")].append(r)
    rows = []
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
        rows.append(
            (
                f"`{model_type}` on parity with the `{cot}` CoT (n bits, a step every k)",
                f"{len(done)} of {len(runs)} runs reached {100 * TARGET:g}% (best held-out exact {percent(best)})"
                + (f"; tokens to {100 * TARGET:g}%: {detail}" if detail else ""),
            )
        )
    linear_running = groups.get((LINEAR_LM, "running"), [])
    linear_threshold = groups.get((LINEAR_LM, "threshold"), [])
    if linear_running and linear_threshold:
        with_cot = [
            r for r in linear_running if r.get("every") and r.get("task") and r["every"] < int(r["task"].split()[2])
        ]
        fails = all(not reached(r) for r in with_cot)
        learns = any(reached(r) for r in linear_threshold)
        rows.append(
            (
                "The universality construction made visible: each threshold step is a linear-threshold function of "
                "earlier tokens, each running-parity step an XOR",
                "a LinearLM "
                + (
                    "cannot learn the running-parity CoT at any k"
                    if fails
                    else "learned the running-parity CoT in some runs (unexpected)"
                )
                + (
                    " and learns the linear-threshold CoT"
                    if learns
                    else " and did not learn the threshold CoT within the budget either"
                ),
            )
        )
    return rows


def claims_tinystories(records: dict[str, dict]) -> list[Row]:
    ranked = sorted((r for r in records.values() if "perplexity" in r["final"]), key=lambda r: r["final"]["perplexity"])
    if not ranked:
        return []
    return [
        (
            f"TinyStories at CPU scale, equal wall-clock (the paper's §4.1 trains a 162M LinearLM for {TINYSTORIES_A100_HOURS} A100-hours "
            "and grades samples with GPT-4, not possible offline)",
            "validation perplexity "
            + ", ".join(
                f"{r['model_type']} {r['final']['perplexity']:.1f} ({r['parameters'] / 1e6:.1f}M parameters, "
                f"{format_tokens(r['tokens'])} tokens)"
                for r in ranked
            ),
        )
    ]


def claims_one_hour(records: dict[str, dict]) -> list[Row]:
    """Hour-long runs: the largest operands learned in an hour, the paper's format."""
    rows = []
    for r in sorted(records.values(), key=lambda r: r["name"]):
        if r.get("cot") == "paper":
            rows += paper_format_claims(r)
            continue
        exact = r["final"].get("exact_match", 0.0)
        milestones = ", ".join(
            f"{100 * level:g}% after {format_tokens(point['tokens'])} tokens"
            for level in (0.5, 0.9, TARGET)
            if (point := first_reaching(r["curve"], "exact_match", level))
        )
        rows.append(
            (
                f"{operand_size(r)} with `{r.get('cot')}` in {minutes(r)} (target ≥ {100 * TARGET:g}% held out)",
                f"{'**met**' if exact >= TARGET else '**not met**'}: {held_out(r)} exact, "
                f"{percent(r['final'].get('per_digit_accuracy'))} of answer digits, after {r['steps']:,} steps and "
                f"{format_tokens(r['tokens'])} tokens"
                + (f"; validation exact match {milestones}" if milestones else ""),
            )
        )
    return rows


# ---------------------------------------------------------------------------------------------
# The main job, universality, and what any other study, search or run says


class SeedRun(NamedTuple):
    """One seed of a recipe over seeds: its held-out result, and whether it is a published run of
    the study's base config rather than one of the study's own runs."""

    seed: int
    record: dict
    published: bool = False


def span(values, text) -> str:
    """ "2.5–2.8" of the smallest and largest of `values` written by `text`, one value when they read alike."""
    low, high = text(min(values)), text(max(values))
    return low if low == high else f"{low}–{high}"


def claims_seeds(subject: str, runs: list[SeedRun]) -> list[Row]:
    """A recipe over training seeds, seed by seed (target: >= 99% held out on every seed), with
    the interquartile mean and its bootstrap interval from three seeds on (hf_linear.studies.seed_statistics)."""
    if not runs:
        return []
    runs = sorted(runs, key=lambda run: run.seed)
    scores = [run.record["final"].get("exact_match", 0.0) for run in runs]
    held = sum(score >= TARGET for score in scores)
    tokens = [run.record["tokens"] for run in runs]
    walls = [(run.record.get("wall_seconds") or 0) / 60 for run in runs]

    def notes(run: SeedRun) -> str:
        found = ["published run"] if run.published else []
        if point := reached(run.record):
            found.append(f"{100 * TARGET:g}% validation after {format_tokens(point['tokens'])}")
        return f" ({'; '.join(found)})" if found else ""

    per_seed = ", ".join(f"seed {run.seed}: {held_out(run.record)}{notes(run)}" for run in runs)
    spread = ""
    if len(runs) >= 3:  # fewer seeds: the IQM is their plain mean and the interval says nothing
        low, high = bootstrap_interval(scores)
        spread = (
            f"; IQM {percent(interquartile_mean(scores))}, 95% bootstrap interval [{percent(low)}, {percent(high)}]"
        )
    return [
        (
            f"{subject} over seeds: ≥ {100 * TARGET:g}% held out on every seed within "
            f"{format_tokens(max(tokens))} training tokens",
            f"{'**met**' if held == len(runs) else '**not met**'} on {held} of {len(runs)} seeds: {per_seed}{spread}; "
            f"{span(tokens, format_tokens)} training tokens and {span(walls, lambda m: f'{m:.1f}')} min of training each",
        )
    ]


def is_seed_setting(settings: dict) -> bool:
    """An axis value that sets training.seed and nothing but seeds (the data's may go with it)."""
    return isinstance(settings.get("training.seed"), int) and all(
        key == "training.seed" or (key.startswith("dataset.") and key.endswith(".seed")) for key in settings
    )


def seed_groups_of(spec: dict, records: dict[str, dict]) -> dict[str, list[SeedRun]]:
    """A study over seeds, its groups of runs by name, each run with its seed; {} for any other study.

    Two forms: `seeds:` of 2 or more, the study's or a group's of `runs:` (hf_linear.studies.study:
    every run NAME once per seed, as NAME@seedS, each NAME a group), or a grid of one axis whose
    every value sets nothing but seeds (`training.seed: [0, 1, 2]`, or labels mapping to
    training.seed and the data's seed: one group). Only runs scored by exact match: a perplexity
    has no target to meet."""
    scored = [r for r in records.values() if "exact_match" in r["final"]]
    groups = [group for group in spec.get("runs") or [] if isinstance(group, dict)]
    declared = [spec.get("seeds"), *(group.get("seeds") for group in groups)]
    if any(isinstance(seeds, list) and len(seeds) >= 2 for seeds in declared):
        return {
            name: [SeedRun(int(r["varied"]["seed"]), r) for r in runs] for name, runs in seed_groups(scored).items()
        }
    axes = spec.get("axes") or {}
    if any(seeds is not None for seeds in declared) or groups or len(axes) != 1:
        return {}
    ((axis, values),) = axes.items()
    try:
        choices = axis_choices(axis, values)
    except ValueError:  # not a grid axis at all: the study says what it is elsewhere
        return {}
    if len(choices) < 2 or not all(is_seed_setting(settings) for _, _, settings in choices):
        return {}
    seed_of = {label: settings["training.seed"] for _, label, settings in choices}
    runs = [SeedRun(seed_of[r["varied"][axis]], r) for r in scored if r.get("varied", {}).get(axis) in seed_of]
    return {axis: runs} if runs else {}


def recipe(config: dict) -> dict:
    """What makes two runs one recipe on different seeds: the model, dataset and training
    sections with every seed set alike and the output folder left out (evaluation settings
    are how a run is measured, and gain defaults as the code grows, so they are not compared)."""
    sections = copy.deepcopy({section: config.get(section) or {} for section in ("model", "dataset", "training")})
    set_seed_of(sections, 0)
    sections["training"].pop("output_dir", None)
    return sections


def base_run_of(study: Evidence, published: list[Evidence]) -> Evidence | None:
    """The published run that is one more seed of `study`, a study over seeds of one group: the
    run of the study's base config itself (`hf-linear train BASE`, then `hf-linear publish`), on a
    seed the study did not train. The rule: the run's training.output_dir ends in the same folder
    as the base config's, its recipe (`recipe`: model, dataset, training, seeds aside) is the
    base config's, and its training.seed is none of the group's. None when no run is, or for a
    quick study (its base is the full config, its runs are not)."""
    if study.kind != STUDY or study.quick:
        return None
    groups = seed_groups_of(study.spec, study.records)
    base = study.spec.get("base") or {}
    folder = Path(str((base.get("training") or {}).get("output_dir") or "")).name
    if len(groups) != 1 or not folder:
        return None
    taken = {run.seed for run in next(iter(groups.values()))}
    for run in published:
        config = run.config
        training = config.get("training") or {}
        if (
            run.kind == RUN
            and Path(str(training.get("output_dir") or "")).name == folder
            and isinstance(training.get("seed"), int)
            and training["seed"] not in taken
            and recipe(config) == recipe(base)
        ):
            return run
    return None


def claims_over_seeds(evidence: Evidence, base_run: Evidence | None = None) -> list[Row]:
    """A study over seeds: one row per group of two seeds or more (`base_run`'s record joining its
    only group as its seed), and any other run one row of its own; [] for any other study."""
    groups = seed_groups_of(evidence.spec, evidence.records)
    if not groups:
        return []
    if base_run is not None:
        ((name, runs),) = groups.items()
        (record,) = base_run.records.values()
        groups = {name: [*runs, SeedRun(base_run.config["training"]["seed"], record, published=True)]}
    groups = {name: runs for name, runs in groups.items() if len(runs) >= 2}  # one seed says nothing over seeds
    rows = []
    for name, runs in sorted(groups.items()):
        subject = SEED_SUBJECTS.get(evidence.name) or describe_run(runs[0].record)
        rows += claims_seeds(subject if len(groups) == 1 else f"{name}: {subject}", runs)
    grouped = {id(run.record) for runs in groups.values() for run in runs}
    return rows + claims_runs({n: r for n, r in evidence.records.items() if id(r) not in grouped})


def claims_linear_universality(records: dict[str, dict], study_dir: Path | None = None) -> list[Row]:
    """Per compiled program and model type the held-out exact match at each size, and the title
    claim: on how many programs a LinearLM reached the target."""
    programs = defaultdict(lambda: defaultdict(list))  # program -> model type -> records
    for record in records.values():
        if record.get("program"):
            programs[record["program"]][record["model_type"]].append(record)
    rows, linear_all, linear_validation, linear_total, samples = [], 0, 0, 0, set()
    for program, by_model in sorted(programs.items()):
        for model_type, runs in sorted(by_model.items()):
            described = []
            for r in sorted(runs, key=lambda r: r["sequence_tokens"]):
                point = reached(r)
                exact = r["final"].get("exact_match", 0.0)
                text = f"{size_label(r['program'], r['size'])}: {r['cot_tokens']}-token CoT, {percent(exact)}"
                text += f" ({format_tokens(point['tokens'])} tokens to 99%)" if point else " (target not reached)"
                if is_linear(model_type):
                    linear_total += 1
                    linear_all += exact >= TARGET
                    linear_validation += point is not None
                    samples.add(r["final"].get("num_samples"))
                    wiring = run_wiring(study_dir / r["run_dir"], r["program"], r["size"]) if study_dir else None
                    if wiring:
                        text += f", {percent(wiring['mean_share_on_compiled_reads'])} of its influence on the compiled reads"
                described.append(text)
            rows.append((f"`{program}`, `{model_type}`: held-out exact match per input size", "; ".join(described)))
    if linear_total:
        rows.append(
            (
                "The title claim, run: a LinearLM learns every compiled program (every CoT token a linear-threshold "
                "step of earlier tokens; certificates built from the compiled steps reach 100% on each)",
                f"{100 * TARGET:g}% validation exact match (the stop rule) on {linear_validation} of {linear_total} "
                f"programs and sizes within the budget; {100 * TARGET:g}% on the "
                f"{' / '.join(f'{n:,}' for n in sorted(n for n in samples if n))} held-out inputs on {linear_all}",
            )
        )
    return rows


def claims_length_complexity(records: dict[str, dict]) -> list[Row]:
    """Per program and size, the original CoT against the optimised one (steps fused into composite
    tokens): CoT length, parameters, training tokens to the target and held-out exact match; then
    on how many pairs the shorter CoT needed fewer training tokens."""
    from hf_linear.data.programs.fusion import OPTIMIZED_SUFFIX

    pairs = defaultdict(dict)  # (program, size) -> {"original": record, "optimised": record}
    for record in records.values():
        if record.get("program"):
            form = "optimised" if record["task"].endswith(OPTIMIZED_SUFFIX) else "original"
            pairs[(record["program"], record["size"])][form] = record
    rows, ratios = [], []
    for (program, size), forms in sorted(pairs.items()):
        if len(forms) != 2:
            continue
        original, optimised = forms["original"], forms["optimised"]
        points = reached(original), reached(optimised)
        tokens = " → ".join(format_tokens(p["tokens"]) if p else "not reached" for p in points)
        if all(points):
            ratios.append(points[0]["tokens"] / points[1]["tokens"])
            tokens += f" ({ratios[-1]:.2f}× fewer)" if ratios[-1] >= 1 else f" ({1 / ratios[-1]:.2f}× more)"
        rows.append(
            (
                f"`{program}`, {size_label(program, size)}: original → optimised CoT, `linear_lm`",
                f"CoT {original['cot_tokens']:,} → {optimised['cot_tokens']:,} tokens; parameters "
                f"{original['parameters'] / 1e6:.2f}M → {optimised['parameters'] / 1e6:.2f}M; training tokens to "
                f"{100 * TARGET:g}% validation {tokens}; held out {held_out(original)} → {held_out(optimised)}",
            )
        )
    if ratios:
        fewer = sum(ratio > 1 for ratio in ratios)
        rows.append(
            (
                "Shorter thoughts: does a linear learner need fewer training tokens when the CoT is shorter "
                "but its tokens richer?",
                f"fewer on {fewer} of {len(ratios)} programs and sizes (original ÷ optimised tokens to "
                f"{100 * TARGET:g}%: median {float(np.median(ratios)):.2f}, {min(ratios):.2f}–{max(ratios):.2f})",
            )
        )
    return rows


def is_linear(model_type: str) -> bool:
    """A model with no nonlinearity before the softmax (the title claim's kind)."""
    row = MODEL_TYPES.get(model_type)
    return bool(row and row.linear_in_inputs)


def describe_run(record: dict) -> str:
    """A published run in words: model, parameters, data."""
    if record.get("program"):
        data = f"the compiled `{record['task']}` program ({record['sequence_tokens']:,} tokens per example)"
    elif record.get("sequence_tokens"):
        data = f"{record['task']}, `{record['cot']}` CoT ({record['sequence_tokens']:,} tokens per example)"
    else:
        data = str(record.get("dataset"))
    return f"`{record['model_type']}` ({record['parameters'] / 1e6:.2f}M parameters) on {data}"


def run_figure(record: dict) -> str:
    """A run's held-out result, how far it trained and when."""
    point = None if is_lm(record) else reached(record)
    unit = "bit" if record.get("program") else "digit"
    per_digit = record["final"].get("per_digit_accuracy")
    return (
        f"{held_out(record)} held out"
        + (f" ({percent(per_digit)} per {unit})" if per_digit is not None else "")
        + (f"; {100 * TARGET:g}% validation after {format_tokens(point['tokens'])} tokens" if point else "")
        + f"; {record['steps']:,} steps, {format_tokens(record['tokens'])} tokens, {minutes(record)}"
        + (f"; trained {record['date']}" if record.get("date") else "")
    )


def claims_runs(records: dict[str, dict]) -> list[Row]:
    """One row per run: a study without a claim function of its own, or a published run."""
    return [
        (
            describe_run(r) if r.get("run_dir") == "." else f"{r['name']}: " + describe_run(r),
            run_figure(r),
        )
        for r in sorted(records.values(), key=lambda r: r["name"])
    ]


def claims_search(evidence: Evidence) -> list[Row]:
    """A recipe search: its trials and the best one."""
    from hf_linear.studies.tune import best_of

    trials = list(evidence.records.values())
    objective = evidence.spec.get("objective", "exact_match")
    states = defaultdict(int)
    for trial in trials:
        states[trial["state"]] += 1
    counts = ", ".join(f"{count} {state}" for state, count in sorted(states.items()))
    try:
        best = best_of(trials, objective)
    except ValueError:
        return [(f"Recipe search `{evidence.name}`", f"{len(trials)} trials ({counts}), none complete")]
    params = ", ".join(f"{key.split('.')[-1]} {value:.3g}" for key, value in best["params"].items())
    return [
        (
            f"Recipe search `{evidence.name}`: {evidence.spec.get('description', '').strip()}",
            f"{len(trials)} trials ({counts}); best: trial {best['trial']}, validation {objective} "
            f"{best['objective']:.4g} after {format_tokens(best.get('tokens'))} tokens ({params})",
        )
    ]


STUDY_CLAIMS = {
    "formats_4x4": (PAPER, claims_formats),
    "multiplication_scaling": (PAPER, claims_scaling),
    "parity_length_complexity": (PAPER, claims_parity),
    "tinystories": (PAPER, claims_tinystories),
    "one_hour": (PAPER, claims_one_hour),
    "main_job_seeds": (MAIN_JOB, None),  # the claim over seeds, worded by SEED_SUBJECTS
    "linear_universality": (UNIVERSALITY, claims_linear_universality),
    "length_complexity_optimized": (UNIVERSALITY, claims_length_complexity),
}
NEEDS_DIRECTORY = {claims_linear_universality}  # reads the run directories too (cached wiring)
SEARCH_SECTIONS = {"main_job": MAIN_JOB}  # other searches: recipes and robustness
SEED_SUBJECTS = {"main_job_seeds": "The main job's recipe"}  # other studies over seeds: what their runs are


def section_of(evidence: Evidence) -> str:
    """A study with claims of its own: theirs; a search: SEARCH_SECTIONS'; any other study or run:
    universality when its data are compiled programs, recipes and robustness otherwise."""
    if evidence.kind == STUDY and evidence.name in STUDY_CLAIMS:
        return STUDY_CLAIMS[evidence.name][0]
    if evidence.kind == SEARCH:
        return SEARCH_SECTIONS.get(evidence.name, RECIPES)
    programs = any(r.get("program") for r in evidence.records.values())
    return UNIVERSALITY if programs else RECIPES


def rows_of(evidence: Evidence, base_run: Evidence | None = None) -> list[Row]:
    """The claims of one study, search or run (at least one row: everything published is listed);
    `base_run`: the published run that is one more seed of a study over seeds (`base_run_of`)."""
    if evidence.kind == SEARCH:
        return claims_search(evidence)
    claims = STUDY_CLAIMS.get(evidence.name, (None, None))[1] if evidence.kind == STUDY else None
    rows = []
    if claims is not None:
        rows = claims(evidence.records, evidence.directory) if claims in NEEDS_DIRECTORY else claims(evidence.records)
    elif evidence.kind == STUDY:
        rows = claims_over_seeds(evidence, base_run)
    rows = rows or claims_runs(evidence.records)
    if evidence.quick:
        rows = [(f"{claim} (quick: scaled down, the numbers mean nothing)", figure) for claim, figure in rows]
    return rows


# ---------------------------------------------------------------------------------------------
# Speed: training time and throughput, and what `hf-linear reproduce` costs


def speed_rows(published: list[Evidence], shipped_studies: set[str]) -> list[tuple[Row, Evidence | None]]:
    rows = []
    studies = [e for e in published if e.kind == STUDY and e.name in shipped_studies]
    if studies:
        by_machine = defaultdict(float)
        for study in studies:
            for record in study.records.values():
                by_machine[machine_kind(record.get("machine"))] += record.get("wall_seconds") or 0.0
        total = sum(by_machine.values())
        rows.append(
            (
                (
                    f"`hf-linear reproduce`: the shipped studies published so far ({len(studies)} of "
                    f"{len(shipped_studies)}), from scratch",
                    f"**{total / 3600:.1f} h** of training (the sum of the published studies' recorded training "
                    "times, evaluations during training included; building data and reports adds minutes): "
                    + ", ".join(f"{seconds / 3600:.1f} h on {kind}" for kind, seconds in sorted(by_machine.items())),
                ),
                None,
            )
        )
    for evidence in published:
        if evidence.kind == SEARCH or not evidence.wall_seconds:
            continue
        tokens = sum(r.get("tokens") or 0 for r in evidence.records.values())
        runs = len(evidence.records)
        rows.append(
            (
                (
                    f"Training {evidence.kind} `{evidence.name}`" + (f" ({runs} runs)" if runs > 1 else ""),
                    f"{evidence.wall_seconds / 60:.1f} min, {format_tokens(tokens)} tokens: "
                    f"{format_tokens(tokens / evidence.wall_seconds)} tokens/s",
                ),
                evidence,
            )
        )
    return rows


# ---------------------------------------------------------------------------------------------
# The section


def cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def table_row(row: Row, machines: list[str], link: str) -> str:
    claim, figure = row
    return f"| {cell(claim)} | {cell(figure)} | {cell('; '.join(machines) or 'not recorded')} | {link} |"


def results_section(published: list[Evidence], reports_dir: Path, relative_to: Path, shipped_studies: set[str]) -> str:
    """The generated part of RESULTS.md from what `reports_dir` holds: one table per section;
    links relative to `relative_to` (the folder of RESULTS.md). `shipped_studies`: the names of
    the studies `hf-linear reproduce` runs (their training time is its duration)."""

    def link(evidence: Evidence) -> str:
        return f"[{evidence.name}]({os.path.relpath(evidence.page, relative_to)})"

    by_section = defaultdict(list)
    for evidence in published:
        # a study over seeds may count a published run as one of its seeds: its rows link and name both
        base_run = base_run_of(evidence, published)
        shown = [evidence, base_run] if base_run else [evidence]
        machines = sorted({kind for e in shown for kind in e.machines})
        for row in rows_of(evidence, base_run):
            by_section[section_of(evidence)].append(table_row(row, machines, "; ".join(map(link, shown))))
    machines_all = sorted({kind for e in published for kind in e.machines})
    for row, evidence in speed_rows(published, shipped_studies):
        if evidence is None:
            by_section[SPEED].append(
                table_row(row, machines_all, f"[reports/]({os.path.relpath(reports_dir, relative_to)}/)")
            )
        else:
            by_section[SPEED].append(table_row(row, evidence.machines, link(evidence)))
    counts = defaultdict(int)
    for evidence in published:
        counts[evidence.kind] += 1
    lines = [
        "Every figure below is computed from the files in reports/ by `hf-linear reproduce --report-only` "
        f"({counts[STUDY]} studies, {counts[SEARCH]} recipe searches, {counts[RUN]} published runs); each links "
        "to the page that holds it, and that page to its run files. Held-out exact match: generated answers on "
        "examples never drawn for training, with their count.",
        "",
    ]
    for section in SECTIONS:
        if not by_section[section]:
            continue
        lines += [
            f"## {section}",
            "",
            "| claim | current figure | machine | evidence |",
            "|---|---|---|---|",
            *by_section[section],
            "",
        ]
    return "\n".join(lines)
