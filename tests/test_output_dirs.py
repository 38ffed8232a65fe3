"""Drills for the one output-directory rule (`hf_linear.output_dirs`) that train, the dataset
builders and reproduce share: nothing the project did not write is ever deleted."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from hf_linear.atomic import staged_directory
from hf_linear.output_dirs import OUTPUT_MARKER, OutputDirError, check_output_dir

REPO_ROOT = Path(__file__).resolve().parent.parent
BUILDERS = {
    "build_arithmetic.py": [
        "--task",
        "multiplication",
        "--digits",
        "2",
        "--cot",
        "lsb",
        "--train-size",
        "10",
        "--validation-size",
        "5",
        "--test-size",
        "5",
    ],
    "build_tinystories.py": [
        "--source",
        str(REPO_ROOT.parent / "shared/data/tinystories"),
        "--tokenizer",
        str(REPO_ROOT.parent / "shared/data/gpt2-tokenizer"),
        "--max-stories",
        "5",
        "--context-length",
        "16",
        "--num-proc",
        "1",
    ],
}


def users_files(directory: Path) -> dict[str, str]:
    (directory / "code").mkdir(parents=True)
    (directory / "thesis.tex").write_text("years of work")
    (directory / "code" / "main.py").write_text("print('hi')")
    directory.chmod(0o755)
    return {str(p.relative_to(directory)): p.read_text() for p in directory.rglob("*") if p.is_file()}


def build(script: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(REPO_ROOT / "dataset_scripts" / script), *BUILDERS[script], *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.slow
@pytest.mark.parametrize("script", sorted(BUILDERS))
def test_builders_never_delete_a_users_files(script, tmp_path):
    """The reported data loss: `cd DIR && build_arithmetic.py ... --out . --overwrite` emptied DIR."""
    home = tmp_path / "home"
    files = users_files(home)
    for out in (".", str(home), "code/.."):
        result = build(script, "--out", out, "--overwrite", cwd=home)
        assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-2000:]
        assert "working directory" in result.stderr, result.stderr
    (tmp_path / "elsewhere").mkdir()
    result = build(script, "--out", str(home), "--overwrite", cwd=tmp_path / "elsewhere")  # not the cwd: unmarked
    assert result.returncode == 2 and "not written by hf-linear" in result.stderr, result.stderr[-2000:]
    assert {str(p.relative_to(home)): p.read_text() for p in home.rglob("*") if p.is_file()} == files
    assert home.stat().st_mode & 0o777 == 0o755
    assert sorted(p.name for p in tmp_path.iterdir()) == ["elsewhere", "home"]  # no staging left behind


def test_a_symlink_root_and_home_are_refused(tmp_path, monkeypatch):
    target = tmp_path / "target"
    target.mkdir()
    (tmp_path / "link").symlink_to(target)
    with pytest.raises(OutputDirError, match="symlink"):
        check_output_dir(tmp_path / "link", overwrite=True)
    monkeypatch.setenv("HOME", str(tmp_path / "target"))
    for path in ("/", tmp_path / "target", tmp_path):
        with pytest.raises(OutputDirError, match="root, home or working directory"):
            check_output_dir(path, overwrite=True)
    check_output_dir(tmp_path / "target" / "new", overwrite=False)  # a new directory below them is fine


def test_a_marked_output_is_replaced_with_its_permissions(tmp_path):
    out = tmp_path / "out"
    with staged_directory(out, written_by="a test") as staging:
        (staging / "a.txt").write_text("first")
    assert (out / OUTPUT_MARKER).is_file()
    out.chmod(0o751)
    check_output_dir(out, overwrite=True)
    with staged_directory(out, written_by="a test") as staging:
        (staging / "b.txt").write_text("second")
    assert sorted(p.name for p in out.iterdir()) == [OUTPUT_MARKER, "b.txt"]
    assert out.stat().st_mode & 0o777 == 0o751
    (out / OUTPUT_MARKER).unlink()  # the marker removed after the check: the swap itself refuses
    with (
        pytest.raises(OutputDirError, match="not written by hf-linear"),
        staged_directory(out, written_by="a test") as staging,
    ):
        (staging / "c.txt").write_text("third")
    assert sorted(p.name for p in out.iterdir()) == ["b.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_leftovers_of_a_killed_swap_are_cleaned_and_the_old_output_restored(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    pid = int(dead.stdout)  # a process that has exited
    out = tmp_path / "out"
    # killed between its two renames: the previous output sits in .out.old-PID-*/out, no out
    (tmp_path / f".out.old-{pid}-x" / "out").mkdir(parents=True)
    (tmp_path / f".out.old-{pid}-x" / "out" / "data.txt").write_text("previous")
    (tmp_path / f".out.tmp-{pid}-y").mkdir()  # and its half-filled staging directory
    live = tmp_path / f".out.tmp-{os.getpid()}-z"  # a live writer's staging is left alone
    live.mkdir()
    with staged_directory(tmp_path / "other", written_by="a test"):
        pass  # another output in the same folder does not touch out's leftovers
    assert (tmp_path / f".out.old-{pid}-x").exists()
    with pytest.raises(RuntimeError), staged_directory(out, written_by="a test"):
        raise RuntimeError("build failed")
    assert (out / "data.txt").read_text() == "previous"
    assert sorted(p.name for p in tmp_path.iterdir()) == [live.name, "other", "out"]
