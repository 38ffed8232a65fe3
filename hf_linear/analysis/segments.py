"""Where a model's Chain of Thought breaks: teacher-forced accuracy of each CoT segment.

Exact match by generation says whether the final answer is right; it cannot say which step
failed, because one early mistake derails everything after it. Here the model reads the TRUE
tokens so far (teacher forcing: one forward pass over whole examples) and its greedy prediction
of every next token is compared with the truth, segment by segment — the prompt, each
"="-delimited CoT step (named by the format, e.g. the paper's operand expansions, digit-pair
terms, partial products) and the answer; a segment whose steps are joined by "+" (the rows of
long multiplication, the paper's terms) is scored step by step too:

    token accuracy    share of the segment's tokens predicted right (and per token, in order:
                      which digit of an answer, which token of a step, breaks)
    segment accuracy  share of examples whose whole segment is predicted right

The prompt's operands are random, so its accuracy is not a skill; its closing "=" is
counted in it. Every example of an arithmetic dataset follows one fixed template, so the
segments are cut once, on the first example.
"""

from __future__ import annotations

import torch

from hf_linear.data.arithmetic import spec_of
from hf_linear.data.arithmetic.formats import STEP_JOINER, segments_of

# where a causal LM's config keeps its window: hf-linear models, GPT-2, most others
WINDOW_KEYS = ("context_length", "n_positions", "max_position_embeddings")


def step_names_of(split) -> tuple[str, ...]:
    """The CoT step names of an arithmetic split's format (none for data built elsewhere)."""
    try:
        return spec_of(split).format.step_names
    except (KeyError, ValueError, TypeError):
        return ()


def teacher_forced_predictions(model, input_ids: torch.Tensor, batch_size: int = 250) -> torch.Tensor:
    """(N, L) greedy next-token predictions: column t is the prediction of token t from tokens
    < t (column 0, which has nothing to read, is -1)."""
    predictions = torch.full_like(input_ids, -1)
    with torch.no_grad():
        for start in range(0, len(input_ids), batch_size):
            batch = input_ids[start : start + batch_size]
            logits = model(input_ids=batch, attention_mask=torch.ones_like(batch)).logits  # (B, L, V)
            predictions[start : start + batch_size, 1:] = logits[:, :-1].argmax(-1)
    return predictions


def segment_accuracy(model, tokenizer, texts: list[str], step_names=(), batch_size: int = 250) -> list[dict]:
    """Per segment of the examples `texts` (dataset texts: tokens + [EOS]): name, token range,
    token accuracy and whole-segment accuracy under teacher forcing."""
    if not texts:
        raise ValueError("no examples to score")
    encoded = [tokenizer(text, add_special_tokens=False)["input_ids"] for text in texts]
    length = len(encoded[0])
    if any(len(ids) != length for ids in encoded):
        raise ValueError("the examples differ in length: segment accuracy needs one fixed template")
    window = next((getattr(model.config, key) for key in WINDOW_KEYS if getattr(model.config, key, None)), None)
    if window is not None and length > window:
        raise ValueError(f"examples of {length} tokens do not fit the model's window of {window}")
    input_ids = torch.tensor(encoded)
    correct = teacher_forced_predictions(model, input_ids, batch_size) == input_ids  # (N, L)
    tokens = tokenizer.convert_ids_to_tokens(encoded[0])
    report = []
    for part in segments_of(tokens, step_names):
        start = max(part["start"], 1)  # token 0 ([BOS]) is never predicted
        if start > part["end"]:
            continue
        entry = {**part, **accuracy(correct, start, part["end"])}
        entry["token_accuracy_per_position"] = correct[:, start : part["end"] + 1].float().mean(dim=0).tolist()
        # steps joined by "+" (the rows of long multiplication, the paper's terms): each one too,
        # its "+" included, so that a long segment shows which of its steps break
        pluses = [position for position in range(start, part["end"]) if tokens[position] == STEP_JOINER]
        if pluses and part["name"] != "prompt":
            starts, ends = [start] + [position + 1 for position in pluses], pluses + [part["end"]]
            entry["steps"] = [{"start": a, "end": b, **accuracy(correct, a, b)} for a, b in zip(starts, ends)]
        report.append(entry)
    return report


