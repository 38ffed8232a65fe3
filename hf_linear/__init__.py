"""hf-linear: the linear and MLP next-token predictors of Malach (ICML 2024) for transformers.

Importing the package registers both model types with AutoConfig, AutoModel and
AutoModelForCausalLM, and marks the classes so that `save_pretrained` writes their code and an
`auto_map` into the checkpoint (loadable with `trust_remote_code=True` without hf_linear).

Not imported here: `hf_linear.lora` (LoRA of the masked map through PEFT; needs peft),
`hf_linear.model_surgery` (grow a trained model's window and vocabulary) and
`hf_linear.convert_authors` (the authors' LinearModel state dicts → checkpoints).

Importing it before torch also sets OMP_WAIT_POLICY=PASSIVE unless already set (see
`hf_linear.omp_policy`: spinning OpenMP threads stall torch on a CPU shared with other work).
"""

# first, before anything loads torch: libgomp reads its wait policy once, at load (omp_policy.py)
from .omp_policy import choose_wait_policy

choose_wait_policy()

from transformers import AutoConfig, AutoModel, AutoModelForCausalLM  # noqa: E402

from .configuration_hf_linear import LinearLMConfig, MLPLMConfig
from .modeling_hf_linear import (
    LinearLMForCausalLM,
    LinearLMModel,
    MaskedPositionMixing,
    MLPLMForCausalLM,
    MLPLMModel,
)

__version__ = "0.1.0"

for _config, _base, _causal_lm in (
    (LinearLMConfig, LinearLMModel, LinearLMForCausalLM),
    (MLPLMConfig, MLPLMModel, MLPLMForCausalLM),
):
    AutoConfig.register(_config.model_type, _config, exist_ok=True)
    AutoModel.register(_config, _base, exist_ok=True)
    AutoModelForCausalLM.register(_config, _causal_lm, exist_ok=True)
    _config.register_for_auto_class()
    _base.register_for_auto_class("AutoModel")
    _causal_lm.register_for_auto_class("AutoModelForCausalLM")

__all__ = [
    "LinearLMConfig",
    "MLPLMConfig",
    "LinearLMModel",
    "LinearLMForCausalLM",
    "MLPLMModel",
    "MLPLMForCausalLM",
    "MaskedPositionMixing",
]
