"""The output directory of a run: what may be replaced, what may be resumed, and atomic writes.

The directory follows the project's one output-directory rule (`hf_linear.output_dirs`): it is
marked when a run starts, `--overwrite` replaces only a marked (or empty) directory, never `.`,
a home folder or a symlink, and nothing is removed before the config, the data and the model of
the new run have been built. What a killed final save left (`.final-PID-*`) is removed when the
next run in the directory starts.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import tempfile
from pathlib import Path

from datasets import Dataset

from hf_linear.atomic import pid_alive
from hf_linear.checkpoints import check_safetensors_weights
from hf_linear.output_dirs import OutputDirError, directory_mode, write_marker
from hf_linear.output_dirs import check_output_dir as check_replaceable
from hf_linear.run_files import TRAINER_STATE

logger = logging.getLogger(__name__)

CHECKPOINT_PREFIX = "checkpoint-"
# Trainer writes trainer_state.json after the weights and the optimizer: its presence means the
# checkpoint was completed
CHECKPOINT_COMPLETE = TRAINER_STATE


def check_output_dir(output_dir: Path, resume: bool, overwrite: bool) -> None:
    """Refuse to train over an earlier run unless told to resume or overwrite it, and refuse to
    overwrite a directory that is not a run directory."""
    if resume:
        if last_complete_checkpoint(output_dir) is None:
            raise ValueError(f"--resume: no complete {CHECKPOINT_PREFIX}* directory in {output_dir} to resume from")
        if not os.access(output_dir, os.W_OK | os.X_OK):
            raise ValueError(f"training.output_dir {output_dir} is not writable")
        return
    try:
        check_replaceable(output_dir, overwrite, "training.output_dir")
    except OutputDirError as error:
        if "pass --overwrite" in str(error):
            raise ValueError(
                f"training.output_dir {output_dir} already holds files; pass --resume to continue that "
                "run, --overwrite to replace it, or choose another output_dir"
            ) from None
        raise


def prepare_output_dir(output_dir: Path, resume: bool, overwrite: bool) -> None:
    """Clear an earlier run when overwriting (after `check_output_dir`), create the directory with
    the permissions it had, mark it as a run directory, and remove what killed final saves left."""
    mode = directory_mode(output_dir)
    if overwrite and not resume and output_dir.is_dir():
        shutil.rmtree(output_dir)  # checked: a run directory of ours; its checkpoints must not mix in
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
        output_dir.chmod(mode)
        write_marker(output_dir, "hf-linear train")
    except OSError as error:
        raise ValueError(f"training.output_dir {output_dir}: cannot write there ({error.strerror})") from None
    remove_killed_final_saves(output_dir)


def check_resumable(checkpoint: Path, what: str = "--resume") -> None:
    """A checkpoint to resume from: complete (trainer_state.json) and with readable safetensors
    weights (Trainer would otherwise unpickle pytorch_model.bin, or fail on a truncated file
    without naming it)."""
    if not (checkpoint / CHECKPOINT_COMPLETE).is_file():
        raise ValueError(f"{what}: {checkpoint} is not a complete checkpoint (no {CHECKPOINT_COMPLETE})")
    check_safetensors_weights(checkpoint)


def training_ended_at(checkpoint: Path, max_steps: int) -> bool:
    """Whether the run had ended at `checkpoint`, so that resuming from it must train no step.
    Trainer saves its control state with each checkpoint, and sets should_training_stop at the
    last step (max_steps reached, the time budget spent, a study's stop_when met); a max_steps
    raised since then asks for more steps. (Trainer itself would run one more step.)"""
    state = json.loads((checkpoint / CHECKPOINT_COMPLETE).read_text())
    control = state.get("stateful_callbacks", {}).get("TrainerControl", {}).get("args", {})
    if 0 < max_steps <= state["global_step"]:
        return True
    return bool(control.get("should_training_stop")) and not max_steps > state.get("max_steps", 0)


def checkpoints(output_dir: Path) -> list[Path]:
    """checkpoint-N directories by step."""
    found = [
        p for p in output_dir.glob(f"{CHECKPOINT_PREFIX}*") if p.is_dir() and p.name[len(CHECKPOINT_PREFIX) :].isdigit()
    ]
    return sorted(found, key=lambda p: int(p.name[len(CHECKPOINT_PREFIX) :]))


def last_complete_checkpoint(output_dir: Path) -> Path | None:
    """The newest checkpoint that was written to the end; incomplete ones (a run killed while
    saving) are skipped with a warning."""
    if not output_dir.is_dir():
        return None
    for checkpoint in reversed(checkpoints(output_dir)):
        try:
            json.loads((checkpoint / CHECKPOINT_COMPLETE).read_text())
            return checkpoint
        except (OSError, ValueError):
            logger.warning("skipping %s: an incomplete checkpoint (no readable %s)", checkpoint, CHECKPOINT_COMPLETE)
    return None


def checkpoints_written(args, steps_per_epoch: int | None) -> int:
    """How many checkpoints Trainer writes in a run: one every `save_steps` (a fraction of the
    run's steps when < 1, as Trainer reads it) and one at the last step, or one per epoch;
    `save_strategy: best` at most one per evaluation."""
    strategy = getattr(args.save_strategy, "value", args.save_strategy)
    if strategy == "no":
        return 0
    total = args.max_steps if args.max_steps > 0 else math.ceil(args.num_train_epochs * (steps_per_epoch or 1))
    if strategy == "epoch":
        return math.ceil(total / (steps_per_epoch or total))
    interval = args.save_steps if strategy == "steps" else (args.eval_steps or args.logging_steps)
    if interval < 1:
        interval = math.ceil(total * interval)
    return math.ceil(total / max(1, interval))


def checkpoints_on_disk(args, written: int) -> int:
    """The most checkpoints on disk at once: all of them without `save_total_limit`; with it, the
    limit plus the newest (written before the oldest is rotated out)."""
    return min(written, args.save_total_limit + 1) if args.save_total_limit else written


def directory_size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink()) if path.is_dir() else 0


def check_free_space(output_dir: Path, needed_bytes: int, reclaimed_bytes: int = 0) -> None:
    """A clear error before training when the disk cannot hold the run's files; `reclaimed_bytes`:
    what the run deletes first (the earlier run an --overwrite replaces)."""
    existing = next(p for p in (output_dir, *output_dir.parents) if p.exists())
    free = shutil.disk_usage(existing).free + reclaimed_bytes
    if free < needed_bytes:
        raise ValueError(
            f"training.output_dir {output_dir}: {free / 2**20:.1f} MiB free, the run needs about "
            f"{needed_bytes / 2**20:.1f} MiB (final model and the checkpoints it keeps, with optimizer state); "
            "free space or set a lower training.save_total_limit"
        )


FINAL_STAGING_PREFIX = ".final-"


def remove_killed_final_saves(output_dir: Path) -> None:
    """Remove the staging directories of final saves whose process is gone (killed while saving);
    they are named `.final-PID-...` (older runs: without the pid, also removed)."""
    for staging in output_dir.glob(f"{FINAL_STAGING_PREFIX}*"):
        pid = staging.name[len(FINAL_STAGING_PREFIX) :].split("-", 1)[0]
        if staging.is_dir() and not (pid.isdigit() and pid_alive(int(pid))):
            shutil.rmtree(staging, ignore_errors=True)


def save_final(model, tokenizer, output_dir: Path, extra_files: dict[str, str]) -> None:
    """Save model, tokenizer and `extra_files` into a staging directory, then move them into
    `output_dir` one by one: an interrupted save never leaves a half-written checkpoint, and a
    failed one (e.g. a full disk) leaves the checkpoints of the run in place."""
    staging = Path(tempfile.mkdtemp(dir=output_dir, prefix=f"{FINAL_STAGING_PREFIX}{os.getpid()}-"))
    try:
        model.save_pretrained(str(staging))
        tokenizer.save_pretrained(str(staging))
        for name, text in extra_files.items():
            (staging / name).write_text(text)
        for item in staging.iterdir():
            os.replace(item, output_dir / item.name)
    except OSError as error:
        raise ValueError(
            f"saving the final model into {output_dir} failed ({error.strerror or error}); "
            f"the run's checkpoints are still there (--resume)"
        ) from error
    finally:
        shutil.rmtree(staging, ignore_errors=True)


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