def accuracy(correct: torch.Tensor, start: int, end: int) -> dict:
    """Token count, token accuracy and whole-span accuracy of positions start..end (inclusive)."""
    hits = correct[:, start : end + 1]
    return {
        "tokens": end + 1 - start,
        "token_accuracy": hits.float().mean().item(),
        "segment_accuracy": hits.all(dim=1).float().mean().item(),
    }


def spans_with_predictors(report: list[dict], per_position: list):
    """Each segment and step of `report`, with the entries of `per_position` (one per position)
    at the positions that predict its tokens: position p predicts token p + 1, token 0 none."""
    for part in report:
        for span in [part, *part.get("steps", [])]:
            yield span, per_position[max(span["start"], 1) - 1 : span["end"]]


def add_alive_units(report: list[dict], alive: list[int]) -> None:
    """Put on each segment and step of `report` the alive units (dead_units.alive_units) of the
    positions that predict its tokens: mean, fewest, and each position's, in order."""
    for span, units in spans_with_predictors(report, alive):
        span["alive_units"] = {"mean": sum(units) / len(units), "min": min(units), "per_position": list(units)}


def add_dead_unit_inputs(report: list[dict], inputs: list[dict | None]) -> None:
    """Put on each segment and step of `report` what holds down the dead units of the positions that
    predict its tokens (dead_units.dead_unit_inputs): the fixed and the varying inputs' parts of
    their pre-activation, averaged over those positions that have dead units (None: none has)."""
    for span, entries in spans_with_predictors(report, inputs):
        held = [entry for entry in entries if entry is not None]
        span["dead_unit_inputs"] = (
            {key: sum(entry[key] for entry in held) / len(held) for key in ("bias", "fixed", "varying")}
            if held
            else None
        )


def format_segments(report: list[dict]) -> str:
    first = report[0] if report else {}
    with_units, with_rms, with_ratio = ("alive_units" in first, "preactivation_rms" in first, "update_ratio" in first)
    with_dead = "dead_unit_inputs" in first
    notes = [
        *(["alive units: of the positions that predict the segment, mean / fewest"] if with_units else []),
        *(
            ["dead held by: their dead units' pre-activation from the fixed / the varying inputs (mean)"]
            if with_dead
            else []
        ),
        *(["pre-act RMS: the masked map's output there (mean)"] if with_rms else []),
        *(["update ratio: ‖ΔW_i‖ / ‖W_i‖ of their rows since the --since checkpoint (mean)"] if with_ratio else []),
    ]
    lines = [
        "teacher-forced accuracy per segment (the model reads the true tokens so far"
        + "".join(f"; {note}" for note in notes)
        + "):",
        f"  {'segment':<22} {'positions':>10} {'tokens':>7} {'token acc':>10} {'whole segment':>14}"
        + (f" {'alive units':>12}" if with_units else "")
        + (f" {'dead held by':>16}" if with_dead else "")
        + (f" {'pre-act RMS':>12}" if with_rms else "")
        + (f" {'update ratio':>13}" if with_ratio else ""),
    ]
    for part in report:
        for name, span in [(part["name"], part)] + [
            (f"  step {k}", step) for k, step in enumerate(part.get("steps", []), 1)
        ]:
            line = (
                f"  {name:<22} {span['start']:>4}-{span['end']:<5} {span['tokens']:>7} "
                f"{100 * span['token_accuracy']:>9.1f}% {100 * span['segment_accuracy']:>13.1f}%"
            )
            if with_units:
                line += f" {span['alive_units']['mean']:>7.1f} / {span['alive_units']['min']:<2}"
            if with_dead:
                held = span["dead_unit_inputs"]
                line += f" {held['fixed']:>7.2f} / {held['varying']:<6.2f}" if held else f" {'—':>16}"
            if with_rms:
                line += f" {span['preactivation_rms']:>12.3g}"
            if with_ratio:
                line += f" {span['update_ratio']:>13.3g}"
            lines.append(line)
    return "\n".join(lines)
