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
    seeds:          optional [0, 1]: each trial trains once per seed (training.seed and the seed of
                    generated training data) and is scored by the mean objective; the pruner
                    judges its first seed (hf_linear.studies.tune.seeds)
    start_with:     optional list of {dotted.key: value} (keys of `space`, values inside it): trials
                    run first, before the sampler proposes any (a known recipe, or one carried over
                    from a related search; Optuna's enqueue_trial, Ray Tune's points_to_evaluate)

DIR gets, like a study directory: search.yaml (the search, base resolved), trials.jsonl (one line
per trial: parameters, state, objective, the objective at each evaluation, steps, tokens),
best_config.yaml (the best trial as a config runnable with `hf-linear train`), plots/ and
REPORT.md; trials/run-N the trials' Trainer output; with Optuna, optuna.journal (the search's
storage: running the same search again continues it up to `trials`).
"""

from hf_linear.studies.tune.publishing import best_of
from hf_linear.studies.tune.spec import Search

__all__ = ["Search", "best_of"]
