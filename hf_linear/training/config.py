"""A training run declared in one YAML file: sections, their checks, and command-line overrides.

    model:       type (linear_lm | mlp_lm | gpt2: any model type AutoConfig knows) and the fields
                 of its config class; the window (context_length, GPT-2: n_positions), vocab_size
                 and the special-token ids default to the data's. `init_from: PATH_OR_HUB_ID`
                 starts from a checkpoint's weights and tokenizer instead (see `models.py`).
    dataset:     the data source (hf_linear.data.sources)
    training:    transformers.TrainingArguments fields (output_dir, learning_rate, bf16, ...)
    evaluation:  exact match by greedy generation, or for language-model data perplexity and
                 samples (`EvaluationConfig`)
    budget:      optional `max_minutes` of training, for comparisons at equal wall-clock time;
                 the learning-rate schedule then follows the budget (`BudgetConfig`)
    optimizer:   optional: `mixing_lr_fan_in_reference` scales the masked map's learning rate
                 down along the sequence (`OptimizerConfig`, hf_linear.training.fan_in_lr);
                 `redo_every` / `redo_threshold` recycle dormant units (hf_linear.training.redo);
                 `center_mixing_gradient` takes the map's weight gradient from batch-centred
                 inputs (hf_linear.training.centered_gradient)
    recipe:      optional: `default` fills model, training and optimizer settings from the task's
                 shape (hf_linear.training.default_recipe); the keys a config gives win
    lora:        optional: train a LoRA adapter (peft.LoraConfig fields: r, lora_alpha,
                 target_modules (default: the masked map, "mixing"), ...) instead of all weights;
                 the final model is saved merged, the adapter beside it in `adapter/`

Every key is checked against the dataclass that takes it with huggingface_hub's type validator
(the one behind transformers' strict configs); errors name `section.key`. YAML is read with the
YAML 1.2 core schema: `no`/`off` stay strings (eval_strategy: no) and `1e-3` is a number.
Relative data paths in a config file are relative to that file, not to the working directory.
"""

from __future__ import annotations

import dataclasses
import enum
import math
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from huggingface_hub.dataclasses import type_validator
from peft import LoraConfig
from transformers import AutoConfig, TrainingArguments

from hf_linear.data.sources import DataSource, data_source
from hf_linear.dotted_keys import parent_of
from hf_linear.model_types import MODEL_TYPES, is_hf_linear, type_names
from hf_linear.paper import STORY_PROMPT, STORY_TEMPERATURE
from hf_linear.training.default_recipe import default_recipe, recipe_task

SECTIONS = ("model", "dataset", "training", "evaluation", "budget", "optimizer", "lora")
# a config's top-level keys: its sections, and the name of a recipe (not a section: a study may
# still call an axis of its own "recipe")
TOP_LEVEL_KEYS = (*SECTIONS, "recipe")
# TrainingArguments counts that Trainer divides by (0 was a ZeroDivisionError deep inside a run)
POSITIVE_TRAINING_COUNTS = ("per_device_train_batch_size", "per_device_eval_batch_size", "gradient_accumulation_steps")
# what a fine-tuning run may change of its checkpoint's model (both grow it, keeping its function)
FINETUNE_MODEL_KEYS = ("context_length", "vocab_size", "mixing_chunk_size")


@dataclass
class EvaluationConfig:
    """The `evaluation:` section: exact match of generated answers on held-out prompts; for data
    without `prompt` / `answer` columns (TinyStories), the LM report of hf_linear.evaluation.lm_report:
    perplexity on `num_samples` held-out windows and `num_generations` samples."""

    split: str = "test"  # held-out split for the final report
    num_samples: int = 1000  # held-out prompts in the final report
    during_training_split: str = "validation"  # split evaluated at every `eval_steps`
    during_training_samples: int = 200  # prompts per evaluation during training (0: loss only)
    batch_size: int = 256  # prompts generated at once
    num_examples: int = 5  # sample generations printed and stored
    mask_prompt: bool = True  # loss only on the tokens after the prompt
    # language-model data only
    sample_prompt: str = STORY_PROMPT  # the paper's prompt
    temperature: float = STORY_TEMPERATURE  # the paper's sampling temperature
    max_new_tokens: int | None = None  # None: up to the model's window in all, as the authors' code
    num_generations: int = 8  # samples drawn for the text statistics and the generation speed

    def __post_init__(self):
        if self.temperature <= 0:
            raise ValueError(f"evaluation.temperature must be > 0, got {self.temperature}")
        if self.max_new_tokens is not None and self.max_new_tokens < 1:
            raise ValueError(f"evaluation.max_new_tokens must be >= 1, got {self.max_new_tokens}")
        for name in ("num_samples", "batch_size", "num_generations"):
            if getattr(self, name) < 1:
                raise ValueError(f"evaluation.{name} must be >= 1, got {getattr(self, name)}")
        for name in ("during_training_samples", "num_examples"):
            if getattr(self, name) < 0:
                raise ValueError(f"evaluation.{name} must be >= 0, got {getattr(self, name)}")

    def sampling(self, seed: int) -> dict:
        """The samples of a language-model report (lm_report's arguments)."""
        return {
            "prompt": self.sample_prompt,
            "temperature": self.temperature,
            "num_generations": self.num_generations,
            "max_new_tokens": self.max_new_tokens,
            "seed": seed,
        }


