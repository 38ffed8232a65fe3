"""LoRA for the masked position-mixing map, as a PEFT custom LoRA layer.

The masked map has one d×d block W[i, j] per pair j ≤ i < T. A LoRA update of the dense
(T·d)×(T·d) map it stands for, masked like the map itself, is

    ΔW[i, j] = scale · A_j B_i        (j ≤ i)     A_j: (d, r) per input position j,
                                                   B_i: (r, d) per output position i,

so the adapted output of position i < T is

    y_i = base_i + scale · (Σ_{j ≤ i} x_j A_j) B_i

a cumulative sum over positions: O(T·d·r) per sequence, 2·T·d·r parameters (the masked map has
T(T+1)/2·d²). Positions p ≥ T (sliding window) use row T-1 over inputs p-T+1..p, whose window
positions 0..T-1 select A_0..A_{T-1}: z_p = Σ_j x_{p-T+1+j} A_j is a correlation over the
window, not a difference of two cumulative sums (the A index moves with the window), so it is
computed per window like the base map's sliding rows (O(T·d·r) per sliding position, r/d of the
base cost). `last_position(window)`, the generation path, applies the same update.

Usage
-----
Importing this module makes the standard PEFT calls work for the mixing layer of both models
(also for models loaded with ``trust_remote_code``), without any per-config registration.
``import hf_linear`` imports it as soon as the program imports peft (`hf_linear.peft_support`)::

    import hf_linear
    from peft import LoraConfig, PeftModel, get_peft_model

    config = LoraConfig(r=8, lora_alpha=16, target_modules=["mixing"], task_type="CAUSAL_LM")
    peft_model = get_peft_model(model, config)          # only the LoRA factors are trainable
    ...                                                  # transformers.Trainer, generate, ...
    peft_model.save_pretrained(path)                     # adapter_config.json + adapter weights
    peft_model = PeftModel.from_pretrained(model, path)  # rebuilds the adapter on a fresh model
    merged = peft_model.merge_and_unload()               # a plain model, ΔW added to the blocks

``lora_config(r=8, ...)`` builds that LoraConfig (target "mixing", CAUSAL_LM) for you.

How loading works. PEFT's documented hook for custom layers is per config
(``LoraConfig._register_custom_module``), and that registration is not saved, so a plain
``PeftModel.from_pretrained(model, path)`` would not know how to rebuild the layer. Importing
this module therefore adds one dispatcher in front of PEFT's own (``LoraModel._create_new_module``,
installed once): a target that is a masked map gets a `MaskedMixingLoraLayer`; everything else
goes to PEFT unchanged. If a future PEFT renames that hook, the import still works and
``register(config)`` / ``load_adapter(model, path)`` (the documented per-config route) remain.

Supported LoraConfig options: r, lora_alpha, use_rslora, lora_dropout, init_lora_weights
(True: A uniform, B = 0, so the adapted model starts equal to the base; "gaussian"; False:
both random, for tests), disable/enable, merge/unmerge, several adapters (kept per name as in
PEFT's own layers; not covered by the tests). Not supported (a
clear error): lora_bias, DoRA and the other variants, the data-driven inits (PiSSA, OLoRA, ...),
mixed-adapter batches (``adapter_names=``).
"""

from __future__ import annotations

import abc
import math
import warnings
from typing import Any

import torch

try:
    from peft import LoraConfig, PeftModel
except ImportError as error:  # a dependency (pyproject.toml), but an environment may lack it
    raise ImportError("hf_linear.lora needs peft: pip install 'peft>=0.21,<0.22'") from error
from peft.tuners.lora.layer import LoraLayer
from peft.tuners.lora.model import LoraModel
from peft.tuners.tuners_utils import BaseTunerLayer, check_adapters_to_merge
from torch import nn

MIXING_MODULE_NAME = "mixing"  # attribute name of the masked map in LinearLMModel / MLPLMModel


class MaskedMapLike(abc.ABC):  # noqa: B024 (an ABC for its __subclasshook__, no abstract method)
    """isinstance() check for the masked map, whichever module defined the class.

    A model loaded with ``trust_remote_code`` has its own copy of `MaskedPositionMixing` (from
    the checkpoint's masked_mixing.py), which is not hf_linear's class; both match here.
    """

    @classmethod
    def __subclasshook__(cls, klass):
        if cls is MaskedMapLike:
            return klass.__name__ == "MaskedPositionMixing" and hasattr(klass, "last_position")
        return NotImplemented


