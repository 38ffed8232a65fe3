"""The model card `hf-linear push` writes: README.md rendered from `model_cards/model_card.md`,
with the Hub metadata (model-index eval results from the checkpoint's eval report, datasets named
in its training config), the architecture in the paper's terms and the paper's citation."""

from __future__ import annotations

import json
import re
import string
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from huggingface_hub import EvalResult, ModelCardData

from hf_linear.hub.verification import EVAL_REPORT_FILE
from hf_linear.model_types import MODEL_TYPES
from hf_linear.paper import ARXIV_ID, ARXIV_URL, CITATION, STORY_PROMPT
from hf_linear.resources import card_template

DATASET_KEYS = ("dataset", "dataset_name", "dataset_id", "hub_dataset", "hub", "source")
# numbers in an eval report that describe the evaluation rather than score the model
REPORT_SETTINGS = ("num_samples", "num_tokens", "num_generations", "temperature", "max_new_tokens")


@dataclass
class EvalReport:
    """An evaluation report: which data was evaluated and the metric values."""

    dataset: str
    split: str | None
    num_samples: int | None
    metrics: dict[str, float]
    raw: dict


def read_eval_report(source: str | Path | dict) -> EvalReport:
    """Accepts e.g. {"dataset": "user/multiplication", "split": "test", "num_samples": 1000,
    "exact_match": 0.969, "per_digit_accuracy": 0.99} (metrics may also sit under "metrics")."""
    name = "eval report" if isinstance(source, dict) else str(source)
    if isinstance(source, dict):
        report = source
    else:
        try:
            report = json.loads(Path(source).read_text(encoding="utf-8"))
        except FileNotFoundError as e:
            raise ValueError(f"Eval report {source} does not exist") from e
        except json.JSONDecodeError as e:
            raise ValueError(f"Eval report {source} is not valid JSON: {e}") from e
    if not isinstance(report, dict):
        raise ValueError(f"{name} must be a JSON object, got {type(report).__name__}")
    dataset = report.get("dataset") or report.get("dataset_name")
    if not isinstance(dataset, str):
        raise ValueError(f"{name} needs a 'dataset' string naming the evaluated dataset")
    candidates = report["metrics"] if isinstance(report.get("metrics"), dict) else report
    metrics = {
        key: value
        for key, value in candidates.items()
        if isinstance(value, (int, float)) and not isinstance(value, bool) and key not in REPORT_SETTINGS
    }
    if not metrics:
        raise ValueError(f"{name} holds no numeric metric (e.g. 'exact_match')")
    num_samples = report.get("num_samples")
    return EvalReport(
        dataset, report.get("split"), num_samples if isinstance(num_samples, int) else None, metrics, report
    )


def metric_title(metric: str) -> str:
    return metric.replace("_", " ").replace("-", " ").capitalize()


def eval_results(report: EvalReport) -> list[EvalResult]:
    return [
        EvalResult(
            task_type="text-generation",
            task_name="Text generation",
            dataset_type=report.dataset,
            dataset_name=report.dataset,
            dataset_split=report.split,
            metric_type=metric,
            metric_name=metric_title(metric),
            metric_value=value,
        )
        for metric, value in report.metrics.items()
    ]


def dataset_ids(training_config: Any) -> list[str]:
    """Dataset names found under keys like `dataset` anywhere in a training config."""
    found = []
    if isinstance(training_config, dict):
        for key, value in training_config.items():
            if key in DATASET_KEYS and isinstance(value, str):
                found.append(value)
            else:
                found += dataset_ids(value)
    elif isinstance(training_config, list):
        for value in training_config:
            found += dataset_ids(value)
    return found


def is_hub_dataset_id(name: str) -> bool:
    """`name` or `namespace/name`, and not a local directory (e.g. a save_to_disk path)."""
    return re.fullmatch(r"[\w.-]+(/[\w.-]+)?", name) is not None and not Path(name).exists()


def read_training_config(path: Path | None) -> tuple[str | None, Any]:
    if path is None:
        return None, None
    text = path.read_text(encoding="utf-8")
    try:
        return text, (json.loads(text) if path.suffix == ".json" else yaml.safe_load(text))
    except (json.JSONDecodeError, yaml.YAMLError) as e:
        raise ValueError(f"Training config {path} cannot be parsed: {e}") from e


def architecture_text(config: dict) -> tuple[str, str, str]:
    """(summary, description, extra table rows) of the model in the paper's terms."""
    return MODEL_TYPES[config["model_type"]].describe(config)


