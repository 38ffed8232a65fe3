"""Loading checkpoints strictly: a checkpoint whose weights do not fit its config is an error.

`from_pretrained` only warns about missing or unexpected weights and leaves the missing ones
randomly initialised; for a shared checkpoint that is a silent wrong model, so every loader of
the project (eval, inspect, fine-tuning, `--resume`) goes through this module.

Weights are read from safetensors only: a pickle (`pytorch_model.bin`, `*.pt`) can run code when
it is loaded, so a checkpoint that holds only pickled weights is an error naming the file, and
every safetensors file is opened with safetensors' own `safe_open` first, so a truncated or
garbled file is an error naming it (safetensors' own messages do not).
"""

from __future__ import annotations

from pathlib import Path

from safetensors import SafetensorError, safe_open
from transformers import AutoModelForCausalLM, AutoTokenizer

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")


class CorruptWeightsError(ValueError):
    """A safetensors file that cannot be read (truncated, garbled header)."""

    def __init__(self, path: Path, error: Exception):
        self.path = path
        super().__init__(f"{path} is not a readable safetensors file (truncated or corrupt: {error})")


def check_safetensors_weights(directory: Path) -> list[Path]:
    """The *.safetensors files of a checkpoint directory (model or adapter weights), each opened
    with `safe_open` (its header and size checked); ValueError naming the file otherwise."""
    weights = sorted(directory.glob("*.safetensors"))
    if not weights:
        pickles = sorted(p.name for p in directory.iterdir() if p.suffix in PICKLE_SUFFIXES)
        if pickles:
            raise ValueError(
                f"checkpoint {directory}: holds {', '.join(pickles)} but no model.safetensors; pickle "
                "files are never loaded (they can run code): save the weights as safetensors"
            )
        raise ValueError(f"{directory} is not a checkpoint: no model.safetensors")
    for path in weights:
        try:
            with safe_open(str(path), framework="pt"):
                pass
        except (SafetensorError, OSError) as error:
            raise CorruptWeightsError(path, error) from None
    return weights


def check_checkpoint_dir(directory: Path) -> None:
    """A model checkpoint directory: config.json and readable safetensors weights."""
    if not (directory / "config.json").is_file():
        raise ValueError(f"{directory} is not a checkpoint: no config.json")
    check_safetensors_weights(directory)


def _check_if_local(name_or_path: str) -> None:
    """Check a local checkpoint directory; anything else is a Hub repo id (checked when downloaded)."""
    if Path(name_or_path).is_dir():
        check_checkpoint_dir(Path(name_or_path))


def load_model(name_or_path: str, **kwargs):
    """AutoModelForCausalLM.from_pretrained, raising ValueError when the checkpoint cannot be read
    or its weights do not match the model its config describes."""
    name_or_path = str(name_or_path)
    _check_if_local(name_or_path)
    try:
        model, info = AutoModelForCausalLM.from_pretrained(
            name_or_path, output_loading_info=True, use_safetensors=True, **kwargs
        )
    except (OSError, ValueError, RuntimeError, SafetensorError) as error:
        raise ValueError(f"checkpoint {name_or_path}: cannot be loaded: {error}") from error
    problems = {kind: info.get(kind) for kind in ("missing_keys", "unexpected_keys", "mismatched_keys")}
    problems = {kind: keys for kind, keys in problems.items() if keys}
    if problems:
        details = "; ".join(
            f"{kind.replace('_', ' ')}: {', '.join(map(str, sorted(keys)[:5]))}" for kind, keys in problems.items()
        )
        raise ValueError(
            f"checkpoint {name_or_path}: its weights do not match its config ({model.config.model_type}): {details}"
        )
    return model


def load_tokenizer(name_or_path: str):
    """A checkpoint's tokenizer (ValueError naming the checkpoint)."""
    name_or_path = str(name_or_path)
    _check_if_local(name_or_path)  # a directory of other files is "not a checkpoint", not a tokenizer problem
    return load_named_tokenizer(name_or_path, f"checkpoint {name_or_path}")


def load_named_tokenizer(name_or_path: str, where: str):
    """AutoTokenizer.from_pretrained, the one tokenizer loader of the project: a missing or
    unreadable tokenizer is a ValueError that starts with `where` (the setting or checkpoint
    that named it), so every command reports it in one line."""
    try:
        return AutoTokenizer.from_pretrained(str(name_or_path))
    except (OSError, ValueError) as error:
        raise ValueError(f"{where}: no tokenizer could be loaded: {error}") from error
