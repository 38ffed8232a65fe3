"""The output directory of a run: what may be replaced, what may be resumed, and atomic writes.

The directory follows the project's one output-directory rule (`hf_linear.output_dirs`): it is
marked when a run starts, `--overwrite` replaces only a marked (or empty) directory, never `.`,
a home folder or a symlink, and nothing is removed before the config, the data and the model of
the new run have been built.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from pathlib import Path

from hf_linear.output_dirs import OutputDirError, check_output_dir as check_replaceable, directory_mode, write_marker

logger = logging.getLogger(__name__)

CHECKPOINT_PREFIX = "checkpoint-"
# Trainer writes trainer_state.json after the weights and the optimizer: its presence means the
# checkpoint was completed
CHECKPOINT_COMPLETE = "trainer_state.json"


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
            raise ValueError(f"training.output_dir {output_dir} already holds files; pass --resume to continue that "
                             "run, --overwrite to replace it, or choose another output_dir") from None  # fmt: skip
        raise


def prepare_output_dir(output_dir: Path, resume: bool, overwrite: bool) -> None:
    """Clear an earlier run when overwriting (after `check_output_dir`), create the directory with
    the permissions it had, and mark it as a run directory."""
    mode = directory_mode(output_dir)
    if overwrite and not resume and output_dir.is_dir():
        shutil.rmtree(output_dir)  # checked: a run directory of ours; its checkpoints must not mix in
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
        output_dir.chmod(mode)
        write_marker(output_dir, "hf-linear train")
    except OSError as error:
        raise ValueError(f"training.output_dir {output_dir}: cannot write there ({error.strerror})") from None


def checkpoints(output_dir: Path) -> list[Path]:
    """checkpoint-N directories by step."""
    found = [p for p in output_dir.glob(f"{CHECKPOINT_PREFIX}*") if p.is_dir() and p.name[len(CHECKPOINT_PREFIX):].isdigit()]
    return sorted(found, key=lambda p: int(p.name[len(CHECKPOINT_PREFIX):]))


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


def check_free_space(output_dir: Path, needed_bytes: int) -> None:
    """A clear error before training when the disk cannot hold the run's files."""
    free = shutil.disk_usage(output_dir).free
    if free < needed_bytes:
        raise ValueError(
            f"training.output_dir {output_dir}: {free / 2**20:.0f} MiB free, the run needs about "
            f"{needed_bytes / 2**20:.0f} MiB (final model and checkpoints); free space or lower save_total_limit"
        )


def save_final(model, tokenizer, output_dir: Path, extra_files: dict[str, str]) -> None:
    """Save model, tokenizer and `extra_files` into a staging directory, then move them into
    `output_dir` one by one: an interrupted save never leaves a half-written checkpoint, and a
    failed one (e.g. a full disk) leaves the checkpoints of the run in place."""
    staging = Path(tempfile.mkdtemp(dir=output_dir, prefix=".final-"))
    try:
        model.save_pretrained(str(staging))
        tokenizer.save_pretrained(str(staging))
        for name, text in extra_files.items():
            (staging / name).write_text(text)
        for item in staging.iterdir():
            os.replace(item, output_dir / item.name)
    except OSError as error:
        raise ValueError(f"saving the final model into {output_dir} failed ({error.strerror or error}); "
                         f"the run's checkpoints are still there (--resume)") from error  # fmt: skip
    finally:
        shutil.rmtree(staging, ignore_errors=True)
