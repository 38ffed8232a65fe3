"""Which source a result came from: the git commit of the checkout that holds this package.

A run records it in eval_results.json (`training.commit`, `training.source_modified`), so a
published figure names the code that produced it. Outside a git checkout (an installed wheel)
both are None.
"""

from __future__ import annotations

import subprocess

from hf_linear.resources import PACKAGE_DIR


def _git(*args: str) -> subprocess.CompletedProcess | None:
    try:
        return subprocess.run(
            ["git", "-C", str(PACKAGE_DIR), *args], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.SubprocessError):  # no git, or it hangs
        return None


def source_commit() -> dict:
    """{"commit": the checkout's HEAD, "source_modified": whether the package's tracked files
    differ from it}, or both None outside a git checkout."""
    head = _git("rev-parse", "HEAD")
    if head is None or head.returncode != 0:
        return {"commit": None, "source_modified": None}
    diff = _git("diff", "--quiet", "HEAD", "--", str(PACKAGE_DIR))
    return {"commit": head.stdout.strip(), "source_modified": None if diff is None else diff.returncode != 0}
