"""How the trials of a search are trained: one `Trainer` whose `model_init` builds each trial's
model on data built once (`search_trainer`), and the Optuna backend (`search_with_optuna`);
Ray Tune's is `hf_linear.studies.engines.ray_tune`, with everything else that runs on Ray.

A backend is `(search, trainer, budget, out, trials) -> (records, optuna study or None)`.
"""

from __future__ import annotations

import copy
import functools
from pathlib import Path

from hf_linear.evaluation.exact_match import has_prompts
from hf_linear.runtime import tune_cpu_allocator
from hf_linear.studies.tune.seeds import SeedAveragingTrainer, seed_training_splits
from hf_linear.studies.tune.spec import OBJECTIVES, Budget, Search, arguments_name, batch_of, trial_record
from hf_linear.training.arguments import training_arguments_for
from hf_linear.training.config import RunConfig
from hf_linear.training.models import model_for
from hf_linear.training.run_data import data_for
from hf_linear.training.trainer import HFLinearTrainer, trainer_for


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
    trainer_class = HFLinearTrainer
    if search.seeds:
        splits = seed_training_splits(config, data.train, search.seeds)
        trainer_class = functools.partial(SeedAveragingTrainer, seeds=search.seeds, seed_train_datasets=splits)
    trainer = trainer_for(
        config,
        args,
        data,
        model_init=model_init,
        exact_match=search.objective == "exact_match",
        trainer_class=trainer_class,
    )
    return trainer, budget


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
        | ({"seed_objectives": t.user_attrs["seed_objectives"]} if "seed_objectives" in t.user_attrs else {})
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
