"""Writes that never leave half a file: write beside the target, then rename into place."""

from __future__ import annotations

import json
import os
import tempfile
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