def masked_low_rank_mixing(x: torch.Tensor, lora_a: torch.Tensor, lora_b: torch.Tensor) -> torch.Tensor:
    """The unscaled LoRA term of every position: x (B, L, d) → (B, L, d).

    Position i < T: (Σ_{j ≤ i} x_j A_j) B_i. Position p ≥ T: (Σ_j x_{p-T+1+j} A_j) B_{T-1}.
    lora_a: (T, d, r) — A_j per input position; lora_b: (T, r, d) — B_i per output position.
    """
    batch, length, d = x.shape
    T = lora_a.shape[0]
    n = min(length, T)
    z = torch.einsum("bjd,jdr->bjr", x[:, :n], lora_a[:n]).cumsum(dim=1)  # (B, n, r): Σ_{j≤i} x_j A_j
    y = torch.einsum("bir,ird->bid", z, lora_b[:n])  # (B, n, d)
    if length > T:  # sliding window p ≥ T: window position j of window w uses A_j
        windows = x.unfold(1, T, 1)[:, 1:]  # (B, L-T, d, T), window w covers inputs w+1..w+T
        z = torch.einsum("bwdj,jdr->bwr", windows, lora_a)  # (B, L-T, r)
        y = torch.cat([y, z @ lora_b[T - 1]], dim=1)
    return y


