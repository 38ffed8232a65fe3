"""Train an hf-linear model from one declarative YAML config with `transformers.Trainer`.

    hf-linear train [CONFIG] [--section.key value ...] [--resume] [--overwrite]
    accelerate launch --multi_gpu --num_processes 2 -m hf_linear.training.train CONFIG   # 2 processes

CONFIG (default: the packaged configs/cpu/mul4x4_lsb_mlp.yaml, the README's main job) has the
sections model / dataset / training / evaluation / budget / optimizer / lora, and optionally
`recipe: default` (see hf_linear.training.config). Overrides address a key by section, e.g.
`--training.learning_rate 1e-3 --model.hidden_size 64`. Unknown keys, values of the wrong type and
non-finite numbers are errors that name them; a step that leaves a weight NaN or infinite stops
the run with an error naming the step (hf_linear.training.divergence).

Order of a run: check the config (and the checkpoint to resume) → build data, tokenizer and
model → check the free space → only then prepare the output directory (an `--overwrite` never
deletes anything before this point) → train → save the final model → final evaluation → report.

`--resume` from a checkpoint at which the run had ended (killed during the final save or
evaluation) trains no further step: the final model is saved again from that checkpoint's
weights and evaluated.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml
from transformers import TrainerState, set_seed

from hf_linear.atomic import write_json_atomically
from hf_linear.evaluation.held_out import evaluate_held_out, format_held_out
from hf_linear.hub.push import push_checkpoint
from hf_linear.provenance import source_commit
from hf_linear.resources import packaged_config
from hf_linear.run_files import EVAL_RESULTS, TRAINER_STATE, TRAINING_CONFIG
from hf_linear.runtime import machine_description, tune_cpu_allocator
from hf_linear.training.arguments import training_arguments_for
from hf_linear.training.config import RunConfig, load_config
from hf_linear.training.divergence import StopOnNonFiniteWeights
from hf_linear.training.models import model_for
from hf_linear.training.run_data import data_for
from hf_linear.training.run_dir import (
    check_disk_for,
    check_output_dir,
    checkpoint_to_resume,
    prepare_output_dir,
    save_final,
    training_ended_at,
)
from hf_linear.training.trainer import trainer_for


def train(config: RunConfig, resume: bool = False, overwrite: bool = False, callbacks=()) -> dict:
    """Run one checked training config; returns the final report. `callbacks`: extra
    TrainerCallbacks (e.g. a study's clock and early stop)."""
    tune_cpu_allocator()
    args, facts = training_arguments_for(config)
    output_dir = Path(args.output_dir)
    resume = resume or bool(facts.resume_from)
    check_output_dir(output_dir, resume=resume and not isinstance(facts.resume_from, str), overwrite=overwrite)
    checkpoint = checkpoint_to_resume(output_dir, resume, facts.resume_from)

    set_seed(args.seed)
    data = data_for(config)
    model = model_for(config, data)
    if args.eval_strategy != "no" and not data.during_training:
        raise ValueError(
            f"training.eval_strategy={args.eval_strategy} needs a non-empty "
            f"{config.evaluation.during_training_split!r} split and evaluation.during_training_samples > 0"
        )

    # everything is built: only now touch the output directory
    if args.process_index == 0:
        check_disk_for(model, args, data.train, output_dir, resume, overwrite)
        prepare_output_dir(output_dir, resume, overwrite)

    # a diverged step is an error before it is logged or saved (a search's trials just fail instead)
    trainer = trainer_for(config, args, data, model=model, callbacks=(*callbacks, StopOnNonFiniteWeights()))
    metrics = train_or_restore(trainer, checkpoint)
    report = {"training": run_facts(trainer, metrics)}
    if trainer.is_world_process_zero():
        # the final model first: a failing evaluation must not lose the training
        final_model = save_final_model(trainer, config, output_dir)
        report.update(final_evaluation(final_model, trainer.processing_class, config, data, args.seed))
        write_json_atomically(output_dir / EVAL_RESULTS, report)
        print("\n" + format_held_out(report))
        print(f"\nmodel saved to {output_dir} (AutoModelForCausalLM.from_pretrained({str(output_dir)!r}))")
        if facts.push_to_hub:
            repo_id = args.hub_model_id or output_dir.name
            commit = push_checkpoint(output_dir, repo_id, private=bool(args.hub_private_repo), token=args.hub_token)
            print(f"pushed to {repo_id} ({commit.oid})")
    return report


def train_or_restore(trainer, checkpoint: Path | None) -> dict:
    """Train (from `checkpoint` when resuming); the training metrics."""
    if checkpoint is not None and training_ended_at(checkpoint, trainer.args.max_steps):
        # killed during the final save or evaluation: Trainer would train one step past the
        # end; instead the last checkpoint's weights and history are the final model's
        print(
            f"hf-linear train: training had ended at {checkpoint.name}: saving and evaluating its model, "
            "no further step",
            file=sys.stderr,
        )
        trainer._load_from_checkpoint(str(checkpoint))  # the model (or adapter) weights, as train() loads them
        trainer.state = TrainerState.load_from_json(str(checkpoint / TRAINER_STATE))
        return {}
    return trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None).metrics


