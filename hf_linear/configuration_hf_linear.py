"""Configurations of the paper's two next-token predictors (Malach, ICML 2024).

This file is copied into every checkpoint saved with its code (``trust_remote_code``), so it
imports nothing from ``hf_linear``.

Notation used throughout the project (as in the paper):
    T = context_length   the fixed window of tokens the model sees
    d = hidden_size      the embedding width
    V = vocab_size
"""

from __future__ import annotations

from transformers import PreTrainedConfig

# how the masked map's blocks are drawn (LinearLMConfig.mixing_init)
MIXING_INITS = ("dense", "fan_in")


def _check_int(config: PreTrainedConfig, field: str, minimum: int, *, optional: bool = False) -> None:
    value = getattr(config, field)
    if optional and value is None:
        return
    # bool is an int subclass; `hidden_size=True` is a mistake, not 1
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        expected = f"an integer >= {minimum}" + (" or None" if optional else "")
        raise ValueError(f"{type(config).__name__}.{field} must be {expected}, got {value!r}")


class LinearLMConfig(PreTrainedConfig):
    r"""Configuration of :class:`LinearLMForCausalLM`, the paper's linear next-token predictor (§4.1).

    embedding V → d at each of the T positions → one masked linear map T·d → T·d (output
    position i sees input positions j ≤ i) with bias → output layer d → V with bias.
    No nonlinearity, no normalization. Defaults are the paper's TinyStories model
    (T=64, d=256, GPT-2 BPE + [PAD] → V=50258; 162.1M parameters).

    Args:
        vocab_size: V, the number of token ids.
        context_length: T, the window; longer inputs slide (each output sees the last T tokens).
        hidden_size: d, the embedding width.
        mixing_chunk_size: positions per block-row chunk of the masked map's training schedule
            (``None`` = automatic). A compute schedule only: it changes neither the function
            nor the parameter layout.
        mixing_init: how the masked map's blocks are drawn. ``"dense"`` (the authors'): every
            block from U(±1/√(T·d)), the fan-in of the dense T·d → T·d layer, so position i's
            output scale grows as √(i+1). ``"fan_in"``: row i's blocks from U(±1/√((i+1)·d)),
            its own fan-in, so every position's output starts at one scale (that of the last row).
        bos_token_id, eos_token_id, pad_token_id: the usual special-token ids.
    """

    model_type = "linear_lm"

    vocab_size: int = 50258
    context_length: int = 64
    hidden_size: int = 256
    mixing_chunk_size: int | None = None
    mixing_init: str = "dense"
    bos_token_id: int | None = None
    eos_token_id: int | list[int] | None = None
    pad_token_id: int | None = None
    tie_word_embeddings: bool = False

    def __post_init__(self, **kwargs):
        self.validate_hf_linear()
        super().__post_init__(**kwargs)

    def validate_hf_linear(self) -> None:
        """Raise ``ValueError`` naming the first invalid field."""
        _check_int(self, "vocab_size", 1)
        _check_int(self, "context_length", 1)
        _check_int(self, "hidden_size", 1)
        _check_int(self, "mixing_chunk_size", 1, optional=True)
        if self.mixing_init not in MIXING_INITS:
            raise ValueError(
                f"{type(self).__name__}.mixing_init must be one of {', '.join(MIXING_INITS)}, got {self.mixing_init!r}"
            )
        for field in ("bos_token_id", "pad_token_id"):
            _check_token_id(self, field, getattr(self, field))
        eos = self.eos_token_id
        for token_id in eos if isinstance(eos, (list, tuple)) else [eos]:
            _check_token_id(self, "eos_token_id", token_id)
        if self.tie_word_embeddings:
            raise ValueError(
                f"{type(self).__name__}.tie_word_embeddings must be False: the paper's models have "
                "separate input embedding and output layer (with bias)"
            )


def _check_token_id(config: LinearLMConfig, field: str, token_id) -> None:
    if token_id is None:
        return
    if isinstance(token_id, bool) or not isinstance(token_id, int) or not 0 <= token_id < config.vocab_size:
        raise ValueError(
            f"{type(config).__name__}.{field} must be a token id in [0, vocab_size={config.vocab_size}), "
            f"got {token_id!r}"
        )


class MLPLMConfig(LinearLMConfig):
    r"""Configuration of :class:`MLPLMForCausalLM`, the paper's MLP next-token predictor.

    As :class:`LinearLMConfig`, with a ReLU after the masked map, then ``num_mlp_layers``
    per-position layers Linear(·, mlp_hidden_size) + ReLU, then the output layer → V.
    Defaults are the paper's multiplication model (T=307, d=128, V=117, one per-position
    layer of width d; 774.7M parameters).

    Args:
        num_mlp_layers: number of per-position hidden layers after the masked map (paper: 1).
        mlp_hidden_size: their width (``None`` = hidden_size, as the paper).
    """

    model_type = "mlp_lm"

    vocab_size: int = 117
    context_length: int = 307
    hidden_size: int = 128
    num_mlp_layers: int = 1
    mlp_hidden_size: int | None = None

    def validate_hf_linear(self) -> None:
        super().validate_hf_linear()
        _check_int(self, "num_mlp_layers", 0)
        _check_int(self, "mlp_hidden_size", 1, optional=True)

    @property
    def mlp_width(self) -> int:
        """Width of the per-position hidden layers (``mlp_hidden_size`` or d)."""
        return self.mlp_hidden_size or self.hidden_size


__all__ = ["LinearLMConfig", "MLPLMConfig"]
