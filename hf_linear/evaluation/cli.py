"""`hf-linear eval`: evaluate a checkpoint on held-out data.

    hf-linear eval CHECKPOINT --dataset data/mul4x4-lsb [--split test --num-samples 1000]
    hf-linear eval CHECKPOINT --arithmetic '{"task": "multiplication", "digits": [4, 4], "cot": "lsb"}' [--segments]
    hf-linear eval CHECKPOINT --program '{"program": "multiplication", "size": 10000}' [--segments]
    hf-linear eval CHECKPOINT --dataset data/tinystories-64 --split validation   # language-model data

Data with `prompt` / `answer` columns is scored by exact match; language-model data (windows of
`input_ids` only, e.g. TinyStories) by perplexity, with samples from "Once upon a" at
temperature 0.5 and their distinct-n / repetition statistics (hf_linear.evaluation.lm_report).
`--segments` adds, for arithmetic and program data, the teacher-forced accuracy of each CoT segment
(hf_linear.analysis.segments): which step of the chain the model gets wrong; and for an MLPLM
how many units after the masked map's ReLU are alive (fire on some example) at the positions of
each segment, the positions where none is, and what holds the dead units down: their
pre-activation from the inputs that are one token on every example and from those that vary
(hf_linear.analysis.dead_units); for an hf-linear model the masked map's output RMS at those
positions, and with `--since EARLIER_CHECKPOINT` each row's update ratio ‖W_i − W_i'‖ / ‖W_i'‖
since that checkpoint (hf_linear.analysis.row_scales).

Data of another task than the checkpoint learned is an error rather than a quiet 0%: tokens its
tokenizer numbers otherwise, ids beyond its vocabulary, examples longer than its window (a 3x3
task on a 2x2 checkpoint; `--allow-sliding` evaluates them with the window sliding).

Writes a JSON report (default: CHECKPOINT/eval_results.json, which `hf-linear push` puts into the
model card) and prints a table and a few sample generations.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pyarrow.compute as pc

from hf_linear.analysis.dead_units import masked_map_of
from hf_linear.analysis.segments import WINDOW_KEYS
from hf_linear.atomic import write_json_atomically
from hf_linear.checkpoints import load_model, load_tokenizer
from hf_linear.data.sources import GENERATED_SOURCES, data_source, longest_sequence, section_from_json
from hf_linear.evaluation.exact_match import has_prompts
from hf_linear.evaluation.held_out import evaluate_held_out, format_held_out, held_out_split
from hf_linear.output_dirs import check_output_file
from hf_linear.run_files import EVAL_RESULTS


def generated_source(option: str, text: str, trust_program_code: bool = False):
    """The data source of `--arithmetic` / `--program` JSON: its held-out splits only."""
    arguments = section_from_json(option, text)
    arguments.setdefault("train_size", 0)
    return data_source({option: arguments}, trust_program_code)


def evaluate_checkpoint(args) -> dict:
    if args.arithmetic:
        source = generated_source("arithmetic", args.arithmetic)
    elif args.program:
        source = generated_source("program", args.program, args.trust_program_code)
        print(source.compiled.summary())  # the length complexity beside the width
    else:
        # an existing directory is a saved DatasetDict; anything else names a Hub dataset repo
        looks_local = Path(args.dataset).exists() or args.dataset.startswith((".", "/"))
        source = data_source({"path" if looks_local else "hub": args.dataset})
    split = held_out_split(source.load(), args.split, "--split")
    split = split.select(range(min(args.num_samples, len(split))))

    model, tokenizer = load_model(args.checkpoint), load_tokenizer(args.checkpoint)
    check_data_fits(model, tokenizer, source, split, args.allow_sliding)
    since = since_weight(args.since, model) if args.since else None
    report = evaluate_held_out(
        model, tokenizer, split, args.batch_size, args.show, segments=args.segments, since_weight=since
    )
    print(format_held_out(report))
    report.update(dataset=source.describe(), split=args.split, checkpoint=str(args.checkpoint))
    if args.program:
        report["program"] = source.compiled.describe()
    return report


def check_data_fits(model, tokenizer, source, split, allow_sliding: bool = False) -> None:
    """Data of another task than the checkpoint learned is an error, not a quiet 0%: generated data
    (`--arithmetic`, `--program`) must give its tokens the checkpoint tokenizer's ids, every id
    must be in the model's vocabulary, and examples read whole (prompts and answers) must fit the
    model's window unless `allow_sliding` (a 3x3 task on a 2x2 checkpoint is longer)."""
    if source.key in GENERATED_SOURCES:
        vocabulary = tokenizer.get_vocab()
        for token, token_id in source.tokenizer().get_vocab().items():
            if vocabulary.get(token) != token_id:
                raise ValueError(
                    f"the checkpoint's tokenizer and the data's disagree on token {token!r} (id "
                    f"{vocabulary.get(token)} vs {token_id}): the checkpoint was trained on other data"
                )
    ids = pc.list_flatten(split.data.column("input_ids"))
    largest = pc.max(ids).as_py()
    if largest is not None and largest >= model.config.vocab_size:
        raise ValueError(
            f"the data holds token id {largest}, beyond the model's vocabulary of {model.config.vocab_size}"
        )
    window = next((getattr(model.config, key) for key in WINDOW_KEYS if getattr(model.config, key, None)), None)
    longest = longest_sequence(split)
    if has_prompts(split) and window is not None and longest > window and not allow_sliding:
        raise ValueError(
            f"the data's examples are {longest} tokens long, longer than the checkpoint's window of {window}: "
            f"a task of another size than it was trained on ({source.describe()})? --allow-sliding evaluates "
            "them with the window sliding over them"
        )


