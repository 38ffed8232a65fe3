"""Loading checkpoints strictly: a checkpoint whose weights do not fit its config is an error.

`from_pretrained` only warns about missing or unexpected weights and leaves the missing ones
randomly initialised; for a shared checkpoint that is a silent wrong model, so every loader of
the project (eval, fine-tuning) goes through `load_model`.
"""

from __future__ import annotations

import hf_linear  # noqa: F401  (registers linear_lm / mlp_lm with the Auto classes)
from transformers import AutoModelForCausalLM, AutoTokenizer


def load_model(name_or_path: str, **kwargs):
    """AutoModelForCausalLM.from_pretrained, raising ValueError when the checkpoint cannot be read
    or its weights do not match the model its config describes."""
    try:
        model, info = AutoModelForCausalLM.from_pretrained(name_or_path, output_loading_info=True, **kwargs)
    except (OSError, ValueError, RuntimeError) as error:
        raise ValueError(f"checkpoint {name_or_path}: cannot be loaded: {error}") from error
    problems = {kind: info.get(kind) for kind in ("missing_keys", "unexpected_keys", "mismatched_keys")}
    problems = {kind: keys for kind, keys in problems.items() if keys}
    if problems:
        details = "; ".join(f"{kind.replace('_', ' ')}: {', '.join(map(str, sorted(keys)[:5]))}" for kind, keys in problems.items())
        raise ValueError(f"checkpoint {name_or_path}: its weights do not match its config "
                         f"({model.config.model_type}): {details}")  # fmt: skip
    return model


def load_tokenizer(name_or_path: str):
    try:
        return AutoTokenizer.from_pretrained(name_or_path)
    except (OSError, ValueError) as error:
        raise ValueError(f"checkpoint {name_or_path}: no tokenizer could be loaded: {error}") from error
