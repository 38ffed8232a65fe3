"""Run a study: a grid of ordinary training runs declared in one YAML file.

    hf-linear study configs/studies/formats_4x4.yaml [--quick] [--only NAME] [--out STUDY_DIR]

A study file (see configs/studies/) has

    name:        the study (default: the file name); STUDY_DIR defaults to runs/studies/NAME
    base:        a training config (sections model / dataset / training / evaluation / budget),
                 or base_config: PATH (relative to the study file)
    axes:        the grid: {dotted.key: [values]} — every combination is one run. A value may be
                 a mapping {label: value} to name values (e.g. whole `model` sections); an axis
                 whose key is a free name (no dot, not a section) maps labels to several keys at
                 once: {n: {"2": {dataset.arithmetic_stream.digits: [2, 2], budget.max_minutes: 1}}}
    runs:        extra groups of runs beside the grid: [{name, set: {dotted.key: value}, axes, seeds}]
                 (e.g. the GPT-2 baseline with its own `model` section); setting a key replaces
                 its value, null removes it; a group's `seeds` replace the study's for its runs
                 (e.g. three seeds for the smallest sizes only; null: one run each, unseeded)
    seeds:       optional [0, 1, 2]: every run above once per seed, as NAME@seedS, with training.seed
                 and the seed of generated data (arithmetic, program; streams included) set to S;
                 the report then gives each group of seeds the share reaching the target and the
                 interquartile mean with a bootstrap interval (hf_linear.studies.seed_statistics)
    stop_when:   optional {exact_match: 0.99}: end a run at its first evaluation that reaches it
    quick:       optional {factor: 20, set: {...}}: what --quick changes besides the generic
                 scaling of `quick_config` (steps and budgets ÷ factor, tiny data)
    report:      optional settings of `hf-linear report` (see hf_linear.studies.report)

Each run trains in STUDY_DIR/runs/NAME with the config saved as STUDY_DIR/configs/NAME.yaml
(runnable with `hf-linear train`); after it, one JSON line goes to STUDY_DIR/results.jsonl.
Running the study again skips finished runs (eval_results.json present), resumes interrupted
ones from their last complete checkpoint, and starts the others; at the end REPORT.md is written.

    hf-linear study STUDY --engine ray [--address ADDR] [--cpus-per-run N] [--gpus-per-run N]

trains the runs as Ray tasks, as many at once as the resources allow (hf_linear.studies.engines.ray_runs);
results, run directories, reports and resuming are the same.
"""

from __future__ import annotations

import copy
import fnmatch
import itertools
import json
import math
import re
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path

import yaml
from transformers import TrainerCallback

from hf_linear.atomic import write_text_atomically
from hf_linear.data.sources import GENERATED_SOURCES
from hf_linear.dotted_keys import set_dotted  # also imported from here by studies.tune
from hf_linear.run_files import EVAL_RESULTS, STUDY_RESULTS, STUDY_SPEC
from hf_linear.studies.results import read_results, run_record
from hf_linear.studies.seed_statistics import SEED_MARK
from hf_linear.training.config import SECTIONS, check_config, read_yaml_file, resolve_data_paths
from hf_linear.training.run_dir import last_complete_checkpoint
from hf_linear.training.train import train

STUDY_KEYS = ("name", "description", "base", "base_config", "axes", "runs", "seeds", "stop_when", "quick", "report")
QUICK_FACTOR = 20
# --quick: data sizes capped so that building the data and evaluating take seconds
QUICK_LIMITS = {"train_size": 2000, "validation_size": 64, "test_size": 64}
QUICK_EVAL_LIMITS = {"num_samples": 64, "during_training_samples": 32, "num_generations": 2}


# ---------------------------------------------------------------------------------------------
# Dotted keys


def is_config_key(key: str) -> bool:
    return "." in key or key in SECTIONS


def value_label(value) -> str:
    """Short text of an axis value for run names: [4, 4] -> 4x4."""
    if isinstance(value, (list, tuple)):
        return "x".join(map(str, value))
    if isinstance(value, dict):
        raise ValueError(f"axis value {value!r} needs a label: give the axis as a mapping {{label: value}}")
    return str(value)


# ---------------------------------------------------------------------------------------------
# The study file → named runs


def read_spec_file(path: Path, what: str, keys) -> dict:
    """A study or search file: a YAML mapping with only the known `keys` (ValueError naming the file)."""
    spec = read_yaml_file(path, what) or {}
    if not isinstance(spec, dict):
        raise ValueError(f"{what} {path} must be a mapping with keys {', '.join(keys)}")
    unknown = sorted(set(spec) - set(keys))
    if unknown:
        raise ValueError(f"{what} {path}: unknown key(s) {', '.join(unknown)} (keys: {', '.join(keys)})")
    return spec


