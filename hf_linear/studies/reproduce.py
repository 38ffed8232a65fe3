"""The reproduction report: run every shipped study, publish its report, regenerate RESULTS.md.

    hf-linear reproduce                    # all of configs/studies/*.yaml (its duration: RESULTS.md, Speed)
    hf-linear reproduce --only formats_4x4 --quick
    hf-linear reproduce --report-only      # no training: RESULTS.md rebuilt from reports/ alone

For each study file (in name order) this runs `hf-linear study` (finished runs are skipped, an
interrupted one resumes: rerunning after a stop continues where it was), writes its REPORT.md,
and publishes the study to REPORTS/NAME/ — REPORT.md, the plots, results.jsonl, the study and
run configs, and per run the small files that every number comes from (eval_results.json,
trainer_state.json, training_config.yaml, segment_accuracy.json, wiring.json; no weights). Then
the part of RESULTS.md between the two markers below is rebuilt from everything in REPORTS/ —
the studies, the recipe searches and the published runs (`hf-linear publish`) — by claim
(`hf_linear.studies.claims`: computed from the published files; nothing is typed in by hand).
The rest of RESULTS.md is left as it is.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from hf_linear.atomic import staged_directory, write_text_atomically
from hf_linear.output_dirs import check_output_dir
from hf_linear.resources import packaged_config
from hf_linear.run_files import EVIDENCE_FILES, REPORT, STUDY_RESULTS, STUDY_SPEC
from hf_linear.studies.claims import results_section
from hf_linear.studies.evidence import read_reports
from hf_linear.studies.report import write_report
from hf_linear.studies.study import Study, default_study_dir, run_study

BEGIN = "<!-- BEGIN hf-linear reproduce: generated, do not edit by hand -->"
END = "<!-- END hf-linear reproduce -->"
STUDY_FILES = (REPORT, STUDY_RESULTS, STUDY_SPEC)


# ---------------------------------------------------------------------------------------------
# Running and publishing


def study_files(directory: Path, only: list[str] | None) -> list[Path]:
    paths = sorted(Path(directory).glob("*.yaml"))
    if only:
        names = {path.stem for path in paths}
        unknown = sorted(set(only) - names)
        if unknown:
            raise ValueError(
                f"--only: no study {', '.join(unknown)} in {directory} (studies: {', '.join(sorted(names))})"
            )
        paths = [path for path in paths if path.stem in only]
    if not paths:
        raise ValueError(f"no study files (*.yaml) in {directory}")
    return paths


def publish(study_dir: Path, destination: Path) -> Path:
    """Copy a study's report and the small files of its runs to `destination`, replacing what
    was there only once the new copy is complete."""
    with staged_directory(destination, written_by="hf-linear reproduce") as staging:
        for name in STUDY_FILES:
            if (study_dir / name).is_file():
                shutil.copy2(study_dir / name, staging / name)
        for folder, pattern in (("plots", "*"), ("configs", "*.yaml")):
            for path in sorted((study_dir / folder).glob(pattern)):
                (staging / folder).mkdir(exist_ok=True)
                shutil.copy2(path, staging / folder / path.name)
        for run_dir in sorted((study_dir / "runs").glob("*/")):
            for name in EVIDENCE_FILES:
                if (run_dir / name).is_file():
                    (staging / "runs" / run_dir.name).mkdir(parents=True, exist_ok=True)
                    shutil.copy2(run_dir / name, staging / "runs" / run_dir.name / name)
    return destination


def check_markers(document: Path) -> str:
    """The text of `document`, which must hold the BEGIN and END markers once each, in order."""
    text = document.read_text() if document.is_file() else ""
    if text.count(BEGIN) != 1 or text.count(END) != 1 or text.index(BEGIN) > text.index(END):
        raise ValueError(f"{document} needs the two marker lines, once each, in this order:\n{BEGIN}\n{END}")
    return text


def replace_section(document: Path, section: str) -> None:
    """Put `section` between the BEGIN / END markers of `document` (atomically); the markers
    must be there, once each, so that nothing outside them is ever touched."""
    text = check_markers(document)
    before, rest = text.split(BEGIN)
    _, after = rest.split(END)
    write_text_atomically(document, f"{before}{BEGIN}\n{section.strip()}\n{END}{after}")


# ---------------------------------------------------------------------------------------------
# Command line


def regenerate(results: Path, reports_dir: Path, studies_dir: Path) -> None:
    """Rebuild the generated part of `results` from everything published in `reports_dir`."""
    published = read_reports(reports_dir)
    shipped = {path.stem for path in Path(studies_dir).glob("*.yaml")}
    replace_section(results, results_section(published, Path(reports_dir), results.parent, shipped))


def reproduce(
    studies_dir: Path,
    reports_dir: Path,
    results: Path | None,
    only=None,
    quick=False,
    runs_dir=None,
    report_only=False,
) -> list[Path]:
    """Run (or finish) every study (or those in `only`), publish each to reports_dir/NAME, and
    rebuild the generated part of `results` from reports_dir; returns the published report
    directories. `report_only`: run and publish nothing, only rebuild `results`."""
    if results is not None:
        check_markers(results)  # before hours of training, not after
    selected = [] if report_only else study_files(studies_dir, only)
    for path in selected:  # a report replaces only a report: checked before hours of training
        check_output_dir(Path(reports_dir) / path.stem, overwrite=True, what="--reports")
    published = []
    for path in selected:
        study = Study.load(path, quick=quick)
        study_dir = (
            Path(runs_dir) / (study.name + ("-quick" if quick else "")) if runs_dir else default_study_dir(study)
        )
        print(f"\n##### study {study.name} -> {study_dir}", flush=True)
        outcome = run_study(study, study_dir, write_report=False)
        failed = [name for name, status in outcome.items() if status.startswith("failed")]
        if failed:
            print(
                f"hf-linear reproduce: study {study.name}: runs {', '.join(failed)} failed (reported without them)",
                file=sys.stderr,
            )
        write_report(study_dir)
        published.append(publish(study_dir, Path(reports_dir) / study.name))
    if results is not None:
        regenerate(results, Path(reports_dir), studies_dir)
    return published


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="hf-linear reproduce", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--studies", default=None, help="folder of study files (default: the shipped configs/studies)")
    parser.add_argument("--only", help="comma-separated study names (file names without .yaml)")
    parser.add_argument("--quick", action="store_true", help="every study scaled down (a smoke test in minutes)")
    parser.add_argument("--runs", default=None, help="where the study directories go (default: runs/studies)")
    parser.add_argument("--reports", default="reports", help="where the published reports go (default: reports/)")
    parser.add_argument("--results", default="RESULTS.md", help="the document whose generated section is replaced")
    parser.add_argument("--no-results", action="store_true", help="do not touch the results document")
    parser.add_argument(
        "--report-only", action="store_true", help="train nothing: rebuild the results document from --reports"
    )
    args = parser.parse_args(argv)
    if args.report_only and (args.no_results or args.only or args.quick):
        parser.error("--report-only rebuilds the results document only: no --only, --quick or --no-results with it")
    studies_dir = Path(args.studies) if args.studies else Path(str(packaged_config("studies")))
    try:
        reproduce(
            studies_dir,
            Path(args.reports),
            None if args.no_results else Path(args.results),
            only=args.only.split(",") if args.only else None,
            quick=args.quick,
            runs_dir=args.runs,
            report_only=args.report_only,
        )
    except ValueError as error:
        parser.exit(2, f"{parser.prog}: error: {error}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
