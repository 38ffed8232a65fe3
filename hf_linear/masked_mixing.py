"""The masked position-mixing map, the one layer the paper's linear and MLP models share.

A linear map over the flattened window, T·d → T·d, in which output position i sees only input
positions j ≤ i (block lower-triangular in T×T blocks of d×d):

    y_i = b_i + Σ_{j ≤ i} x_j @ W[i, j]          x_j, y_i ∈ R^d,  W[i, j] ∈ R^{d×d}

Only the T(T+1)/2 unmasked blocks are parameters (packed row by row: W[i, j] at index
i(i+1)/2 + j). Training runs a block-row schedule (`_ChunkedMaskedMatmul`: a few chunks of
rows, one gather, an inverse-gather backward), so it spends no FLOPs on the masked half except
each chunk's diagonal triangle; generation reads one row (`row_weight`), for one sequence in a
faster layout (`DecodingLayouts`).

This file travels inside every checkpoint saved with its code (beside modeling_hf_linear.py,
which imports it), so it imports nothing from hf_linear.

Shapes: B batch, L sequence length, T context_length, d hidden_size.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.function import once_differentiable


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
    def forward(ctx, x, chunk_weights, bias, chunks, center_weight_gradient=False):
        # x: (B, L·d); chunk_weights: flat, chunk [s, e) as (e·d, (e-s)·d), back to back; bias: (n, d)
        n, d = bias.shape
        ctx.chunks, ctx.bias_dtype, ctx.center = chunks, bias.dtype, center_weight_gradient
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
            # centred: Σ_n (x_n − x̄)ᵀ g_n = Σ_n x_nᵀ (g_n − ḡ), so the mean comes off the output gradient
            grad_y_w = grad_y - grad_y.mean(0, keepdim=True) if ctx.center else grad_y
            for (s, e), g in zip(chunks, _chunk_matrices(grad_w, chunks, d)):
                torch.mm(x[:, : e * d].t(), grad_y_w[:, s * d : e * d], out=g)
        if ctx.needs_input_grad[2]:
            grad_b = grad_y.sum(0, dtype=ctx.bias_dtype).view(-1, d)  # summed in the parameter's dtype
        return grad_x, grad_w, grad_b, None, None


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

    `center_weight_gradient` (set by training, never saved): the weight's gradient is taken from
    the batch-centred inputs, Σ_n (x_n − x̄)ᵀ g_n (hf_linear.training.centered_gradient); the
    bias's and the input's gradients are unchanged.
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
        self.center_weight_gradient = False

    def extra_repr(self) -> str:
        return f"context_length={self.context_length}, hidden_size={self.hidden_size}, chunk_size={self.chunk_size}"

    def row_init_bound(self, i: int, mixing_init: str = "dense") -> float:
        """Row i's blocks are drawn from U(±bound): 1/√(T·d), the fan-in of the dense T·d → T·d
        layer ("dense", the authors'), or 1/√((i+1)·d), row i's own fan-in ("fan_in")."""
        positions = i + 1 if mixing_init == "fan_in" else self.context_length
        return 1.0 / math.sqrt(positions * self.hidden_size)

    @torch.no_grad()
    def init_rows_by_fan_in(self) -> None:
        """Draw row i's blocks from U(±1/√((i+1)·d)): PyTorch's default for a layer with row i's
        own fan-in, (i+1)·d inputs. Each output position then starts at the same scale (the
        variance of y_i is (i+1)·d · E[x²] · bound²/3 = E[x²]/3 for every i), where the dense
        bound 1/√(T·d) makes it grow as √(i+1) along the sequence."""
        for i in range(self.context_length):
            start, bound = num_masked_map_blocks(i), self.row_init_bound(i, "fan_in")
            self.weight[start : start + i + 1].uniform_(-bound, bound)  # row i: blocks W[i, 0..i]

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
            # the kept rows first, in order, then the masked ones: counted, not found by nonzero,
            # so the shapes do not depend on the data (a compiled forward traces this unbroken)
            kept = num_masked_map_blocks(length) * d
            order = torch.argsort((~keep).to(torch.uint8), stable=True)
            kept_rows, masked_rows = order[:kept], order[kept:]
            inverse = torch.empty(kept, dtype=torch.long, device=device)
            inverse[source.index_select(0, kept_rows)] = kept_rows
            layout = (source, masked_rows, inverse)
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
        y = _ChunkedMaskedMatmul.apply(x, chunk_weights, self.bias[:n], chunks, self.center_weight_gradient)
        y = y.view(B, n, d)

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
