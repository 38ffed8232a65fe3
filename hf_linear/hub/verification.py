"""What a checkpoint directory holds that `hf-linear push` uploads, and the checks before it
does: an hf-linear config, safetensors weights only (the loaders' rule, hf_linear.checkpoints),
every tensor readable and of the shape the config describes, and the code files
`trust_remote_code` needs. No network."""

from __future__ import annotations

import json
import logging
import struct
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import safe_open
from transformers import AutoConfig, AutoModel, AutoModelForCausalLM

from hf_linear.checkpoints import CorruptWeightsError, check_safetensors_weights
from hf_linear.model_types import CHECKPOINT_CODE_MODULES, is_hf_linear, type_names
from hf_linear.resources import PACKAGE_DIR
from hf_linear.run_files import EVAL_RESULTS, TRAINING_CONFIG_FILES

logger = logging.getLogger(__name__)


CONFIG_FILES = ("config.json", "generation_config.json")
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.json",
    "vocab.txt",
    "merges.txt",
    "tokenizer.model",
    "chat_template.jinja",
    "chat_template.json",
)
EVAL_REPORT_FILE = EVAL_RESULTS
SAFETENSORS_INDEX = "model.safetensors.index.json"


class HubPushError(RuntimeError):
    """The Hub could not be reached or refused the push, or the checkpoint is corrupt (found
    before uploading); nothing local was changed."""


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
        raise ValueError(
            f"{config_path} has model_type {config.get('model_type')!r}; hf-linear pushes "
            f"{type_names(' or ')} checkpoints"
        )
    top_level = sorted(p for p in path.iterdir() if p.is_file())
    try:
        weights = check_safetensors_weights(path)  # the loaders' rule: safetensors only, each one readable
    except CorruptWeightsError as error:  # weights that would push broken: the push error, as verify's
        raise HubPushError(f"{error.path} is corrupt or truncated: {error}") from None
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
    # The code files import each other, so they always travel together.
    modules |= set(CHECKPOINT_CODE_MODULES)
    missing = {}
    for module in sorted(modules):
        name = f"{module}.py"
        if not (checkpoint.path / name).is_file():
            source = PACKAGE_DIR / name
            if not source.is_file():
                raise ValueError(
                    f"{checkpoint.path}: auto_map refers to {name}, which is neither in the "
                    "checkpoint nor in the hf_linear package"
                )
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
            expected = {
                name: tuple(t.shape) for name, t in AutoModelForCausalLM.from_config(config).state_dict().items()
            }
    except Exception as e:  # any failure here means the config cannot describe a loadable model
        raise HubPushError(f"{config_path} does not describe a buildable model: {type(e).__name__}: {e}") from e

    stored: dict[str, tuple[int, ...]] = {}
    for weights in sorted(path.glob("*.safetensors")):
        try:
            with safe_open(str(weights), framework="pt") as f:
                for name in f.keys():  # noqa: SIM118 (safe_open has no __iter__)
                    if name in stored:
                        raise ValueError(f"tensor {name!r} is stored twice (also in another shard)")
                    stored[name] = tuple(f.get_tensor(name).shape)  # a full read: truncation fails here
        except Exception as e:  # safetensors raises its own error types for corrupt/truncated files
            raise HubPushError(f"{weights} is corrupt or truncated: {type(e).__name__}: {e}") from e

    where = ", ".join(sorted(p.name for p in path.glob("*.safetensors"))) or "no *.safetensors file"
    missing = sorted(set(expected) - set(stored))
    unexpected = sorted(set(stored) - set(expected))
    wrong_shape = [
        f"{n}: stored {stored[n]}, config expects {expected[n]}"
        for n in sorted(set(stored) & set(expected))
        if stored[n] != expected[n]
    ]
    problems = (
        ([f"missing tensors {missing[:5]}"] if missing else [])
        + ([f"unexpected tensors {unexpected[:5]}"] if unexpected else [])
        + ([f"wrong shapes ({'; '.join(wrong_shape[:5])})"] if wrong_shape else [])
    )
    if problems:
        raise HubPushError(f"{path} ({where}) does not match the model {config_path} describes: " + ", ".join(problems))
