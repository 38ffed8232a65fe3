"""The hf-linear model types: one row per type, the table every module asks.

The type names themselves are the configurations' `model_type` (they travel inside every
checkpoint); everything else — which classes register with the Auto classes, "is this an
hf-linear model?", what an analysis may assume of it, how a model card describes it — is read
from its row here, so a third model type is one more row (`register_model_type`) and its
modeling code.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from transformers import AutoConfig, AutoModel, AutoModelForCausalLM

from .configuration_hf_linear import LinearLMConfig, MLPLMConfig
from .modeling_hf_linear import LinearLMForCausalLM, LinearLMModel, MLPLMForCausalLM, MLPLMModel
from .paper import PAPER_LINEAR_MODEL, PAPER_MLP_MODEL, STORY_PROMPT, STORY_TEMPERATURE


@dataclass(frozen=True)
class ModelType:
    """One hf-linear model type: its classes, and what the rest of the package may assume of it."""

    config_class: type
    base_class: type  # AutoModel
    causal_lm_class: type  # AutoModelForCausalLM
    paper_model: str  # the paper's model of this kind, in words (model cards)
    label: str  # for people: "LinearLM"
    # the logits are affine in the embedded inputs (no nonlinearity before the softmax): a logit
    # splits exactly into one part per (earlier position, token) — attribution, wiring analysis
    linear_in_inputs: bool
    # a ReLU follows the masked map: its units can die, position by position (analysis.dead_units)
    relu_after_mixing: bool
    # (summary, description, extra table rows) of a config (a dict), in the paper's terms (model card)
    describe: Callable[[dict], tuple[str, str, str]]
    # what the paper trained this kind of model on (the card's use, when the run's data is unknown)
    paper_use: str

    @property
    def name(self) -> str:
        return self.config_class.model_type


def _describe_linear(config: dict) -> tuple[str, str, str]:
    return (
        "A **linear** auto-regressive next-token predictor (the paper's §4.1 model).",
        "Token embedding V → d at each of the T positions, then one linear map T·d → T·d with "
        "bias, masked so that output position i only sees input positions j ≤ i, then an output "
        "layer d → V with bias at each position. No nonlinearity, no normalization; trained with "
        "cross-entropy on the next token.",
        "",
    )


def _describe_mlp(config: dict) -> tuple[str, str, str]:
    layers = config.get("num_mlp_layers", 1)
    width = config.get("mlp_hidden_size") or config["hidden_size"]
    return (
        "An **MLP** auto-regressive next-token predictor (the paper's multiplication model).",
        "As the paper's linear model (token embedding V → d, one masked linear map T·d → T·d in which "
        "output position i only sees input positions j ≤ i), with a ReLU after the masked map, then "
        f"{layers} per-position layer(s) Linear(·, {width}) + ReLU, then the output layer → V.",
        f"| per-position MLP layers | {layers} × width {width} |\n",
    )


# the code that travels inside every checkpoint saved with its code (trust_remote_code); these
# modules import only each other, never hf_linear
CHECKPOINT_CODE_MODULES = ("configuration_hf_linear", "masked_mixing", "modeling_hf_linear")

LINEAR_LM = LinearLMConfig.model_type
MLP_LM = MLPLMConfig.model_type

MODEL_TYPES: dict[str, ModelType] = {}


def register_model_type(row: ModelType) -> ModelType:
    """Add a row and register its classes with the Auto classes (and for `save_pretrained` to
    write their code into checkpoints)."""
    MODEL_TYPES[row.name] = row
    AutoConfig.register(row.name, row.config_class, exist_ok=True)
    AutoModel.register(row.config_class, row.base_class, exist_ok=True)
    AutoModelForCausalLM.register(row.config_class, row.causal_lm_class, exist_ok=True)
    row.config_class.register_for_auto_class()
    row.base_class.register_for_auto_class("AutoModel")
    row.causal_lm_class.register_for_auto_class("AutoModelForCausalLM")
    return row


register_model_type(
    ModelType(
        LinearLMConfig,
        LinearLMModel,
        LinearLMForCausalLM,
        PAPER_LINEAR_MODEL,
        label="LinearLM",
        linear_in_inputs=True,
        relu_after_mixing=False,
        describe=_describe_linear,
        paper_use="The paper trains this model on TinyStories (simple children's stories) and samples "
        f'from a prompt such as "{STORY_PROMPT}" at temperature {STORY_TEMPERATURE}.',
    )
)
register_model_type(
    ModelType(
        MLPLMConfig,
        MLPLMModel,
        MLPLMForCausalLM,
        PAPER_MLP_MODEL,
        label="MLPLM",
        linear_in_inputs=False,
        relu_after_mixing=True,
        describe=_describe_mlp,
        paper_use="The paper trains this model on 4-digit × 4-digit multiplication written as a Chain of "
        "Thought: the prompt is everything up to the first `=`, the answer follows the last `=`.",
    )
)


def model_type_of(model_or_config) -> ModelType | None:
    """The row of a model or its config (None for a model that is not hf-linear's, e.g. gpt2)."""
    config = getattr(model_or_config, "config", model_or_config)
    return MODEL_TYPES.get(getattr(config, "model_type", None))


def is_hf_linear(model_type: str | None) -> bool:
    """Whether a config's `model_type` is one of hf-linear's own (not e.g. gpt2)."""
    return model_type in MODEL_TYPES


def type_names(joiner: str = ", ") -> str:
    """The type names for messages: "linear_lm, mlp_lm"."""
    return joiner.join(MODEL_TYPES)
