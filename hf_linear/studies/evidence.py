"""What reports/ holds, read back: every published study, recipe search and run.

    reports/NAME/             a study (`hf-linear reproduce`): study.yaml, results.jsonl, REPORT.md
    reports/tune/NAME/        a recipe search (`hf-linear tune`): search.yaml, trials.jsonl, REPORT.md
    reports/runs/NAME/        a run (`hf-linear publish`): results.jsonl (one line), README.md,
                              training_config.yaml

RESULTS.md's generated part is built from these files alone (`hf-linear reproduce --report-only`),
so a fresh clone, with no runs/, rebuilds the same page.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from hf_linear.run_files import EVAL_RESULTS, REPORT, STUDY_RESULTS, STUDY_SPEC, TRAINING_CONFIG
from hf_linear.studies.results import machine_kind, read_results

STUDY, SEARCH, RUN = "study", "search", "run"
KINDS = (STUDY, SEARCH, RUN)


@dataclass
class Evidence:
    """One published study, search or run: its records (results.jsonl rows by run name; a
    search's trials by number) and the page a reader opens (REPORT.md, a run's README.md)."""

    kind: str
    name: str
    directory: Path
    records: dict[str, dict]
    spec: dict = field(default_factory=dict)  # study.yaml / search.yaml

    @property
    def page(self) -> Path:
        return self.directory / ("README.md" if self.kind == RUN else REPORT)

    @property
    def machines(self) -> list[str]:
        """The machine kinds its records name (a search's trials record none)."""
        return sorted({machine_kind(r.get("machine")) for r in self.records.values() if self.kind != SEARCH})

    @property
    def wall_seconds(self) -> float:
        """Training time of all its runs, evaluations during training included."""
        return sum(r.get("wall_seconds") or 0.0 for r in self.records.values() if self.kind != SEARCH)

    @property
    def quick(self) -> bool:
        return bool(self.spec.get("quick_run"))

    @property
    def config(self) -> dict:
        """A published run's training config as run ({} for a study or a search, or where it is missing)."""
        return read_yaml(self.directory / TRAINING_CONFIG) if self.kind == RUN else {}


def read_yaml(path: Path) -> dict:
    return (yaml.safe_load(path.read_text()) or {}) if path.is_file() else {}


def read_trials(path: Path) -> dict[str, dict]:
    trials = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if line.strip():
            try:
                trial = json.loads(line)
            except ValueError as error:
                raise ValueError(f"{path}, line {number}: not a JSON line ({error})") from None
            trials[str(trial.get("trial", number - 1))] = trial
    return trials


def read_evidence(directory: Path) -> Evidence | None:
    """The study, search or run published in `directory`, or None when it holds none."""
    if (directory / "trials.jsonl").is_file():
        spec = read_yaml(directory / "search.yaml")
        return Evidence(
            SEARCH, spec.get("name", directory.name), directory, read_trials(directory / "trials.jsonl"), spec
        )
    if (directory / STUDY_RESULTS).is_file() and (directory / STUDY_SPEC).is_file():
        spec = read_yaml(directory / STUDY_SPEC)
        return Evidence(STUDY, spec.get("name", directory.name), directory, read_results(directory), spec)
    if (directory / STUDY_RESULTS).is_file() and (directory / EVAL_RESULTS).is_file():
        return Evidence(RUN, directory.name, directory, read_results(directory))
    return None


def read_reports(reports_dir: str | Path) -> list[Evidence]:
    """Everything published under `reports_dir` (studies at its top, searches and runs one folder
    down), studies first, then searches, then runs, each kind by name."""
    reports_dir = Path(reports_dir)
    if not reports_dir.is_dir():
        raise ValueError(f"{reports_dir}: no such reports folder")
    found = [
        evidence
        for directory in sorted({*reports_dir.glob("*/"), *reports_dir.glob("*/*/")})
        if directory.is_dir() and (evidence := read_evidence(directory)) is not None
    ]
    return sorted(found, key=lambda e: (KINDS.index(e.kind), e.name))
