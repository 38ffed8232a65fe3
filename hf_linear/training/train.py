"""Train an hf-linear model from one declarative YAML config with `transformers.Trainer`.

    hf-linear train [CONFIG] [--section.key value ...] [--resume] [--overwrite]
    accelerate launch --multi_gpu --num_processes 2 -m hf_linear.training.train CONFIG     # 2 processes

CONFIG (default: configs/cpu/mul4x4_lsb_mlp.yaml, the README's main job) has four sections:

    model:       type (linear_lm | mlp_lm | gpt2) and the fields of LinearLMConfig / MLPLMConfig /
                 GPT2Config (the transformer baseline); vocab_size, the window (context_length,
                 GPT-2: n_positions) and the special-token ids default to the data's
    dataset:     the data source (see hf_linear.data): arithmetic / path / hub, tokenizer
    training:    transformers.TrainingArguments fields (output_dir, learning_rate, bf16, ...)
    evaluation:  exact-match evaluation by greedy generation, or for language-model data without
                 prompts (TinyStories) perplexity and samples (see EvaluationConfig)
    budget:      optional `max_minutes`: stop training after that much wall-clock time, for
                 comparisons at equal compute (the schedule still follows max_steps)

Overrides address a key by section, e.g. `--training.learning_rate 1e-3 --model.hidden_size 64`.
Unknown keys and values of the wrong type are errors that name them.
"""

from __future__ import annotations

import argparse
import dataclasses
import enum
import os
import shutil
import sys
import tempfile
import types
import typing
from dataclasses import dataclass
from pathlib import Path

import yaml

from hf_linear.resources import packaged_config

SECTIONS = ("model", "dataset", "training", "evaluation", "budget")


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
    sample_prompt: str = "Once upon a"  # the paper's prompt
    temperature: float = 0.5  # the paper's sampling temperature
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


@dataclass
class BudgetConfig:
    """The optional `budget:` section."""

    max_minutes: float | None = None  # wall-clock training time after which training stops

    def __post_init__(self):
        if self.max_minutes is not None and self.max_minutes <= 0:
            raise ValueError(f"budget.max_minutes must be > 0, got {self.max_minutes}")


def time_budget_callback(max_minutes: float):
    """A TrainerCallback that ends training (with a final save) once `max_minutes` have passed."""
    import time

    from transformers import TrainerCallback

    class TimeBudget(TrainerCallback):
        def on_train_begin(self, args, state, control, **kwargs):
            self.deadline = time.monotonic() + 60 * max_minutes

        def on_step_end(self, args, state, control, **kwargs):
            if time.monotonic() >= self.deadline:
                control.should_training_stop = True
            return control

    return TimeBudget()


# ---------------------------------------------------------------------------------------------
# Config parsing: every key checked against the dataclass (or config class) that takes it


