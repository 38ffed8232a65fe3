"""`hf-linear study`: run a study file's grid of training runs (see hf_linear.studies.study)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from hf_linear.studies.engines.ray_cluster import RayResources
from hf_linear.studies.study import QUICK_FACTOR, Study, default_study_dir, run_study
from hf_linear.studies.study import __doc__ as STUDY_DOC


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="hf-linear study", description=STUDY_DOC, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("config", help="study YAML (configs/studies/*.yaml)")
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"scaled down (steps and budgets ÷ {QUICK_FACTOR}, tiny data): a smoke test in minutes",
    )
    parser.add_argument("--only", help="run only the runs of this name (or glob, e.g. 'cot-*')")
    parser.add_argument("--out", help="study directory (default: runs/studies/NAME, NAME-quick with --quick)")
    parser.add_argument("--list", action="store_true", help="print the runs of the study and exit")
    parser.add_argument("--no-report", action="store_true", help="do not write REPORT.md at the end")
    parser.add_argument(
        "--trust-program-code",
        action="store_true",
        help="let dataset.program name a module:function program to import (your own code)",
    )
    ray = parser.add_argument_group("engine", "where the runs train (default: one after the other, here)")
    ray.add_argument(
        "--engine",
        choices=("sequential", "ray"),
        default="sequential",
        help="ray: each run a Ray task (pip install -e '.[engines]'), as many at once as resources allow",
    )
    ray.add_argument(
        "--address", help="Ray cluster to join (e.g. auto, or ray://HOST:10001); default: a local instance"
    )
    ray.add_argument(
        "--cpus-per-run",
        type=float,
        default=1,
        help="CPUs a run declares to Ray, and the torch threads it uses (default 1)",
    )
    ray.add_argument("--gpus-per-run", type=float, default=0, help="GPUs a run declares to Ray (default 0)")
    args = parser.parse_args(argv)
    if args.engine != "ray" and (args.address or args.cpus_per_run != 1 or args.gpus_per_run):
        parser.error("--address, --cpus-per-run and --gpus-per-run go with --engine ray")
    try:
        study = Study.load(args.config, quick=args.quick)
        if args.list:
            for run in study.select(args.only):
                print(run.name, json.dumps(run.varied))
            return 0
        engine = None
        if args.engine == "ray":
            from hf_linear.studies.engines.ray_runs import RayEngine

            engine = RayEngine(RayResources(args.address, args.cpus_per_run, args.gpus_per_run))
        outcome = run_study(
            study,
            Path(args.out) if args.out else default_study_dir(study),
            args.only,
            write_report=not args.no_report,
            engine=engine,
            trust_program_code=args.trust_program_code,
        )
    except ValueError as error:
        parser.exit(2, f"{parser.prog}: error: {error}\n")
    failed = {name: status for name, status in outcome.items() if status.startswith("failed")}
    print(f"\nstudy {study.name}: {len(outcome) - len(failed)} of {len(outcome)} runs finished")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