@dataclass
class BudgetConfig:
    """The optional `budget:` section."""

    # wall-clock training time after which training stops; the learning rate then decays over the
    # elapsed fraction of the budget instead of the steps (a step-based decay would stop early,
    # before its rate has decayed, on a slower machine)
    max_minutes: float | None = None

    def __post_init__(self):
        if self.max_minutes is not None and self.max_minutes <= 0:
            raise ValueError(f"budget.max_minutes must be > 0, got {self.max_minutes}")


@dataclass
class OptimizerConfig:
    """The optional `optimizer:` section: what the Trainer's optimizer does beyond `training:`'s fields."""

    # row i of the masked map steps at learning_rate · min(1, N / (i+1)): long CoTs keep their
    # late positions' ReLU units alive at the learning rate the short rows need (fan_in_lr.py)
    mixing_lr_fan_in_reference: int | None = None
    # every N steps, the units after the masked map's ReLU that were dormant over those steps'
    # batches (mean activation ≤ redo_threshold × their position's mean; 0: never fired) are
    # re-initialised, their moments reset (ReDo, redo.py)
    redo_every: int | None = None
    redo_threshold: float = 0.0
    # the masked map's weight gradient taken from batch-centred inputs: a unit's mean
    # pre-activation is moved by its bias alone, not by every block of a long row at once
    # (centered_gradient.py)
    center_mixing_gradient: bool = False

    def __post_init__(self):
        reference = self.mixing_lr_fan_in_reference
        if reference is not None and (isinstance(reference, bool) or reference < 1):
            raise ValueError(
                f"optimizer.mixing_lr_fan_in_reference must be a positive number of positions, got {reference!r}"
            )
        if self.redo_every is not None and (isinstance(self.redo_every, bool) or self.redo_every < 1):
            raise ValueError(f"optimizer.redo_every must be a positive number of steps, got {self.redo_every!r}")
        if self.redo_threshold < 0:
            raise ValueError(f"optimizer.redo_threshold must be >= 0, got {self.redo_threshold!r}")

    def as_dict(self) -> dict:
        """The fields set to other than their defaults (what a run directory records)."""
        defaults = OptimizerConfig()
        return {k: v for k, v in dataclasses.asdict(self).items() if v != getattr(defaults, k)}


@dataclass
class RunConfig:
    """A checked training config; `as_dict()` is what the run directory keeps (training_config.yaml)."""

    model: dict
    dataset: dict
    training: dict
    evaluation: EvaluationConfig
    budget: BudgetConfig
    lora: dict | None = None
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    # the source the check built from `dataset`: the run loads its data from it instead of building
    # another (a program source compiles its program when built)
    source: DataSource | None = field(default=None, repr=False, compare=False)

    def data_source(self) -> DataSource:
        if self.source is None:
            self.source = data_source(self.dataset)
        return self.source

    def as_dict(self) -> dict:
        return {
            "model": self.model,
            "dataset": self.dataset,
            "training": self.training,
            "evaluation": dataclasses.asdict(self.evaluation),
            "budget": dataclasses.asdict(self.budget),
            # only when set: the run directories of runs without it stay as they were
            **({"optimizer": self.optimizer.as_dict()} if self.optimizer != OptimizerConfig() else {}),
            **({"lora": self.lora} if self.lora else {}),
        }