def _coerce(value, annotation, where: str):
    """`value` as the type `annotation` says, or ValueError naming `where`."""
    if isinstance(annotation, str):  # postponed annotations
        annotation = eval(annotation, {**vars(typing), **vars(types)}, {})  # noqa: S307 (our own dataclass annotations)
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if annotation is typing.Any or annotation is None:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        enums = [a for a in args if isinstance(a, type) and issubclass(a, enum.Enum)]
        if enums and isinstance(value, str):  # `SchedulerType | str`: the str must still name a member
            return _coerce(value, enums[0], where)
        errors = []
        for option in (a for a in args if a is not type(None)):
            try:
                return _coerce(value, option, where)
            except ValueError as error:
                errors.append(str(error))
        raise ValueError(errors[0] if len(errors) == 1 else f"{where}: {value!r} matches none of {annotation}")
    if origin is typing.Literal:
        if value in args:
            return value
        raise ValueError(f"{where} must be one of {list(args)}, got {value!r}")
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"{where} must be a list, got {value!r}")
        inner = args[0] if args else typing.Any
        return [_coerce(v, inner, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict or annotation is dict:
        if not isinstance(value, dict):
            raise ValueError(f"{where} must be a mapping, got {value!r}")
        return value
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        try:
            return annotation(value).value if isinstance(value, str) else annotation(value)
        except ValueError:
            raise ValueError(f"{where} must be one of {[m.value for m in annotation]}, got {value!r}") from None
    if annotation is bool:
        if isinstance(value, bool):
            return value
        raise ValueError(f"{where} must be true or false, got {value!r}")
    if annotation is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ValueError(f"{where} must be an integer, got {value!r}")
    if annotation is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return value  # an int is a valid float (and stays readable in the saved config)
        if isinstance(value, str):  # YAML 1.1 reads 1e-3 as a string
            try:
                return float(value)
            except ValueError:
                pass
        raise ValueError(f"{where} must be a number, got {value!r}")
    if annotation is str:
        if isinstance(value, str):
            return value
        raise ValueError(f"{where} must be a string, got {value!r}")
    return value


def _check_fields(section: str, values: dict, cls, skip: tuple[str, ...] = ()) -> dict:
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(k for k in values if k not in fields and k not in skip)
    if unknown:
        raise ValueError(f"{section}: unknown key(s) {', '.join(unknown)} for {cls.__name__}")
    return {k: _coerce(v, fields[k].type, f"{section}.{k}") if k in fields else v for k, v in values.items()}


def model_config_class(model_type: str):
    from transformers import GPT2Config

    from hf_linear import LinearLMConfig, MLPLMConfig

    classes = {cls.model_type: cls for cls in (LinearLMConfig, MLPLMConfig, GPT2Config)}
    if model_type not in classes:
        raise ValueError(f"model.type must be one of {', '.join(classes)}, got {model_type!r}")
    return classes[model_type]


def load_config(path: str | os.PathLike, overrides: list[str] = ()) -> dict:
    """Read CONFIG, apply `--section.key value` overrides, and check every key and type."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"config file {path} does not exist")
    try:
        config = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        raise ValueError(f"config file {path} is not valid YAML: {error}") from None
    if not isinstance(config, dict):
        raise ValueError(f"config file {path} must hold a mapping of sections {', '.join(SECTIONS)}")
    apply_overrides(config, overrides)
    return check_config(config)


def apply_overrides(config: dict, overrides: list[str]) -> None:
    overrides = list(overrides)
    if len(overrides) % 2:
        raise ValueError(f"overrides come in pairs --section.key value; got {' '.join(overrides)}")
    for flag, raw in zip(overrides[::2], overrides[1::2]):
        if not flag.startswith("--") or "." not in flag:
            raise ValueError(f"override {flag!r} must look like --section.key (e.g. --training.learning_rate)")
        *sections, key = flag[2:].split(".")
        node = config
        for section in sections:
            node = node.setdefault(section, {})
            if not isinstance(node, dict):
                raise ValueError(f"override {flag}: {section} is not a section")
        node[key] = yaml.safe_load(raw)


def check_config(config: dict) -> dict:
    """Check the sections of a config; returns it with values coerced to their types."""
    from transformers import TrainingArguments

    from hf_linear.data.sources import check_dataset_config

    unknown = sorted(set(config) - set(SECTIONS))
    if unknown:
        raise ValueError(f"unknown config section(s) {', '.join(unknown)} (sections: {', '.join(SECTIONS)})")
    for section in ("model", "dataset", "training"):
        if not isinstance(config.get(section), dict):
            raise ValueError(f"config section {section}: is missing or not a mapping")

    model = dict(config["model"])
    config_class = model_config_class(model.pop("type", None))
    model = _check_fields("model", model, config_class)
    check_dataset_config(config["dataset"])
    training = _check_fields("training", config["training"], TrainingArguments)
    if "output_dir" not in training:
        raise ValueError("training.output_dir is required")
    evaluation = _check_fields("evaluation", config.get("evaluation") or {}, EvaluationConfig)
    EvaluationConfig(**evaluation)  # value checks
    budget = _check_fields("budget", config.get("budget") or {}, BudgetConfig)
    BudgetConfig(**budget)
    return {
        "model": {"type": config_class.model_type, **model},
        "dataset": config["dataset"],
        "training": training,
        "evaluation": evaluation,
        "budget": budget,
    }


# ---------------------------------------------------------------------------------------------
# Building the pieces


def build_model(model_config: dict, tokenizer, max_length: int):
    """The model of a `model:` section; data-derived fields default to the tokenizer and data."""
    from transformers import GPT2LMHeadModel

    from hf_linear import LinearLMForCausalLM, MLPLMForCausalLM

    fields = {k: v for k, v in model_config.items() if k != "type"}
    fields.setdefault("vocab_size", len(tokenizer))
    fields.setdefault("n_positions" if model_config["type"] == "gpt2" else "context_length", max_length)
    for name in ("bos_token_id", "eos_token_id", "pad_token_id"):
        fields.setdefault(name, getattr(tokenizer, name))
    config = model_config_class(model_config["type"])(**fields)
    model_classes = {"linear_lm": LinearLMForCausalLM, "mlp_lm": MLPLMForCausalLM, "gpt2": GPT2LMHeadModel}
    model = model_classes[config.model_type](config)
    # transformers infers loss_type from the class name ("...ForCausalLM"); GPT2LMHeadModel gets
    # None, and Trainer then counts every label instead of the T-1 predicted ones per window,
    # under-reporting its loss by a factor (T-1)/T.
    model.loss_type = "ForCausalLM"
    return model


def has_prompts(dataset) -> bool:
    """Whether held-out data is scored by exact match (prompt / answer) rather than as an LM."""
    return {"prompt", "answer"} <= set(dataset.column_names)


def make_trainer_class():
    from transformers import Trainer

    from hf_linear.evaluation.exact_match import exact_match_report

    class ExactMatchTrainer(Trainer):
        """Trainer whose evaluation adds exact match by greedy generation to the loss (or, with
        `report_perplexity`, for language-model data, the perplexity exp(loss)).

        The prompts are sharded over processes and the counts summed, so that 2-process runs
        evaluate each prompt once.
        """

        def __init__(self, *args, generation_eval_dataset=None, generation_batch_size=256, report_perplexity=False,
                     **kwargs):  # fmt: skip
            super().__init__(*args, **kwargs)
            self.generation_eval_dataset = generation_eval_dataset
            self.generation_batch_size = generation_batch_size
            self.report_perplexity = report_perplexity

        def evaluate(self, eval_dataset=None, ignore_keys=None, metric_key_prefix="eval"):
            import math

            import torch

            metrics = super().evaluate(eval_dataset, ignore_keys, metric_key_prefix)
            if self.report_perplexity and f"{metric_key_prefix}_loss" in metrics:
                perplexity = {f"{metric_key_prefix}_perplexity": math.exp(metrics[f"{metric_key_prefix}_loss"])}
                self.log(perplexity)
                metrics.update(perplexity)
            data = self.generation_eval_dataset
            if not data:
                return metrics
            rank, world = self.args.process_index, self.args.world_size
            shard = data.select(range(rank, len(data), world))
            model = self.accelerator.unwrap_model(self.model)
            report = exact_match_report(model, self.processing_class, shard, self.generation_batch_size, num_examples=0)
            counts = torch.tensor(
                [report["exact_match"] * report["num_samples"], report["per_digit_accuracy"] * report["num_samples"], report["num_samples"]],
                dtype=torch.float64,
                device=self.args.device,
            )
            if world > 1:
                counts = self.accelerator.reduce(counts, reduction="sum")
            exact, per_digit, n = counts.tolist()
            generated = {
                f"{metric_key_prefix}_exact_match": exact / n,
                f"{metric_key_prefix}_per_digit_accuracy": per_digit / n,
            }
            self.log(generated)
            metrics.update(generated)
            return metrics

    return ExactMatchTrainer


def check_output_dir(output_dir: Path, resume: bool, overwrite: bool) -> None:
    """Refuse to train over an earlier run unless told to resume it or overwrite it."""
    has_run = output_dir.is_dir() and any(output_dir.iterdir())
    if resume:
        checkpoints = list(output_dir.glob("checkpoint-*")) if output_dir.is_dir() else []
        if not checkpoints:
            raise ValueError(f"--resume: no checkpoint-* directory in {output_dir} to resume from")
    elif has_run and not overwrite:
        raise ValueError(
            f"training.output_dir {output_dir} already holds files; pass --resume to continue that run, "
            "--overwrite to replace it, or choose another output_dir"
        )


def save_final(trainer, tokenizer, output_dir: Path, extra_files: dict[str, str]) -> None:
    """Save model, tokenizer and `extra_files` into a temporary directory, then move them into
    `output_dir` one by one: an interrupted save never leaves a half-written checkpoint."""
    if not trainer.is_world_process_zero():
        return
    staging = Path(tempfile.mkdtemp(dir=output_dir, prefix=".final-"))
    try:
        trainer.save_model(str(staging))
        tokenizer.save_pretrained(str(staging))
        for name, text in extra_files.items():
            (staging / name).write_text(text)
        for item in staging.iterdir():
            os.replace(item, output_dir / item.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


# ---------------------------------------------------------------------------------------------
# The command


def train(config: dict, resume: bool = False, overwrite: bool = False) -> dict:
    """Run one training config (already checked by `check_config`); returns the final report."""
    import torch
    from transformers import TrainingArguments, set_seed

    from hf_linear.data.sources import CausalLMCollator, load_dataset_dict, load_tokenizer
    from hf_linear.evaluation.exact_match import exact_match_report, format_report, write_json_atomically
    from hf_linear.evaluation.lm_report import format_lm_report, lm_report
    from hf_linear.runtime import tune_cpu_allocator

    tune_cpu_allocator()
    evaluation = EvaluationConfig(**config["evaluation"])
    training = dict(config["training"])
    training.setdefault("report_to", ["tensorboard"])
    training.setdefault("use_cpu", not torch.cuda.is_available())
    # the collator needs prompt_length, which is not a forward() argument
    training["remove_unused_columns"] = False
    # Pushing happens once, after the final save, through `hf-linear push`: safetensors, code and
    # a model card with the held-out results; Trainer's own push would upload pickles
    # (training_args.bin) and a card without them.
    push_to_hub = training.pop("push_to_hub", False)
    args = TrainingArguments(**training)
    output_dir = Path(args.output_dir)
    check_output_dir(output_dir, resume, overwrite)  # every rank: none may start when one refuses
    if args.process_index == 0:
        if overwrite and not resume and output_dir.is_dir():
            shutil.rmtree(output_dir)  # asked for explicitly: an earlier run's checkpoints must not mix in
    output_dir.mkdir(parents=True, exist_ok=True)

    set_seed(args.seed)
    datasets = load_dataset_dict(config["dataset"])
    tokenizer = load_tokenizer(config["dataset"])
    for split in ("train", evaluation.split):
        if split not in datasets:
            raise ValueError(f"the dataset has no {split!r} split (splits: {', '.join(datasets)})")
    train_data = datasets["train"]
    # the window defaults to the longest example (a sample of it; held-out data for a stream)
    sized = train_data if hasattr(train_data, "select") else datasets[evaluation.split]
    max_length = max(len(ids) for ids in sized.select(range(min(len(sized), 1000)))["input_ids"])
    model = build_model(config["model"], tokenizer, max_length)

    generation_eval = None
    eval_loss_data = None
    if evaluation.during_training_split in datasets and evaluation.during_training_samples:
        held_out = datasets[evaluation.during_training_split]
        eval_loss_data = held_out.select(range(min(evaluation.during_training_samples, len(held_out))))
        # exact match needs prompts and answers; language-model data is evaluated by its loss
        generation_eval = eval_loss_data if has_prompts(eval_loss_data) else None
    if args.eval_strategy != "no" and eval_loss_data is None:
        raise ValueError(f"training.eval_strategy={args.eval_strategy} needs the {evaluation.during_training_split!r} split")

    trainer = make_trainer_class()(
        model=model,
        args=args,
        train_dataset=train_data,
        eval_dataset=eval_loss_data,
        data_collator=CausalLMCollator(tokenizer.pad_token_id, evaluation.mask_prompt),
        processing_class=tokenizer,
        generation_eval_dataset=generation_eval,
        generation_batch_size=evaluation.batch_size,
        report_perplexity=eval_loss_data is not None and generation_eval is None,
    )
    budget = BudgetConfig(**config.get("budget", {}))
    if budget.max_minutes:
        trainer.add_callback(time_budget_callback(budget.max_minutes))
    result = trainer.train(resume_from_checkpoint=True if resume else None)

    held_out = datasets[evaluation.split]
    held_out = held_out.select(range(min(evaluation.num_samples, len(held_out))))
    # held-out metrics at the top level (the model card lists those), the run's facts apart
    report = {
        "training": {
            "runtime_s": result.metrics.get("train_runtime"),
            "loss": result.metrics.get("train_loss"),
            "global_step": trainer.state.global_step,
            "world_size": args.world_size,
        }
    }
    if trainer.is_world_process_zero():
        if has_prompts(held_out):
            report.update(exact_match_report(trainer.model, tokenizer, held_out, evaluation.batch_size, evaluation.num_examples))
            formatter = format_report
        else:
            report.update(lm_report(
                trainer.model, tokenizer, held_out, batch_size=evaluation.batch_size, prompt=evaluation.sample_prompt,
                temperature=evaluation.temperature, num_generations=evaluation.num_generations,
                max_new_tokens=evaluation.max_new_tokens, num_examples=evaluation.num_examples, seed=args.seed,
            ))  # fmt: skip
            formatter = format_lm_report
        report.update(split=evaluation.split, dataset=_describe_dataset(config["dataset"]))
        save_final(
            trainer,
            tokenizer,
            output_dir,
            {"training_config.yaml": yaml.safe_dump(config, sort_keys=False)},
        )
        write_json_atomically(output_dir / "eval_results.json", report)
        trainer.save_state()  # trainer_state.json: the logged losses and metrics of the whole run
        print("\n" + formatter(report))
        print(f"\nmodel saved to {output_dir} (AutoModelForCausalLM.from_pretrained({str(output_dir)!r}))")
        if push_to_hub:
            from hf_linear.hub.push import push_checkpoint

            repo_id = args.hub_model_id or output_dir.name
            commit = push_checkpoint(output_dir, repo_id, private=bool(args.hub_private_repo), token=args.hub_token)
            print(f"pushed to {repo_id} ({commit.oid})")
    return report


def _describe_dataset(dataset_config: dict) -> str:
    a = dataset_config.get("arithmetic") or dataset_config.get("arithmetic_stream")
    if a is not None:
        digits = a.get("digits")
        digits = "x".join(map(str, digits)) if isinstance(digits, (list, tuple)) else digits
        return f"{a.get('task')} {digits} cot={a.get('cot')}"
    stories = dataset_config.get("tinystories")
    if stories is not None:
        from hf_linear.data.tinystories import DEFAULT_SOURCE

        return f"TinyStories {stories.get('source', DEFAULT_SOURCE)} T={stories.get('context_length', 64)}"
    return str(dataset_config.get("path") or dataset_config.get("hub"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="hf-linear train", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config", nargs="?", default=str(packaged_config()), help="YAML config (default: %(default)s)")
    parser.add_argument("--resume", action="store_true", help="continue from the last checkpoint in output_dir")
    parser.add_argument("--overwrite", action="store_true", help="train even if output_dir holds an earlier run")
    args, overrides = parser.parse_known_args(sys.argv[1:] if argv is None else argv)
    try:
        config = load_config(args.config, overrides)
    except ValueError as error:
        parser.error(str(error))
    train(config, resume=args.resume, overwrite=args.overwrite)
    return 0


if __name__ == "__main__":
    sys.exit(main())
