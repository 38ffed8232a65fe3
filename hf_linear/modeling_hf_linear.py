"""The paper's linear and MLP next-token predictors as transformers models.

Malach, "Auto-Regressive Next-Token Predictors are Universal Learners", ICML 2024.

Both models read a window of the last T tokens and share one layer, the masked position-mixing
map: a linear map over the flattened window, T·d → T·d, in which output position i sees only
input positions j ≤ i (block lower-triangular in T×T blocks of d×d):

    y_i = b_i + Σ_{j ≤ i} x_j @ W[i, j]          x_j, y_i ∈ R^d,  W[i, j] ∈ R^{d×d}

    LinearLM:  embed (V→d) → masked map → output layer (d→V)                  (paper §4.1)
    MLPLM:     embed (V→d) → masked map → ReLU → [Linear(d, d) → ReLU] → output layer (d→V)

Unlike the authors' code, which stores a dense (T·d)×(T·d) weight and multiplies it by a mask
on every step, only the T(T+1)/2 unmasked blocks are parameters, training spends no FLOPs on the
masked half (apart from the diagonal of a block-row schedule, see `MaskedPositionMixing`), and
generation computes only the window's last position for each new token (for one sequence, with
the weights read in a faster layout: `DecodingLayouts`, the separate path of `decoding_step`).

The masked map itself lives in masked_mixing.py. This file, configuration_hf_linear.py and
masked_mixing.py are copied into every checkpoint saved with its code, so they import nothing
from hf_linear.

Shapes: B batch, L sequence length, T context_length, d hidden_size, V vocab_size.
"""

from __future__ import annotations

import contextlib
import math

import torch
import torch.nn.functional as F
from torch import nn
from transformers import GenerationMixin, PreTrainedModel
from transformers import initialization as init
from transformers.modeling_outputs import BaseModelOutput, CausalLMOutput

from .configuration_hf_linear import LinearLMConfig, MLPLMConfig
from .masked_mixing import DecodingLayouts, MaskedPositionMixing, num_masked_map_blocks


