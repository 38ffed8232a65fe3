"""hf-linear: the linear and MLP next-token predictors of Malach (ICML 2024) for transformers.

Importing the package registers both model types with AutoConfig, AutoModel and
AutoModelForCausalLM, and marks the classes so that `save_pretrained` writes their code and an
`auto_map` into the checkpoint (loadable with `trust_remote_code=True` without hf_linear).

It also teaches PEFT the masked map (`hf_linear.peft_support`): `get_peft_model` and
`PeftModel.from_pretrained` with `target_modules=["mixing"]` work after a plain `import hf_linear`,
without importing peft here (peft is loaded, and `hf_linear.lora` with it, only when the program
imports peft itself). The model types are listed once, in `hf_linear.model_types`.

Not imported here: `hf_linear.model_surgery` (grow a trained model's window and vocabulary) and
`hf_linear.convert_authors` (the authors' LinearModel state dicts → checkpoints).

Importing it before torch also sets OMP_WAIT_POLICY=PASSIVE unless already set (see
`hf_linear.omp_policy`: spinning OpenMP threads stall torch on a CPU shared with other work).
"""

# first, before anything loads torch: libgomp reads its wait policy once, at load (omp_policy.py)
from .omp_policy import choose_wait_policy

choose_wait_policy()

from .configuration_hf_linear import LinearLMConfig, MLPLMConfig  # noqa: E402
from .masked_mixing import MaskedPositionMixing  # noqa: E402
from .model_types import MODEL_TYPES  # noqa: E402, F401  (registers the types with the Auto classes)
from .modeling_hf_linear import LinearLMForCausalLM, LinearLMModel, MLPLMForCausalLM, MLPLMModel  # noqa: E402
from .peft_support import register_lora_support  # noqa: E402

__version__ = "0.1.0"

register_lora_support()

__all__ = [
    "LinearLMConfig",
    "MLPLMConfig",
    "LinearLMModel",
    "LinearLMForCausalLM",
    "MLPLMModel",
    "MLPLMForCausalLM",
    "MaskedPositionMixing",
]
