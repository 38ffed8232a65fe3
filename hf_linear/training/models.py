"""The model and tokenizer of a run: a new model from the `model:` section, or a checkpoint's
(`model: {init_from: PATH_OR_HUB_ID}`), grown to the data where asked."""

from __future__ import annotations

from typing import TYPE_CHECKING

import psutil
import torch
from peft import get_peft_model
from transformers import AutoConfig, AutoModelForCausalLM

import hf_linear.lora  # teaches PEFT the masked map (a LoRA layer for MaskedPositionMixing)
from hf_linear.checkpoints import load_model
from hf_linear.model_surgery import adapt_pretrained
from hf_linear.model_types import is_hf_linear, type_names

if TYPE_CHECKING:
    from hf_linear.training.config import RunConfig
    from hf_linear.training.run_data import RunData


def model_for(config: RunConfig, data: RunData, model_section: dict | None = None):
    """The run's model, sized by its data: the `model:` section's (or `model_section`, a search
    trial's variant of it); with a `lora:` section, a LoRA adapter of the masked map on it, the
    rest frozen."""
    model, _ = build_model(
        model_section or config.model,
        data.tokenizer,
        data.sequence_length,
        language_model_windows=data.language_model,
        allow_sliding=bool(config.dataset.get("allow_sliding")),
    )
    if config.lora is not None:
        model = get_peft_model(model, hf_linear.lora.lora_config(**config.lora))
    return model


# a trained weight's float32 copies in memory: the weight, its gradient, Adam's two moments
TRAINING_COPIES = 4


def check_memory_for(config) -> None:
    """Refuse a model whose training would not fit in this machine's memory, before allocating it:
    its parameters are counted on the meta device (no memory); ValueError with the estimate."""
    memory = psutil.virtual_memory().total
    advice = f"more than this machine's {memory / 2**30:,.1f} GiB of memory: choose a smaller model"
    try:
        with torch.device("meta"):
            parameters = sum(p.numel() for p in AutoModelForCausalLM.from_config(config).parameters())
    except RuntimeError as error:  # torch cannot size a tensor of 2**63 bytes or more
        raise ValueError(
            f"model: its parameters need more than 8 EiB ({str(error).splitlines()[0]}), {advice}"
        ) from None
    needed = parameters * torch.get_default_dtype().itemsize * TRAINING_COPIES
    if needed > memory:
        raise ValueError(
            f"model: {parameters:.3g} parameters need about {needed / 2**30:,.1f} GiB to train (weights, "
            f"gradients and Adam's two moments in float32), {advice}"
        )


def data_window(sequence_length: int, language_model_windows: bool) -> int:
    """The window T the data needs: a language-model window of T+1 tokens trains all T rows of
    the masked map (T inputs, T targets); an arithmetic example is read whole."""
    return sequence_length - 1 if language_model_windows else sequence_length


def build_model(
    model_section: dict, tokenizer, sequence_length: int, language_model_windows: bool, allow_sliding: bool = False
):
    """The run's model. The window, vocabulary size and special tokens default to the data's;
    data longer than an explicitly given (or the checkpoint's) window is an error unless
    `allow_sliding`."""
    needed = data_window(sequence_length, language_model_windows)
    fields = {k: v for k, v in model_section.items() if k not in ("type", "init_from")}
    if "init_from" in model_section:
        model = load_model(model_section["init_from"])
        if not is_hf_linear(model.config.model_type):
            raise ValueError(
                f"model.init_from: fine-tuning needs an hf-linear checkpoint ({type_names()}), "
                f"got {model.config.model_type}"
            )
        # keep the checkpoint's chunk schedule unless asked otherwise: inputs of its old length
        # are then computed exactly as before (bit for bit), not just up to rounding
        fields.setdefault("mixing_chunk_size", model.base_model.mixing.chunk_size)
        try:
            adapt_pretrained(
                model,
                context_length=fields.pop("context_length", None),
                vocab_size=fields.pop("vocab_size", max(len(tokenizer), model.config.vocab_size)),
                **fields,
            )
        except ValueError as error:
            raise ValueError(f"model: {error}") from None
        window = model.config.context_length
    else:
        window_key = "n_positions" if model_section["type"] == "gpt2" else "context_length"
        # a transformer with learned positions reads the whole sequence; ours slide beyond T
        fields.setdefault(window_key, sequence_length if window_key == "n_positions" else needed)
        fields.setdefault("vocab_size", len(tokenizer))
        for name in ("bos_token_id", "eos_token_id", "pad_token_id"):
            fields.setdefault(name, getattr(tokenizer, name))
        try:
            config = AutoConfig.for_model(model_section["type"], **fields)
        except (ValueError, TypeError) as error:
            raise ValueError(f"model: {error}") from None
        check_memory_for(config)
        model = AutoModelForCausalLM.from_config(config)
        # transformers infers loss_type from the class name ("...ForCausalLM"); GPT2LMHeadModel
        # gets None, and Trainer then counts every label instead of the T-1 predicted ones per
        # window, under-reporting its loss by a factor (T-1)/T.
        model.loss_type = "ForCausalLM"
        window = fields[window_key] if window_key == "context_length" else needed
    if len(tokenizer) > model.config.vocab_size:
        raise ValueError(
            f"model.vocab_size={model.config.vocab_size} is smaller than the tokenizer's {len(tokenizer)} tokens"
        )
    if needed > window and not allow_sliding:
        raise ValueError(
            f"model.context_length={window} is shorter than the data's sequences (a window of {needed} needed): "
            f"set model.context_length: {needed} (grows a checkpoint), or dataset.allow_sliding: true to train "
            "the model's sliding window on them"
        )
    return model, tokenizer
