"""Search a training recipe with `Trainer.hyperparameter_search`: Optuna (default) or Ray Tune.

    hf-linear tune configs/tune/main_job.yaml [--trials N] [--out DIR] [--engine optuna|ray]
    pip install -e ".[engines]"      # optuna, ray[tune]

A search file (see configs/tune/) has

    name:           the search (default: the file name); DIR defaults to runs/tune/NAME
    base:           the training config to tune, or its path (relative to the search file);
                    or base_config: PATH
    set:            optional {dotted.key: value} applied to the base first
    space:          {dotted.key: {type: float | int | categorical, low, high, log, step, choices}}
                    over training.* (TrainingArguments fields) and model.* (the model's config);
                    the data is built once for all trials, so dataset.* cannot vary, and the
                    other sections (optimizer.*, evaluation.*) are the base's for every trial
    objective:      exact_match (held-out validation prompts, maximised) or eval_loss (minimised),
                    at the last evaluation of a trial
    budget_tokens:  training tokens per trial: max_steps = budget_tokens / (batch size x gradient
                    accumulation x tokens per example), per trial if the batch size varies
    trials:         how many trials (--trials overrides)
    evaluations:    evaluations per trial (default 4): the points where a pruner may stop it
    pruner:         median (default), none, or {type: median | hyperband | successive_halving,
                    ...its arguments}: Optuna's pruner, fed by the Trainer's evaluations (Ray
                    Tune: an ASHA scheduler unless none)
    seed:           of the sampler (default: training.seed)
    start_with:     optional list of {dotted.key: value} (keys of `space`, values inside it): trials
                    run first, before the sampler proposes any (a known recipe, or one carried over
                    from a related search; Optuna's enqueue_trial, Ray Tune's points_to_evaluate)

DIR gets, like a study directory: search.yaml (the search, base resolved), trials.jsonl (one line
per trial: parameters, state, objective, the objective at each evaluation, steps, tokens),
best_config.yaml (the best trial as a config runnable with `hf-linear train`), plots/ and
REPORT.md; trials/run-N the trials' Trainer output; with Optuna, optuna.journal (the search's
storage: running the same search again continues it up to `trials`).
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

from hf_linear.atomic import write_text_atomically
from hf_linear.evaluation.exact_match import has_prompts
from hf_linear.runtime import tune_cpu_allocator
from hf_linear.studies.study import load_base, read_spec_file, set_dotted
from hf_linear.training.arguments import training_arguments_for
from hf_linear.training.config import RunConfig, check_config
from hf_linear.training.models import model_for
from hf_linear.training.run_data import data_for
from hf_linear.training.trainer import HFLinearTrainer, trainer_for

SEARCH_KEYS = (
    "name",
    "description",
    "base",
    "base_config",
    "set",
    "space",
    "objective",
    "budget_tokens",
    "trials",
    "evaluations",
    "pruner",
    "seed",
    "start_with",
)
OBJECTIVES = {"exact_match": ("eval_exact_match", "maximize"), "eval_loss": ("eval_loss", "minimize")}
PARAMETER_TYPES = ("float", "int", "categorical")
BATCH_KEYS = ("per_device_train_batch_size", "gradient_accumulation_steps")  # what the steps of a budget depend on


# ---------------------------------------------------------------------------------------------
# The search file


@dataclass
class Search:
    name: str
    spec: dict  # the search file, base resolved
    config: dict  # the base config with `set` applied
    space: dict  # dotted key -> distribution
    objective: str
    budget_tokens: int
    trials: int
    evaluations: int

    @classmethod
    def load(cls, path: str | Path) -> Search:
        path = Path(path)
        spec = read_spec_file(path, "search file", SEARCH_KEYS)
        config = load_base(spec, path, "search file")
        for key, value in (spec.get("set") or {}).items():
            set_dotted(config, key, value)
        space = spec.get("space") or {}
        if not isinstance(space, dict) or not space:
            raise ValueError(f"search file {path}: `space` must map dotted keys to distributions")
        for key, distribution in space.items():
            check_parameter(key, distribution)
        check_start_with(spec.get("start_with"), space)
        if spec.get("objective", "exact_match") not in OBJECTIVES:
            raise ValueError(
                f"search file {path}: objective must be one of {', '.join(OBJECTIVES)}, got {spec['objective']!r}"
            )
        for key in ("budget_tokens", "trials", "evaluations"):
            if key == "evaluations" and key not in spec:
                continue
            if not isinstance(spec.get(key), int) or isinstance(spec.get(key), bool) or spec[key] < 1:
                raise ValueError(f"search file {path}: {key} must be a positive integer, got {spec.get(key)!r}")
        spec = {**spec, "base": config, "name": spec.get("name", path.stem)}
        spec.pop("base_config", None)
        return cls(
            spec["name"],
            spec,
            config,
            space,
            spec.get("objective", "exact_match"),
            spec["budget_tokens"],
            spec["trials"],
            spec.get("evaluations", 4),
        )


def check_parameter(key: str, distribution) -> None:
    if not key.startswith(("training.", "model.")) or key.count(".") != 1:
        raise ValueError(
            f"space: {key!r}: only training.* and model.* keys can vary (the data is built once for all trials)"
        )
    if not isinstance(distribution, dict) or distribution.get("type") not in PARAMETER_TYPES:
        raise ValueError(f"space: {key}: give {{type: {' | '.join(PARAMETER_TYPES)}, ...}}, got {distribution!r}")
    needed = ("choices",) if distribution["type"] == "categorical" else ("low", "high")
    missing = [name for name in needed if name not in distribution]
    if missing:
        raise ValueError(f"space: {key}: a {distribution['type']} parameter needs {', '.join(missing)}")


def check_start_with(points, space: dict) -> None:
    if points is None:
        return
    if not isinstance(points, list) or not all(isinstance(p, dict) and p for p in points):
        raise ValueError(f"start_with: give a list of {{dotted.key: value}} mappings, got {points!r}")
    for point in points:
        for key, value in point.items():
            d = space.get(key)
            if d is None:
                raise ValueError(f"start_with: {key!r} is not a parameter of `space` ({', '.join(space)})")
            inside = (
                value in d["choices"]
                if d["type"] == "categorical"
                else (
                    isinstance(value, (int, float)) and not isinstance(value, bool) and d["low"] <= value <= d["high"]
                )
            )
            if not inside:
                raise ValueError(f"start_with: {key} = {value!r} is outside the space {d!r}")


def arguments_name(key: str) -> str:
    """The TrainingArguments attribute of a training.* key; model.* keys keep their dotted name
    (the Trainer's search sets the former on its args, model_init reads the latter)."""
    return key.split(".", 1)[1] if key.startswith("training.") else key


# ---------------------------------------------------------------------------------------------
# Search spaces of the two backends, and the budget


def suggest(trial, space: dict) -> dict:
    """The trial's value of every parameter, by dotted key (Optuna returns the same value when a
    trial suggests a name again, so model_init and hp_space may both call this)."""
    values = {}
    for key, d in space.items():
        if d["type"] == "categorical":
            values[key] = trial.suggest_categorical(key, d["choices"])
        elif d["type"] == "int":
            values[key] = trial.suggest_int(key, d["low"], d["high"], step=d.get("step", 1), log=d.get("log", False))
        else:
            values[key] = trial.suggest_float(key, d["low"], d["high"], step=d.get("step"), log=d.get("log", False))
    return values


def ray_space(space: dict):
    from ray import tune

    def distribution(d):
        if d["type"] == "categorical":
            return tune.choice(d["choices"])
        if d["type"] == "int":
            return (tune.lograndint if d.get("log") else tune.randint)(d["low"], d["high"] + 1)
        if d.get("step"):
            return tune.quniform(d["low"], d["high"], d["step"])
        return (tune.loguniform if d.get("log") else tune.uniform)(d["low"], d["high"])

    return {arguments_name(key): distribution(d) for key, d in space.items()}


@dataclass
class Budget:
    """max_steps and eval_steps of a trial from its batch: every trial trains on `tokens` tokens."""

    tokens: int
    tokens_per_example: int
    evaluations: int
    world_size: int

    def steps(self, arguments: dict) -> dict:
        batch = arguments["per_device_train_batch_size"] * arguments["gradient_accumulation_steps"] * self.world_size
        max_steps = max(1, round(self.tokens / (batch * self.tokens_per_example)))
        return {"max_steps": max_steps, "eval_steps": max(1, math.ceil(max_steps / self.evaluations))}


# ---------------------------------------------------------------------------------------------
# The Trainer of the search


def search_trainer(search: Search, config: RunConfig, out: Path) -> tuple[HFLinearTrainer, Budget]:
    """A Trainer whose model_init builds each trial's model, on data built once; the same
    arguments, data, model and Trainer as `hf_linear.training.train.train`."""
    if config.budget.max_minutes or config.lora is not None:
        raise ValueError(
            "a search trains every trial on budget_tokens: remove budget.max_minutes and lora from the config"
        )
    tune_cpu_allocator()
    args, _ = training_arguments_for(
        config,
        output_dir=str(out / "trials"),
        include_num_input_tokens_seen=True,
        # trials log nowhere unless the config says so (a run's TensorBoard default is not theirs)
        report_to=config.training.get("report_to", "none"),
        # a trial is its objective: no checkpoints (the best config is rerun with `hf-linear train`)
        save_strategy="no",
        eval_strategy="steps",
        do_eval=True,
    )
    data = data_for(config)
    if not data.during_training:
        raise ValueError(
            f"a search evaluates its trials on {config.evaluation.during_training_split!r}: it must be a "
            "non-empty split and evaluation.during_training_samples > 0"
        )
    if search.objective == "exact_match" and not has_prompts(data.during_training):
        raise ValueError("objective exact_match needs prompts and answers in the data; use eval_loss")
    model_keys = [key for key in search.space if key.startswith("model.")]

    def model_init(trial=None):
        model_section = copy.deepcopy(config.model)
        if trial is not None:  # Optuna: a Trial; Ray Tune: the trial's config
            values = trial if isinstance(trial, dict) else suggest(trial, search.space)
            for key in model_keys:
                model_section[key.split(".", 1)[1]] = values[key]
        return model_for(config, data, model_section)

    budget = Budget(search.budget_tokens, data.sequence_length, search.evaluations, args.world_size)
    for key, value in budget.steps(batch_of(args)).items():  # the Trainer's search sets them so too
        setattr(args, key, value)
    trainer = trainer_for(config, args, data, model_init=model_init, exact_match=search.objective == "exact_match")
    return trainer, budget


# ---------------------------------------------------------------------------------------------
# Engines: each returns the trials as records


def batch_of(args) -> dict:
    return {key: getattr(args, key) for key in BATCH_KEYS}


def trial_record(number, state: str, params: dict, objective, curve: list, budget: Budget, defaults: dict) -> dict:
    steps = budget.steps({**defaults, **{arguments_name(k): v for k, v in params.items()}})["max_steps"]
    batch = params.get("training.per_device_train_batch_size", defaults["per_device_train_batch_size"])
    accumulation = params.get("training.gradient_accumulation_steps", defaults["gradient_accumulation_steps"])
    tokens = steps * batch * accumulation * budget.world_size * budget.tokens_per_example
    return {
        "trial": number,
        "state": state,
        "params": params,
        "objective": objective,
        "curve": curve,
        "max_steps": steps,
        "tokens": tokens,
    }


def search_with_optuna(
    search: Search, trainer: HFLinearTrainer, budget: Budget, out: Path, trials: int
) -> tuple[list[dict], object]:
    """Optuna through Trainer.hyperparameter_search; the search lives in out/optuna.journal, so a
    second run continues it. Returns the finished trials' records and the Optuna study."""
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    metric, direction = OBJECTIVES[search.objective]
    storage = JournalStorage(JournalFileBackend(str(out / "optuna.journal")))
    seed = search.spec.get("seed", trainer.args.seed)
    done = optuna.create_study(study_name=search.name, storage=storage, direction=direction, load_if_exists=True)
    if not done.trials:  # a new search: its start_with trials first (the study keeps them queued)
        for point in search.spec.get("start_with") or []:
            done.enqueue_trial(point)
    finished = [t for t in done.trials if t.state.is_finished()]
    remaining = trials - len(finished)
    if remaining > 0:
        print(f"hf-linear tune: {remaining} trial(s) to run ({len(finished)} finished)", flush=True)

        def hp_space(trial):
            values = suggest(trial, search.space)
            arguments = {arguments_name(k): v for k, v in values.items() if k.startswith("training.")}
            return arguments | budget.steps({**batch_of(trainer.args), **arguments})

        trainer.hyperparameter_search(
            hp_space=hp_space,
            compute_objective=lambda metrics: metrics[metric],
            n_trials=remaining,
            direction=direction,
            backend="optuna",
            study_name=search.name,
            storage=storage,
            load_if_exists=True,
            # a different seed per resumed session: the same seed would propose the same first trials again
            sampler=optuna.samplers.TPESampler(seed=seed + len(finished)),
            pruner=optuna_pruner(search.spec.get("pruner", "median")),
        )
    study = optuna.load_study(study_name=search.name, storage=storage)
    defaults = batch_of(trainer.args)
    records = [
        trial_record(
            t.number, t.state.name.lower(), t.params, t.value, sorted(t.intermediate_values.items()), budget, defaults
        )
        for t in study.trials
        if t.state.is_finished()
    ]
    return records, study


def optuna_pruner(setting):
    import optuna

    if setting in (None, "none"):
        return optuna.pruners.NopPruner()
    setting = {"type": setting} if isinstance(setting, str) else dict(setting)
    kinds = {
        "median": optuna.pruners.MedianPruner,
        "hyperband": optuna.pruners.HyperbandPruner,
        "successive_halving": optuna.pruners.SuccessiveHalvingPruner,
    }
    kind = setting.pop("type", "median")
    if kind not in kinds:
        raise ValueError(f"pruner: type must be one of none, {', '.join(kinds)}, got {kind!r}")
    return kinds[kind](**setting)


def search_with_ray(
    search: Search, trainer: HFLinearTrainer, budget: Budget, out: Path, trials: int, cpus_per_trial: float = 1
) -> tuple[list[dict], None]:
    """Ray Tune through Trainer.hyperparameter_search (trials as Ray actors, an ASHA scheduler
    stopping hopeless ones); returns the trials' records."""
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search.basic_variant import BasicVariantGenerator

    metric, direction = OBJECTIVES[search.objective]
    space = ray_space(search.space)
    if "per_device_train_batch_size" in space or "gradient_accumulation_steps" in space:
        defaults = batch_of(trainer.args)
        for key in ("max_steps", "eval_steps"):  # from the trial's own batch
            space[key] = tune.sample_from(lambda spec, key=key: budget.steps({**defaults, **spec.config})[key])
    scheduler = (
        None
        if search.spec.get("pruner", "median") in (None, "none")
        else ASHAScheduler(metric="objective", mode=direction[:3])
    )
    starts = [{arguments_name(k): v for k, v in point.items()} for point in search.spec.get("start_with") or []]
    # Ray Tune pickles the Trainer. accelerate's GradientState, a process-wide singleton, keeps
    # weak references (which do not pickle) to the data loaders of earlier trainings in this
    # process; none of this search's exists yet, so it starts from none.
    trainer.accelerator.gradient_state.dataloader_references = [None]
    best = trainer.hyperparameter_search(
        hp_space=lambda _: space,
        compute_objective=lambda metrics: metrics[metric],
        n_trials=trials,
        direction=direction,
        backend="ray",
        resources_per_trial={"cpu": cpus_per_trial},
        scheduler=scheduler,
        search_alg=BasicVariantGenerator(points_to_evaluate=starts) if starts else None,
        storage_path=str((out / "ray").resolve()),
        name=search.name,
        verbose=1,
    )
    analysis, defaults = best.run_summary, batch_of(trainer.args)
    names = {arguments_name(key): key for key in search.space}
    records = []
    for number, trial in enumerate(analysis.trials):
        history = analysis.trial_dataframes.get(trial.trial_id)
        params = {names[k]: v for k, v in trial.config.items() if k in names}
        steps = budget.steps({**defaults, **{arguments_name(k): v for k, v in params.items()}})
        # Tune counts reports (one per evaluation): back to the trial's steps
        curve = (
            []
            if history is None or "objective" not in history
            else [
                (min(int(i) * steps["eval_steps"], steps["max_steps"]), value)
                for i, value in zip(history["training_iteration"], history["objective"])
            ]
        )
        state = trial.status.lower()
        if trial.status == "TERMINATED":  # ASHA stops a trial as "terminated" too: before its last evaluation
            state = "complete" if len(curve) >= math.ceil(steps["max_steps"] / steps["eval_steps"]) else "pruned"
        records.append(
            trial_record(number, state, params, (trial.last_result or {}).get("objective"), curve, budget, defaults)
        )
    return records, None


# ---------------------------------------------------------------------------------------------
# Publishing: trials, the best config, plots, REPORT.md


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
        f"({search.evaluations} evaluations, where the pruner may stop it). `trials.jsonl` holds every trial "
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
    path = out / "REPORT.md"
    write_text_atomically(path, "\n".join(lines))
    return path


# ---------------------------------------------------------------------------------------------
# Command line


def tune(
    search: Search, out: Path, engine: str = "optuna", trials: int | None = None, cpus_per_trial: float = 1
) -> Path:
    """Run the search (or finish it) and publish it in `out`; returns REPORT.md's path."""
    out = Path(out)
    config = copy.deepcopy(search.config)
    set_dotted(config, "training.output_dir", str(out / "trials"))
    checked = check_config(config)
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomically(out / "search.yaml", yaml.safe_dump(search.spec, sort_keys=False))
    trainer, budget = search_trainer(search, checked, out)
    if engine == "ray":
        records, study = search_with_ray(search, trainer, budget, out, trials or search.trials, cpus_per_trial)
    else:
        records, study = search_with_optuna(search, trainer, budget, out, trials or search.trials)
    return publish(search, records, out, engine, study)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="hf-linear tune", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("config", help="search YAML (configs/tune/*.yaml)")
    parser.add_argument("--out", help="search directory (default: runs/tune/NAME)")
    parser.add_argument("--trials", type=int, help="number of trials (default: the file's `trials`)")
    parser.add_argument(
        "--engine",
        choices=("optuna", "ray"),
        default="optuna",
        help="Optuna in this process (default), or Ray Tune trials",
    )
    parser.add_argument(
        "--cpus-per-trial", type=float, default=1, help="with --engine ray: the CPUs a trial declares (default 1)"
    )
    args = parser.parse_args(argv)
    try:
        search = Search.load(args.config)
        report = tune(
            search, Path(args.out or Path("runs/tune") / search.name), args.engine, args.trials, args.cpus_per_trial
        )
    except ValueError as error:
        parser.exit(2, f"{parser.prog}: error: {error}\n")
    print(f"report: {report}\nbest config: {report.parent / 'best_config.yaml'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