class MaskedMixingLoraLayer(nn.Module, LoraLayer):
    """PEFT LoRA layer wrapping a `MaskedPositionMixing` (see the module docstring for the math).

    Adapter parameters, one entry per adapter name:
        lora_mixing_A[name]: (T, d, r), A_j for input position j
        lora_mixing_B[name]: (T, r, d), B_i for output position i
    """

    adapter_layer_names = LoraLayer.adapter_layer_names + ("lora_mixing_A", "lora_mixing_B")

    def __init__(
        self, base_layer: nn.Module, adapter_name: str, config: LoraConfig, r: int = 0, lora_alpha: int = 1, **kwargs
    ) -> None:
        super().__init__()
        LoraLayer.__init__(self, base_layer)
        self.lora_mixing_A = nn.ParameterDict({})
        self.lora_mixing_B = nn.ParameterDict({})
        self._active_adapter = adapter_name
        self.update_layer(adapter_name, r, lora_alpha=lora_alpha, config=config, **kwargs)

    # ------------------------------------------------------------------------------- structure

    def _get_in_out_features(self, module: nn.Module) -> tuple[int, int]:
        return module.hidden_size, module.hidden_size

    @property
    def context_length(self) -> int:
        return self.get_base_layer().context_length

    @property
    def hidden_size(self) -> int:
        return self.get_base_layer().hidden_size

    def update_layer(self, adapter_name: str, r: int, lora_alpha: int, config: LoraConfig, **kwargs) -> None:
        if r <= 0:
            raise ValueError(f"`r` should be a positive integer value but the value passed is {r}")
        init = config.init_lora_weights
        if config.lora_bias:
            raise ValueError("LoRA of the masked position-mixing map does not support lora_bias")
        if config.use_dora:
            raise ValueError("LoRA of the masked position-mixing map does not support DoRA")
        if isinstance(init, str) and init.lower() != "gaussian":
            raise ValueError(f"LoRA of the masked position-mixing map does not support init_lora_weights={init!r}")
        if self.resolve_lora_variant(config=config) is not None:  # raises itself for unknown variants
            raise ValueError("LoRA of the masked position-mixing map supports no LoRA variant")

        T, d = self.context_length, self.hidden_size
        self.r[adapter_name] = r
        self.lora_alpha[adapter_name] = lora_alpha
        self.scaling[adapter_name] = lora_alpha / (math.sqrt(r) if config.use_rslora else r)
        self.use_rslora[adapter_name] = config.use_rslora
        self.use_dora[adapter_name] = False
        self.lora_bias[adapter_name] = False
        dropout = nn.Dropout(p=config.lora_dropout) if config.lora_dropout > 0 else nn.Identity()
        self.lora_dropout[adapter_name] = dropout
        self.lora_mixing_A[adapter_name] = nn.Parameter(torch.empty(T, d, r))
        self.lora_mixing_B[adapter_name] = nn.Parameter(torch.empty(T, r, d))
        self.reset_lora_parameters(adapter_name, init)
        self._move_adapter_to_device_of_base_layer(adapter_name)
        self.set_adapter(self.active_adapters, inference_mode=config.inference_mode)

    @torch.no_grad()
    def reset_lora_parameters(self, adapter_name: str, init_lora_weights) -> None:
        if adapter_name not in self.lora_mixing_A:
            return
        lora_a, lora_b = self.lora_mixing_A[adapter_name], self.lora_mixing_B[adapter_name]
        T, d, r = lora_a.shape
        # Stacked over positions, A is the (T·d, r) down-projection of the flattened window, so it
        # gets nn.Linear's (= PEFT's kaiming) bound for fan-in T·d, like the base map's init.
        if init_lora_weights is True:
            nn.init.uniform_(lora_a, -1 / math.sqrt(T * d), 1 / math.sqrt(T * d))
        elif init_lora_weights == "gaussian":
            nn.init.normal_(lora_a, std=1 / r)
        else:  # False: no LoRA init, both factors random (so the adapter is not a no-op)
            nn.init.uniform_(lora_a, -1 / math.sqrt(T * d), 1 / math.sqrt(T * d))
            nn.init.uniform_(lora_b, -1 / math.sqrt(r), 1 / math.sqrt(r))
            return
        nn.init.zeros_(lora_b)  # ΔW = 0: the adapted model starts equal to the base model

    # ------------------------------------------------------------------------------- forward

    def _check_forward_args(self, x, *args, **kwargs):
        if kwargs.get("adapter_names") is not None:
            raise ValueError(f"lora.{type(self).__name__} does not support mixed adapter batches (adapter_names)")
        super()._check_forward_args(x, *args, **kwargs)

    def _adapters_to_apply(self) -> list[str]:
        """Active, unmerged adapters whose LoRA term must be added; unmerges first if disabled."""
        if self.disable_adapters:
            if self.merged:
                self.unmerge()
            return []
        if self.merged:
            return []
        return [name for name in self.active_adapters if name in self.lora_mixing_A]

    def forward(self, x: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        """All positions, as the base layer: x (B, L, d) → (B, L, d)."""
        self._check_forward_args(x, *args, **kwargs)
        kwargs.pop("adapter_names", None)
        result = self.base_layer(x, *args, **kwargs)
        result_dtype = result.dtype
        for name in self._adapters_to_apply():
            lora_a, lora_b = self.lora_mixing_A[name], self.lora_mixing_B[name]
            h = self._cast_input_dtype(self.lora_dropout[name](x), lora_a.dtype)
            result = result + masked_low_rank_mixing(h, lora_a, lora_b) * self.scaling[name]
        return result.to(result_dtype)

    def last_position(self, window: torch.Tensor) -> torch.Tensor:
        """Generation path, as the base layer: window (B, n, d), n ≤ T → output of position n-1 (B, d)."""
        result = self.get_base_layer().last_position(window)
        result_dtype = result.dtype
        n = window.shape[1]
        for name in self._adapters_to_apply():
            lora_a, lora_b = self.lora_mixing_A[name], self.lora_mixing_B[name]
            h = self._cast_input_dtype(self.lora_dropout[name](window), lora_a.dtype)
            z = torch.einsum("bjd,jdr->br", h, lora_a[:n])  # (B, r): Σ_{j<n} x_j A_j
            result = result + (z @ lora_b[n - 1]) * self.scaling[name]
        return result.to(result_dtype)

    # ------------------------------------------------------------------------------- merging

    def get_delta_weight(self, adapter: str) -> torch.Tensor:
        """ΔW in the base layer's packed layout: (T(T+1)/2, d, d), block i(i+1)/2 + j = scale·A_j B_i."""
        weight = self.get_base_layer().weight
        delta = torch.zeros(weight.shape, dtype=torch.float32, device=weight.device)
        self._add_delta_(delta, adapter, sign=1.0)
        return delta.to(self.lora_mixing_A[adapter].dtype)

    @torch.no_grad()
    def _add_delta_(self, weight: torch.Tensor, adapter: str, sign: float) -> None:
        """weight += sign·ΔW in place, one block row at a time (no second full-size tensor)."""
        lora_a, lora_b = self.lora_mixing_A[adapter].float(), self.lora_mixing_B[adapter].float()
        scale = sign * self.scaling[adapter]
        for i in range(self.context_length):
            start = i * (i + 1) // 2
            row = (lora_a[: i + 1] @ lora_b[i]) * scale  # (i+1, d, d): blocks W[i, 0..i]
            weight[start : start + i + 1] += row.to(weight.dtype)

    def merge(self, safe_merge: bool = False, adapter_names: list[str] | None = None) -> None:
        adapter_names = check_adapters_to_merge(self, adapter_names)
        base = self.get_base_layer()
        for name in adapter_names:
            if name not in self.lora_mixing_A:
                continue
            if safe_merge:
                merged = base.weight.data.clone()
                self._add_delta_(merged, name, sign=1.0)
                if not torch.isfinite(merged).all():
                    raise ValueError(f"NaNs detected in the merged weights. The adapter {name} seems to be broken")
                base.weight.data = merged
            else:
                self._add_delta_(base.weight.data, name, sign=1.0)
            self.merged_adapters.append(name)

    def unmerge(self) -> None:
        if not self.merged:
            warnings.warn("Already unmerged. Nothing to do.", stacklevel=2)
            return
        while self.merged_adapters:
            name = self.merged_adapters.pop()
            if name in self.lora_mixing_A:
                self._add_delta_(self.get_base_layer().weight.data, name, sign=-1.0)

    def __repr__(self) -> str:
        return "lora." + super().__repr__()


# ----------------------------------------------------------------------------------- PEFT wiring


def register(config: LoraConfig) -> LoraConfig:
    """PEFT's documented per-config route: map the masked map to `MaskedMixingLoraLayer` in `config`."""
    config._register_custom_module({MaskedMapLike: MaskedMixingLoraLayer})
    return config


def lora_config(r: int = 8, lora_alpha: int | None = None, **kwargs) -> LoraConfig:
    """A LoraConfig targeting the masked map (``target_modules=["mixing"]``, task CAUSAL_LM),
    registered. lora_alpha defaults to 2·r; other kwargs go to LoraConfig."""
    kwargs.setdefault("target_modules", [MIXING_MODULE_NAME])
    kwargs.setdefault("task_type", "CAUSAL_LM")
    return register(LoraConfig(r=r, lora_alpha=2 * r if lora_alpha is None else lora_alpha, **kwargs))


def load_adapter(model: nn.Module, path, **kwargs) -> PeftModel:
    """``PeftModel.from_pretrained(model, path, **kwargs)`` with the saved config registered:
    works without the import-time dispatcher (see the module docstring)."""
    config = register(LoraConfig.from_pretrained(path))
    config.inference_mode = not kwargs.get("is_trainable", False)
    return PeftModel.from_pretrained(model, path, config=config, **kwargs)


def _install_default_dispatch() -> None:
    """Put a masked-map dispatcher in front of PEFT's LoRA layer factory (once per process)."""
    original = LoraModel.__dict__.get("_create_new_module")
    if not isinstance(original, staticmethod) or getattr(original.__func__, "_hf_linear_dispatch", False):
        return  # already installed, or a PEFT whose factory we do not recognise: use register()
    create = original.__func__

    def _create_new_module(lora_config, adapter_name, target, **kwargs):
        base = target.get_base_layer() if isinstance(target, BaseTunerLayer) else target
        custom = lora_config._custom_modules or {}
        if isinstance(base, MaskedMapLike) and not any(isinstance(base, key) for key in custom):
            return MaskedMixingLoraLayer(target, adapter_name, config=lora_config, **kwargs)
        return create(lora_config, adapter_name, target, **kwargs)

    _create_new_module._hf_linear_dispatch = True
    LoraModel._create_new_module = staticmethod(_create_new_module)


_install_default_dispatch()

__all__ = [
    "MaskedMixingLoraLayer",
    "MaskedMapLike",
    "masked_low_rank_mixing",
    "register",
    "lora_config",
    "load_adapter",
]
