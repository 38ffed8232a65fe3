"""What one finished run directory says, as one JSON-able record (a line of results.jsonl).

A run directory written by `hf_linear.training.train.train` holds

    eval_results.json    final held-out metrics; `training`: runtime_s, global_step, tokens_seen, machine,
                         commit (the code's git commit, where the run recorded it)
    trainer_state.json   log_history: losses and eval_* metrics per step, each with
                         num_input_tokens_seen, and the `wall_seconds` of `RunClock`
    training_config.yaml the config it ran

and the record gathers from them the eval curve, the final metrics, the length of an example
(the paper's length complexity), the parameter count, the steps, tokens, time, machine, precision
and commit.
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from hf_linear.data.sources import data_source
from hf_linear.run_files import EVAL_RESULTS, STUDY_RESULTS, TRAINER_STATE, TRAINING_CONFIG

# eval_* metrics of log_history that make the curve (per-digit accuracy and perplexity where logged)
CURVE_METRICS = ("exact_match", "per_digit_accuracy", "perplexity", "loss")


def example_lengths(dataset: dict) -> dict:
    """Tokens per example and of its parts (the paper's length complexity), from the run's data
    source; empty for language-model data."""
    return data_source(dataset).example_lengths()


def machine_kind(machine: dict | None) -> str:
    """What a figure's speed depends on, in words: "AMD EPYC with native bf16" (AVX512-BF16 or
    AMX), or "... without native bf16" (bf16 emulated: such a machine trains in fp32)."""
    if not machine:
        return "machine not recorded"
    cpu = machine.get("cpu") if machine.get("cpu") not in (None, "", "unknown") else "an unidentified CPU"
    bf16 = "AMX bf16" if machine.get("amx_bf16") else "native bf16"
    return f"{cpu} {'with' if machine.get('native_bf16') else 'without'} {bf16}"


def precision_of(config: dict, machine: dict | None) -> str:
    """The arithmetic a run trained in: `training.bf16` is bf16 autocast only where the CPU has
    native bf16 (hf_linear.training.arguments falls back to fp32 elsewhere)."""
    wants_bf16 = bool((config.get("training") or {}).get("bf16"))
    if wants_bf16 and machine is None:
        return "bf16 autocast if the CPU had native bf16, else fp32 (machine not recorded)"
    return "bf16 autocast" if wants_bf16 and machine.get("native_bf16") else "fp32"


def eval_curve(log_history: list[dict], tokens_per_step: float | None, names=CURVE_METRICS) -> list[dict]:
    """One point per evaluation step: step, training tokens, wall-clock seconds and the eval_*
    metrics in `names`. Trainer logs the loss and the generated exact match as separate entries
    of the same step; they are merged here."""
    points: dict[int, dict] = {}
    for entry in log_history:
        metrics = {name: entry[f"eval_{name}"] for name in names if f"eval_{name}" in entry}
        if not metrics:
            continue
        point = points.setdefault(entry["step"], {"step": entry["step"]})
        point.update(metrics)
        if "num_input_tokens_seen" in entry:
            point["tokens"] = entry["num_input_tokens_seen"]
        elif tokens_per_step:  # logs of runs without include_num_input_tokens_seen
            point.setdefault("tokens", round(entry["step"] * tokens_per_step))
        if "wall_seconds" in entry:
            point["wall_seconds"] = entry["wall_seconds"]
    return [points[step] for step in sorted(points)]


def first_reaching(curve: list[dict], metric: str, target: float) -> dict | None:
    """The first eval point whose `metric` is >= target (an upper bound of the tokens needed, at
    the resolution of eval_steps), or None."""
    return next((point for point in curve if point.get(metric, -1.0) >= target), None)


def process_seconds(run_dir: Path) -> list[float]:
    """Per process that trained `run_dir` (one TensorBoard event file each, under the Trainer's
    default logging dir runs/), the seconds from its first to its last event: the wall time of a
    run resumed before trainer_state.json carried a clock (it leaves out each process's start-up
    and its steps before the first log). [] where there are no such files."""
    files = sorted(run_dir.glob("runs/*/events.out.tfevents.*"))
    if not files:
        return []
    try:
        from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
    except ImportError:
        return []
    spans = []
    for path in files:
        times = [event.wall_time for event in EventFileLoader(str(path)).Load() if event.HasField("summary")]
        if times:
            spans.append(max(times) - min(times))
    return spans


def run_record(run_dir: Path, name: str, varied: dict, config_path: Path, study_dir: Path) -> dict:
    """The results.jsonl line of a finished run."""
    final = json.loads((run_dir / EVAL_RESULTS).read_text())
    state = json.loads((run_dir / TRAINER_STATE).read_text())
    config = yaml.safe_load((run_dir / TRAINING_CONFIG).read_text())
    facts = final.get("training", {})
    steps, tokens = facts.get("global_step") or state.get("global_step"), facts.get("tokens_seen")
    tokens_per_step = tokens / steps if tokens and steps else None
    curve = eval_curve(state.get("log_history", []), tokens_per_step)
    wall = [entry["wall_seconds"] for entry in state.get("log_history", []) if "wall_seconds" in entry]
    processes = [] if wall else process_seconds(run_dir)
    return {
        "name": name,
        "varied": varied,
        "run_dir": str(run_dir.relative_to(study_dir)),
        "config": str(config_path.relative_to(study_dir)),
        "model_type": config["model"].get("type", "init_from"),
        "dataset": final.get("dataset"),
        **example_lengths(config["dataset"]),
        "parameters": facts.get("trainable_parameters"),
        "steps": steps,
        "tokens": tokens,
        # the clock of the whole run across resumes (RunClock); a resumed run from before it: the
        # sum of its processes' TensorBoard spans; else the one process's runtime
        "wall_seconds": max(wall) if wall else sum(processes) if len(processes) > 1 else facts.get("runtime_s"),
        "budget_minutes": (config.get("budget") or {}).get("max_minutes"),
        "final": {
            key: final[key]
            for key in ("exact_match", "per_digit_accuracy", "perplexity", "loss", "num_samples")
            if key in final
        },
        "split": final.get("split"),
        "curve": curve,
        "machine": facts.get("machine"),
        "precision": precision_of(config, facts.get("machine")),
        "commit": facts.get("commit"),
    }


def read_results(study_dir: Path) -> dict[str, dict]:
    """results.jsonl by run name; a run listed twice (re-run after its directory was removed)
    counts with its last line."""
    path = Path(study_dir) / STUDY_RESULTS
    records = {}
    if path.is_file():
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if line.strip():
                record = result_row(line, f"{path}, line {number}")
                records[record["name"]] = record
    return records


def result_row(line: str, where: str) -> dict:
    """A results.jsonl line; ValueError naming the line when it is not a row with a run name."""
    try:
        record = json.loads(line)
    except ValueError as error:
        raise ValueError(f"{where}: not a JSON line ({error})") from None
    if not isinstance(record, dict) or not isinstance(record.get("name"), str):
        raise ValueError(f"{where}: a result row without a run 'name'; fix or remove that line")
    return record
