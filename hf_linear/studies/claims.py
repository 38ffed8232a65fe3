"""RESULTS.md's generated part: the project's claims, each section one table of the current figures,
computed from what reports/ holds (`hf_linear.studies.evidence`); nothing is typed in by hand.

Sections, in order: the paper's results; the main job; universality; recipes and robustness;
speed. A row is one claim with its current figure, the machine kinds it was measured on and a
link to its evidence (a study's REPORT.md, a search's REPORT.md, a published run's README.md).
A study with a claim function below gets that function's rows; any other study, search or run
one row per run (or its best trial) in the section its data belongs to, so every study and run
in reports/ is listed.
"""

from __future__ import annotations

import math
import os
from collections import defaultdict
from pathlib import Path

import numpy as np

from hf_linear.model_types import LINEAR_LM, MLP_LM, MODEL_TYPES
from hf_linear.paper import MULTIPLICATION_A100_HOURS, TINYSTORIES_A100_HOURS
from hf_linear.paper import MULTIPLICATION_EXACT_MATCH as PAPER_EXACT_MATCH
from hf_linear.paper import MULTIPLICATION_SEQUENCE_TOKENS as PAPER_SEQUENCE_TOKENS
from hf_linear.paper import MULTIPLICATION_TRAINING_TOKENS as PAPER_TRAINING_TOKENS
from hf_linear.studies.evidence import RUN, SEARCH, STUDY, Evidence
from hf_linear.studies.report import DEFAULT_TARGET, format_tokens, is_lm, percent
from hf_linear.studies.results import first_reaching, machine_kind
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


def claims_seeds(records: dict[str, dict]) -> list[Row]:
    """A recipe over training seeds (target: >= 99% held out on every seed)."""
    runs = sorted(records.values(), key=lambda r: r["name"])
    if not runs:
        return []
    held = [r for r in runs if r["final"].get("exact_match", 0.0) >= TARGET]
    tokens = max(r["tokens"] for r in runs)
    walls = [(r.get("wall_seconds") or 0) / 60 for r in runs]
    per_seed = ", ".join(
        f"{r['name']}: {held_out(r)}"
        + (f" (99% validation after {format_tokens(point['tokens'])})" if (point := reached(r)) else "")
        for r in runs
    )
    return [
        (
            f"The main job's recipe over seeds: ≥ {100 * TARGET:g}% held out on every seed within "
            f"{format_tokens(tokens)} training tokens",
            f"{'**met**' if len(held) == len(runs) else '**not met**'} on {len(held)} of {len(runs)} seeds: {per_seed}; "
            f"{min(walls):.1f}–{max(walls):.1f} min of training each",
        )
    ]


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
    "main_job_seeds": (MAIN_JOB, claims_seeds),
    "linear_universality": (UNIVERSALITY, claims_linear_universality),
    "length_complexity_optimized": (UNIVERSALITY, claims_length_complexity),
}
NEEDS_DIRECTORY = {claims_linear_universality}  # reads the run directories too (cached wiring)
SEARCH_SECTIONS = {"main_job": MAIN_JOB}  # other searches: recipes and robustness


def section_of(evidence: Evidence) -> str:
    if evidence.kind == STUDY:
        return STUDY_CLAIMS.get(evidence.name, (RECIPES, None))[0]
    if evidence.kind == SEARCH:
        return SEARCH_SECTIONS.get(evidence.name, RECIPES)
    programs = any(r.get("program") for r in evidence.records.values())
    return UNIVERSALITY if programs else RECIPES


def rows_of(evidence: Evidence) -> list[Row]:
    """The claims of one study, search or run (at least one row: everything published is listed)."""
    if evidence.kind == SEARCH:
        return claims_search(evidence)
    claims = STUDY_CLAIMS.get(evidence.name, (None, None))[1] if evidence.kind == STUDY else None
    rows = []
    if claims is not None:
        rows = claims(evidence.records, evidence.directory) if claims in NEEDS_DIRECTORY else claims(evidence.records)
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
        for row in rows_of(evidence):
            by_section[section_of(evidence)].append(table_row(row, evidence.machines, link(evidence)))
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
