"""Held-out evaluation: the one entry point of `hf-linear train` (final report), `hf-linear eval`
and `hf-linear report` (segment table).

What is measured follows from the data, so that the three commands cannot disagree about it:

* data with `prompt` / `answer` columns (arithmetic, compiled programs): exact match of the answer
  generated greedily from the prompt (hf_linear.evaluation.exact_match), and on request the
  teacher-forced accuracy of each CoT segment (hf_linear.analysis.segments) and, for an
  MLPLM, the alive units of each segment's positions, the positions whose units have all
  died and what holds the dead units down (hf_linear.analysis.dead_units), and the masked
  map's scale along the sequence: each position's pre-activation RMS, and each row's update
  ratio since an earlier checkpoint (hf_linear.analysis.row_scales);
* language-model data (windows of `input_ids` only, e.g. TinyStories): perplexity and samples
  (hf_linear.evaluation.lm_report).

Callers add what only they know (the split's name, `DataSource.describe()`, the checkpoint).
"""

from __future__ import annotations

from hf_linear.analysis.dead_units import alive_units, dead_unit_inputs, masked_map_of, without_units
from hf_linear.analysis.row_scales import add_row_scales, preactivation_rms, row_update_ratios
from hf_linear.analysis.segments import (
    add_alive_units,
    add_dead_unit_inputs,
    format_segments,
    segment_accuracy,
    step_names_of,
)
from hf_linear.evaluation.exact_match import exact_match_report, format_report, has_prompts
from hf_linear.evaluation.lm_report import format_lm_report, lm_report


def held_out_split(datasets, name: str, where: str):
    """Split `name` of `datasets`; a ValueError naming `where` (the option or config key that chose
    it) when there is no such split or it is empty."""
    if name not in datasets:
        raise ValueError(f"{where} {name!r} not in the dataset (splits: {', '.join(datasets)})")
    if len(datasets[name]) == 0:
        raise ValueError(f"{where} {name!r} is empty: nothing to evaluate")
    return datasets[name]


def evaluate_held_out(
    model,
    tokenizer,
    split,
    batch_size: int = 256,
    num_examples: int = 5,
    segments: bool = False,
    exact_match: bool = True,
    sampling: dict | None = None,
    since_weight=None,
) -> dict:
    """The held-out report of `split` (already cut to the examples to score).

    segments: add the teacher-forced accuracy per CoT segment (`report["segments"]`; data with
    prompts only). exact_match=False skips the generation (a study report, which knows each run's
    exact match, asks for the segments only). sampling: lm_report's prompt, temperature,
    num_generations, max_new_tokens and seed for language-model data (default: the paper's).
    since_weight: the masked map's weight in an earlier checkpoint of the model: the segments then
    show each row's update ratio ‖W_i − W_i'‖ / ‖W_i'‖ since it.
    """
    if has_prompts(split):
        report = exact_match_report(model, tokenizer, split, batch_size, num_examples) if exact_match else {}
        if segments:
            report["segments"] = segment_accuracy(model, tokenizer, split["text"], step_names_of(split), batch_size)
            alive = alive_units(model, split["input_ids"], batch_size)
            report["dead_positions"] = without_units(alive)
            if alive is not None:
                add_alive_units(report["segments"], alive)
                report["dead_unit_inputs"] = dead_unit_inputs(model, split["input_ids"], batch_size)
                add_dead_unit_inputs(report["segments"], report["dead_unit_inputs"])
            rms = preactivation_rms(model, split["input_ids"], batch_size)
            if rms is not None:  # a model with a masked map
                ratios = None if since_weight is None else row_update_ratios(since_weight, masked_map_of(model).weight)
                report["row_scales"] = {"preactivation_rms": rms, "update_ratio": ratios}
                add_row_scales(report["segments"], rms, ratios)
        return report
    if segments:
        raise ValueError(
            "segment accuracy needs arithmetic data (prompt / answer columns); this is language-model data"
        )
    return lm_report(model, tokenizer, split, batch_size=batch_size, num_examples=num_examples, **(sampling or {}))


def format_held_out(report: dict) -> str:
    """The printed table of a held-out report (and its segment table, when it has one)."""
    parts = []
    if "exact_match" in report:
        parts.append(format_report(report))
    elif "perplexity" in report:
        parts.append(format_lm_report(report))
    if report.get("segments"):
        parts.append(format_segments(report["segments"]))
    if report.get("dead_positions"):  # (None: no ReLU to check; []: none dead)
        parts.append(
            f"positions whose units after the masked map's ReLU are 0 on every example (no gradient reaches "
            f"them, their tokens at chance): {report['dead_positions']}"
        )
    return "\n".join(parts)
