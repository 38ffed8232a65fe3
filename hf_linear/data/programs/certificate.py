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
