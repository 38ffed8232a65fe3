"""Train an hf-linear model from one declarative YAML config with `transformers.Trainer`.

    hf-linear train [CONFIG] [--section.key value ...] [--resume] [--overwrite]
    accelerate launch --multi_gpu --num_processes 2 -m hf_linear.training.train CONFIG   # 2 processes

CONFIG (default: the packaged configs/cpu/mul4x4_lsb_mlp.yaml, the README's main job) has the
sections model / dataset / training / evaluation / budget / lora (see hf_linear.training.config).
Overrides address a key by section, e.g. `--training.learning_rate 1e-3 --model.hidden_size 64`.
Unknown keys and values of the wrong type are errors that name them.

Order of a run: check the config (and the checkpoint to resume) → build data, tokenizer and
model → check the free space → only then prepare the output directory (an `--overwrite` never
deletes anything before this point) → train → save the final model → final evaluation → report.

`--resume` from a checkpoint at which the run had ended (killed during the final save or
evaluation) trains no further step: the final model is saved again from that checkpoint's
weights and evaluated.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import torch
import yaml
from datasets import Dataset
from peft import get_peft_model
from transformers import TrainerState, set_seed

import hf_linear.lora  # teaches PEFT the masked map (a LoRA layer for MaskedPositionMixing)
from hf_linear.atomic import write_json_atomically
from hf_linear.data.collator import CausalLMCollator
from hf_linear.data.sources import data_source, longest_sequence
from hf_linear.evaluation.exact_match import has_prompts
from hf_linear.evaluation.held_out import evaluate_held_out, format_held_out, held_out_split
from hf_linear.hub.push import push_checkpoint
from hf_linear.resources import packaged_config
from hf_linear.runtime import cpu_has_native_bf16, machine_description, tune_cpu_allocator
from hf_linear.training.config import RunConfig, load_config, training_arguments
from hf_linear.training.models import build_model, run_tokenizer
from hf_linear.training.run_dir import (
    check_free_space,
    check_output_dir,
    check_resumable,
    checkpoints,
    checkpoints_on_disk,
    checkpoints_written,
    directory_size,
    last_complete_checkpoint,
    prepare_output_dir,
    save_final,
    training_ended_at,
)
from hf_linear.training.trainer import BUDGET_SCHEDULES, HFLinearTrainer, TimeBudget


def train(config: RunConfig, resume: bool = False, overwrite: bool = False, callbacks=()) -> dict:
    """Run one checked training config; returns the final report. `callbacks`: extra
    TrainerCallbacks (e.g. a study's clock and early stop)."""
    tune_cpu_allocator()
    evaluation, budget = config.evaluation, config.budget
    training = dict(config.training)
    training.setdefault("report_to", ["tensorboard"])
    # on CPU-only machines: without it, `accelerate launch --multi_gpu` (torchrun) processes each
    # train alone instead of as one world of ranks over gloo
    training.setdefault("use_cpu", not torch.cuda.is_available())
    if training.get("bf16") and training["use_cpu"] and not cpu_has_native_bf16():
        # bf16 autocast pays off only with native bf16 instructions; emulated, a step is ~60x slower
        print("hf-linear train: this CPU has no native bf16 (avx512_bf16 / amx_bf16): training in fp32 "
              "instead of bf16 autocast", file=sys.stderr)  # fmt: skip
        training["bf16"] = False
    # the collator needs prompt_length, which is not a forward() argument
    training["remove_unused_columns"] = False
    # pushed once at the end by hf_linear.hub.push: Trainer's own push would upload pickles
    # (training_args.bin) and a card without them.
    push_to_hub = training.pop("push_to_hub", False)
    resume_from = training.pop("resume_from_checkpoint", None)
    if budget.max_minutes:
        training.setdefault("restore_callback_states_from_checkpoint", True)  # the budget spent so far
        scheduler = str(training.get("lr_scheduler_type", "linear"))
        if scheduler not in BUDGET_SCHEDULES:
            raise ValueError(f"training.lr_scheduler_type={scheduler!r} cannot follow a time budget; "
                             f"use one of {', '.join(BUDGET_SCHEDULES)}")  # fmt: skip
    training.setdefault("include_num_input_tokens_seen", True)  # RESULTS name tokens, not only minutes
    args = training_arguments(training)
    output_dir = Path(args.output_dir)
    resume = resume or bool(resume_from)
    check_output_dir(output_dir, resume=resume and not isinstance(resume_from, str), overwrite=overwrite)
    checkpoint = checkpoint_to_resume(output_dir, resume, resume_from)

    set_seed(args.seed)
    source = data_source(config.dataset)
    datasets = source.load()
    if "train" not in datasets:
        raise ValueError(f"the dataset has no 'train' split (splits: {', '.join(datasets)})")
    if isinstance(datasets["train"], Dataset) and len(datasets["train"]) == 0:  # (a stream is endless)
        raise ValueError("the 'train' split is empty (e.g. dataset train_size: 0): nothing to train on")
    held_out = held_out_split(datasets, evaluation.split, "evaluation.split")
    tokenizer = run_tokenizer(config.model, source)
    train_data = datasets["train"]
    sequence_length = max(longest_sequence(train_data), longest_sequence(held_out))
    model, tokenizer = build_model(config.model, tokenizer, sequence_length, language_model_windows=not has_prompts(held_out),
                                   allow_sliding=bool(config.dataset.get("allow_sliding")))  # fmt: skip
    if config.lora is not None:  # train a LoRA adapter of the masked map, the rest frozen
        model = get_peft_model(model, hf_linear.lora.lora_config(**config.lora))

    generation_eval = eval_loss_data = None
    if evaluation.during_training_split in datasets and evaluation.during_training_samples:
        during = datasets[evaluation.during_training_split]
        eval_loss_data = during.select(range(min(evaluation.during_training_samples, len(during))))
        # exact match needs prompts and answers; language-model data is evaluated by its loss
        generation_eval = eval_loss_data if has_prompts(eval_loss_data) else None
    if args.eval_strategy != "no" and not eval_loss_data:
        raise ValueError(f"training.eval_strategy={args.eval_strategy} needs a non-empty "
                         f"{evaluation.during_training_split!r} split and evaluation.during_training_samples > 0")  # fmt: skip

    # everything is built: only now touch the output directory
    if args.process_index == 0:
        check_disk_for(model, args, train_data, output_dir, resume, overwrite)
        prepare_output_dir(output_dir, resume, overwrite)

    trainer = HFLinearTrainer(
        model=model,
        args=args,
        train_dataset=train_data,
        eval_dataset=eval_loss_data,
        data_collator=CausalLMCollator(tokenizer.pad_token_id, evaluation.mask_prompt),
        processing_class=tokenizer,
        generation_eval_dataset=generation_eval,
        generation_batch_size=evaluation.batch_size,
        report_perplexity=bool(eval_loss_data) and generation_eval is None,
        callbacks=list(callbacks) or None,
    )
    if budget.max_minutes:
        trainer.add_callback(TimeBudget(budget.max_minutes))
    if checkpoint is not None and training_ended_at(checkpoint, args.max_steps):
        # killed during the final save or evaluation: Trainer would train one step past the
        # end; instead the last checkpoint's weights and history are the final model's
        print(f"hf-linear train: training had ended at {checkpoint.name}: saving and evaluating its model, "
              "no further step", file=sys.stderr)  # fmt: skip
        trainer._load_from_checkpoint(str(checkpoint))  # the model (or adapter) weights, as train() loads them
        trainer.state = TrainerState.load_from_json(str(checkpoint / "trainer_state.json"))
        metrics = {}
    else:
        metrics = trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None).metrics

    run_facts = {
        "trainable_parameters": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "runtime_s": metrics.get("train_runtime"),
        "loss": metrics.get("train_loss"),
        "global_step": trainer.state.global_step,
        "tokens_seen": trainer.state.num_input_tokens_seen,
        "world_size": args.world_size,
        "machine": machine_description(),
    }
    report = {"training": run_facts}
    if trainer.is_world_process_zero():
        # the final model first: a failing evaluation must not lose the training
        final_model = trainer.model
        if config.lora is not None:  # the adapter beside a merged, plain checkpoint
            final_model.save_pretrained(output_dir / "adapter")
            final_model = final_model.merge_and_unload()
        save_final(final_model, tokenizer, output_dir, {"training_config.yaml": yaml.safe_dump(config.as_dict(), sort_keys=False)})
        trainer.save_state()  # trainer_state.json: the logged losses and metrics of the whole run
        held_out = held_out.select(range(min(evaluation.num_samples, len(held_out))))
        # held-out metrics at the top level (the model card lists those), the run's facts apart
        report.update(evaluate_held_out(final_model, tokenizer, held_out, evaluation.batch_size, evaluation.num_examples,
                                        sampling=evaluation.sampling(seed=args.seed)))  # fmt: skip
        report.update(split=evaluation.split, dataset=source.describe())
        write_json_atomically(output_dir / "eval_results.json", report)
        print("\n" + format_held_out(report))
        print(f"\nmodel saved to {output_dir} (AutoModelForCausalLM.from_pretrained({str(output_dir)!r}))")
        if push_to_hub:

            repo_id = args.hub_model_id or output_dir.name
            commit = push_checkpoint(output_dir, repo_id, private=bool(args.hub_private_repo), token=args.hub_token)
            print(f"pushed to {repo_id} ({commit.oid})")
    return report


