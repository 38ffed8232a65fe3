"""`hf-linear tune`: run a search (or finish it) and publish it."""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

import yaml

from hf_linear.atomic import write_text_atomically
from hf_linear.dotted_keys import set_dotted
from hf_linear.studies.engines.ray_cluster import RayResources
from hf_linear.studies.tune import __doc__ as TUNE_DOC
from hf_linear.studies.tune.backends import search_trainer, search_with_optuna
from hf_linear.studies.tune.publishing import publish
from hf_linear.studies.tune.spec import Search
from hf_linear.training.config import check_config


def tune(
    search: Search, out: Path, engine: str = "optuna", trials: int | None = None, resources: RayResources | None = None
) -> Path:
    """Run the search (or finish it) and publish it in `out`; returns REPORT.md's path."""
    out = Path(out)
    config = copy.deepcopy(search.config)
    set_dotted(config, "training.output_dir", str(out / "trials"))
    checked = check_config(config)
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomically(out / "search.yaml", yaml.safe_dump(search.spec, sort_keys=False))
    trainer, budget = search_trainer(search, checked, out)
    if engine == "ray":
        from hf_linear.studies.engines.ray_tune import search_with_ray

        records, study = search_with_ray(search, trainer, budget, out, trials or search.trials, resources)
    else:
        records, study = search_with_optuna(search, trainer, budget, out, trials or search.trials)
    return publish(search, records, out, engine, study)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="hf-linear tune", description=TUNE_DOC, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("config", help="search YAML (configs/tune/*.yaml)")
    parser.add_argument("--out", help="search directory (default: runs/tune/NAME)")
    parser.add_argument("--trials", type=int, help="number of trials (default: the file's `trials`)")
    parser.add_argument(
        "--engine",
        choices=("optuna", "ray"),
        default="optuna",
        help="Optuna in this process (default), or Ray Tune trials",
    )
    ray = parser.add_argument_group("Ray", "with --engine ray, as `hf-linear study --engine ray`")
    ray.add_argument("--address", help="Ray cluster to join (e.g. auto); default: a local instance")
    ray.add_argument("--cpus-per-trial", type=float, default=1, help="the CPUs a trial declares (default 1)")
    ray.add_argument("--gpus-per-trial", type=float, default=0, help="the GPUs a trial declares (default 0)")
    args = parser.parse_args(argv)
    if args.engine != "ray" and (args.address or args.cpus_per_trial != 1 or args.gpus_per_trial):
        parser.error("--address, --cpus-per-trial and --gpus-per-trial go with --engine ray")
    resources = RayResources(args.address, args.cpus_per_trial, args.gpus_per_trial)
    try:
        search = Search.load(args.config)
        report = tune(search, Path(args.out or Path("runs/tune") / search.name), args.engine, args.trials, resources)
    except ValueError as error:
        parser.exit(2, f"{parser.prog}: error: {error}\n")
    print(f"report: {report}\nbest config: {report.parent / 'best_config.yaml'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
