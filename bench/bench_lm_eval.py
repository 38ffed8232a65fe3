"""lm-evaluation-harness (the real `lm-eval` package) on a trained model, offline.

    pip install -e ".[bench]"
    python bench/bench_lm_eval.py runs/tinystories-linear [--stories ../shared/data/tinystories]
    python bench/bench_lm_eval.py runs/mul4x4-lsb-mlp --arithmetic '{"task": "multiplication", "digits": [4, 4], "cot": "lsb"}'
    python bench/bench_lm_eval.py runs/mul-program --program '{"program": "multiplication", "size": 10000}'

Language-model checkpoints: a local task (`--include_path` style: a YAML next to a JSON-lines file
of the validation stories, `loglikelihood_rolling` → word / byte perplexity and bits per byte, as
lm-eval's wikitext task), run by `lm_eval.simple_evaluate` with its default settings on the
checkpoint loaded through `HFLM`: the harness takes the tokenizer's `model_max_length` (1024 for
GPT-2) as the window, far past the model's T, so the scores show whether the model stays sane
past T.

Arithmetic and program checkpoints (`--arithmetic` / `--program` JSON, as for `hf-linear eval`):
a `generate_until` task on the held-out split's prompts — greedy generation to [EOS], the answer
taken after the last "=" by the harness's own regex filter, scored by its `exact_match` — beside
`hf-linear eval`'s exact match on the same examples: the two should agree.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from hf_linear.checkpoints import load_model, load_tokenizer
from hf_linear.data.tinystories import load_stories
from hf_linear.evaluation.cli import check_data_fits, generated_source
from hf_linear.evaluation.exact_match import answer_budget, exact_match_report
from hf_linear.evaluation.held_out import held_out_split

REPO_ROOT = Path(__file__).resolve().parents[1]
# Each task reads a JSON-lines file written next to its YAML; the YAML is this header (which file,
# as which split) and the task's own body.
TASK_HEADER = """task: {task}
dataset_path: json
dataset_kwargs:
  data_files:
    {split}: {data}
test_split: {split}
"""
STORIES_TASK = "tinystories_validation_ppl"
STORIES_BODY = """output_type: loglikelihood_rolling
validation_split: validation
doc_to_text: ""
doc_to_target: "{{text}}"
metric_list:
  - metric: word_perplexity
  - metric: byte_perplexity
  - metric: bits_per_byte
metadata:
  version: 1.0
"""


# The answer is what follows the last "=" of the generated text (hf_linear's answer_of; the
# harness cuts the text at [EOS] first): the regex matches once, at the end.
ANSWER_TASK = "hf_linear_held_out_answer"
ANSWER_BODY = """output_type: generate_until
doc_to_text: "{{{{prompt}}}}"
doc_to_target: "{{{{answer}}}}"
generation_kwargs:
  until: ["{eos}"]
  do_sample: false
  max_gen_toks: {max_gen_toks}
filter_list:
  - name: answer
    filter:
      - function: regex
        regex_pattern: '=\\s*([^=]*?)\\s*$'
      - function: take_first
metric_list:
  - metric: exact_match
    aggregation: mean
    higher_is_better: true
metadata:
  version: 1.0
"""


def local_task_results(harness, task: str, split: str, body: str, rows, limit: int | None = None) -> dict:
    """The harness's results of `task` (YAML: the header, then `body`) run by `harness` (an HFLM)
    on `rows` (dicts), written as its split `split`."""
    from lm_eval import simple_evaluate
    from lm_eval.tasks import TaskManager

    with tempfile.TemporaryDirectory() as directory:
        data = Path(directory) / f"{task}.jsonl"
        data.write_text("".join(json.dumps(row) + "\n" for row in rows))
        header = TASK_HEADER.format(task=task, split=split, data=data)
        (Path(directory) / f"{task}.yaml").write_text(header + body)
        results = simple_evaluate(
            model=harness, tasks=[task], task_manager=TaskManager(include_path=directory), limit=limit
        )
    return results["results"][task]


def run_answers(
    checkpoint: str, option: str, arguments: str, split: str = "test", limit: int | None = None, batch_size: int = 32
) -> dict:
    """Exact match of the answers generated for `split` of the `--arithmetic` / `--program` data
    (`option`, its JSON `arguments`), by the harness and by hf-linear's own evaluation."""
    from lm_eval.models.huggingface import HFLM

    source = generated_source(option, arguments)
    examples = held_out_split(source.load(), split, "--split")
    examples = examples.select(range(min(limit or len(examples), len(examples))))
    model, tokenizer = load_model(checkpoint), load_tokenizer(checkpoint)
    check_data_fits(model, tokenizer, source, examples)
    max_gen_toks = answer_budget(examples)
    # the harness keeps max_length − max_gen_toks tokens of context: room for the longest prompt
    max_length = max(examples["prompt_length"]) + max_gen_toks
    harness = HFLM(pretrained=model, tokenizer=tokenizer, max_length=max_length, batch_size=batch_size)
    body = ANSWER_BODY.format(eos=tokenizer.eos_token, max_gen_toks=max_gen_toks)
    rows = [{"prompt": p, "answer": a} for p, a in zip(examples["prompt"], examples["answer"])]
    results = local_task_results(harness, ANSWER_TASK, "test", body, rows)
    own = exact_match_report(model, tokenizer, examples, batch_size)
    return {
        "dataset": source.describe(),
        "split": split,
        "num_samples": len(examples),
        "lm_eval_exact_match": float(results["exact_match,answer"]),
        "lm_eval_exact_match_stderr": float(results["exact_match_stderr,answer"]),
        "hf_linear_exact_match": own["exact_match"],
    }


def run(checkpoint: str, stories_source: str, limit: int | None = None) -> dict:
    from lm_eval.models.huggingface import HFLM

    stories = load_stories(stories_source)["validation"]["text"]
    harness = HFLM(pretrained=load_model(checkpoint), tokenizer=load_tokenizer(checkpoint))
    results = local_task_results(
        harness, STORIES_TASK, "validation", STORIES_BODY, [{"text": text} for text in stories], limit
    )
    return {"max_length": harness.max_length, **results}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint")
    parser.add_argument("--stories", default=str(REPO_ROOT.parent / "shared" / "data" / "tinystories"))
    data = parser.add_mutually_exclusive_group()
    data.add_argument("--arithmetic", help="JSON of the arithmetic task, as for `hf-linear eval`")
    data.add_argument("--program", help="JSON of the compiled program, as for `hf-linear eval`")
    parser.add_argument("--split", default="test", help="held-out split of --arithmetic / --program data")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--limit", type=int, default=None, help="first N stories or examples only")
    args = parser.parse_args()
    if args.arithmetic or args.program:
        option, arguments = ("arithmetic", args.arithmetic) if args.arithmetic else ("program", args.program)
        report = run_answers(args.checkpoint, option, arguments, args.split, args.limit, args.batch_size)
    else:
        report = run(args.checkpoint, args.stories, args.limit)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
