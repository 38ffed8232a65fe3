"""Fit a trained hf-linear model to a new run's settings, carrying every trained weight over.

    model = AutoModelForCausalLM.from_pretrained(checkpoint)
    model = adapt_pretrained(model, context_length=128, vocab_size=130, hidden_size=32)

What can change, and how the new weights start:

* context_length (grow only): `model.resize_context_length(T)`. The new rows of the masked
  map reproduce the old sliding window, so the grown model computes exactly what the old one
  computed (identical logits up to the old T, the old sliding-window logits beyond).
* vocab_size (grow only): `model.resize_token_embeddings(V)`. Old embedding rows, output-layer
  rows and output biases are kept, so the logits of the old tokens are unchanged; the new rows
  start from transformers' mean resizing (mean/covariance of the old rows, mean of the old bias).
* mixing_chunk_size and the special-token ids: plain settings, set as asked.

What cannot change (ValueError, naming the field): model_type (LinearLM ↔ MLPLM), hidden_size,
num_mlp_layers and the MLP width (mlp_hidden_size) — the trained weights have no counterpart
in a model of another shape; train a new model instead. Shrinking the window or vocabulary is an
error too (it would drop trained rows).
"""

from __future__ import annotations

import math

from transformers import PreTrainedModel

from hf_linear.model_types import is_hf_linear, type_names

TOKEN_ID_FIELDS = ("bos_token_id", "eos_token_id", "pad_token_id")
STRUCTURE_FIELDS = ("model_type", "hidden_size", "num_mlp_layers", "mlp_hidden_size")


def _structure_mismatch(config, field: str, value) -> str | None:
    """Why `field=value` cannot be applied to a model with `config`, or None when it matches."""
    current = getattr(config, field, None)
    if field == "mlp_hidden_size":  # None means d: compare the effective widths, when there is an MLP
        if not getattr(config, "num_mlp_layers", 0):
            return None if value is None else f"the checkpoint ({config.model_type}) has no per-position MLP"
        current, value = config.mlp_width, value or config.hidden_size
    if field == "model_type" and current != value:
        return f"the checkpoint is a {current} model, asked for {value}"
    return None if current == value else f"the checkpoint has {field}={current}, asked for {value}"


def adapt_pretrained(
    model: PreTrainedModel,
    *,
    context_length: int | None = None,
    vocab_size: int | None = None,
    mean_resizing: bool = True,
    **fields,
) -> PreTrainedModel:
    """Grow `model` (in place, also returned) to `context_length` / `vocab_size` and apply `fields`.

    fields: model_type, hidden_size, num_mlp_layers, mlp_hidden_size (must equal the checkpoint's:
    checked, not changed), mixing_chunk_size, bos_token_id, eos_token_id, pad_token_id (set).
    None leaves a setting as it is. mean_resizing is passed to resize_token_embeddings.
    """
    config = model.config
    if not is_hf_linear(config.model_type):
        raise ValueError(f"adapt_pretrained takes an hf-linear model ({type_names()}), got {config.model_type}")
    unknown = sorted(set(fields) - set(STRUCTURE_FIELDS) - set(TOKEN_ID_FIELDS) - {"mixing_chunk_size"})
    if unknown:
        raise ValueError(f"adapt_pretrained: unknown field(s) {', '.join(unknown)}")
    for field in STRUCTURE_FIELDS:
        if field in fields:
            problem = _structure_mismatch(config, field, fields[field])
            if problem:
                raise ValueError(
                    f"{field}: {problem}; the trained weights cannot be carried over to "
                    "a model of another shape (train a new model instead)"
                )

    if vocab_size is not None:
        if vocab_size < config.vocab_size:
            raise ValueError(f"vocab_size: cannot shrink the vocabulary from {config.vocab_size} to {vocab_size}")
        if vocab_size > config.vocab_size:
            model.resize_token_embeddings(vocab_size, mean_resizing=mean_resizing)
    if context_length is not None:
        model.resize_context_length(context_length)  # ValueError when shrinking

    if "mixing_chunk_size" in fields:
        chunk_size = fields["mixing_chunk_size"]
        config.mixing_chunk_size = chunk_size
        mixing = model.base_model.mixing
        # the schedule the module uses at run time (the config is only read at construction);
        # None: MaskedPositionMixing's automatic choice, ~8 chunks
        mixing.chunk_size = chunk_size or max(1, math.ceil(mixing.context_length / 8))
    for field in TOKEN_ID_FIELDS:
        if field in fields:
            setattr(config, field, fields[field])
    config.validate_hf_linear()  # token ids inside the (grown) vocabulary
    return model


__all__ = ["adapt_pretrained"]
