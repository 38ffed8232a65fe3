"""Push an hf-linear checkpoint to the Hugging Face Hub, with its code and a model card.

`hf-linear push CHECKPOINT REPO` (or `push_checkpoint(checkpoint_dir, repo_id)`) uploads, in one
commit: the safetensors weights, `config.json`, `generation_config.json`, the tokenizer files,
the model code (`modeling_hf_linear.py`, `configuration_hf_linear.py`, so the repo loads with
`trust_remote_code=True` where hf-linear is not installed), the training config and evaluation
report if present, and a README.md rendered from `model_cards/model_card.md`.

The checkpoint directory is only read: anything that has to be added or changed (the card, a
missing code file, a config without `auto_map`) is built in memory and uploaded from there.
Pickled files (`pytorch_model.bin`, `optimizer.pt`, `training_args.bin`, ...) are never uploaded.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import string
import struct
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml
from huggingface_hub import CommitInfo, CommitOperationAdd, CommitOperationDelete, EvalResult, HfApi, ModelCardData
from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError
from safetensors import safe_open
from transformers import AutoConfig, AutoModel, AutoModelForCausalLM

from hf_linear.model_types import LINEAR_LM, MODEL_TYPES, is_hf_linear, type_names
from hf_linear.paper import ARXIV_ID, ARXIV_URL, CITATION
from hf_linear.resources import card_template

try:
    import httpx2 as _httpx  # the HTTP client of huggingface_hub >= 2
except ImportError:  # huggingface_hub 1.x
    import httpx as _httpx

logger = logging.getLogger(__name__)

PACKAGE_DIR = Path(__file__).resolve().parents[1]  # hf_linear/

CONFIG_FILES = ("config.json", "generation_config.json")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json",
                   "vocab.json", "vocab.txt", "merges.txt", "tokenizer.model", "chat_template.jinja",
                   "chat_template.json")
TRAINING_CONFIG_FILES = ("training_config.yaml", "training_config.yml", "training_config.json")
EVAL_REPORT_FILE = "eval_results.json"
SAFETENSORS_INDEX = "model.safetensors.index.json"
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")
DATASET_KEYS = ("dataset", "dataset_name", "dataset_id", "hub_dataset", "hub", "source")
# numbers in an eval report that describe the evaluation rather than score the model
REPORT_SETTINGS = ("num_samples", "num_tokens", "num_generations", "temperature", "max_new_tokens")



class HubPushError(RuntimeError):
    """The Hub could not be reached or refused the push, or the checkpoint is corrupt (found
    before uploading); nothing local was changed."""


# ----------------------------------------------------------------------------- the checkpoint


@dataclass
class Checkpoint:
    """What a checkpoint directory holds that is worth pushing."""

    path: Path
    config: dict
    weights: list[Path]  # *.safetensors (+ the shard index, if sharded)
    files: list[Path]  # configs, tokenizer files, code, training config, eval report
    training_config: Path | None
    eval_report: Path | None

    @property
    def has_tokenizer(self) -> bool:
        return any(f.name in TOKENIZER_FILES for f in self.files)


def inspect_checkpoint(checkpoint_dir: str | Path) -> Checkpoint:
    """Validate a checkpoint directory (no network); ValueError naming the path if it is unusable."""
    path = Path(checkpoint_dir)
    if not path.is_dir():
        raise ValueError(f"Checkpoint directory {path} does not exist or is not a directory")
    config_path = path / "config.json"
    if not config_path.is_file():
        raise ValueError(f"{path} holds no config.json: not a saved transformers checkpoint")
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{config_path} is not valid JSON: {e}") from e
    if not is_hf_linear(config.get("model_type")):
        raise ValueError(f"{config_path} has model_type {config.get('model_type')!r}; hf-linear pushes "
                         f"{type_names(' or ')} checkpoints")
    top_level = sorted(p for p in path.iterdir() if p.is_file())
    weights = [p for p in top_level if p.suffix == ".safetensors"]
    if not weights:
        pickled = [p.name for p in top_level if p.suffix in PICKLE_SUFFIXES]
        found = f" (found pickle files {pickled}, which are never loaded or uploaded)" if pickled else ""
        raise ValueError(f"{path} holds no *.safetensors weights{found}; save the model with "
                         "save_pretrained(..., safe_serialization=True)")
    if (path / SAFETENSORS_INDEX).is_file():
        weights.append(path / SAFETENSORS_INDEX)
    code = [p for p in top_level if p.suffix == ".py"]
    known = CONFIG_FILES + TOKENIZER_FILES + TRAINING_CONFIG_FILES + (EVAL_REPORT_FILE,)
    training_config = next((path / n for n in TRAINING_CONFIG_FILES if (path / n).is_file()), None)
    eval_report = path / EVAL_REPORT_FILE if (path / EVAL_REPORT_FILE).is_file() else None
    files = [p for p in top_level if p.name in known] + code
    skipped = sorted(set(top_level) - set(files) - set(weights))
    if skipped:
        logger.info("Not pushing %s", ", ".join(p.name for p in skipped))
    return Checkpoint(path, config, weights, files, training_config, eval_report)


def safetensors_parameter_count(paths: list[Path]) -> int:
    """Number of stored parameters, read from the safetensors headers (8-byte length + JSON)."""
    total = 0
    for path in paths:
        if path.suffix != ".safetensors":
            continue
        with open(path, "rb") as f:
            (header_length,) = struct.unpack("<Q", f.read(8))
            header = json.loads(f.read(header_length))
        for name, tensor in header.items():
            if name != "__metadata__":
                count = 1
                for dim in tensor["shape"]:
                    count *= dim
                total += count
    return total


def auto_map_of(model_type: str) -> dict[str, str]:
    """The `auto_map` of a checkpoint of `model_type`, from the Auto registry (hf_linear/__init__.py)."""
    config_class = type(AutoConfig.for_model(model_type))
    return {
        "AutoConfig": f"configuration_hf_linear.{config_class.__name__}",
        "AutoModel": f"modeling_hf_linear.{AutoModel._model_mapping[config_class].__name__}",
        "AutoModelForCausalLM": f"modeling_hf_linear.{AutoModelForCausalLM._model_mapping[config_class].__name__}",
    }


def remote_code_files(checkpoint: Checkpoint) -> tuple[dict, dict[str, bytes]]:
    """The config (with `auto_map`) and the code files `trust_remote_code` needs that the
    checkpoint lacks, taken from this hf_linear package. Returns (config, {file name: content})."""
    config = dict(checkpoint.config)
    config.setdefault("auto_map", auto_map_of(config["model_type"]))
    modules = {reference.split(".")[0] for reference in config["auto_map"].values()}
    # The code files import each other, so both always travel together.
    modules |= {"configuration_hf_linear", "modeling_hf_linear"}
    missing = {}
    for module in sorted(modules):
        name = f"{module}.py"
        if not (checkpoint.path / name).is_file():
            source = PACKAGE_DIR / name
            if not source.is_file():
                raise ValueError(f"{checkpoint.path}: auto_map refers to {name}, which is neither in the "
                                 "checkpoint nor in the hf_linear package")
            missing[name] = source.read_bytes()
    return config, missing


def verify_checkpoint(checkpoint_dir: str | Path) -> None:
    """Refuse (HubPushError naming the file) a checkpoint that would push broken weights: every
    tensor of every *.safetensors file is read in full (a truncated file fails), config.json must
    build its model type with AutoConfig, and the stored tensor names and shapes must be those of
    the model the config describes (built on the meta device, so no memory is spent on it)."""

    path = Path(checkpoint_dir)
    config_path = path / "config.json"
    try:
        json.loads(config_path.read_text(encoding="utf-8"))
        config = AutoConfig.from_pretrained(path)
        with torch.device("meta"):
            expected = {name: tuple(t.shape) for name, t in AutoModelForCausalLM.from_config(config).state_dict().items()}
    except Exception as e:  # any failure here means the config cannot describe a loadable model
        raise HubPushError(f"{config_path} does not describe a buildable model: {type(e).__name__}: {e}") from e

    stored: dict[str, tuple[int, ...]] = {}
    for weights in sorted(path.glob("*.safetensors")):
        try:
            with safe_open(str(weights), framework="pt") as f:
                for name in f.keys():
                    if name in stored:
                        raise ValueError(f"tensor {name!r} is stored twice (also in another shard)")
                    stored[name] = tuple(f.get_tensor(name).shape)  # a full read: truncation fails here
        except Exception as e:  # safetensors raises its own error types for corrupt/truncated files
            raise HubPushError(f"{weights} is corrupt or truncated: {type(e).__name__}: {e}") from e

    where = ", ".join(sorted(p.name for p in path.glob("*.safetensors"))) or "no *.safetensors file"
    missing = sorted(set(expected) - set(stored))
    unexpected = sorted(set(stored) - set(expected))
    wrong_shape = [f"{n}: stored {stored[n]}, config expects {expected[n]}"
                   for n in sorted(set(stored) & set(expected)) if stored[n] != expected[n]]
    problems = ([f"missing tensors {missing[:5]}"] if missing else []) + (
        [f"unexpected tensors {unexpected[:5]}"] if unexpected else []) + (
        [f"wrong shapes ({'; '.join(wrong_shape[:5])})"] if wrong_shape else [])
    if problems:
        raise HubPushError(f"{path} ({where}) does not match the model {config_path} describes: "
                           + ", ".join(problems))


# ----------------------------------------------------------------------------- eval report and card


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
    metrics = {key: value for key, value in candidates.items()
               if isinstance(value, (int, float)) and not isinstance(value, bool) and key not in REPORT_SETTINGS}
    if not metrics:
        raise ValueError(f"{name} holds no numeric metric (e.g. 'exact_match')")
    num_samples = report.get("num_samples")
    return EvalReport(dataset, report.get("split"), num_samples if isinstance(num_samples, int) else None,
                      metrics, report)


def metric_title(metric: str) -> str:
    return metric.replace("_", " ").replace("-", " ").capitalize()


def eval_results(report: EvalReport) -> list[EvalResult]:
    return [EvalResult(task_type="text-generation", task_name="Text generation", dataset_type=report.dataset,
                       dataset_name=report.dataset, dataset_split=report.split, metric_type=metric,
                       metric_name=metric_title(metric), metric_value=value)
            for metric, value in report.metrics.items()]


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
    if config["model_type"] == LINEAR_LM:
        return ("A **linear** auto-regressive next-token predictor (the paper's §4.1 model).",
                "Token embedding V → d at each of the T positions, then one linear map T·d → T·d with "
                "bias, masked so that output position i only sees input positions j ≤ i, then an output "
                "layer d → V with bias at each position. No nonlinearity, no normalization; trained with "
                "cross-entropy on the next token.", "")
    layers = config.get("num_mlp_layers", 1)
    width = config.get("mlp_hidden_size") or config["hidden_size"]
    return ("An **MLP** auto-regressive next-token predictor (the paper's multiplication model).",
            "As the paper's linear model (token embedding V → d, one masked linear map T·d → T·d in which "
            "output position i only sees input positions j ≤ i), with a ReLU after the masked map, then "
            f"{layers} per-position layer(s) Linear(·, {width}) + ReLU, then the output layer → V.",
            f"| per-position MLP layers | {layers} × width {width} |\n")


def intended_use_text(config: dict) -> str:
    if config["model_type"] == LINEAR_LM:
        return ("The paper trains this model on TinyStories (simple children's stories) and samples "
                "from a prompt such as \"Once upon a\" at temperature 0.5.")
    return ("The paper trains this model on 4-digit × 4-digit multiplication written as a Chain of "
            "Thought: the prompt is everything up to the first `=`, the answer follows the last `=`.")


def usage_text(repo_id: str, has_tokenizer: bool) -> str:
    load = f'model = AutoModelForCausalLM.from_pretrained("{repo_id}", trust_remote_code=True)'
    if has_tokenizer:
        return "\n".join(["from transformers import AutoModelForCausalLM, AutoTokenizer", "", load,
                          f'tokenizer = AutoTokenizer.from_pretrained("{repo_id}")',
                          'inputs = tokenizer("Once upon a", return_tensors="pt")',
                          "print(tokenizer.decode(model.generate(**inputs, max_new_tokens=40)[0]))"])
    return "\n".join(["import torch", "from transformers import AutoModelForCausalLM", "", load,
                      "logits = model(torch.tensor([[1, 2, 3]])).logits  # token ids < vocab_size"])


def evaluation_text(report: EvalReport | None) -> tuple[str, str]:
    """(Evaluation section, extra limitation line)."""
    if report is None:
        return "No evaluation report was provided with this checkpoint.", ""
    where = f"`{report.dataset}`" + (f", split `{report.split}`" if report.split else "")
    samples = f", {report.num_samples:,} samples" if report.num_samples is not None else ""
    rows = "\n".join(f"| {metric_title(m)} (`{m}`) | {v:.4g} |" for m, v in report.metrics.items())
    section = (f"From the evaluation report `{EVAL_REPORT_FILE}` (uploaded with the checkpoint), on "
               f"{where}{samples}:\n\n"
               f"| metric | value |\n|---|---|\n{rows}")
    return section, f"- The evaluation covers only {where}{samples}.\n"


def render_model_card(config: dict, *, repo_id: str, parameters: int, report: EvalReport | None,
                      training_config_name: str | None, training_config_text: str | None,
                      training_datasets: list[str], has_tokenizer: bool, license: str = "apache-2.0") -> str:
    """README.md for the Hub: YAML metadata (with model-index eval results) + the card body."""
    named = ([report.dataset] if report else []) + training_datasets
    datasets = list(dict.fromkeys(name for name in named if is_hub_dataset_id(name)))
    metadata = ModelCardData(
        license=license, library_name="transformers", pipeline_tag="text-generation",
        tags=["hf-linear", config["model_type"].replace("_", "-"), "next-token-prediction",
              "chain-of-thought", "custom_code"],
        datasets=datasets or None, model_name=repo_id,
        eval_results=eval_results(report) if report else None,
    )
    summary, architecture, extra_rows = architecture_text(config)
    evaluation, evaluation_limitations = evaluation_text(report)
    if training_config_text is None:
        training = "No training configuration was stored with this checkpoint."
    else:
        language = "json" if training_config_name.endswith(".json") else "yaml"
        training = (f"Trained with this configuration (`{training_config_name}`, uploaded with the "
                    f"checkpoint):\n\n```{language}\n{training_config_text.rstrip()}\n```")
    parameter_text = f"{parameters:,}" + (f" ({parameters / 1e6:.1f}M)" if parameters >= 100_000 else "")
    template = string.Template(card_template("model_card.md"))
    return template.substitute(
        metadata=metadata.to_yaml(), model_name=repo_id.split("/")[-1], summary=summary,
        architecture=architecture, architecture_class=(config.get("architectures") or ["?"])[0],
        model_type=config["model_type"], context_length=config["context_length"],
        hidden_size=config["hidden_size"], vocab_size=config["vocab_size"], extra_rows=extra_rows,
        parameters=parameter_text, paper_reference=MODEL_TYPES[config["model_type"]].paper_model, training=training,
        evaluation=evaluation, intended_use=intended_use_text(config),
        evaluation_limitations=evaluation_limitations, usage=usage_text(repo_id, has_tokenizer), repo_id=repo_id,
        citation=CITATION, arxiv_id=ARXIV_ID, arxiv_url=ARXIV_URL,
    )


# ----------------------------------------------------------------------------- push


def push_checkpoint(checkpoint_dir: str | Path, repo_id: str, *, revision: str | None = None,
                    private: bool = False, commit_message: str = "Upload hf-linear checkpoint",
                    eval_results: str | Path | dict | None = None, create_repo: bool = True,
                    token: str | None = None, endpoint: str | None = None) -> CommitInfo:
    """Push a saved checkpoint (weights, configs, tokenizer, code, card) as one commit.

    `eval_results`: an eval report (path or dict); default: `eval_results.json` in the checkpoint.
    `revision`: a branch (created if missing). `create_repo=False` refuses to create a new repo.
    Raises ValueError for an unusable checkpoint/report and HubPushError for corrupt weights (both
    before any network call, see `verify_checkpoint`) and if the Hub is unreachable or refuses;
    the checkpoint directory is never modified.
    """
    checkpoint = inspect_checkpoint(checkpoint_dir)
    verify_checkpoint(checkpoint.path)
    report_source = eval_results if eval_results is not None else checkpoint.eval_report
    report = read_eval_report(report_source) if report_source is not None else None
    training_text, training_config = read_training_config(checkpoint.training_config)
    config, missing_code = remote_code_files(checkpoint)
    parameters = safetensors_parameter_count(checkpoint.weights)

    api = HfApi(endpoint=endpoint, token=token)
    where = f"{repo_id} on {api.endpoint}"
    try:
        if create_repo:
            repo_id = api.create_repo(repo_id, private=private, exist_ok=True).repo_id
        else:
            repo_id = api.repo_info(repo_id).id
        if revision is not None:
            api.create_branch(repo_id, branch=revision, exist_ok=True)
        card = render_model_card(
            config, repo_id=repo_id, parameters=parameters, report=report,
            training_config_name=checkpoint.training_config.name if checkpoint.training_config else None,
            training_config_text=training_text, training_datasets=dataset_ids(training_config),
            has_tokenizer=checkpoint.has_tokenizer)
        operations = upload_operations(checkpoint, config, missing_code, card,
                                       report.raw if eval_results is not None else None)
        uploaded = {op.path_in_repo for op in operations}
        stale_weights = [f for f in api.list_repo_files(repo_id, revision=revision)
                         if (f.endswith(".safetensors") or f == SAFETENSORS_INDEX) and f not in uploaded]
        operations += [CommitOperationDelete(path_in_repo=f) for f in stale_weights]
        return api.create_commit(repo_id, operations, commit_message=commit_message, revision=revision)
    except RepositoryNotFoundError as e:
        hint = " (it is created only with create_repo=True / without --no-create)" if not create_repo else ""
        raise HubPushError(f"Repository {where} not found{hint}; nothing was pushed, "
                           f"{checkpoint.path} is unchanged") from e
    except HfHubHTTPError as e:
        raise HubPushError(f"The Hub refused the push to {where}: {e}; {checkpoint.path} is unchanged") from e
    except _httpx.TransportError as e:
        raise HubPushError(f"Cannot reach the Hub at {api.endpoint} ({type(e).__name__}: {e}); nothing was "
                           f"pushed, {checkpoint.path} is unchanged") from e


def upload_operations(checkpoint: Checkpoint, config: dict, missing_code: dict[str, bytes], card: str,
                      explicit_report: dict | None) -> list[CommitOperationAdd]:
    """Files read from the checkpoint, plus what was built in memory (card, config, code, report)."""
    built = {"README.md": card.encode(), **missing_code}
    if config != checkpoint.config:  # auto_map was added
        built["config.json"] = (json.dumps(config, indent=2, sort_keys=True) + "\n").encode()
    if explicit_report is not None:  # a report given to push_checkpoint replaces the checkpoint's own
        built[EVAL_REPORT_FILE] = (json.dumps(explicit_report, indent=2) + "\n").encode()
    operations = [CommitOperationAdd(path_in_repo=name, path_or_fileobj=content) for name, content in built.items()]
    operations += [CommitOperationAdd(path_in_repo=p.name, path_or_fileobj=str(p))
                   for p in checkpoint.weights + checkpoint.files if p.name not in built]
    return operations


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="hf-linear push",
        description="Push an hf-linear checkpoint (safetensors weights, config, tokenizer, model code for "
                    "trust_remote_code, model card) to the Hugging Face Hub (or the endpoint in HF_ENDPOINT).")
    parser.add_argument("checkpoint", help="directory written by save_pretrained / the trainer")
    parser.add_argument("repo", help="Hub repo id, 'namespace/name' (or 'name' in your namespace)")
    parser.add_argument("--private", action="store_true", help="create the repo as private")
    parser.add_argument("--revision", help="branch to push to (created if missing; default main)")
    parser.add_argument("--commit-message", default="Upload hf-linear checkpoint")
    parser.add_argument("--eval-report", help=f"evaluation JSON for the card (default: {EVAL_REPORT_FILE} "
                                              "in the checkpoint, if present)")
    parser.add_argument("--no-create", action="store_true", help="fail instead of creating a missing repo")
    parser.add_argument("--space", metavar="SPACE_REPO", help="then also push a Space (Gradio) running `hf-linear demo` "
                                                              "on the pushed model (hf_linear.demo.space)")
    args = parser.parse_args(argv)
    try:
        commit = push_checkpoint(args.checkpoint, args.repo, revision=args.revision, private=args.private,
                                 commit_message=args.commit_message, eval_results=args.eval_report,
                                 create_repo=not args.no_create)
        if args.space:
            from hf_linear.demo.space import push_space

            space_commit = push_space(args.space, [commit.repo_url.repo_id], private=args.private)
    except (ValueError, HubPushError) as e:
        print(f"hf-linear push: error: {e}", file=sys.stderr)
        return 1
    print(commit.commit_url)
    if args.space:
        print(space_commit.commit_url)
    return 0


if __name__ == "__main__":
    sys.exit(main())
