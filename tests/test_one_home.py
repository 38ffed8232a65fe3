"""Each fact has one home: the run directory's file names live in hf_linear/run_files.py, the
paper's figures and sampling prompt in hf_linear/paper.py. Code elsewhere uses the names, so a
renamed file or a corrected figure changes in one place. Docstrings may speak of them; string
literals in code may not spell them."""

from __future__ import annotations

import ast
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
RUN_FILES = (
    "eval_results.json",
    "training_config.yaml",
    "trainer_state.json",
    "segment_accuracy.json",
    "wiring.json",
    "results.jsonl",
    "study.yaml",
)
PAPER_FACTS = ("Once upon a", "17 A100", "5.5 A100", "96.9%", "30.7B", "774.7M", "162.1M")


def code_strings(path: Path) -> list[tuple[int, str]]:
    """(line, text) of the string literals of a Python file, docstrings left out."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    return [
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings
    ]


def python_files() -> list[Path]:
    listed = subprocess.run(["git", "ls-files", "*.py"], cwd=REPO, capture_output=True, text=True, check=True)
    return [REPO / name for name in listed.stdout.split() if not name.startswith("tests/")]


@pytest.mark.parametrize(
    ("facts", "home"), [(RUN_FILES, "hf_linear/run_files.py"), (PAPER_FACTS, "hf_linear/paper.py")]
)
def test_facts_are_spelled_only_in_their_home(facts, home):
    found = [
        f"{path.relative_to(REPO)}:{line}: {text!r}"
        for path in python_files()
        if path.relative_to(REPO).as_posix() != home
        for line, text in code_strings(path)
        if any(fact in text for fact in facts)
    ]
    assert not found, f"spelled outside {home}:\n" + "\n".join(found)


def test_the_check_finds_a_literal_but_not_a_docstring(tmp_path):
    (tmp_path / "m.py").write_text('"""Reads eval_results.json."""\nNAME = "eval_results.json"\n')
    assert code_strings(tmp_path / "m.py") == [(2, "eval_results.json")]
