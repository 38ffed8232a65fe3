"""The OpenMP wait policy of hf-linear's processes: passive waiting, so that a busy CPU does not
stall training, evaluation or a bench.

torch's CPU kernels run on libgomp, whose idle threads by default spin for a while before they
sleep. On a machine shared with other processes the spinning threads take the cores that the
working thread needs: measured on a 2-core Xeon beside one busy process, a training step of the
main job of then (MLPLM d=32, T=81, batch 256) took 86-1,135 ms with the default policy and 69-97 ms with
OMP_WAIT_POLICY=PASSIVE (alone: ~59 ms). `bench/bench_contention.py` measures both policies,
idle and beside a busy process.

libgomp reads OMP_WAIT_POLICY once, when torch loads it, so the variable must be set before the
first `import torch` of the process. `hf_linear/__init__.py` calls `choose_wait_policy()` before
it imports anything else; every entry point (`hf-linear ...`, `python -m hf_linear...`, the
scripts in training/ and bench/) imports hf_linear before torch. A value the user set is kept
(`OMP_WAIT_POLICY=ACTIVE hf-linear train` spins). This module imports nothing heavy.
"""

from __future__ import annotations

import os
import sys

WAIT_POLICY = "PASSIVE"


def choose_wait_policy() -> str | None:
    """Set OMP_WAIT_POLICY=PASSIVE unless the user set it or torch is already loaded (then the
    OpenMP runtime has read its settings and the variable would only claim a policy that is not in
    force). Returns the policy in force by this call's doing or the user's, None if unknown."""
    if "OMP_WAIT_POLICY" in os.environ:
        return os.environ["OMP_WAIT_POLICY"]
    if "torch" in sys.modules:
        return None
    os.environ["OMP_WAIT_POLICY"] = WAIT_POLICY
    return WAIT_POLICY
