"""The hf-linear model types: one row per type, the table every module asks.

The type names themselves are the configurations' `model_type` (they travel inside every
checkpoint); everything else — which classes register with the Auto classes, "is this an
hf-linear model?", which type is the linear one — is read from here, so a third model type is
one more row.
"""

from __future__ import annotations

from dataclasses import dataclass

from .configuration_hf_linear import LinearLMConfig, MLPLMConfig
from .modeling_hf_linear import LinearLMForCausalLM, LinearLMModel, MLPLMForCausalLM, MLPLMModel
from .paper import PAPER_LINEAR_MODEL, PAPER_MLP_MODEL


@dataclass(frozen=True)
class ModelType:
    """One hf-linear model type and the classes registered for it."""

    config_class: type
    base_class: type  # AutoModel
    causal_lm_class: type  # AutoModelForCausalLM
    paper_model: str  # the paper's model of this kind, in words (model cards)

    @property
    def name(self) -> str:
        return self.config_class.model_type


LINEAR_LM = LinearLMConfig.model_type
MLP_LM = MLPLMConfig.model_type

MODEL_TYPES: dict[str, ModelType] = {
    row.name: row
    for row in (
        ModelType(LinearLMConfig, LinearLMModel, LinearLMForCausalLM, PAPER_LINEAR_MODEL),
        ModelType(MLPLMConfig, MLPLMModel, MLPLMForCausalLM, PAPER_MLP_MODEL),
    )
}
HF_LINEAR_TYPES = tuple(MODEL_TYPES)


def is_hf_linear(model_type: str | None) -> bool:
    """Whether a config's `model_type` is one of hf-linear's own (not e.g. gpt2)."""
    return model_type in MODEL_TYPES


def type_names(joiner: str = ", ") -> str:
    """The type names for messages: "linear_lm, mlp_lm"."""
    return joiner.join(HF_LINEAR_TYPES)
