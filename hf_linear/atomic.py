"""Writes that never leave half a file (or directory): write beside the target, then rename into place."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path


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


@contextlib.contextmanager
def staged_directory(out: str | os.PathLike) -> Iterator[Path]:
    """Fill the yielded staging directory (beside `out`); when the block succeeds it replaces
    `out`, the previous `out` removed only after the swap; when it fails it is removed. So `out`
    is never half-written, and never lost to a failed rewrite."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        yield staging
        if out.exists():
            previous = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
            out.rename(previous / out.name)
            staging.rename(out)
            shutil.rmtree(previous)
        else:
            staging.rename(out)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
