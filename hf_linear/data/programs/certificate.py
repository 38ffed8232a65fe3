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


def certificate_model(program: Program, tokenizer=None) -> LinearLMForCausalLM:
    """The LinearLM (window T = program.length, d = V) that computes `program`'s steps exactly."""
    ids = program.token_ids()
    V, T = len(ids), program.length
    config = LinearLMConfig(vocab_size=V, context_length=T, hidden_size=V, bos_token_id=ids["[BOS]"],
                            eos_token_id=ids[EOS], pad_token_id=ids["[PAD]"])  # fmt: skip
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
def influence_map(model, program: Program) -> torch.Tensor:
    """(L, L) influence of each input position j on the token written at position p, for a
    LinearLM (trained or certificate): the part of p's logits that token x_j contributes,
    E[x] @ W[p-1, j] @ W_outᵀ, over the tokens position j can hold and the tokens p can write,
    centred over both (what no choice of x_j changes is a bias; what all outputs share cancels
    in the softmax), as a Frobenius norm. Zero for prompt positions (nothing is written there).
    Unlike block norms it does not depend on the basis of the hidden space."""
    ids = program.token_ids()
    embed, out = model.model.embed_tokens.weight.float(), model.lm_head.weight.float()
    mixing = model.model.mixing
    L, V = program.length, len(ids)
    can_hold = torch.zeros(L, V)  # (position, token): the tokens each position can hold
    for j, values in enumerate(program.values):
        can_hold[j, [ids[t] for t in values]] = 1.0
    varies = (can_hold.sum(1) > 1).float()[:, None, None]  # a fixed token's contribution is a bias
    influence = torch.zeros(L, L)
    for position, step in program.steps.items():
        outputs = [ids[t] for t in step.outputs]
        if len(outputs) < 2:
            continue  # a constant token: no input can change it
        row = mixing.row_weight(position - 1).float().view(position, mixing.hidden_size, mixing.hidden_size)
        part = torch.einsum("vd,jde,oe->jvo", embed, row, out[outputs])  # (j, x_j, output)
        mask = can_hold[:position, :, None]
        part = part - part.mean(2, keepdim=True)  # shared by all outputs: cancels in the softmax
        part = (part - (part * mask).sum(1, keepdim=True) / mask.sum(1, keepdim=True)) * mask * varies[:position]
        influence[position, :position] = part.flatten(1).norm(dim=1)
    return influence


def wiring_agreement(model, program: Program) -> dict:
    """How much of each non-constant step's input influence falls on the positions its compiled
    step reads (1.0 for the certificate): the mean over steps, and the share of steps whose
    largest influence is one of the compiled reads."""
    influence = influence_map(model, program)
    shares, top_hits = [], []
    for position, step in program.steps.items():
        total = float(influence[position].sum())
        if len(step.outputs) < 2 or total == 0.0 or not step.reads:
            continue
        reads = list(step.reads)
        shares.append(float(influence[position, reads].sum()) / total)
        top_hits.append(int(influence[position].argmax()) in reads)
    return {"mean_share_on_compiled_reads": sum(shares) / max(1, len(shares)),
            "steps_whose_top_input_is_a_compiled_read": sum(top_hits) / max(1, len(top_hits)),
            "steps": len(shares)}  # fmt: skip