class PositionwiseMLP(nn.Module):
    """The MLP model's per-position layers after the masked map: [Linear → ReLU] × num_layers."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int):
        super().__init__()
        sizes = [input_size] + [hidden_size] * num_layers
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            h = F.relu(layer(h))
        return h


def left_align(input_ids: torch.Tensor, attention_mask: torch.Tensor | None, pad_token_id: int):
    """Move each row's real tokens (mask 1) to the front, in order, so that they sit at window
    positions 0, 1, … whatever the padding side; the model's weights are position-specific.

    Returns (ids, lengths, order): ids (B, L) right-padded, lengths (B,) or None when there is no
    padding, order (B, L) original column of each aligned column, or None when nothing moved.
    """
    if attention_mask is None or bool(attention_mask.all()):
        return input_ids, None, None
    mask = attention_mask.bool()
    lengths = mask.sum(dim=1)
    if bool((mask[:, 1:] <= mask[:, :-1]).all()):  # already right-padded
        return input_ids, lengths, None
    order = torch.argsort((~mask).to(torch.int8), dim=1, stable=True)  # real tokens first, in order
    ids = input_ids.gather(1, order).masked_fill(~mask.gather(1, order), pad_token_id)
    return ids, lengths, order


class HFLinearPreTrainedModel(PreTrainedModel):
    """Shared transformers plumbing: weight init and the window-based forward of both models."""

    config_class = LinearLMConfig
    base_model_prefix = "model"
    main_input_name = "input_ids"
    _no_split_modules = ["MaskedPositionMixing"]

    def _returns_dict(self, return_dict: bool | None) -> bool:
        """transformers' convention: an output dataclass unless return_dict (or the config's) is False."""
        return return_dict if return_dict is not None else self.config.return_dict

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        # The authors' initialisation, i.e. PyTorch's defaults: N(0, 1) embeddings and
        # U(±1/√fan_in) linear layers, where the masked map has the fan-in of the dense
        # T·d → T·d layer it was in their code; with mixing_init "fan_in", each row of blocks
        # has its own fan-in (the bias keeps the dense bound: the same for every row).
        if isinstance(module, MaskedPositionMixing):
            bound = module.row_init_bound(module.context_length - 1)  # the dense bound, 1/√(T·d)
            if self.config.mixing_init == "fan_in":
                if not getattr(module.weight, "_is_hf_initialized", False):  # (a loaded weight is kept)
                    module.init_rows_by_fan_in()
            else:
                init.uniform_(module.weight, -bound, bound)
            init.uniform_(module.bias, -bound, bound)
        elif isinstance(module, nn.Linear):
            bound = 1.0 / math.sqrt(module.in_features)
            init.uniform_(module.weight, -bound, bound)
            if module.bias is not None:
                init.uniform_(module.bias, -bound, bound)
        elif isinstance(module, nn.Embedding):
            init.normal_(module.weight, mean=0.0, std=1.0)

    def resize_context_length(self, new_context_length: int) -> None:
        """Grow the window T of a trained model in place (e.g. before fine-tuning on longer data).

        The new rows of the masked map are initialised so that the grown model computes exactly
        what the old one computed with its sliding window (see `MaskedPositionMixing.grown`):
        same logits on inputs of up to T tokens, the old sliding-window logits beyond. Updates
        config.context_length. Shrinking raises ValueError (it would drop trained rows).
        """
        T = self.config.context_length
        if isinstance(new_context_length, bool) or not isinstance(new_context_length, int) or new_context_length < T:
            raise ValueError(
                f"resize_context_length can only grow the window: context_length={T}, asked for {new_context_length!r}"
            )
        if new_context_length == T:
            return
        base = self.base_model  # self for LinearLMModel, self.model for the causal LM
        base.mixing = base.mixing.grown(new_context_length, self.config.mixing_chunk_size)
        self.config.context_length = new_context_length  # the config object base shares


class LinearLMModel(HFLinearPreTrainedModel):
    """Embedding + masked map: the per-position features the output layer reads (B, L, d)."""

    config_class = LinearLMConfig

    def __init__(self, config: LinearLMConfig):
        super().__init__(config)
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size)
        self.mixing = MaskedPositionMixing(config.context_length, config.hidden_size, config.mixing_chunk_size)
        self.build_features(config)
        self.post_init()

    def build_features(self, config: LinearLMConfig) -> None:
        """Layers after the masked map: none in the linear model."""

    def features(self, mixed: torch.Tensor) -> torch.Tensor:
        """What follows the masked map, per position: the identity in the linear model."""
        return mixed

    @property
    def output_size(self) -> int:
        """Width of the features the output layer reads."""
        return self.config.hidden_size

    def get_input_embeddings(self) -> nn.Embedding:
        return self.embed_tokens

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.embed_tokens = value

    def forward(
        self,
        input_ids: torch.LongTensor,
        attention_mask: torch.Tensor | None = None,
        last_position_only: bool = False,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> BaseModelOutput:
        """input_ids (B, L) → last_hidden_state (B, L, ·), or (B, 1, ·) with last_position_only.

        attention_mask (B, L) marks real tokens (1) and padding (0), on either side; real tokens
        take window positions 0, 1, … in order. Padded positions get meaningless features.
        With last_position_only, row b's output is that of its last real token (for left-padded
        batches, as in generation, that is column L-1).
        """
        if kwargs.get("inputs_embeds") is not None:
            raise ValueError(f"{type(self).__name__} takes input_ids, not inputs_embeds")
        self._check_input_ids(input_ids)
        ids, lengths, order = self._left_align(input_ids, attention_mask)

        if last_position_only:
            hidden = self._last_position_features(ids, lengths)[:, None]  # (B, 1, ·)
            embeddings = None
        else:
            embeddings = self.embed_tokens(ids)  # (B, L, d)
            hidden = self.features(self.mixing(embeddings))  # (B, L, ·)
            if order is not None:  # back to the caller's columns
                inverse = torch.argsort(order, dim=1)[..., None]
                hidden = hidden.gather(1, inverse.expand(-1, -1, hidden.shape[-1]))
                embeddings = embeddings.gather(1, inverse.expand(-1, -1, embeddings.shape[-1]))
        hidden_states = (embeddings, hidden) if output_hidden_states and embeddings is not None else None
        output = BaseModelOutput(last_hidden_state=hidden, hidden_states=hidden_states)
        return output if self._returns_dict(return_dict) else output.to_tuple()

    def _left_align(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None):
        """`left_align` with the config's padding token."""
        pad_id = self.config.pad_token_id if self.config.pad_token_id is not None else 0
        return left_align(input_ids, attention_mask, pad_id)

    def _last_position_features(self, ids: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor:
        """(B, ·) features of each row's last real token, from a window of at most T tokens."""
        B, L = ids.shape
        T = self.config.context_length
        if lengths is None:
            n = min(L, T)
            return self.features(self.mixing.last_position(self.embed_tokens(ids[:, L - n :])))
        # Rows with different lengths use different rows of the masked map: group them by
        # window length (in generation there are few distinct ones, one once all exceed T).
        window_lengths = lengths.clamp(max=T)
        out = None
        for n in window_lengths.unique().tolist():
            rows = (window_lengths == n).nonzero().squeeze(1)
            if n == 0:
                raise ValueError("attention_mask has a row without any real token")
            columns = (lengths[rows] - n)[:, None] + torch.arange(n, device=ids.device)  # (b, n)
            window = self.embed_tokens(ids[rows[:, None], columns])  # (b, n, d)
            h = self.features(self.mixing.last_position(window))  # (b, ·)
            if out is None:
                out = h.new_empty(B, h.shape[-1])
            out[rows] = h
        return out

    def _check_input_ids(self, input_ids: torch.Tensor) -> None:
        if input_ids.dim() != 2:
            raise ValueError(f"input_ids must have shape (batch, sequence), got {tuple(input_ids.shape)}")
        if input_ids.dtype not in (torch.int64, torch.int32):
            raise ValueError(f"input_ids must be an integer tensor, got {input_ids.dtype}")
        if input_ids.shape[1] == 0:
            raise ValueError("input_ids is empty: the model needs at least one token")
        if torch.compiler.is_compiling():
            # reading the ids' range on the host would break the compiled graph: the graph asserts it
            in_range = ((input_ids >= 0) & (input_ids < self.config.vocab_size)).all()
            torch._assert_async(in_range, f"input_ids contain token ids outside [0, {self.config.vocab_size})")
            return
        lo, hi = int(input_ids.min()), int(input_ids.max())
        if lo < 0 or hi >= self.config.vocab_size:
            bad = lo if lo < 0 else hi
            raise ValueError(
                f"input_ids contain token id {bad}, outside the vocabulary [0, {self.config.vocab_size}) "
                f"of this {self.config.model_type} model (check that tokenizer and model match)"
            )


class MLPLMModel(LinearLMModel):
    """As LinearLMModel, with ReLU after the masked map and the per-position MLP."""

    config_class = MLPLMConfig

    def build_features(self, config: MLPLMConfig) -> None:
        self.mlp = PositionwiseMLP(config.hidden_size, config.mlp_width, config.num_mlp_layers)

    def features(self, mixed: torch.Tensor) -> torch.Tensor:
        return self.mlp(F.relu(mixed))

    @property
    def output_size(self) -> int:
        return self.config.mlp_width if self.config.num_mlp_layers else self.config.hidden_size


class LinearLMForCausalLM(HFLinearPreTrainedModel, GenerationMixin):
    """The paper's linear next-token predictor: LinearLMModel + output layer d → V (with bias)."""

    config_class = LinearLMConfig
    base_model_class = LinearLMModel

    def __init__(self, config: LinearLMConfig):
        super().__init__(config)
        self.model = self.base_model_class(config)
        self.lm_head = nn.Linear(self.model.output_size, config.vocab_size, bias=True)
        # Set only while `generate` runs (`using_decoding_layouts`): the batch-1 decoding path is taken.
        self.decoding_layouts: DecodingLayouts | None = None
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.model.embed_tokens

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.model.embed_tokens = value

    def get_output_embeddings(self) -> nn.Linear:
        return self.lm_head

    def set_output_embeddings(self, value: nn.Linear) -> None:
        self.lm_head = value

    def save_pretrained(self, save_directory, *args, **kwargs):
        # A model registered for an auto class writes only its own auto_map entry
        # (AutoModelForCausalLM); add the base model's, so that AutoModel.from_pretrained(...,
        # trust_remote_code=True) loads the checkpoint too (as it does for native models).
        if self._auto_class is not None:
            module = type(self).__module__.rsplit(".", 1)[-1]
            auto_map = dict(getattr(self.config, "auto_map", None) or {})
            auto_map.setdefault("AutoModel", f"{module}.{self.base_model_class.__name__}")
            self.config.auto_map = auto_map
        return super().save_pretrained(save_directory, *args, **kwargs)

    def forward(
        self,
        input_ids: torch.LongTensor,
        attention_mask: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        logits_to_keep: int = 0,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> CausalLMOutput:
        """Causal-LM forward.

        labels (B, L): next-token targets aligned with input_ids (shifted inside), -100 = ignore.
        logits_to_keep: 0 = all positions; k > 0 = the last k. With k = 1 (what `generate`
        passes) only the window's last position is computed.
        With labels, the logits are returned in fp32 (the loss computes in fp32 anyway).
        """
        if self._takes_decoding_step(input_ids, labels, logits_to_keep, kwargs):
            output = CausalLMOutput(logits=self.decoding_step(input_ids, attention_mask))
            return output if self._returns_dict(return_dict) else output.to_tuple()
        if labels is not None and labels.shape != input_ids.shape:
            raise ValueError(f"labels shape {tuple(labels.shape)} != input_ids shape {tuple(input_ids.shape)}")
        last_only = logits_to_keep == 1 and labels is None
        outputs = self.model(
            input_ids,
            attention_mask=attention_mask,
            last_position_only=last_only,
            output_hidden_states=output_hidden_states,
            inputs_embeds=kwargs.pop("inputs_embeds", None),
        )
        hidden = outputs.last_hidden_state
        if not last_only and isinstance(logits_to_keep, int) and logits_to_keep > 0:
            hidden = hidden[:, -logits_to_keep:]
        logits = self.lm_head(hidden)  # (B, ·, V)

        loss = None
        if labels is not None:
            self._check_labels(labels)
            # The loss upcasts the logits to fp32 (a no-op for fp32 ones); upcast them here once and
            # return the fp32 copy, which the loss reuses, rather than a bf16 one that accelerate's
            # mixed precision (Trainer with bf16) would upcast a second time.
            logits = logits.float()
            loss = self.loss_function(logits, labels, vocab_size=self.config.vocab_size, **kwargs)
        output = CausalLMOutput(loss=loss, logits=logits, hidden_states=outputs.hidden_states)
        return output if self._returns_dict(return_dict) else output.to_tuple()

    def _check_labels(self, labels: torch.Tensor) -> None:
        message = f"labels contain ids outside [0, {self.config.vocab_size}) other than -100"
        in_range = (labels == -100) | ((labels >= 0) & (labels < self.config.vocab_size))
        if torch.compiler.is_compiling():  # as in _check_input_ids: no host read inside a compiled graph
            torch._assert_async(in_range.all(), message)
        elif not bool(in_range.all()):
            raise ValueError(message)

    # Batch-1 decoding: a separate path, taken only inside `generate` (see DecodingLayouts).

    def _takes_decoding_step(self, input_ids, labels, logits_to_keep, kwargs) -> bool:
        """Whether this forward is one sequence's decoding step that `decoding_step` computes:
        inside `generate`, next-token logits only, one row, no autograd or autocast. (Hidden
        states are None on the last-position path, so output_hidden_states does not matter.)"""
        return (
            self.decoding_layouts is not None
            and labels is None
            and logits_to_keep == 1
            and kwargs.get("inputs_embeds") is None
            and type(self.lm_head) is nn.Linear
            and input_ids.dim() == 2
            and DecodingLayouts.pay_off(input_ids)
        )

    def decoding_step(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Next-token logits (1, 1, V) of one sequence input_ids (1, L), inside `generate`.

        Computes what `forward(input_ids, attention_mask, logits_to_keep=1)` computes (the
        window's last position only), reading the output layer and, through
        `MaskedPositionMixing.last_position`, the masked map's last row in their decoding layout
        (`DecodingLayouts`).
        """
        self.model._check_input_ids(input_ids)
        ids, lengths, _ = self.model._left_align(input_ids, attention_mask)
        hidden = self.model._last_position_features(ids, lengths)  # (1, ·)
        head_t = self.decoding_layouts.transposed(self.lm_head, "weight", self.lm_head.weight)  # (·, V)
        return torch.addmm(self.lm_head.bias, hidden, head_t)[:, None]  # (1, 1, V)

    @contextlib.contextmanager
    def using_decoding_layouts(self):
        """Within the block, this model and its masked maps share one new `DecodingLayouts`;
        at its end they drop it, with the copies (the `generate` override's block)."""
        holders = [self] + [m for m in self.modules() if isinstance(m, MaskedPositionMixing)]
        before = [holder.decoding_layouts for holder in holders]
        layouts = DecodingLayouts()
        for holder in holders:
            holder.decoding_layouts = layouts
        try:
            yield layouts
        finally:
            for holder, previous in zip(holders, before):
                holder.decoding_layouts = previous

    def generate(self, *args, **kwargs):
        """`GenerationMixin.generate`; single-sequence steps take `decoding_step`, which reads the
        output layer and the masked map's last row in their decoding layout (`DecodingLayouts`)."""
        with self.using_decoding_layouts():
            return super().generate(*args, **kwargs)

    # Generation. The model's whole state is its last T tokens, which `generate` already keeps in
    # input_ids, so there is no key/value cache: each step embeds the window and computes the
    # output of its last position only (logits_to_keep=1).
    @classmethod
    def _supports_default_dynamic_cache(cls) -> bool:
        return False

    def prepare_inputs_for_generation(self, input_ids, attention_mask=None, logits_to_keep=None, **kwargs):
        return {
            "input_ids": input_ids,
            "attention_mask": attention_mask,
            "logits_to_keep": 1 if logits_to_keep is None else logits_to_keep,
        }


class MLPLMForCausalLM(LinearLMForCausalLM):
    """The paper's MLP next-token predictor: MLPLMModel + output layer → V (with bias)."""

    config_class = MLPLMConfig
    base_model_class = MLPLMModel


__all__ = [
    "MaskedPositionMixing",
    "PositionwiseMLP",
    "HFLinearPreTrainedModel",
    "LinearLMModel",
    "LinearLMForCausalLM",
    "MLPLMModel",
    "MLPLMForCausalLM",
    "num_masked_map_blocks",
]
