"""Entry point: exact-match evaluation of a checkpoint by greedy generation (same as `hf-linear eval`).

python training/evaluate_checkpoint.py CHECKPOINT --dataset data/mul4x4-lsb [--split test --num-samples 1000]
"""

import sys

from hf_linear.evaluation.cli import main

if __name__ == "__main__":
    sys.exit(main())
