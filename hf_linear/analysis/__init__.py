"""Looking inside a trained LinearLM / MLPLM: one module per analysis, below the demo, the
studies and `hf-linear eval`, which call them (nothing here imports those).

* `attribution` — why this token: each earlier (position, token)'s share of a logit (exact for
                  a LinearLM, gradient × input for an MLPLM);
* `block_norms` — ‖W[i, j]‖_F of the masked map: which positions each position reads
                  (`hf-linear inspect`);
* `wiring`      — how much of a trained LinearLM's influence falls where a compiled program's
                  steps read;
* `dead_units`  — ReLU units after the masked map that never fire, per position;
* `row_scales`  — the masked map along the sequence: pre-activation RMS per position, update
                  ratio ‖ΔW_i‖ / ‖W_i‖ per row (a coordinate check over positions);
* `segments`    — teacher-forced accuracy of each CoT segment: where the chain breaks.
"""
