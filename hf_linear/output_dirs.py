"""Directories the project writes, and the one rule for replacing them.

Every command that writes an output directory — `hf-linear train` (the run directory), the
dataset builders (`--out`), `hf-linear reproduce` (published reports) — marks it with
`OUTPUT_MARKER` and asks `check_output_dir` before it spends time building anything:

* an existing directory that holds files is replaced only with `overwrite` and only if it
  carries the marker: files the project did not write are never deleted;
* never the file-system root, the home directory, the working directory or an ancestor of
  either, and never through a symlink (whose target may be anything);
* the replacement keeps the directory's permission bits (a new one gets the umask's).
"""

from __future__ import annotations

import os
from pathlib import Path

OUTPUT_MARKER = ".hf-linear-output"
# run directories written before the marker was shared by every command
LEGACY_MARKERS = (".hf-linear-run",)


class OutputDirError(ValueError):
    """An output directory that must not be written or replaced (the message names it)."""


def is_marked(directory: Path) -> bool:
    return any((directory / name).is_file() for name in (OUTPUT_MARKER, *LEGACY_MARKERS))


def write_marker(directory: Path, written_by: str) -> None:
    (directory / OUTPUT_MARKER).write_text(
        f"written by {written_by}; its --overwrite may replace this directory, and only because of this file\n"
    )


def protected_dirs() -> set[Path]:
    """The root, home and working directories and every ancestor of the last two."""
    protected = {Path("/").resolve()}
    for anchor in (Path.home(), Path.cwd()):
        anchor = anchor.resolve()
        protected.add(anchor)
        protected.update(anchor.parents)
    return protected


def check_output_dir(path: str | os.PathLike, overwrite: bool, what: str = "output directory") -> Path:
    """Apply the rule above to `path` (before anything is built); returns it as an absolute path.
    `what` names the setting in messages (`--out`, `training.output_dir`)."""
    path = Path(path).expanduser()
    if path.is_symlink():
        raise OutputDirError(f"{what} {path} is a symlink; give the directory itself")
    absolute = path.absolute()
    if absolute.resolve() in protected_dirs():
        raise OutputDirError(
            f"{what} {path} is the root, home or working directory (or one holding it); "
            "choose a new directory for the output"
        )
    if path.exists() and not path.is_dir():
        raise OutputDirError(f"{what} {path} exists and is not a directory")
    if path.is_dir() and any(path.iterdir()):
        if not overwrite:
            raise OutputDirError(f"{what} {path} exists and is not empty; pass --overwrite to replace it")
        if not is_marked(path):
            raise OutputDirError(
                f"{what} {path} was not written by hf-linear (no {OUTPUT_MARKER}); refusing to replace files "
                "this project did not write"
            )
    existing = path if path.is_dir() else next((p for p in absolute.parents if p.exists()), None)
    if existing is not None and not os.access(existing, os.W_OK | os.X_OK):
        raise OutputDirError(f"{what} {path}: {existing} is not writable")
    return absolute


def directory_mode(path: Path) -> int:
    """The permission bits `path` has, or those a new directory gets under the umask."""
    if path.is_dir():
        return path.stat().st_mode & 0o7777
    umask = os.umask(0)
    os.umask(umask)
    return 0o777 & ~umask


def check_output_file(path: str | os.PathLike, what: str) -> Path:
    """A file a command will write (e.g. `--output`, `--out` of a report), checked before the
    work that produces it: not a directory, and its nearest existing folder writable. A file
    system that refuses the write anyway (read-only, /sys) is caught where it is written."""
    path = Path(path).expanduser()
    if path.is_dir():
        raise OutputDirError(f"{what} {path} is a directory; give a file name")
    existing = next((p for p in path.absolute().parents if p.exists()), None)
    if existing is not None and (not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK)):
        raise OutputDirError(f"{what} {path}: {existing} is not a writable directory")
    return path