# ---------------------------------------------------------------------------------------------
# YAML 1.2 core schema: PyYAML implements YAML 1.1, where `no` is false and `1e-3` a string


class DuplicateKeyError(yaml.YAMLError):
    """A mapping that gives a key twice: PyYAML would silently keep the last value (e.g. a second
    `model:` section replacing the first)."""


class _Yaml12Loader(yaml.SafeLoader):
    def construct_mapping(self, node, deep=False):
        # the node's own keys only: `<<` merges may be overridden by design
        first_line = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                hash(key)
            except TypeError:
                continue  # SafeLoader's own error follows
            line = key_node.start_mark.line + 1
            if key in first_line:
                raise DuplicateKeyError(f"duplicate key {key!r} at line {line} (first given at line {first_line[key]})")
            first_line[key] = line
        return super().construct_mapping(node, deep)


_Yaml12Loader.yaml_implicit_resolvers = {
    first: [
        (tag, regexp) for tag, regexp in resolvers if tag not in ("tag:yaml.org,2002:bool", "tag:yaml.org,2002:float")
    ]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Yaml12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
_Yaml12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
    ),
    list("-+0123456789."),
)


def _construct_number(loader, node):  # "3" stays an int under the float pattern above
    text = loader.construct_scalar(node)
    try:
        return int(text)
    except ValueError:
        return loader.construct_yaml_float(node)


_Yaml12Loader.add_constructor("tag:yaml.org,2002:float", _construct_number)


def read_yaml(text: str):
    return yaml.load(text, Loader=_Yaml12Loader)


def read_yaml_file(path: Path, what: str = "config file"):
    """The YAML of a file; ValueError naming the file (and the line) when it is not valid YAML."""
    if not path.is_file():
        raise ValueError(f"{what} {path} does not exist")
    try:
        return read_yaml(path.read_text())
    except yaml.YAMLError as error:
        raise ValueError(f"{what} {path} is not valid YAML: {' '.join(str(error).split())}") from None


# ---------------------------------------------------------------------------------------------
# Loading and checking


def load_config(path: str | Path, overrides: list[str] = (), trust_program_code: bool = False) -> RunConfig:
    """Read CONFIG, resolve its relative data paths, apply `--section.key value` overrides, and
    check every key and type. `trust_program_code`: see `check_config`."""
    path = Path(path)
    config = read_yaml_file(path) or {}
    if not isinstance(config, dict):
        raise ValueError(f"config file {path} must hold a mapping of sections {', '.join(SECTIONS)}")
    resolve_data_paths(config, path.parent)
    apply_overrides(config, overrides)
    return check_config(config, trust_program_code)


def apply_overrides(config: dict, overrides: list[str]) -> None:
    """`--section.key value` pairs into the config (values read as YAML)."""
    overrides = list(overrides)
    if len(overrides) % 2:
        raise ValueError(f"overrides come in pairs --section.key value; got {' '.join(overrides)}")
    for flag, raw in zip(overrides[::2], overrides[1::2]):
        if not flag.startswith("--") or "." not in flag:
            raise ValueError(f"override {flag!r} must look like --section.key (e.g. --training.learning_rate)")
        try:
            node, key = parent_of(config, flag[2:])
        except ValueError as error:
            raise ValueError(f"override {flag}: {error}") from None
        try:
            node[key] = read_yaml(raw)
        except yaml.YAMLError as error:
            raise ValueError(f"override {flag}: not valid YAML: {' '.join(str(error).split())}") from None


# (section, key) pairs holding input paths (or Hub ids) that a config file may give relatively
_DATA_PATH_KEYS = (("dataset", "path"), ("dataset", "tokenizer"), ("model", "init_from"))
_SOURCE_PATH_KEYS = (("tinystories", "source"), ("tinystories", "tokenizer"))


def resolve_data_paths(config: dict, base: Path) -> None:
    """Relative input paths of a config file are relative to the file: `../data/x` in
    configs/cpu/a.yaml means configs/data/x wherever the command runs. A value that names no
    file there is left alone (a Hub id)."""

    def resolved(value):
        if isinstance(value, str) and value and not Path(value).is_absolute() and (base / value).exists():
            return str((base / value).resolve())
        return value

    dataset = config.get("dataset") if isinstance(config.get("dataset"), dict) else {}
    for section, key in _DATA_PATH_KEYS:
        node = config.get(section)
        if isinstance(node, dict) and key in node:
            node[key] = resolved(node[key])
    for source, key in _SOURCE_PATH_KEYS:
        node = dataset.get(source)
        if isinstance(node, dict) and key in node:
            node[key] = resolved(node[key])


