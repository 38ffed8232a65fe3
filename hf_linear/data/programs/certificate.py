"""The certificate of a program: a LinearLM whose weights are its compiled steps, no training.

With d = V, one-hot embeddings and the identity output layer, the masked map's block W[p-1, j]
holds the step at position p's table for read position j (input token -> output token scores)
and its bias the step's bias, so the logits at p-1 are the step's scores (times `SCALE`) and
every token not among the step's outputs is pushed far down. Greedy `generate` from the prompt
then writes the program's trace: 100% exact match is what the certificate must show (see
`certify`), proving every step linear-realizable, catching format bugs, and giving trained
models a ceiling and a reference wiring (`hf-linear inspect` draws its block norms).
"""

from __future__ import annotations

import torch

from hf_linear.configuration_hf_linear import LinearLMConfig
from hf_linear.data.programs.compiler import EOS, Program, dense_table
from hf_linear.modeling_hf_linear import LinearLMForCausalLM

SCALE = 8.0  # logit units per score unit: a margin of 1/2 becomes a logit gap of 4
EXCLUDED = -1e4  # score of the tokens a step cannot write


def certificate_model(program: Program) -> LinearLMForCausalLM:
    """The LinearLM (window T = program.length, d = V) that computes `program`'s steps exactly."""
    ids = program.token_ids()
    V, T = len(ids), program.length
    config = LinearLMConfig(
        vocab_size=V,
        context_length=T,
        hidden_size=V,
        bos_token_id=ids["[BOS]"],
        eos_token_id=ids[EOS],
        pad_token_id=ids["[PAD]"],
    )
    model = LinearLMForCausalLM(config)
    mixing = model.model.mixing
    with torch.no_grad():
        model.model.embed_tokens.weight.copy_(torch.eye(V))
        model.lm_head.weight.copy_(torch.eye(V))
        model.lm_head.bias.zero_()
        mixing.weight.zero_()
        mixing.bias.fill_(EXCLUDED)
        for position, step in program.steps.items():
            row = position - 1  # the hidden state at p-1 predicts the token at p
            for read, table in zip(step.reads, step.tables):
                mixing.weight[row * (row + 1) // 2 + read] += SCALE * torch.from_numpy(dense_table(table, ids))
            for token, score in step.bias.items():
                mixing.bias[row, ids[token]] = SCALE * score
        mixing.bias[T - 1, ids[EOS]] = 0.0  # after the answer's last token: [EOS]
    return model.eval()


def certify(program: Program, dataset, tokenizer, batch_size: int = 256) -> dict:
    """Exact match of the certificate through `generate` on a held-out split of the program's
    data (see `hf_linear.evaluation.exact_match`)."""
    from hf_linear.evaluation.exact_match import exact_match_report

    return exact_match_report(certificate_model(program), tokenizer, dataset, batch_size=batch_size)


# ---------------------------------------------------------------------------------------------
# Does training find the circuit's wiring?


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
