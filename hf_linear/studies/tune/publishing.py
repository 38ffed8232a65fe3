"""A finished search, published: trials.jsonl, best_config.yaml (runnable with `hf-linear
train`), plots and REPORT.md."""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import yaml

from hf_linear.atomic import write_text_atomically
from hf_linear.dotted_keys import set_dotted
from hf_linear.run_files import REPORT
from hf_linear.studies.tune.spec import OBJECTIVES, Search
from hf_linear.training.config import check_config


def best_of(records: list[dict], objective: str) -> dict:
    """The complete trial with the best objective; among equal ones (e.g. several at 100% exact
    match) the one whose evaluations were best on average: the one that got there sooner."""
    complete = [r for r in records if r["state"] == "complete" and r["objective"] is not None]
    if not complete:
        raise ValueError("no trial completed (all pruned or failed): nothing to report as best")
    sign = 1 if OBJECTIVES[objective][1] == "maximize" else -1

    def rank(r):
        curve = [value for _, value in r["curve"]] or [r["objective"]]
        return sign * r["objective"], sign * sum(curve) / len(curve)

    return max(complete, key=rank)


def best_config(search: Search, best: dict, out: Path) -> dict:
    """The base config with the best trial's parameters, its max_steps and eval_steps, and an
    output directory of its own: `hf-linear train best_config.yaml` runs it."""
    config = copy.deepcopy(search.config)
    for key, value in best["params"].items():
        set_dotted(config, key, value)
    set_dotted(config, "training.max_steps", best["max_steps"])
    set_dotted(config, "training.eval_steps", max(1, math.ceil(best["max_steps"] / search.evaluations)))
    set_dotted(config, "training.output_dir", str(out / "best"))
    check_config(copy.deepcopy(config))  # runnable: the same checks as `hf-linear train`
    return config


def plot_search(records: list[dict], search: Search, plots: Path, best: dict, study=None) -> list[tuple[str, str]]:
    from hf_linear.studies.report import new_figure, save_figure

    plots.mkdir(parents=True, exist_ok=True)
    maximize = OBJECTIVES[search.objective][1] == "maximize"
    shown = [r for r in records if r["objective"] is not None or r["curve"]]
    figures = []
    figure, axes = new_figure(f"{search.name}: {search.objective} per trial", "trial", search.objective)
    for state, style in (("complete", {"color": "tab:blue"}), ("pruned", {"color": "0.6", "marker": "x"})):
        points = [
            (r["trial"], r["objective"] if r["objective"] is not None else r["curve"][-1][1])
            for r in shown
            if r["state"] == state
        ]
        if points:
            axes.scatter(*zip(*points), label=state, **style)
    complete = sorted(
        (r["trial"], r["objective"]) for r in records if r["state"] == "complete" and r["objective"] is not None
    )
    if complete:
        running = [complete[0][1]]
        for _, value in complete[1:]:
            running.append(max(running[-1], value) if maximize else min(running[-1], value))
        axes.step([n for n, _ in complete], running, where="post", color="tab:green", label="best so far")
    figures.append(
        (
            "Objective per trial (pruned trials: their last evaluation)",
            save_figure(figure, axes, plots / "objective_per_trial.png"),
        )
    )
    # every trial's evaluations against the training tokens it had seen: where the pruner cut
    figure, axes = new_figure(
        f"{search.name}: {search.objective} at each evaluation", "training tokens", search.objective
    )
    for r in shown:
        if not r["curve"]:
            continue
        per_step = r["tokens"] / r["max_steps"]
        style = (
            {"color": "0.7", "marker": "x", "linewidth": 0.8}
            if r["state"] != "complete"
            else {"color": "tab:blue", "marker": "o", "linewidth": 1}
        )
        if r is best:
            style = {"color": "tab:green", "marker": "o", "linewidth": 2.5, "label": f"best (trial {r['trial']})"}
        axes.plot([step * per_step for step, _ in r["curve"]], [value for _, value in r["curve"]], **style)
    axes.plot([], [], color="tab:blue", marker="o", label="complete")
    axes.plot([], [], color="0.7", marker="x", label="pruned")
    figures.append(
        ("Every trial's evaluations against its training tokens", save_figure(figure, axes, plots / "curves.png"))
    )
    for key, distribution in search.space.items():  # slice plots: the objective against each parameter
        points = [
            (r["params"][key], r["objective"]) for r in records if r["state"] == "complete" and key in r["params"]
        ]
        if not points:
            continue
        figure, axes = new_figure(f"{search.objective} against {key}", key, search.objective)
        xs = [str(x) for x, _ in points] if distribution["type"] == "categorical" else [x for x, _ in points]
        axes.scatter(xs, [y for _, y in points], color="tab:blue")
        if distribution.get("log"):
            axes.set_xscale("log")
        name = f"slice_{key.replace('.', '_')}.png"
        figures.append((f"Slice: {key}", save_figure(figure, axes, plots / name, legend=False)))
    importances = parameter_importances(study)
    if importances:
        figure, axes = new_figure("parameter importances (optuna.importance)", "importance", "")
        axes.barh(list(importances)[::-1], list(importances.values())[::-1], color="tab:blue")
        figures.append(("Parameter importances", save_figure(figure, axes, plots / "importances.png", legend=False)))
    return figures