def intended_use_text(config: dict, training_dataset: Any = None) -> str:
    """What the checkpoint was trained on (from its training config's `dataset:` section, when
    that names generated CoT data), else what the paper trained this model type on."""
    facts = {}
    if isinstance(training_dataset, dict):
        from hf_linear.data.sources import data_source

        try:
            facts = data_source(training_dataset).example_lengths()
        except (ValueError, OSError):  # data this machine cannot describe (e.g. a local path elsewhere)
            facts = {}
    if facts.get("program"):
        return (
            f"Trained on the compiled Chain of Thought of the program `{facts['task']}` "
            f"({facts['sequence_tokens']} tokens per example, {facts['cot_tokens']} of them CoT; every CoT "
            f"token a linear-threshold step of earlier tokens). Prompt it with `hf_linear.data.programs.dataset."
            f"program_prompt({facts['program']!r}, {facts['size']}, ...)`; the answer follows the last `=`."
        )
    if facts.get("task"):
        return (
            f"Trained on {facts['task']} written as a Chain of Thought ({facts['sequence_tokens']} tokens per "
            "example): the prompt is everything up to the first `=`, the answer follows the last `=`."
        )
    return MODEL_TYPES[config["model_type"]].paper_use


def usage_text(repo_id: str, has_tokenizer: bool) -> str:
    load = f'model = AutoModelForCausalLM.from_pretrained("{repo_id}", trust_remote_code=True)'
    if has_tokenizer:
        return "\n".join(
            [
                "from transformers import AutoModelForCausalLM, AutoTokenizer",
                "",
                load,
                f'tokenizer = AutoTokenizer.from_pretrained("{repo_id}")',
                f'inputs = tokenizer("{STORY_PROMPT}", return_tensors="pt")',
                "print(tokenizer.decode(model.generate(**inputs, max_new_tokens=40)[0]))",
            ]
        )
    return "\n".join(
        [
            "import torch",
            "from transformers import AutoModelForCausalLM",
            "",
            load,
            "logits = model(torch.tensor([[1, 2, 3]])).logits  # token ids < vocab_size",
        ]
    )


def evaluation_text(report: EvalReport | None) -> tuple[str, str]:
    """(Evaluation section, extra limitation line)."""
    if report is None:
        return "No evaluation report was provided with this checkpoint.", ""
    where = f"`{report.dataset}`" + (f", split `{report.split}`" if report.split else "")
    samples = f", {report.num_samples:,} samples" if report.num_samples is not None else ""
    rows = "\n".join(f"| {metric_title(m)} (`{m}`) | {v:.4g} |" for m, v in report.metrics.items())
    section = (
        f"From the evaluation report `{EVAL_REPORT_FILE}` (uploaded with the checkpoint), on "
        f"{where}{samples}:\n\n"
        f"| metric | value |\n|---|---|\n{rows}"
    )
    return section, f"- The evaluation covers only {where}{samples}.\n"


def render_model_card(
    config: dict,
    *,
    repo_id: str,
    parameters: int,
    report: EvalReport | None,
    training_config_name: str | None,
    training_config_text: str | None,
    training_datasets: list[str],
    has_tokenizer: bool,
    license: str = "apache-2.0",
    training_dataset: Any = None,
) -> str:
    """README.md for the Hub: YAML metadata (with model-index eval results) + the card body."""
    named = ([report.dataset] if report else []) + training_datasets
    datasets = list(dict.fromkeys(name for name in named if is_hub_dataset_id(name)))
    metadata = ModelCardData(
        license=license,
        library_name="transformers",
        pipeline_tag="text-generation",
        tags=[
            "hf-linear",
            config["model_type"].replace("_", "-"),
            "next-token-prediction",
            "chain-of-thought",
            "custom_code",
        ],
        datasets=datasets or None,
        model_name=repo_id,
        eval_results=eval_results(report) if report else None,
    )
    summary, architecture, extra_rows = architecture_text(config)
    evaluation, evaluation_limitations = evaluation_text(report)
    if training_config_text is None:
        training = "No training configuration was stored with this checkpoint."
    else:
        language = "json" if training_config_name.endswith(".json") else "yaml"
        training = (
            f"Trained with this configuration (`{training_config_name}`, uploaded with the "
            f"checkpoint):\n\n```{language}\n{training_config_text.rstrip()}\n```"
        )
    parameter_text = f"{parameters:,}" + (f" ({parameters / 1e6:.1f}M)" if parameters >= 100_000 else "")
    template = string.Template(card_template("model_card.md"))
    return template.substitute(
        metadata=metadata.to_yaml(),
        model_name=repo_id.split("/")[-1],
        summary=summary,
        architecture=architecture,
        architecture_class=(config.get("architectures") or ["?"])[0],
        model_type=config["model_type"],
        context_length=config["context_length"],
        hidden_size=config["hidden_size"],
        vocab_size=config["vocab_size"],
        extra_rows=extra_rows,
        parameters=parameter_text,
        paper_reference=MODEL_TYPES[config["model_type"]].paper_model,
        training=training,
        evaluation=evaluation,
        intended_use=intended_use_text(config, training_dataset),
        evaluation_limitations=evaluation_limitations,
        usage=usage_text(repo_id, has_tokenizer),
        repo_id=repo_id,
        citation=CITATION,
        arxiv_id=ARXIV_ID,
        arxiv_url=ARXIV_URL,
    )