def since_weight(checkpoint: str, model):
    """The masked map's weight of an earlier checkpoint of `model` (`--since`)."""
    earlier = masked_map_of(load_model(checkpoint))
    if earlier is None or masked_map_of(model) is None:
        raise ValueError(f"--since {checkpoint}: both checkpoints need a masked map (a linear_lm or mlp_lm model)")
    if earlier.weight.shape != masked_map_of(model).weight.shape:
        raise ValueError(
            f"--since {checkpoint}: its masked map has shape {tuple(earlier.weight.shape)}, this one's "
            f"{tuple(masked_map_of(model).weight.shape)}: not an earlier checkpoint of this model"
        )
    return earlier.weight


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="hf-linear eval", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("checkpoint", help="a checkpoint directory or Hub repo id")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--dataset", help="a DatasetDict saved with save_to_disk (a directory), or a Hub dataset repo id"
    )
    source.add_argument("--arithmetic", help="JSON of build_arithmetic_dataset arguments (built on the fly)")
    source.add_argument(
        "--program",
        help='JSON of build_program_dataset arguments, e.g. \'{"program": "multiplication", "size": 10000}\'',
    )
    parser.add_argument(
        "--trust-program-code",
        action="store_true",
        help="let --program name a module:function program to import (your own code)",
    )
    parser.add_argument(
        "--allow-sliding",
        action="store_true",
        help="evaluate examples longer than the model's window (it slides, as dataset.allow_sliding in training)",
    )
    parser.add_argument("--split", default="test")
    parser.add_argument("--num-samples", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--show", type=int, default=5, help="sample generations to print")
    parser.add_argument(
        "--segments",
        action="store_true",
        help="also the teacher-forced accuracy of each CoT segment (where the chain breaks)",
    )
    parser.add_argument(
        "--since",
        metavar="EARLIER_CHECKPOINT",
        help="with --segments: each row's update ratio of the masked map since this checkpoint of the same run",
    )
    parser.add_argument("--output", help=f"JSON report path (default: CHECKPOINT/{EVAL_RESULTS})")
    args = parser.parse_args(argv)
    if args.num_samples < 1 or args.batch_size < 1:
        parser.error("--num-samples and --batch-size must be >= 1")
    if args.since and not args.segments:
        parser.error("--since goes with --segments")
    try:
        output = report_path(args)
        report = evaluate_checkpoint(args)
        write_report(output, report)
    except ValueError as error:  # user mistakes: one line, no traceback
        parser.exit(2, f"{parser.prog}: error: {error}\n")
    print(f"\nreport written to {output}")
    return 0


def report_path(args) -> Path:
    """Where the JSON report goes, checked before the evaluation spends its time."""
    if args.output:
        return check_output_file(args.output, "--output")
    if Path(args.checkpoint).is_dir():
        return Path(args.checkpoint) / EVAL_RESULTS
    return Path(EVAL_RESULTS)  # a Hub checkpoint: beside the command


def write_report(output: Path, report: dict) -> None:
    if output.is_file():
        # a run's own report holds what no evaluation can recompute (machine, steps, tokens seen):
        # keep it when the metrics are replaced
        try:
            previous = json.loads(output.read_text())
        except (OSError, ValueError):
            previous = {}
        if isinstance(previous, dict) and "training" in previous:
            report = {**report, "training": previous["training"]}
    try:
        write_json_atomically(output, report)
    except OSError as error:  # e.g. a read-only file system
        raise ValueError(f"--output {output}: cannot be written ({error.strerror or error})") from None


if __name__ == "__main__":
    sys.exit(main())
