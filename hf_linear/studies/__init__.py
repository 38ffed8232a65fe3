"""The length-complexity lab: grids of training runs (studies), their report, and a look inside.

* `study`      — `hf-linear study CONFIG`: a grid of ordinary training runs declared in one YAML
                 (`configs/studies/`), resumable, one line per run in STUDY_DIR/results.jsonl;
* `results`    — what a finished run directory says: its eval curve, final metrics, CoT length,
                 parameters, tokens and time (the results.jsonl line);
* `report`     — `hf-linear report STUDY_DIR`: REPORT.md with learning curves, accuracy against
                 CoT length, tokens to a target accuracy and a table beside the paper's numbers;
* `inspection` — `hf-linear inspect CHECKPOINT`: the block norms ‖W[i, j]‖_F of the masked map
                 as a heatmap, with the prompt / CoT segments of an example drawn on it.
"""
