"""`hf-linear` console command: one entry point, one module per subcommand.

Each subcommand lives in its own module with a `main(argv: list[str]) -> int` function, so
`hf-linear train ...` and `python -m hf_linear.training.train ...` are the same code path.

The OpenMP wait policy (OMP_WAIT_POLICY=PASSIVE unless set; `hf_linear.omp_policy`) is chosen
before any subcommand, or torch, is imported: by `hf_linear/__init__.py`, which Python runs
before this module, so `python -m hf_linear.training.train` and the bench scripts get it too.
"""

from __future__ import annotations

import importlib
import sys

# subcommand -> (module, one-line help)
SUBCOMMANDS = {
    "train": ("hf_linear.training.train", "train a model from a YAML config with transformers.Trainer"),
    "eval": ("hf_linear.evaluation.cli", "evaluate a checkpoint: exact match by greedy generation, or perplexity"),
    "push": ("hf_linear.hub.push", "push a checkpoint (weights, code, tokenizer, model card) to the Hub"),
    "hub-server": ("hf_linear.hub.server", "run the local Hub-API server (for offline tests)"),
    "convert-authors": (
        "hf_linear.convert_authors",
        "convert a state dict of the authors' LinearModel (emalach/LinearLM)",
    ),
    "study": (
        "hf_linear.studies.study_cli",
        "run a study: a grid of training runs from configs/studies/*.yaml (resumable)",
    ),
    "report": ("hf_linear.studies.report", "write a study's REPORT.md with learning-curve and length-complexity plots"),
    "tune": (
        "hf_linear.studies.tune.cli",
        "search a training recipe (Optuna or Ray Tune via Trainer.hyperparameter_search)",
    ),
    "reproduce": (
        "hf_linear.studies.reproduce",
        "run all shipped studies, publish their reports, rebuild RESULTS.md from reports/",
    ),
    "publish": (
        "hf_linear.studies.publish",
        "publish a finished run to reports/runs/NAME: its evidence, everything but the weights",
    ),
    "inspect": (
        "hf_linear.analysis.block_norms",
        "heatmap of the block norms of a checkpoint's masked map, per position",
    ),
    "demo": ("hf_linear.demo.cli", "interactive app (Gradio): arithmetic with a checked CoT, text, why each token"),
}


def _usage() -> str:
    lines = ["usage: hf-linear COMMAND [ARGS ...]", "", "commands:"]
    lines += [f"  {name:<11} {help_}" for name, (_, help_) in SUBCOMMANDS.items()]
    lines += ["", "`hf-linear COMMAND --help` shows the arguments of one command."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    if name not in SUBCOMMANDS:
        print(f"hf-linear: unknown command {name!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(SUBCOMMANDS[name][0])
    return int(module.main(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
