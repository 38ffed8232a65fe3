"""A search trial scored on several seeds at once: `seeds: [0, 1]` in a search file.

A recipe that works on one seed in two is not one a user can rely on, so a trial may train its
parameters once per seed — each seed with its own initial weights and order (training.seed) and
its own training examples (the seed of generated data, as a study's `seeds:` sets it; the
validation prompts that score it stay the base config's) — and be scored by the mean of the
seeds' objectives. The pruner judges a trial by its first seed's evaluations; a trial that
survives them trains its other seeds in full. Every seed trains on the search's budget_tokens.
"""

from __future__ import annotations

import copy
import statistics

from hf_linear.data.collator import training_columns
from hf_linear.data.sources import data_source
from hf_linear.studies.study import set_seed_of
from hf_linear.training.config import RunConfig
from hf_linear.training.trainer import HFLinearTrainer


def seed_training_splits(config: RunConfig, train, seeds: list[int]) -> dict[int, object]:
    """The training examples of each seed: the data's own (`train`) where the seed leaves the
    dataset section as it is (no generated source, or its own seed), else built from the section
    with the seed set."""
    splits = {}
    for seed in seeds:
        seeded = {"dataset": copy.deepcopy(config.dataset)}
        set_seed_of(seeded, seed)
        if seeded["dataset"] == config.dataset:
            splits[seed] = training_columns(train)
        else:
            source = data_source(seeded["dataset"], config.data_source().trust_program_code)
            splits[seed] = training_columns(source.load()["train"])
    return splits


class SeedAveragingTrainer(HFLinearTrainer):
    """An `HFLinearTrainer` whose search trials train once per seed and report the mean objective."""

    def __init__(self, *args, seeds: list[int], seed_train_datasets: dict, **kwargs):
        super().__init__(*args, **kwargs)
        self.seeds, self.seed_train_datasets = seeds, seed_train_datasets
        self.seed_index: int | None = None  # the seed being trained (None: not a seeded trial)

    def train(self, resume_from_checkpoint=None, trial=None, **kwargs):
        if trial is None:  # not a search trial: an ordinary training
            return super().train(resume_from_checkpoint, trial, **kwargs)
        objectives, output = [], None
        try:
            for index, seed in enumerate(self.seeds):
                self.seed_index, self.args.seed = index, seed
                self.train_dataset = self.seed_train_datasets[seed]
                self.objective = None
                output = super().train(resume_from_checkpoint if index == 0 else None, trial, **kwargs)
                if self.objective is None:  # no evaluation during training
                    self.objective = self.compute_objective(self.evaluate())
                objectives.append(self.objective)
        finally:
            self.seed_index = None
        self.objective = statistics.fmean(objectives)
        if hasattr(trial, "set_user_attr"):  # Optuna: the seeds' objectives beside the mean
            trial.set_user_attr("seed_objectives", objectives)
        if self.hp_search_backend is not None and self.hp_search_backend.value == "ray":
            import ray.tune

            ray.tune.report({"objective": self.objective, "seed_objectives": objectives})
        return output

    def _report_to_hp_search(self, trial, step, metrics):
        if self.seed_index:  # a later seed: scored by its own last evaluation, never pruned
            self.objective = self.compute_objective(metrics.copy())
            return
        super()._report_to_hp_search(trial, step, metrics)