def parameter_importances(study) -> dict | None:
    """optuna.importance.get_param_importances (its default evaluator); None without an Optuna
    study, with fewer than two completed trials or one parameter (nothing to compare)."""
    if study is None:
        return None
    import optuna

    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if len(complete) < 2 or len(study.best_trial.params) < 2:
        return None
    try:
        return optuna.importance.get_param_importances(study)
    except (RuntimeError, ValueError):  # e.g. every completed trial has the same objective
        return None


def publish(search: Search, records: list[dict], out: Path, engine: str, study=None) -> Path:
    best = best_of(records, search.objective)
    config = best_config(search, best, out)
    write_text_atomically(out / "best_config.yaml", yaml.safe_dump(config, sort_keys=False))
    write_text_atomically(out / "trials.jsonl", "".join(json.dumps(r) + "\n" for r in records))
    figures = plot_search(records, search, out / "plots", best, study)
    keys = list(search.space)
    counts = {state: sum(r["state"] == state for r in records) for state in ("complete", "pruned", "fail")}
    lines = [
        f"# Search: {search.name}",
        "",
        *([search.spec["description"].strip(), ""] if search.spec.get("description") else []),
        f"{len(records)} trials ({counts['complete']} complete, {counts['pruned']} pruned, {counts['fail']} failed), "
        f"engine {engine}. Objective: {search.objective} ({OBJECTIVES[search.objective][1]}d) at the last evaluation of "
        f"a trial, on the validation prompts (equal objectives: the better mean over its evaluations wins); every trial trains on {search.budget_tokens:,} tokens "
        f"({search.evaluations} evaluations, where the pruner may stop it)"
        + (
            f"; each trial trains once per seed ({', '.join(map(str, search.seeds))}), its objective the seeds' "
            "mean, its curve the first seed's (the one the pruner judges)"
            if search.seeds
            else ""
        )
        + ". `trials.jsonl` holds every trial "
        "(parameters, objective at each evaluation, steps, tokens).",
        "",
        f"**Best: trial {best['trial']}**, {search.objective} = {best['objective']:.4g} "
        f"({best['max_steps']:,} steps, {best['tokens']:,} tokens): "
        + ", ".join(
            f"`{k}` = {best['params'][k]:.4g}"
            if isinstance(best["params"][k], float)
            else f"`{k}` = {best['params'][k]}"
            for k in keys
        )
        + ". Its config: `best_config.yaml` — `hf-linear train best_config.yaml` trains it "
        "(held-out test evaluation at the end).",
        "",
        "## Trials",
        "",
        "| trial | state | " + " | ".join(keys) + f" | {search.objective} | steps |",
        "|---|---|" + "---|" * len(keys) + "---|---|",
    ]
    for r in records:
        values = [
            f"{r['params'][k]:.4g}" if isinstance(r["params"].get(k), float) else str(r["params"].get(k, "—"))
            for k in keys
        ]
        objective = "—" if r["objective"] is None else f"{r['objective']:.4g}"
        if r["state"] == "pruned" and r["curve"]:
            objective = f"({r['curve'][-1][1]:.4g} at step {r['curve'][-1][0]})"
        lines.append(
            f"| {r['trial']} | {r['state']} | " + " | ".join(values) + f" | {objective} | {r['max_steps']:,} |"
        )
    lines.append("")
    for title, name in figures:
        lines += [f"## {title}", "", f"![{title}](plots/{name})", ""]
    path = out / REPORT
    write_text_atomically(path, "\n".join(lines))
    return path
