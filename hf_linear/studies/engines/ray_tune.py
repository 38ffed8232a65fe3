"""`hf-linear tune --engine ray`: the trials of a search as Ray Tune trials (actors), an ASHA
scheduler stopping hopeless ones, on the cluster `RayResources` names (as `study --engine ray`)."""

from __future__ import annotations

import math
from pathlib import Path

from hf_linear.studies.engines.ray_cluster import RayResources, ray_session
from hf_linear.studies.tune.spec import OBJECTIVES, Budget, Search, arguments_name, batch_of, trial_record
from hf_linear.training.trainer import HFLinearTrainer


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


def search_with_ray(
    search: Search,
    trainer: HFLinearTrainer,
    budget: Budget,
    out: Path,
    trials: int,
    resources: RayResources | None = None,
) -> tuple[list[dict], None]:
    """Ray Tune through Trainer.hyperparameter_search (trials as Ray actors, an ASHA scheduler
    stopping hopeless ones); returns the trials' records."""
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler

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
    resources = resources or RayResources()
    with ray_session(resources):
        best = run_trials(trainer, space, metric, direction, trials, resources, scheduler, starts, out, search.name)
        return records_of(best.run_summary, search, budget, batch_of(trainer.args)), None


def run_trials(trainer, space, metric, direction, trials, resources, scheduler, starts, out, name):
    from ray.tune.search.basic_variant import BasicVariantGenerator

    return trainer.hyperparameter_search(
        hp_space=lambda _: space,
        compute_objective=lambda metrics: metrics[metric],
        n_trials=trials,
        direction=direction,
        backend="ray",
        resources_per_trial={"cpu": resources.cpus, "gpu": resources.gpus},
        scheduler=scheduler,
        search_alg=BasicVariantGenerator(points_to_evaluate=starts) if starts else None,
        storage_path=str((out / "ray").resolve()),
        name=name,
        verbose=1,
    )


def records_of(analysis, search: Search, budget: Budget, defaults: dict) -> list[dict]:
    """The trials of a Ray Tune run as trials.jsonl records."""
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
    return records
