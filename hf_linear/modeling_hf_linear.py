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

This file (with configuration_hf_linear.py) is copied into every checkpoint saved with its code,
so it imports nothing from hf_linear.

Shapes: B batch, L sequence length, T context_length, d hidden_size, V vocab_size.
"""

from __future__ import annotations

import contextlib
import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.function import once_differentiable
from transformers import GenerationMixin, PreTrainedModel
from transformers import initialization as init
from transformers.modeling_outputs import BaseModelOutput, CausalLMOutput

from .configuration_hf_linear import LinearLMConfig, MLPLMConfig


def num_masked_map_blocks(context_length: int) -> int:
    """Number of unmasked d×d blocks of the masked map: the pairs j ≤ i < T."""
    return context_length * (context_length + 1) // 2


class DecodingLayouts:
    """Transposed copies of the weights one sequence's decoding step reads, for one `generate` call.

    One sequence's decoding step is a matrix-vector product that only streams weights. On the
    2-core AMD EPYC measured (bench/README.md), MKL streams a weight whose stored rows run along
    the long dimension ~3x faster than the other layout: the output layer as stored, (V, d),
    reads at ~8 GB/s, its (d, V) copy at ~23; a row of the masked map, (n·d, d), at ~11, its
    (d, n·d) copy at ~31 (`python bench/bench_decode_layouts.py`).

    Owned by `LinearLMForCausalLM.using_decoding_layouts()`, which the `generate` override enters:
    it creates one of these, hands it to the model and to every masked map in it (their
    `decoding_layouts` attribute, None otherwise) and drops it when the call ends. The copies
    (extra memory: one output layer and one row of the map) are made on first use and never
    saved; inside one `generate` call the weights cannot change, so they cannot go stale.
    """

    def __init__(self):
        self._copies: dict[tuple[int, str], torch.Tensor] = {}

    def transposed(self, owner: nn.Module, name: str, weight: torch.Tensor) -> torch.Tensor:
        """weight.t() made contiguous, once per call and (owner, name)."""
        key = (id(owner), name)  # the owner outlives this object: its id cannot be reused meanwhile
        if key not in self._copies:
            self._copies[key] = weight.detach().t().contiguous()
        return self._copies[key]

    @staticmethod
    def pay_off(x: torch.Tensor) -> bool:
        """One row, no autograd, no autocast: where the copies pay off (batched rows are a
        matrix-matrix product, and training needs the stored parameters themselves)."""
        return x.shape[0] == 1 and not torch.is_grad_enabled() and not torch.is_autocast_enabled(x.device.type)


class _GatherChunkRows(torch.autograd.Function):
    """rows → rows[source], with the `masked` gathered rows zeroed.

    Every stored row is gathered exactly once, so the gradient is the inverse gather
    grad[inverse]: no zero-filled buffer and no scatter-add (which cost a third of a training
    step when this was a plain index_select).
    """

    @staticmethod
    def forward(ctx, rows, source, masked, inverse):
        ctx.save_for_backward(inverse)
        return rows.index_select(0, source).index_fill_(0, masked, 0)

    @staticmethod
    def backward(ctx, grad):
        (inverse,) = ctx.saved_tensors
        return grad.index_select(0, inverse), None, None, None


class _ChunkedMaskedMatmul(torch.autograd.Function):
    """The chunk schedule's matmuls: y[:, s:e] = x[:, :e] @ W_c + b[s:e] for every chunk [s, e).

    Written out by hand, because plain autograd moved ~as many bytes around the matmuls as they
    read: it copied every input prefix (reshape of a slice), concatenated the chunk outputs, and
    in the backward zero-filled a full-width input gradient per chunk, summed them, and
    concatenated the weight gradients. Here x (B, L·d) is the flattened window, so a chunk's
    input prefix x[:, :e·d] is a strided view the matmul reads in place; every chunk writes its
    columns of one output; the backward accumulates all chunks' input gradients into one buffer
    (an in-place addmm into its prefix) and writes the weight gradients into one buffer laid out like the
    gathered chunk weights.
    """

    @staticmethod
    def forward(ctx, x, chunk_weights, bias, chunks):
        # x: (B, L·d); chunk_weights: flat, chunk [s, e) as (e·d, (e-s)·d), back to back; bias: (n, d)
        n, d = bias.shape
        ctx.chunks, ctx.bias_dtype = chunks, bias.dtype
        ctx.save_for_backward(x, chunk_weights)
        y = x.new_empty(x.shape[0], n * d)
        for (s, e), w in zip(chunks, _chunk_matrices(chunk_weights, chunks, d)):
            torch.mm(x[:, : e * d], w, out=y[:, s * d : e * d])
        # The bias as stored (fp32 under autocast) is added to the bf16 products, then rounded
        # once: the value the next layer used to get from an fp32 sum (an addmm with the bias
        # cast to bf16 would round the bias too).
        return y.add_(bias.reshape(n * d))  # (B, n·d)

    @staticmethod
    @once_differentiable  # out= matmuls: no double backward
    def backward(ctx, grad_y):
        x, chunk_weights = ctx.saved_tensors
        chunks, n_d = ctx.chunks, grad_y.shape[1]
        d = n_d // chunks[-1][1]
        grad_y = grad_y.contiguous()
        weights = _chunk_matrices(chunk_weights, chunks, d)
        grad_x = grad_w = grad_b = None
        if ctx.needs_input_grad[0]:
            grad_x = torch.empty_like(x)
            # the last chunk reads the whole prefix [0, n): it writes, the others add
            (s, e), w = chunks[-1], weights[-1]
            torch.mm(grad_y[:, s * d : e * d], w.t(), out=grad_x[:, : e * d])
            grad_x[:, e * d :].zero_()  # inputs past the window (L > T): the sliding rows' business
            for (s, e), w in zip(chunks[:-1], weights[:-1]):
                prefix = grad_x[:, : e * d]  # += as addmm(out=) (FlopCounterMode does not see addmm_)
                torch.addmm(prefix, grad_y[:, s * d : e * d], w.t(), out=prefix)
        if ctx.needs_input_grad[1]:
            grad_w = torch.empty_like(chunk_weights)
            for (s, e), g in zip(chunks, _chunk_matrices(grad_w, chunks, d)):
                torch.mm(x[:, : e * d].t(), grad_y[:, s * d : e * d], out=g)
        if ctx.needs_input_grad[2]:
            grad_b = grad_y.sum(0, dtype=ctx.bias_dtype).view(-1, d)  # summed in the parameter's dtype
        return grad_x, grad_w, grad_b, None


def _chunk_matrices(flat: torch.Tensor, chunks: list[tuple[int, int]], d: int) -> list[torch.Tensor]:
    """Views (e·d, (e-s)·d) of chunk matrices stored back to back in `flat`, one per chunk [s, e)."""
    sizes = [e * d * (e - s) * d for s, e in chunks]
    return [m.view(e * d, (e - s) * d) for m, (s, e) in zip(flat.reshape(-1).split(sizes), chunks)]


class MaskedPositionMixing(nn.Module):
    """The paper's masked linear map T·d → T·d (with bias), storing only the unmasked blocks.

    Parameters:
        weight: (T(T+1)/2, d, d). Row-major lower triangle: blocks W[i, 0], …, W[i, i] of output
            position i are contiguous, starting at block i(i+1)/2, so `weight[i(i+1)/2 : …]`
            viewed as ((i+1)·d, d) maps the flattened window prefix x[:, :i+1] to y_i.
            Each block is (d_in, d_out): y_i = Σ_j x_j @ W[i, j].
        bias: (T, d), one bias vector per output position.

    Training schedule: the T output positions are cut into chunks of c positions; chunk [s, e)
    is one matmul of the input prefix (B, e·d) with the chunk's (e·d, (e-s)·d) weight; all chunk
    weights come from the stored blocks in one gather (zero for j > i), all chunks write one
    output (`_ChunkedMaskedMatmul`). Only the upper triangle of each chunk's diagonal block is
    multiplied needlessly: about c/T of the work, against 1/2 for a dense weight × mask.

    Generation reads one row of blocks per new token (`last_position`); inside `generate`, for
    one sequence, through a transposed copy (`decoding_last_position`, see DecodingLayouts).
    """

    def __init__(self, context_length: int, hidden_size: int, chunk_size: int | None = None):
        super().__init__()
        self.context_length = context_length
        self.hidden_size = hidden_size
        # ~8 chunks: big enough matmuls for the CPU, ≈ +1/8 FLOPs over the exact triangle
        self.chunk_size = chunk_size or max(1, math.ceil(context_length / 8))
        self.weight = nn.Parameter(torch.empty(num_masked_map_blocks(context_length), hidden_size, hidden_size))
        self.bias = nn.Parameter(torch.empty(context_length, hidden_size))
        # Gather indices of the chunk weights, derived on first use (never stored in checkpoints).
        self._chunk_layout_cache: dict = {}
        # Set only while `generate` runs (see DecodingLayouts): the batch-1 decoding path is taken.
        self.decoding_layouts: DecodingLayouts | None = None

    def extra_repr(self) -> str:
        return f"context_length={self.context_length}, hidden_size={self.hidden_size}, chunk_size={self.chunk_size}"

    def row_weight(self, i: int, weight: torch.Tensor | None = None) -> torch.Tensor:
        """The ((i+1)·d, d) weight that maps the flattened inputs x_0..x_i to y_i."""
        weight = self.weight if weight is None else weight
        start = i * (i + 1) // 2
        return weight[start : start + i + 1].reshape((i + 1) * self.hidden_size, self.hidden_size)

    def _chunk_layout(
        self, length: int, device: torch.device
    ) -> tuple[tuple[torch.Tensor, ...], list[tuple[int, int]]]:
        """Where each entry of the chunk matrices of outputs 0..length-1 (length ≤ T) comes from.

        Rows (k, d_in) of the stored blocks k < length(length+1)/2 are gathered into the chunk
        matrices; chunk [s, e) is laid out as its matrix [(j, d_in), (i, d_out)], j < e, s ≤ i < e.
        Returns ((source, masked, inverse), chunks): source row of each gathered row (any row
        where j > i), the gathered rows to zero (j > i), and the gathered position of each
        source row: every stored row lands exactly once, so the backward is a gather too.
        """
        key = (length, self.chunk_size, str(device))
        if key not in self._chunk_layout_cache:
            d = self.hidden_size
            chunks = [(s, min(s + self.chunk_size, length)) for s in range(0, length, self.chunk_size)]
            sources, keep = [], []
            for s, e in chunks:
                j = torch.arange(e, device=device)[:, None, None]  # input position
                d_in = torch.arange(d, device=device)[None, :, None]
                i = torch.arange(s, e, device=device)[None, None, :]  # output position
                rows = (i * (i + 1) // 2 + j) * d + d_in  # W[i, j] is block i(i+1)/2 + j
                sources.append(torch.where(j <= i, rows, 0).reshape(-1))
                keep.append((j <= i).expand(e, d, e - s).reshape(-1))
            source, keep = torch.cat(sources), torch.cat(keep)
            inverse = torch.empty(num_masked_map_blocks(length) * d, dtype=torch.long, device=device)
            inverse[source[keep]] = torch.nonzero(keep).squeeze(1)
            layout = (source, torch.nonzero(~keep).squeeze(1), inverse)
            self._chunk_layout_cache[key] = (layout, chunks)
        return self._chunk_layout_cache[key]

    def _compute_weight(self, x: torch.Tensor) -> torch.Tensor:
        # Under autocast, cast the stored blocks once, so that chunks are gathered in the matmul
        # dtype (bf16: half the bytes to move), not cast chunk by chunk.
        if torch.is_autocast_enabled(x.device.type):
            return self.weight.to(torch.get_autocast_dtype(x.device.type))
        return self.weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """All positions. x: (B, L, d) → (B, L, d); positions ≥ T see the last T inputs."""
        B, L, d = x.shape
        T = self.context_length
        n = min(L, T)
        weight = self._compute_weight(x)
        x = x.to(weight.dtype).reshape(B, L * d)  # flattened: positions 0..e-1 are the columns [0, e·d)
        # One gather for all chunks, from the blocks of rows 0..n-1 (slicing all of them would
        # still cost a zero-filled gradient and a copy in the backward).
        layout, chunks = self._chunk_layout(n, x.device)
        stored = weight if n == T else weight[: num_masked_map_blocks(n)]
        chunk_weights = _GatherChunkRows.apply(stored.reshape(-1, d), *layout)  # (k, d_in) rows → chunks
        y = _ChunkedMaskedMatmul.apply(x, chunk_weights, self.bias[:n], chunks).view(B, n, d)

        if L > T:  # sliding window: output position p ≥ T sees inputs p-T+1..p through row T-1
            windows = x.view(B, L, d).unfold(1, T, 1)[:, 1:]  # (B, L-T, d, T), window w covers inputs w+1..w+T
            windows = windows.transpose(2, 3).reshape(B * (L - T), T * d)
            sliding = (windows @ self.row_weight(T - 1, weight) + self.bias[T - 1]).to(y.dtype)
            y = torch.cat([y, sliding.view(B, L - T, d)], dim=1)
        return y

    def last_position(self, window: torch.Tensor) -> torch.Tensor:
        """Output at the window's last position only: window (B, n, d) with n ≤ T → (B, d).

        This is what generation needs per new token: one row of blocks (n·d² multiply-adds per
        sequence) instead of all T positions.
        """
        B, n, d = window.shape
        if n > self.context_length:
            raise ValueError(f"window of {n} positions exceeds context_length={self.context_length}")
        if self.decoding_layouts is not None and n == self.context_length and DecodingLayouts.pay_off(window):
            return self.decoding_last_position(window)
        weight = self._compute_weight(window)
        x = window.to(weight.dtype).reshape(B, n * d)
        return x @ self.row_weight(n - 1, weight) + self.bias[n - 1]

    def decoding_last_position(self, window: torch.Tensor) -> torch.Tensor:
        """`last_position` of one full window inside `generate`: window (1, T, d) → (1, d).

        The steady state of long generation is always the window's last row, read through its
        transposed copy (`DecodingLayouts`).
        """
        _, n, d = window.shape
        row_t = self.decoding_layouts.transposed(self, "last_row", self.row_weight(n - 1))  # (d, n·d)
        return F.linear(window.to(row_t.dtype).reshape(1, n * d), row_t, self.bias[n - 1])

    @torch.no_grad()
    def grown(self, context_length: int, chunk_size: int | None = None) -> MaskedPositionMixing:
        """A copy with a longer window that computes what this map computes with its sliding window.

        Rows i < T are copied. Row i ≥ T is row T-1 shifted right by s = i-T+1 positions:
        W'[i, j] = W[T-1, j-s] for j ≥ s and 0 for j < s (inputs older than T positions back),
        b'_i = b_{T-1}. So output i of the grown map sees exactly the last T inputs, as before.
        """
        T, d = self.context_length, self.hidden_size
        if context_length < T:
            raise ValueError(f"cannot shrink the masked map from context_length={T} to {context_length}")
        new = MaskedPositionMixing(context_length, d, chunk_size).to(device=self.weight.device, dtype=self.weight.dtype)
        new.weight.zero_()
        new.weight[: num_masked_map_blocks(T)] = self.weight  # rows 0..T-1: a prefix of the packed layout
        last_row = self.weight[num_masked_map_blocks(T - 1) :]  # (T, d, d): W[T-1, 0..T-1]
        for i in range(T, context_length):
            start, shift = num_masked_map_blocks(i), i - T + 1
            new.weight[start + shift : start + i + 1] = last_row
        new.bias[:T] = self.bias
        new.bias[T:] = self.bias[T - 1]
        new.weight.requires_grad_(self.weight.requires_grad)
        new.bias.requires_grad_(self.bias.requires_grad)
        return new


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
        # T·d → T·d layer it was in their code.
        if isinstance(module, MaskedPositionMixing):
            bound = 1.0 / math.sqrt(module.context_length * module.hidden_size)
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
            valid = labels[labels != -100]
            if valid.numel() and (int(valid.min()) < 0 or int(valid.max()) >= self.config.vocab_size):
                raise ValueError(f"labels contain ids outside [0, {self.config.vocab_size}) other than -100")
            # The loss upcasts the logits to fp32 (a no-op for fp32 ones); upcast them here once and
            # return the fp32 copy, which the loss reuses, rather than a bf16 one that accelerate's
            # mixed precision (Trainer with bf16) would upcast a second time.
            logits = logits.float()
            loss = self.loss_function(logits, labels, vocab_size=self.config.vocab_size, **kwargs)
        output = CausalLMOutput(loss=loss, logits=logits, hidden_states=outputs.hidden_states)
        return output if self._returns_dict(return_dict) else output.to_tuple()

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
