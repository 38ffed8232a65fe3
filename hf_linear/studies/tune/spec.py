"""The search file of `hf-linear tune`: what varies, what is measured, how much each trial trains.

A trial is recorded as one line of trials.jsonl (`trial_record`); its steps follow from the
token budget and its batch (`Budget`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from hf_linear.dotted_keys import set_dotted
from hf_linear.studies.study import check_seeds, load_base, read_spec_file

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
    "seeds",
)
OBJECTIVES = {"exact_match": ("eval_exact_match", "maximize"), "eval_loss": ("eval_loss", "minimize")}
PARAMETER_TYPES = ("float", "int", "categorical")
BATCH_KEYS = ("per_device_train_batch_size", "gradient_accumulation_steps")  # what the steps of a budget depend on


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
    seeds: list[int] | None = None  # each trial trains once per seed, scored by the mean (tune/seeds.py)

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
        if spec.get("seeds") is not None:
            check_seeds(spec["seeds"])
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
            spec.get("seeds"),
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
