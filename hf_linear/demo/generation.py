"""Streamed generation with each token's probability, and the check of an arithmetic CoT.

`stream_tokens` runs `generate` in a thread with a `transformers.TextIteratorStreamer` and
yields after every new token; a logits processor keeps the model's distribution of the step, so
each token arrives with the probability the model gave it (before temperature and top-k, which
`generate` applies after processors passed in).

`check_cot` compares a generated CoT with the reference of the format registry
(`hf_linear.data.arithmetic`): the answer against the true result, and the first token that
departs from the reference, with the CoT step it belongs to (`departure_of`, which a compiled
program's check shares: its steps are "+"-joined as the formats' are).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
from transformers import LogitsProcessor, LogitsProcessorList, TextIteratorStreamer

from hf_linear.data.arithmetic import ArithmeticSpec
from hf_linear.data.arithmetic.formats import EOS, STEP_JOINER, answer_of, segments_of

STREAM_TIMEOUT_S = 300  # a generation step slower than this is treated as a failure, not waited on forever


@dataclass(frozen=True)
class GeneratedToken:
    id: int
    text: str
    probability: float  # the model's probability of this token at its step


class StepDistribution(LogitsProcessor):
    """Keeps the model's distribution of the current step (batch of one); changes nothing."""

    def __init__(self):
        self.probabilities: torch.Tensor | None = None

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        self.probabilities = torch.softmax(scores[0].float(), dim=-1)
        return scores


class TokenStreamer(TextIteratorStreamer):
    """A TextIteratorStreamer that also records each new token with its probability, before its
    text is queued: whoever reads the queue finds the token already in `tokens`."""

    def __init__(self, tokenizer, distribution: StepDistribution):
        super().__init__(tokenizer, skip_prompt=True, timeout=STREAM_TIMEOUT_S)
        self.distribution = distribution
        self.tokens: list[GeneratedToken] = []

    def put(self, value):
        if not self.next_tokens_are_prompt:  # generate passes the prompt first
            token_id = int(value.reshape(-1)[0])
            probability = float(self.distribution.probabilities[token_id])
            self.tokens.append(GeneratedToken(token_id, self.tokenizer.decode([token_id]), probability))
        super().put(value)


def stream_tokens(model, tokenizer, prompt_ids: Sequence[int], **generate_kwargs) -> Iterator[list[GeneratedToken]]:
    """Yield the generated tokens so far after each new one (batch of one); errors of the
    generation thread are raised here."""
    distribution = StepDistribution()
    streamer = TokenStreamer(tokenizer, distribution)
    ids = torch.tensor([list(prompt_ids)], dtype=torch.long)
    failure: list[BaseException] = []

    def generate():
        try:
            with torch.no_grad():
                model.generate(
                    ids,
                    attention_mask=torch.ones_like(ids),
                    streamer=streamer,
                    logits_processor=LogitsProcessorList([distribution]),
                    **generate_kwargs,
                )
        except Exception as error:  # handed to the reader, which would otherwise wait for the end
            failure.append(error)
            streamer.end()

    thread = threading.Thread(target=generate, daemon=True)
    thread.start()
    for _text in streamer:  # one queue entry per token (its text may be empty until a word ends)
        yield list(streamer.tokens)
    thread.join()
    if failure:
        raise failure[0]
    yield list(streamer.tokens)


# ----------------------------------------------------------------------------- the CoT check


@dataclass(frozen=True)
class CotCheck:
    """A generated continuation of a task's prompt (arithmetic or program), against its reference."""

    reference: list[str]  # the reference continuation: CoT, answer, [EOS]
    answer: str  # the generated answer (tokens after the last "="), "" if none
    expected_answer: str
    true_result: int | None  # computed apart from the reference where the task allows (arithmetic: plain Python)
    statement: str  # e.g. "4321 × 8765 = 37873565"
    correct: bool
    departure: int | None  # index (in the generated tokens) of the first token off the reference;
    # len(generated) when generation stopped early, where the reference goes on
    departure_step: str | None  # e.g. "long multiplication, step 2"

    @property
    def expected_token(self) -> str | None:
        if self.departure is None:
            return None
        return (
            self.reference[self.departure] if self.departure < len(self.reference) else "(nothing: the reference ends)"
        )


def true_result(spec: ArithmeticSpec, operands: tuple) -> tuple[int, str]:
    """(result, statement) by plain Python arithmetic."""
    if spec.task == "multiplication":
        a, b = operands
        return a * b, f"{a} × {b} = {a * b}"
    if spec.task == "addition":
        a, b = operands
        return a + b, f"{a} + {b} = {a + b}"
    (bits,) = operands
    parity = bits.count("1") % 2
    return parity, f"parity of {bits} = {parity}"


def step_of(tokens: Sequence[str], index: int, step_names: Sequence[str]) -> str:
    """The CoT part that holds token `index` of a full example, and the step inside it ("+"-joined)."""
    for segment in segments_of(tokens, step_names):
        if segment["start"] <= index <= segment["end"]:
            inside = tokens[segment["start"] : index]
            steps = sum(1 for token in tokens[segment["start"] : segment["end"] + 1] if token == STEP_JOINER)
            step = f", step {inside.count(STEP_JOINER) + 1}" if steps else ""
            return segment["name"] + step
    return "after the end of the reference"


def first_departure(generated: Sequence[str], reference: Sequence[str]) -> int | None:
    """Index of the first generated token off the reference; len(generated) when generation
    stopped where the reference goes on; None when they agree token for token."""
    return next(
        (
            i
            for i in range(max(len(generated), len(reference)))
            if i >= len(generated) or i >= len(reference) or generated[i] != reference[i]
        ),
        None,
    )


def departure_of(
    full_reference: Sequence[str], prompt_length: int, generated: Sequence[str], step_names: Sequence[str]
) -> tuple[int | None, str | None]:
    """(first departing generated token, the CoT step it falls in) against a full reference
    example ([BOS] to [EOS]) whose prompt is `prompt_length` tokens."""
    departure = first_departure(generated, full_reference[prompt_length:])
    if departure is None:
        return None, None
    return departure, step_of(full_reference, prompt_length + departure, step_names)


def check_cot(spec: ArithmeticSpec, operands: Sequence, generated: Sequence[str]) -> CotCheck:
    """Check generated tokens (after the prompt) against the reference of `spec` for `operands`
    (already checked by `spec.check_operands`)."""
    operands = tuple(operands)
    full_reference = spec.format.tokens(operands, spec.every) + [EOS]
    reference = full_reference[spec.prompt_length :]
    generated = list(generated)
    departure, departure_step = departure_of(full_reference, spec.prompt_length, generated, spec.format.step_names)
    result, statement = true_result(spec, operands)
    answer, expected = answer_of(generated), answer_of(reference)
    digits = answer.replace(" ", "")
    correct = answer == expected and digits.isdigit() and int(digits) == result
    return CotCheck(reference, answer, expected, result, statement, correct, departure, departure_step)