@dataclass
class Run:
    name: str
    varied: dict  # axis -> label of its value, and the group's name
    config: dict  # the training config (unchecked until `Study.checked_runs`)


@dataclass
class Study:
    name: str
    spec: dict  # the study file, base resolved
    runs: list[Run]

    @classmethod
    def load(cls, path: str | Path, quick: bool = False) -> Study:
        path = Path(path)
        spec = read_spec_file(path, "study file", STUDY_KEYS)
        base = load_base(spec, path, "study file")
        check_stop_when(spec.get("stop_when"))
        spec = {**spec, "base": base, "name": spec.get("name", path.stem), "quick_run": quick}
        spec.pop("base_config", None)
        groups = (
            [{"name": None, "set": {}, "axes": spec.get("axes") or {}}]
            if spec.get("axes") or not spec.get("runs")
            else []
        )
        groups += list(spec.get("runs") or [])
        runs = []
        for group in groups:
            seeds = group.get("seeds", spec.get("seeds")) if isinstance(group, dict) else None
            group_runs = expand_group(base, group)
            runs += group_runs if seeds is None else with_seeds(group_runs, check_seeds(seeds))
        if quick:
            factor = (spec.get("quick") or {}).get("factor", QUICK_FACTOR)
            for run in runs:
                quick_config(run.config, factor)
                for key, value in ((spec.get("quick") or {}).get("set") or {}).items():
                    set_dotted(run.config, key, value)
        names = [run.name for run in runs]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(
                f"study {spec['name']}: run names {', '.join(duplicates)} appear twice; name the groups of `runs:`"
            )
        return cls(spec["name"], spec, runs)

    def select(self, only: str | None) -> list[Run]:
        """The runs whose name matches `only` (a name or a glob), all without it."""
        if not only:
            return self.runs
        chosen = [run for run in self.runs if fnmatch.fnmatchcase(run.name, only)]
        if not chosen:
            raise ValueError(
                f"--only {only}: no run of study {self.name} matches (runs: {', '.join(r.name for r in self.runs)})"
            )
        return chosen


def load_base(spec: dict, path: Path, what: str) -> dict:
    """The training config a study (or a search) starts from: `base` (the config itself, or the
    path of a config file) or `base_config` (a path), relative to the file `path`; its relative
    data paths resolved."""
    if ("base" in spec) == ("base_config" in spec):
        raise ValueError(f"{what} {path}: give exactly one of base (a config or its path) and base_config (a path)")
    given = spec.get("base", spec.get("base_config"))
    if isinstance(given, str):
        base_path = path.parent / given
        base = read_yaml_file(base_path, f"{what} {path}: base config") or {}
        resolve_data_paths(base, base_path.parent)
    else:
        base = copy.deepcopy(given)
        resolve_data_paths(base, path.parent)
    if not isinstance(base, dict):
        raise ValueError(f"{what} {path}: the base config must be a mapping of sections, got {base!r}")
    return base


def check_stop_when(stop_when) -> None:
    """`stop_when: {metric: target}` (e.g. {exact_match: 0.99}), or absent."""
    if stop_when is None:
        return
    if not isinstance(stop_when, dict) or not all(
        isinstance(k, str) and isinstance(v, (int, float)) and not isinstance(v, bool) for k, v in stop_when.items()
    ):
        raise ValueError(
            f"stop_when must be a mapping {{metric: target}} (e.g. {{exact_match: 0.99}}), got {stop_when!r}"
        )


def check_seeds(seeds) -> list[int]:
    """`seeds: [0, 1, 2]`: distinct non-negative integers."""
    if (
        not isinstance(seeds, list)
        or not seeds
        or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds)
        or len(set(seeds)) != len(seeds)
    ):
        raise ValueError(f"seeds must be a list of distinct non-negative integers, e.g. [0, 1, 2]; got {seeds!r}")
    return seeds


def set_seed_of(config: dict, seed: int) -> None:
    """Seed a training config: training.seed (initial weights, order of the examples) and the seed
    of its generated data (the examples drawn: each part of a mixture too)."""
    config.setdefault("training", {})["seed"] = seed
    dataset = config.get("dataset") or {}
    for source in (*GENERATED_SOURCES, "arithmetic_mixture"):
        for arguments in dataset.get(source) if isinstance(dataset.get(source), list) else [dataset.get(source)]:
            if isinstance(arguments, dict):
                arguments["seed"] = seed


