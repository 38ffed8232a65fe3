"""The certificate of a program: a LinearLM whose weights are its compiled steps, no training.

With d = V, one-hot embeddings and the identity output layer, the masked map's block W[p-1, j]
holds the step at position p's table for read position j (input token -> output token scores)
and its bias the step's bias, so the logits at p-1 are the step's scores (times `SCALE`) and
every token not among the step's outputs is pushed far down. Greedy `generate` from the prompt
then writes the program's trace: `certify` checks it token for token against the data on held-out
inputs (a sample; `proof.prove` checks every step on every input), catching format bugs too, and
it gives trained models a ceiling and a reference wiring (`hf_linear.analysis.wiring`).

Its width cost is T(T+1)/2 · V² parameters (`Program.certificate_parameters`): building one past
`LARGE_CERTIFICATE` parameters warns with the numbers.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch

from hf_linear.configuration_hf_linear import LinearLMConfig
from hf_linear.data.programs.compiler import EOS, Program, dense_table
from hf_linear.modeling_hf_linear import LinearLMForCausalLM

SCALE = 8.0  # logit units per score unit: a margin of 1/2 becomes a logit gap of 4
EXCLUDED = -1e4  # score of the tokens a step cannot write
LARGE_CERTIFICATE = 100_000_000  # parameters (400 MB in float32): warn before building more


def certificate_model(program: Program) -> LinearLMForCausalLM:
    """The LinearLM (d = V) that computes `program`'s steps exactly; its window T = program.length
    + 1 holds a whole example with its [EOS], as a trained model's does."""
    ids = program.token_ids()
    V, T = len(ids), program.length + 1
    if program.certificate_parameters > LARGE_CERTIFICATE:
        warnings.warn(
            f"the certificate of {program.name} has {program.certificate_parameters:,} parameters "
            f"(~{program.certificate_parameters * 4 / 2**30:.1f} GB in float32): T(T+1)/2 · V² with T = {T} "
            f"tokens and a vocabulary of V = {V}",
            stacklevel=2,
        )
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
        mixing.bias[program.length - 1, ids[EOS]] = 0.0  # after the answer's last token: [EOS]
    return model.eval()


@torch.no_grad()
def certify(program: Program, dataset, batch_size: int = 256, num_examples: int = 3, model=None) -> dict:
    """The certificate's greedy `generate` from each prompt of `dataset` (a split of the
    program's data), compared token for token with the example's whole continuation: every CoT
    token, the answer and [EOS]. `model`: another causal LM over the program's token ids (e.g. a
    trained LinearLM) to check the same way; default: `certificate_model(program)`.

    Returns exact_match (share of examples generated token for token), answer_exact_match
    (share whose answer is right, whatever the CoT), num_samples, checked (what was compared)
    and `examples`: the first `num_examples` wrong ones, with the first position that differs."""
    model, P = certificate_model(program) if model is None else model.eval(), program.prompt_length
    expected = np.asarray(dataset["input_ids"], dtype=np.int64).reshape(len(dataset), -1)  # (N, length + 1)
    vocabulary = program.vocabulary
    exact, answers, wrong = 0, 0, []
    for start in range(0, len(expected), batch_size):
        batch = torch.from_numpy(expected[start : start + batch_size])
        generated = model.generate(
            input_ids=batch[:, :P],
            attention_mask=torch.ones_like(batch[:, :P]),
            max_new_tokens=batch.shape[1] - P,
            do_sample=False,
            eos_token_id=model.config.eos_token_id,
            pad_token_id=model.config.pad_token_id,
        )
        written = torch.full_like(batch, model.config.pad_token_id)  # generation may stop early
        written[:, : generated.shape[1]] = generated[:, : batch.shape[1]]
        same = written == batch  # (B, length + 1)
        exact += int(same.all(1).sum())
        answers += int(same[:, program.answer_start :].all(1).sum())
        for row in (~same.all(1)).nonzero().flatten().tolist()[: num_examples - len(wrong)]:
            position = int((~same[row]).nonzero()[0])
            wrong.append(
                {
                    "prompt": " ".join(vocabulary[i] for i in batch[row, :P]),
                    "position": position,
                    "expected": vocabulary[int(batch[row, position])],
                    "generated": vocabulary[int(written[row, position])],
                }
            )
    count = len(expected)
    return {
        "exact_match": exact / max(1, count),
        "answer_exact_match": answers / max(1, count),
        "num_samples": count,
        "checked": "every token of the trace (CoT, answer, [EOS]) through generate",
        "examples": wrong,
    }
