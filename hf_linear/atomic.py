"""Writes that never leave half a file (or directory): write beside the target, then rename into place."""

from __future__ import annotations

import contextlib
import glob
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from hf_linear.output_dirs import OUTPUT_MARKER, OutputDirError, directory_mode, is_marked, write_marker


def write_text_atomically(path: str | os.PathLike, text: str, temp_prefix: str | None = None) -> None:
    """`temp_prefix`: name of the temporary file (default `.NAME.`), for callers that clean up
    temporary files left by a killed process by their prefix."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=temp_prefix or f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json_atomically(path: str | os.PathLike, data) -> None:
    write_text_atomically(path, json.dumps(data, indent=2))


def pid_alive(pid: int) -> bool:
    """Whether process `pid` still runs (staging directories of live writers are left alone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _clean_stale_stages(out: Path) -> None:
    """Remove what a killed `staged_directory` left beside `out` (named with its writer's pid);
    if it died between its two renames, the previous `out` is put back first."""
    for kind in ("old", "tmp"):
        for stale in out.parent.glob(f".{glob.escape(out.name)}.{kind}-*-*"):
            pid = stale.name[len(f".{out.name}.{kind}-") :].split("-", 1)[0]
            if not pid.isdigit() or pid_alive(int(pid)) or not stale.is_dir():
                continue
            if kind == "old" and not out.exists() and (stale / out.name).is_dir():
                (stale / out.name).rename(out)
            shutil.rmtree(stale, ignore_errors=True)


@contextlib.contextmanager
def staged_directory(out: str | os.PathLike, written_by: str) -> Iterator[Path]:
    """Fill the yielded staging directory (beside `out`); when the block succeeds it replaces
    `out`, the previous `out` removed only after the swap; when it fails it is removed. So `out`
    is never half-written, and never lost to a failed rewrite.

    The caller has checked `out` with `output_dirs.check_output_dir` before building; at the swap
    an existing `out` must still carry the project's marker. The new `out` carries the marker and
    the permission bits the old one had."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    _clean_stale_stages(out)
    mode = directory_mode(out)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-{os.getpid()}-", dir=out.parent))
    try:
        yield staging
        write_marker(staging, written_by)
        staging.chmod(mode)
        if out.exists():
            if any(out.iterdir()) and not is_marked(out):
                raise OutputDirError(f"{out} was not written by hf-linear (no {OUTPUT_MARKER}); not replacing it")
            previous = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-{os.getpid()}-", dir=out.parent))
            out.rename(previous / out.name)
            staging.rename(out)
            shutil.rmtree(previous)
        else:
            staging.rename(out)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
