"""lm-evaluation-harness (the real `lm-eval` package) on a trained model, offline.

    pip install -e ".[bench]"
    python bench/bench_lm_eval.py runs/tinystories-linear [--stories ../shared/data/tinystories]

Writes a local task (`--include_path` style: a YAML next to a JSON-lines file of the validation
stories, `loglikelihood_rolling` → word / byte perplexity and bits per byte, as lm-eval's
wikitext task) and runs `lm_eval.simple_evaluate` with its default settings on the checkpoint
loaded through `HFLM`: the harness takes the tokenizer's `model_max_length` (1024 for GPT-2) as
the window, far past the model's T, so the scores show whether the model stays sane past T.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from hf_linear.checkpoints import load_model, load_tokenizer
from hf_linear.data.tinystories import load_stories

REPO_ROOT = Path(__file__).resolve().parents[1]
TASK = "tinystories_validation_ppl"
TASK_YAML = """task: {task}
dataset_path: json
dataset_kwargs:
  data_files:
    validation: {data}
output_type: loglikelihood_rolling
validation_split: validation
test_split: validation
doc_to_text: ""
doc_to_target: "{{{{text}}}}"
metric_list:
  - metric: word_perplexity
  - metric: byte_perplexity
  - metric: bits_per_byte
metadata:
  version: 1.0
"""


def run(checkpoint: str, stories_source: str, limit: int | None = None) -> dict:
    from lm_eval import simple_evaluate
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    stories = load_stories(stories_source)["validation"]["text"]
    with tempfile.TemporaryDirectory() as directory:
        data = Path(directory) / "validation.jsonl"
        data.write_text("".join(json.dumps({"text": text}) + "\n" for text in stories))
        (Path(directory) / f"{TASK}.yaml").write_text(TASK_YAML.format(task=TASK, data=data))
        model = HFLM(pretrained=load_model(checkpoint), tokenizer=load_tokenizer(checkpoint))
        results = simple_evaluate(
            model=model, tasks=[TASK], task_manager=TaskManager(include_path=directory), limit=limit
        )
    return {"max_length": model.max_length, **results["results"][TASK]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint")
    parser.add_argument("--stories", default=str(REPO_ROOT.parent / "shared" / "data" / "tinystories"))
    parser.add_argument("--limit", type=int, default=None, help="first N stories only")
    args = parser.parse_args()
    print(json.dumps(run(args.checkpoint, args.stories, args.limit), indent=1))


if __name__ == "__main__":
    main()
