"""The files of a run directory and of a study directory, named once: what `hf-linear train`
and `hf-linear study` write, and how a reader (eval, demo, inspect, studies, push, publish)
finds a checkpoint's training config.

    RUN_DIR/
      training_config.yaml   the checked config as run (TRAINING_CONFIG)
      eval_results.json      the final held-out evaluation (EVAL_RESULTS)
      trainer_state.json     the Trainer's log: losses and evaluations (TRAINER_STATE)
      segment_accuracy.json  per-CoT-segment accuracy, cached by study reports (SEGMENT_ACCURACY)
      wiring.json            where a LinearLM's influence falls (cached by universality reports: WIRING)
      checkpoint-N/          Trainer checkpoints (the run's config is one level up)

    STUDY_DIR/
      study.yaml             the study as run (STUDY_SPEC)
      results.jsonl          one line per finished run (STUDY_RESULTS)
      REPORT.md              the report (REPORT; a tune search's too)
"""

from __future__ import annotations

from pathlib import Path

import yaml
from huggingface_hub import hf_hub_download
from huggingface_hub.errors import HfHubHTTPError

TRAINING_CONFIG = "training_config.yaml"
TRAINING_CONFIG_FILES = (TRAINING_CONFIG, "training_config.yml", "training_config.json")  # what push accepts
EVAL_RESULTS = "eval_results.json"
TRAINER_STATE = "trainer_state.json"  # written last by a Trainer checkpoint: its presence means complete
SEGMENT_ACCURACY = "segment_accuracy.json"
WIRING = "wiring.json"
# the small files every number of a run comes from: what publishing a run or a study copies (no weights)
EVIDENCE_FILES = (EVAL_RESULTS, TRAINER_STATE, TRAINING_CONFIG, SEGMENT_ACCURACY, WIRING)

STUDY_SPEC = "study.yaml"
STUDY_RESULTS = "results.jsonl"
REPORT = "REPORT.md"


def find_training_config(checkpoint: str | Path) -> Path | None:
    """The training config of a checkpoint: beside it, one level up (a checkpoint-N directory of a
    run), or in its Hub repo; None where there is none (or the Hub cannot be reached)."""
    path = Path(checkpoint)
    if path.is_dir():
        return next((p for p in (path / TRAINING_CONFIG, path.parent / TRAINING_CONFIG) if p.is_file()), None)
    try:
        return Path(hf_hub_download(str(checkpoint), TRAINING_CONFIG))
    except (HfHubHTTPError, OSError, ValueError):  # no such file or repo, Hub unreachable, bad repo id
        return None


def read_training_config(checkpoint: str | Path) -> dict | None:
    """The checkpoint's training config as a dict (None where there is none); a file that is not
    YAML is a ValueError naming it. What it names is data, not code: see `compile_program`."""
    found = find_training_config(checkpoint)
    if found is None:
        return None
    try:
        config = yaml.safe_load(found.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise ValueError(f"{found} is not valid YAML: {' '.join(str(error).split())}") from None
    return config if isinstance(config, dict) else None