def run_facts(trainer, metrics: dict) -> dict:
    """What a run's report says of its training (kept apart from the held-out metrics)."""
    return {
        "trainable_parameters": sum(p.numel() for p in trainer.model.parameters() if p.requires_grad),
        "runtime_s": metrics.get("train_runtime"),
        "loss": metrics.get("train_loss"),
        "global_step": trainer.state.global_step,
        "tokens_seen": trainer.state.num_input_tokens_seen,
        "world_size": trainer.args.world_size,
        "machine": machine_description(),
        **source_commit(),  # the code the run trained with
    }


def save_final_model(trainer, config: RunConfig, output_dir: Path):
    """Save the trained model, its tokenizer, the config and the Trainer state; returns the model
    saved (a LoRA run: the merged model, its adapter saved beside it in adapter/)."""
    final_model = trainer.model
    if config.lora is not None:
        final_model.save_pretrained(output_dir / "adapter")
        final_model = final_model.merge_and_unload()
    save_final(
        final_model,
        trainer.processing_class,
        output_dir,
        {TRAINING_CONFIG: yaml.safe_dump(config.as_dict(), sort_keys=False)},
    )
    trainer.save_state()  # trainer_state.json: the logged losses and metrics of the whole run
    return final_model


def final_evaluation(model, tokenizer, config: RunConfig, data, seed: int) -> dict:
    """The held-out report of the final model: metrics at the top level (the model card lists
    those), the split and the data they come from."""
    evaluation = config.evaluation
    held_out = data.held_out.select(range(min(evaluation.num_samples, len(data.held_out))))
    report = evaluate_held_out(
        model,
        tokenizer,
        held_out,
        evaluation.batch_size,
        evaluation.num_examples,
        sampling=evaluation.sampling(seed=seed),
    )
    report.update(split=evaluation.split, dataset=data.source.describe())
    return report


def split_command_line(argv: list[str]) -> tuple[str, list[str], list[str]]:
    """(config, flags, overrides): CONFIG is the first argument only when it is not an option, so
    `hf-linear train --training.output_dir X` keeps the default config and overrides its output."""
    config = str(packaged_config())
    if argv and not argv[0].startswith("-"):
        config, argv = argv[0], argv[1:]
    flags = [a for a in argv if a in ("--resume", "--overwrite", "--trust-program-code", "-h", "--help")]
    overrides = [a for a in argv if a not in flags]
    return config, flags, overrides


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="hf-linear train", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("config", nargs="?", help=f"YAML config (default: the packaged {packaged_config().name})")
    parser.add_argument(
        "--resume", action="store_true", help="continue from the last complete checkpoint in output_dir"
    )
    parser.add_argument("--overwrite", action="store_true", help="replace an earlier run in output_dir")
    parser.add_argument(
        "--trust-program-code",
        action="store_true",
        help="let dataset.program name a module:function program to import (your own code)",
    )
    argv = sys.argv[1:] if argv is None else list(argv)
    config_path, flags, overrides = split_command_line(argv)
    args = parser.parse_args(flags)
    try:
        config = load_config(config_path, overrides, trust_program_code=args.trust_program_code)
        train(config, resume=args.resume, overwrite=args.overwrite)
    except ValueError as error:  # user mistakes: one line, no traceback
        parser.exit(2, f"{parser.prog}: error: {error}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