def check_fields(section: str, values: dict, cls, extra: tuple[str, ...] = ()) -> dict:
    """Check the keys and value types of a section against dataclass `cls`; ints are accepted
    where a float is expected."""
    if not isinstance(values, dict):
        raise ValueError(f"config section {section}: must be a mapping, got {values!r}")
    hints = _field_types(cls)
    fields = {f.name for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(k for k in values if k not in fields and k not in extra)
    if unknown:
        raise ValueError(f"{section}: unknown key(s) {', '.join(unknown)} for {cls.__name__}")
    checked = {}
    for key, value in values.items():
        if key in fields:
            # an int is a valid float (and stays an int in the saved config)
            typed = float(value) if type(value) is int and _accepts(hints[key], float) else value
            try:
                type_validator(f"{section}.{key}", typed, hints[key])
            except TypeError as error:
                raise ValueError(str(error)) from None
            _check_enum_member(f"{section}.{key}", value, hints[key])
        checked[key] = value
    return checked


def _field_types(cls) -> dict:
    """Resolved annotations of a dataclass; a field whose annotation names what its module only
    imports for type checkers (e.g. `torch.dtype` in PreTrainedConfig) is not type-checked."""
    try:
        return typing.get_type_hints(cls)
    except NameError:
        hints = {}
        for klass in reversed(cls.__mro__):
            for name, annotation in getattr(klass, "__annotations__", {}).items():
                try:
                    hints[name] = typing.get_type_hints(
                        type("_", (), {"__annotations__": {name: annotation}, "__module__": klass.__module__})
                    )[name]
                except Exception:
                    hints[name] = typing.Any
        return hints


def _options(annotation) -> tuple:
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return typing.get_args(annotation)
    return (annotation,)


def _accepts(annotation, kind: type) -> bool:
    return kind in _options(annotation)


def _check_enum_member(where: str, value, annotation) -> None:
    """`IntervalStrategy | str` accepts any string by type; the string must still name a member
    (checked here, not by TrainingArguments, whose checks depend on the machine)."""
    enums = [a for a in _options(annotation) if isinstance(a, type) and issubclass(a, enum.Enum)]
    if enums and isinstance(value, str) and value not in {m.value for m in enums[0]}:
        raise ValueError(f"{where} must be one of {[m.value for m in enums[0]]}, got {value!r}")


def check_finite_numbers(node, where: str = "") -> None:
    """Every number anywhere in a config is finite: YAML's .nan and .inf are numbers, and a NaN or
    infinite learning rate, weight decay or time budget used to train a NaN model (or stop at
    once) without an error. ValueError naming the key."""
    if isinstance(node, float) and not math.isfinite(node):
        raise ValueError(f"{where} must be a finite number, got {node}")
    if isinstance(node, dict):
        for key, value in node.items():
            check_finite_numbers(value, f"{where}.{key}" if where else str(key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            check_finite_numbers(value, f"{where}[{index}]")


def model_config_class(model_type):
    """The config class of a model type, from the Auto registry (hf_linear registers its two)."""

    try:
        return type(AutoConfig.for_model(model_type))
    except (ValueError, KeyError, TypeError):
        raise ValueError(
            f"model.type must be a model type AutoConfig knows ({type_names()}, gpt2, ...), got {model_type!r}"
        ) from None


def with_recipe(config: dict, trust_program_code: bool = False) -> tuple[dict, DataSource]:
    """The config with its `recipe:` applied (the recipe's model, training and optimizer keys under
    the config's own), and the data source whose task chose it."""
    if config["recipe"] != "default":
        raise ValueError(f"recipe must be default (chosen from the task's shape), got {config['recipe']!r}")
    if isinstance(config.get("model"), dict) and "init_from" in config["model"]:
        raise ValueError("recipe: default chooses a new model; with model.init_from give the training settings")
    source = data_source(config.get("dataset"), trust_program_code)
    merged = {key: value for key, value in config.items() if key != "recipe"}
    for section, values in default_recipe(recipe_task(source)).items():
        given = merged.get(section) or {}
        if not isinstance(given, dict):
            raise ValueError(f"config section {section}: must be a mapping, got {given!r}")
        merged[section] = {**values, **given}
    return merged, source


def check_config(config: dict, trust_program_code: bool = False) -> RunConfig:
    """Check the sections of a config; returns the RunConfig. `trust_program_code` lets a
    `dataset.program` section import a "module:function" program (the caller's flag, never the
    file's: a config may come from a downloaded checkpoint)."""
    unknown = sorted(set(config) - set(TOP_LEVEL_KEYS))
    if unknown:
        raise ValueError(f"unknown config section(s) {', '.join(unknown)} (sections: {', '.join(TOP_LEVEL_KEYS)})")
    check_finite_numbers(config)
    source = None
    if config.get("recipe") is not None:
        config, source = with_recipe(config, trust_program_code)
    for section in ("model", "dataset", "training"):
        if not isinstance(config.get(section), dict):
            raise ValueError(f"config section {section}: is missing or not a mapping")

    model = dict(config["model"])
    if "init_from" in model:
        if not isinstance(model["init_from"], str) or not model["init_from"]:
            raise ValueError(
                f"model.init_from must be a checkpoint directory or Hub repo id, got {model['init_from']!r}"
            )
        if "type" in model:
            raise ValueError("model.type: give either type (a new model) or init_from (a checkpoint's model), not both")
        init_from = model.pop("init_from")
        cannot_change = sorted(set(model) - set(FINETUNE_MODEL_KEYS))
        if cannot_change:
            raise ValueError(
                f"model.{cannot_change[0]}: with init_from the checkpoint's architecture is kept; "
                f"only {', '.join(FINETUNE_MODEL_KEYS)} can be given (to grow the model)"
            )
        for key, value in model.items():
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"model.{key} must be a positive integer, got {value!r}")
        model = {"init_from": init_from, **model}
    else:
        config_class = model_config_class(model.pop("type", None))
        model = {"type": config_class.model_type, **check_fields("model", model, config_class)}
    source = source or data_source(config["dataset"], trust_program_code)  # checks the section

    training = check_fields("training", config["training"], TrainingArguments)
    if not isinstance(training.get("output_dir"), str) or not training["output_dir"]:
        raise ValueError(f"training.output_dir is required (a directory), got {training.get('output_dir')!r}")
    if training.get("max_steps") == 0 or (training.get("max_steps") or -1) < -1:
        raise ValueError(
            f"training.max_steps must be >= 1 (or -1: train by num_train_epochs), got {training['max_steps']}"
        )
    for key in POSITIVE_TRAINING_COUNTS:
        if key in training and training[key] < 1:
            raise ValueError(f"training.{key} must be >= 1, got {training[key]}")
    try:
        evaluation = EvaluationConfig(**check_fields("evaluation", config.get("evaluation") or {}, EvaluationConfig))
        budget = BudgetConfig(**check_fields("budget", config.get("budget") or {}, BudgetConfig))
        optimizer = OptimizerConfig(**check_fields("optimizer", config.get("optimizer") or {}, OptimizerConfig))
    except TypeError as error:
        raise ValueError(str(error)) from None
    lora = None
    if config.get("lora") is not None:
        lora = check_fields("lora", config["lora"], LoraConfig)
    # the options that change how the masked map's own weight trains
    for name in ("mixing_lr_fan_in_reference", "center_mixing_gradient"):
        if not getattr(optimizer, name):  # None / False: not set
            continue
        if "type" in model and not is_hf_linear(model["type"]):
            raise ValueError(
                f"optimizer.{name}: model type {model['type']} has no masked map (types with one: {type_names()})"
            )
        if lora is not None:
            raise ValueError(
                f"optimizer.{name} changes how the masked map's own weight trains; under lora: "
                "that weight is frozen (leave one of them out)"
            )
    if optimizer.redo_every is not None:
        row = MODEL_TYPES.get(model.get("type"))
        if "type" in model and (row is None or not row.relu_after_mixing):
            raise ValueError(
                f"optimizer.redo_every: model type {model['type']} has no ReLU after a masked map to recycle "
                "units of (mlp_lm has)"
            )
        if lora is not None:
            raise ValueError("optimizer.redo_every re-draws the masked map's weights; under lora: they are frozen")
    return RunConfig(model, dict(config["dataset"]), training, evaluation, budget, lora, optimizer, source)