def with_seeds(runs: list[Run], seeds: list[int]) -> list[Run]:
    """Every run once per seed: NAME@seedS, varied by `seed` too."""
    seeded = []
    for run in runs:
        for seed in seeds:
            config = copy.deepcopy(run.config)
            set_seed_of(config, seed)
            seeded.append(Run(f"{run.name}{SEED_MARK}{seed}", {**run.varied, "seed": str(seed)}, config))
    return seeded


def axis_choices(axis: str, values) -> list[tuple[str, str, dict]]:
    """The (axis, label, {dotted key: value}) choices of one axis of the grid."""
    if not isinstance(values, (list, dict)):
        raise ValueError(f"axis {axis!r}: give a list of values (or a mapping label: value), got {values!r}")
    if not values:
        raise ValueError(f"axis {axis!r} has no values: the grid would have no runs")
    if is_config_key(axis):
        labelled = values.items() if isinstance(values, dict) else ((value_label(v), v) for v in values)
        return [(axis, str(label), {axis: value}) for label, value in labelled]
    if not isinstance(values, dict) or not all(isinstance(v, dict) for v in values.values()):
        raise ValueError(f"axis {axis!r} is not a config key, so it maps labels to {{dotted.key: value}} mappings")
    return [(axis, str(label), settings) for label, settings in values.items()]


def expand_group(base: dict, group: dict) -> list[Run]:
    """The runs of one group: base + the group's `set`, times every combination of its axes."""
    if not isinstance(group, dict) or set(group) - {"name", "set", "axes", "seeds"}:
        raise ValueError(f"a group of `runs:` is a mapping with name, set, axes, seeds; got {group!r}")
    fixed = group.get("set") or {}
    axes = group.get("axes") or {}
    if not isinstance(axes, dict):
        raise ValueError(f"axes must be a mapping {{dotted.key: [values]}}, got {axes!r}")
    choices = [axis_choices(axis, values) for axis, values in axes.items()]
    runs = []
    for combination in itertools.product(*choices):
        config = copy.deepcopy(base)
        for key, value in fixed.items():
            set_dotted(config, key, value)
        for _, _, settings in combination:
            for key, value in settings.items():
                set_dotted(config, key, value)
        parts = ([group["name"]] if group.get("name") else []) + [
            f"{axis.split('.')[-1]}-{label}" for axis, label, _ in combination
        ]
        name = re.sub(r"[^A-Za-z0-9._-]+", "-", "_".join(parts) or "run")
        varied = ({"group": group["name"]} if group.get("name") else {}) | {
            axis: label for axis, label, _ in combination
        }
        runs.append(Run(name, varied, config))
    return runs


def quick_config(config: dict, factor: float) -> None:
    """Scale a run down for --quick: steps, intervals and the budget ÷ factor, data and
    evaluation sizes capped. The study's `quick.set` is applied after this."""
    training = config.setdefault("training", {})
    for key in ("max_steps", "eval_steps", "save_steps", "logging_steps", "warmup_steps"):
        if isinstance(training.get(key), int) and training[key] > 0:
            training[key] = max(1, math.ceil(training[key] / factor))
    budget = config.get("budget") or {}
    if budget.get("max_minutes"):
        budget["max_minutes"] = budget["max_minutes"] / factor
    for source in GENERATED_SOURCES:
        arguments = (config.get("dataset") or {}).get(source)
        if isinstance(arguments, dict):
            for key, limit in QUICK_LIMITS.items():
                if key in arguments or not source.endswith("_stream"):
                    arguments[key] = min(arguments.get(key, limit), limit)
            if source.endswith("_stream"):
                arguments.pop("train_size", None)
    evaluation = config.setdefault("evaluation", {})
    for key, limit in QUICK_EVAL_LIMITS.items():
        evaluation[key] = min(evaluation.get(key, limit), limit)


# ---------------------------------------------------------------------------------------------
# Callbacks of a study run


class StopWhenReached(TrainerCallback):
    """Ends training at the first evaluation whose eval_<metric> reaches `target` (`stop_when`)."""

    def __init__(self, metric: str, target: float):
        self.metric, self.target = f"eval_{metric}", target

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and logs.get(self.metric, -math.inf) >= self.target:
            control.should_training_stop = True
        return control


# ---------------------------------------------------------------------------------------------
# Running


def default_study_dir(study: Study) -> Path:
    return Path("runs/studies") / (study.name + ("-quick" if study.spec["quick_run"] else ""))