def checkpoint_to_resume(output_dir: Path, resume: bool, resume_from) -> Path | None:
    """The checkpoint a run continues (`training.resume_from_checkpoint: PATH`, or with --resume
    the last complete one in output_dir), checked before anything is built or written."""
    if isinstance(resume_from, str):
        checkpoint = Path(resume_from)
        check_resumable(checkpoint, "training.resume_from_checkpoint")
        return checkpoint
    if not resume:
        return None
    checkpoint = last_complete_checkpoint(output_dir)
    check_resumable(checkpoint)
    return checkpoint


def check_disk_for(model, args, train_data, output_dir: Path, resume: bool, overwrite: bool) -> None:
    """Free space for the final model and the checkpoints the run will keep (each: the weights
    and AdamW's two moments); a resumed run's checkpoints on disk count as written, an
    overwritten run's space as free."""
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    steps_per_epoch = None
    if isinstance(train_data, Dataset):  # a stream has no epochs (max_steps is required)
        batches = math.ceil(len(train_data) / (args.per_device_train_batch_size * args.world_size))
        steps_per_epoch = max(1, math.ceil(batches / args.gradient_accumulation_steps))
    kept = checkpoints_on_disk(args, checkpoints_written(args, steps_per_epoch))
    if resume:
        kept = max(0, kept - len(checkpoints(output_dir)))
    reclaimed = directory_size(output_dir) if overwrite and not resume else 0
    check_free_space(output_dir, weights * (1 + 3 * kept), reclaimed)


def split_command_line(argv: list[str]) -> tuple[str, list[str], list[str]]:
    """(config, flags, overrides): CONFIG is the first argument only when it is not an option, so
    `hf-linear train --training.output_dir X` keeps the default config and overrides its output."""
    config = str(packaged_config())
    if argv and not argv[0].startswith("-"):
        config, argv = argv[0], argv[1:]
    flags = [a for a in argv if a in ("--resume", "--overwrite", "-h", "--help")]
    overrides = [a for a in argv if a not in flags]
    return config, flags, overrides


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="hf-linear train", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config", nargs="?", help=f"YAML config (default: the packaged {packaged_config().name})")
    parser.add_argument("--resume", action="store_true", help="continue from the last complete checkpoint in output_dir")
    parser.add_argument("--overwrite", action="store_true", help="replace an earlier run in output_dir")
    argv = sys.argv[1:] if argv is None else list(argv)
    config_path, flags, overrides = split_command_line(argv)
    args = parser.parse_args(flags)
    try:
        config = load_config(config_path, overrides)
        train(config, resume=args.resume, overwrite=args.overwrite)
    except ValueError as error:  # user mistakes: one line, no traceback
        parser.exit(2, f"{parser.prog}: error: {error}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
