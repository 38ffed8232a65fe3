"""Every number has its evidence: RESULTS.md is rebuilt from reports/ alone, README's results link
each number to a published file that holds it, and the tree speaks of the project, not of a tracker."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from hf_linear.studies.claims import UNIVERSALITY, base_run_of, section_of
from hf_linear.studies.evidence import RUN, SEARCH, STUDY, read_reports
from hf_linear.studies.reproduce import BEGIN, END, reproduce

REPOSITORY = Path(__file__).resolve().parents[1]
REPORTS = REPOSITORY / "reports"
STUDIES = REPOSITORY / "configs" / "studies"
# a number: digits with optional separators and decimals, a unit suffix kept; not inside a word (bf16, 4x4)
NUMBER = re.compile(r"(?<![\w.])\d[\d,]*(?:\.\d+)?(?![\w])")
LINK = re.compile(r"\[([^\]]*)\]\(([^)]+)\)")


def tracked_files() -> list[Path]:
    listed = subprocess.run(["git", "-C", str(REPOSITORY), "ls-files", "-z"], capture_output=True, text=True)
    if listed.returncode != 0:
        pytest.skip("not a git checkout")
    return [REPOSITORY / name for name in listed.stdout.split("\0") if name]


def test_no_tracker_numbers_in_the_tree():
    mention = re.compile(r"issue[\s_-]*#?\d", re.IGNORECASE)
    hits = []
    for path in tracked_files():
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, FileNotFoundError, IsADirectoryError):
            continue  # binary files (plots), or deleted in the working tree
        hits += [
            f"{path.relative_to(REPOSITORY)}:{n}: {line.strip()}"
            for n, line in enumerate(text.splitlines(), 1)
            if mention.search(line)
        ]
    assert not hits, "tracker numbers in the tree:\n" + "\n".join(hits)


def readme_results_rows() -> list[list[str]]:
    """The cells of each row of README's results table (the first table of its Results section)."""
    readme = (REPOSITORY / "README.md").read_text()
    section = readme.split("\n## Results", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("|")]
    assert len(rows) > 2, "README's Results section has no table"
    return [[cell.strip() for cell in row.strip("|").split(" | ")] for row in rows[2:]]


def plain(number: str) -> str:
    return number.replace(",", "")


def test_readme_results_link_each_number_to_a_published_file_that_holds_it():
    rows = readme_results_rows()
    assert 1 <= len(rows) <= 5, f"README's results table has {len(rows)} rows: at most five headline results"
    for cells in rows:
        for cell in cells[1:]:  # the first cell says what was run; the others hold the figures
            outside = LINK.sub(" ", cell)
            assert not NUMBER.search(outside), f"a number without a link to its evidence: {cell!r}"
            for text, target in LINK.findall(cell):
                file = (REPOSITORY / target.split("#")[0]).resolve()
                assert file.is_relative_to(REPORTS) and file.is_file(), f"{target}: not a published file in reports/"
                held = {plain(n) for n in NUMBER.findall(file.read_text())}
                for number in NUMBER.findall(text):
                    assert plain(number) in held, f"{number} (README: {cell!r}) is not in {target}"


def regenerated(tmp_path: Path, reports: Path) -> str:
    """The generated part of RESULTS.md rebuilt from `reports` alone."""
    results = tmp_path / "RESULTS.md"
    results.write_text(f"{BEGIN}\n{END}\n")
    assert reproduce(STUDIES, reports, results, report_only=True) == []
    return results.read_text()


@pytest.mark.slow
def test_results_md_is_what_the_published_reports_say(tmp_path):
    # a fresh clone: reports/ and nothing else
    reports = tmp_path / "reports"
    shutil.copytree(REPORTS, reports)
    section = regenerated(tmp_path, reports)
    committed = (REPOSITORY / "RESULTS.md").read_text()
    assert section.strip() in committed, (
        "RESULTS.md's generated part is not what reports/ says: run `hf-linear reproduce --report-only`"
    )
    published = read_reports(reports)
    assert {e.kind for e in published} >= {STUDY, SEARCH}
    for evidence in published:  # every study, search and published run is listed, linked to its page
        assert f"[{evidence.name}]({evidence.page.relative_to(tmp_path)})" in section, evidence.name


def test_the_published_runs_of_the_program_seed_studies_base_configs_are_their_seed_0():
    published = read_reports(REPORTS)
    by_name = {e.name: e for e in published}
    for study, run in [
        ("program_mul10000_seeds", "program-mul10000-linear"),
        ("program_mul100000000_optimized_seeds", "program-mul100000000-linear-optimized"),
    ]:
        assert base_run_of(by_name[study], published) is by_name[run], study
        assert by_name[run].config["training"]["seed"] == 0
    assert base_run_of(by_name["main_job_seeds"], published) is None  # it trained seed 0 itself


def test_readme_states_reproduces_duration_from_the_published_training_times():
    published = [e for e in read_reports(REPORTS) if e.kind == STUDY and (STUDIES / f"{e.name}.yaml").is_file()]
    hours = sum(e.wall_seconds for e in published) / 3600
    readme = (REPOSITORY / "README.md").read_text()
    stated = re.findall(r"reproduce`? trains for ~(\d+(?:\.\d)?) h", readme)
    assert stated == [f"{hours:.1f}"], f"README should say `reproduce` trains for ~{hours:.1f} h (once)"


def test_a_published_program_run_belongs_to_universality_and_every_kind_is_read(tmp_path):
    for name, files in {
        "study": ("study.yaml", "results.jsonl"),
        "tune/search": ("search.yaml", "trials.jsonl"),
        "runs/program-run": ("results.jsonl", "eval_results.json"),
        "plots": ("curve.png",),  # not evidence: skipped
    }.items():
        (tmp_path / name).mkdir(parents=True)
        for file in files:
            (tmp_path / name / file).write_text("")
    (tmp_path / "runs/program-run/results.jsonl").write_text('{"name": "program-run", "program": "parity"}\n')
    (tmp_path / "tune/search/trials.jsonl").write_text('{"trial": 0, "state": "pruned"}\n')
    found = read_reports(tmp_path)
    assert [(e.kind, e.name, e.page.name) for e in found] == [
        (STUDY, "study", "REPORT.md"),
        (SEARCH, "search", "REPORT.md"),
        (RUN, "program-run", "README.md"),
    ]
    assert section_of(found[2]) == UNIVERSALITY
    with pytest.raises(ValueError, match="no such reports folder"):
        read_reports(tmp_path / "missing")