def run_study(
    study: Study,
    study_dir: Path,
    only: str | None = None,
    callbacks=(),
    write_report: bool = True,
    engine=None,
    trust_program_code: bool = False,
) -> dict:
    """Train every selected run not yet finished; returns {name: "done" | "skipped" | error}.

    `callbacks`: factories of extra TrainerCallbacks, called with the run (e.g. progress, tests).
    `engine`: how the runs are trained, `engine(study, study_dir, [(run, config)], callbacks) ->
    outcome`; default `run_sequentially`, or `hf_linear.studies.engines.ray_runs.RayEngine(...)`."""
    study_dir = Path(study_dir)
    runs = study.select(only)
    # check every config before the first run trains: a typo must not surface hours later
    checked = {}
    for run in runs:
        run.config.setdefault("training", {})["output_dir"] = str(study_dir / "runs" / run.name)
        try:
            checked[run.name] = check_config(copy.deepcopy(run.config), trust_program_code)
        except ValueError as error:
            raise ValueError(f"run {run.name}: {error}") from None
    (study_dir / "configs").mkdir(parents=True, exist_ok=True)
    write_text_atomically(study_dir / STUDY_SPEC, yaml.safe_dump(study.spec, sort_keys=False))

    outcome = (engine or run_sequentially)(study, study_dir, [(run, checked[run.name]) for run in runs], callbacks)
    if write_report:
        from hf_linear.studies.report import write_report as report

        print(f"report: {report(study_dir)}")
    return outcome


def run_sequentially(study: Study, study_dir: Path, jobs: list[tuple[Run, object]], callbacks) -> dict:
    """The default engine: the runs one after the other in this process."""
    outcome = {}
    for run, config in jobs:
        try:
            outcome[run.name] = train_run(study, study_dir, run, config, callbacks)
        except ValueError as error:  # a run that cannot train: the others still run
            failed(run, error)
            outcome[run.name] = f"failed: {error}"
    return outcome


def failed(run: Run, error) -> None:
    print(f"hf-linear study: run {run.name} failed: {error}", file=sys.stderr)
    traceback.print_exc()


def train_run(study: Study, study_dir: Path, run: Run, config, callbacks) -> str:
    """Train one run unless finished, then record it in results.jsonl; "done" or "skipped"."""
    status = train_unless_finished(study, study_dir, run, config, callbacks)
    record_result(study_dir, run, status)
    return status


def is_finished(study_dir: Path, run: Run, config) -> bool:
    """Whether the run has finished (eval_results.json); ValueError if its config changed since
    it started (a rerun must not mix two configs in one run directory)."""
    run_dir, config_path = study_dir / "runs" / run.name, study_dir / "configs" / f"{run.name}.yaml"
    finished = (run_dir / EVAL_RESULTS).is_file()
    if config_path.is_file() and config_path.read_text() != config_text(config) and run_dir.is_dir():
        raise ValueError(
            f"its config changed since it {'ran' if finished else 'started'} ({config_path}); "
            f"remove {run_dir} to run it again with the new one"
        )
    return finished


def config_text(config) -> str:
    return yaml.safe_dump(config.as_dict(), sort_keys=False)


def train_unless_finished(study: Study, study_dir: Path, run: Run, config, callbacks) -> str:
    """Train one run, resumed from its last complete checkpoint if it has one; "skipped" if it
    has finished. What an engine's worker runs."""
    run_dir, config_path = study_dir / "runs" / run.name, study_dir / "configs" / f"{run.name}.yaml"
    if is_finished(study_dir, run, config):
        status = "skipped"
    else:
        resume = last_complete_checkpoint(run_dir) is not None
        print(f"\n=== study {study.name}: run {run.name} ({'resumed' if resume else 'started'}) ===", flush=True)
        write_text_atomically(config_path, config_text(config))
        extra = [make(run) for make in callbacks]
        if study.spec.get("stop_when"):
            extra += [StopWhenReached(metric, target) for metric, target in study.spec["stop_when"].items()]
        # overwrite: a directory left by a run killed before its first checkpoint
        train(config, resume=resume, overwrite=not resume, callbacks=extra)
        status = "done"
    return status


def record_result(study_dir: Path, run: Run, status: str) -> None:
    """One line of results.jsonl for a run that has just finished, or has finished before but has
    no line yet (e.g. interrupted between the two)."""
    if status == "done" or run.name not in read_results(study_dir):
        run_dir, config_path = study_dir / "runs" / run.name, study_dir / "configs" / f"{run.name}.yaml"
        record = run_record(run_dir, run.name, run.varied, config_path, study_dir)
        with open(study_dir / STUDY_RESULTS, "a") as results:
            results.write(json.dumps(record) + "\n")
