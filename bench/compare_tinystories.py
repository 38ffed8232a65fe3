"""TinyStories side by side: the paper's linear LM, the MLP LM and a GPT-2 of matched size.

    python bench/compare_tinystories.py [--output-root runs/compare-tinystories] [--table-only]

Trains configs/cpu/tinystories_{linear,mlp,gpt2}.yaml one after the other through
`hf_linear.training.train.train` (transformers.Trainer) — the same windows of the shared TinyStories
sample, the same optimizer settings and the same budget (one epoch; the configs' `budget:` caps
wall-clock time) — then prints one table: parameters, training tokens, validation loss and
perplexity, training and generation tokens/s, text statistics of samples from "Once upon a" at
temperature 0.5, and one sample per model. Needs the 2 cores to itself (about 4 minutes);
`--table-only` prints the table of finished runs again.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from hf_linear.paper import STORY_PROMPT, STORY_TEMPERATURE
from hf_linear.run_files import EVAL_RESULTS, TRAINER_STATE

REPO_ROOT = Path(__file__).resolve().parents[1]
CONFIGS = {
    "linear (paper §4.1)": REPO_ROOT / "configs" / "cpu" / "tinystories_linear.yaml",
    "MLP": REPO_ROOT / "configs" / "cpu" / "tinystories_mlp.yaml",
    "GPT-2": REPO_ROOT / "configs" / "cpu" / "tinystories_gpt2.yaml",
}
# keys that may differ between the runs; everything else in dataset / training / budget must match
RUN_SPECIFIC = {"output_dir"}


def load_configs(output_root: Path) -> dict[str, dict]:
    """The three configs, checked to share data, optimizer settings and budget."""
    from hf_linear.training.config import load_config

    configs = {name: load_config(path) for name, path in CONFIGS.items()}
    reference_name, reference = next(iter(configs.items()))
    for name, config in configs.items():
        for section in ("dataset", "training", "budget", "evaluation"):
            ours = {k: v for k, v in config[section].items() if k not in RUN_SPECIFIC}
            theirs = {k: v for k, v in reference[section].items() if k not in RUN_SPECIFIC}
            if ours != theirs:
                raise ValueError(
                    f"{CONFIGS[name].name} and {CONFIGS[reference_name].name} differ in {section}: "
                    f"{ours} vs {theirs} (the comparison needs the same data and budget)"
                )
    for name, config in configs.items():
        config.training["output_dir"] = str(output_root / CONFIGS[name].stem)
        config.training["include_num_input_tokens_seen"] = True
    return configs


def run(config: dict) -> dict:
    """Train one config; returns the row of the table."""
    from hf_linear.training.train import train

    train(config, overwrite=True)
    return row_of(Path(config.training["output_dir"]))


def row_of(output_dir: Path) -> dict:
    """The table row of a finished run, from what it saved (eval report, trainer state, model)."""
    from transformers import AutoModelForCausalLM

    import hf_linear  # noqa: F401  (registers the model types)

    report = json.loads((output_dir / EVAL_RESULTS).read_text())
    state = json.loads((output_dir / TRAINER_STATE).read_text())
    model = AutoModelForCausalLM.from_pretrained(output_dir)
    tokens = state["num_input_tokens_seen"]
    runtime = report["training"]["runtime_s"]
    return {
        "params": sum(p.numel() for p in model.parameters()),  # tied GPT-2 embeddings counted once
        "tokens": tokens,
        "minutes": runtime / 60,
        "train_tokens_per_s": tokens / runtime,
        **{
            key: report[key]
            for key in (
                "loss",
                "perplexity",
                "generation_tokens_per_second",
                "distinct_2",
                "repetition_4",
                "num_generations",
                "examples",
            )
        },
    }


def format_table(rows: dict[str, dict]) -> str:
    lines = [
        "| model | params | training tokens | train time | train tokens/s | val loss | val perplexity "
        "| generation tokens/s | distinct-2 | repeated 4-grams |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in rows.items():
        lines.append(
            f"| {name} | {r['params'] / 1e6:.2f}M | {r['tokens']:,} | {r['minutes']:.1f} min | {r['train_tokens_per_s']:,.0f} "
            f"| {r['loss']:.3f} | {r['perplexity']:.1f} | {r['generation_tokens_per_second']:,.0f} "
            f"| {r['distinct_2']:.3f} | {100 * r['repetition_4']:.1f}% |"
        )
    first = next(iter(rows.values()))
    lines.append(
        f"\nGeneration: {first['num_generations']} samples in one batch. One sample each "
        f'(prompt "{STORY_PROMPT}", temperature {STORY_TEMPERATURE}):'
    )
    for name, r in rows.items():
        lines.append(f"\n**{name}**\n```\n{r['examples'][0].strip()}\n```")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output-root", default="runs/compare-tinystories", help="where the three runs are written")
    parser.add_argument("--table-only", action="store_true", help="print the table of finished runs, train nothing")
    args = parser.parse_args(argv)
    configs = load_configs(Path(args.output_root))
    if args.table_only:
        rows = {name: row_of(Path(config.training["output_dir"])) for name, config in configs.items()}
    else:
        rows = {name: run(config) for name, config in configs.items()}
    print("\n" + format_table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
