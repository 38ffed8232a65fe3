"""Where a trained LinearLM's influence falls, against the wiring of a compiled program.

A compiled program's step at position p reads a few earlier positions (`Step.reads`); its
certificate (`hf_linear.data.programs.certificate.certificate_model`) is influenced by exactly
those. `influence_map` measures, for any LinearLM on real examples, how much each earlier
position moves the logits of each written token, and `wiring_agreement` how much of it falls on
the compiled reads: does training find the circuit's wiring?
"""

from __future__ import annotations

import torch

from hf_linear.data.programs.compiler import Program

__all__ = ["heldout_ids", "influence_map", "wiring_agreement"]


@torch.no_grad()
def influence_map(model, program: Program, input_ids: torch.Tensor) -> torch.Tensor:
    """(L, L) influence of input position j on the token written at position p, for a LinearLM
    (trained or certificate), on real examples `input_ids` (N, >= L): the part of p's logits
    that x_j contributes, E[x_j] @ W[p-1, j] @ W_outᵀ over the tokens p can write, centred over
    those tokens (what all of them share cancels in the softmax), its spread over the examples
    (a position whose token never varies adds only a bias), as a norm. Basis-free, and zero
    for the prompt (nothing is written there) and for constant tokens."""
    ids = program.token_ids()
    mixing, L = model.model.mixing, program.length
    d = mixing.hidden_size
    embedded = model.model.embed_tokens(input_ids[:, :L]).float()  # (N, L, d)
    out = model.lm_head.weight.float()
    influence = torch.zeros(L, L)
    for position, step in program.steps.items():
        outputs = [ids[t] for t in step.outputs]
        if len(outputs) < 2:
            continue  # a constant token: no input can change it
        row = mixing.row_weight(position - 1).float().view(position, d, d)
        part = torch.einsum("njd,jde->nje", embedded[:, :position], row) @ out[outputs].T  # (N, j, outputs)
        part = part - part.mean(2, keepdim=True)
        influence[position, :position] = part.var(0, unbiased=False).sum(-1).sqrt()
    return influence


def heldout_ids(program: Program, count: int = 256) -> torch.Tensor:
    """Token ids of `count` validation examples of the program."""
    from hf_linear.data.arithmetic.splits import VALIDATION
    from hf_linear.data.programs.dataset import heldout_inputs

    count = min(count, program.input_space_size // 16 or 1)
    return torch.from_numpy(program.run(heldout_inputs(program, VALIDATION, count))).long()


def wiring_agreement(model, program: Program, input_ids: torch.Tensor | None = None) -> dict:
    """How much of each non-constant step's input influence (on held-out examples, by default
    256 of the validation split) falls on the positions its compiled step reads (1.0 for the
    certificate): the mean over steps, and the share of steps whose strongest input is one of
    the compiled reads."""
    influence = influence_map(model, program, heldout_ids(program) if input_ids is None else input_ids)
    shares, top_hits = [], []
    for position, step in program.steps.items():
        total = float(influence[position].sum())
        if len(step.outputs) < 2 or total == 0.0 or not step.reads:
            continue
        reads = list(step.reads)
        shares.append(float(influence[position, reads].sum()) / total)
        top_hits.append(int(influence[position].argmax()) in reads)
    return {
        "mean_share_on_compiled_reads": sum(shares) / max(1, len(shares)),
        "steps_whose_top_input_is_a_compiled_read": sum(top_hits) / max(1, len(top_hits)),
        "steps": len(shares),
    }
