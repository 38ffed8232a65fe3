"""Entry point: train an hf-linear model from a YAML config (same as `hf-linear train`).

python training/train.py configs/cpu/mul4x4_lsb_mlp.yaml [--section.key value ...] [--resume]
accelerate launch --multi_gpu --num_processes 2 training/train.py CONFIG
"""

import sys

from hf_linear.training.train import main

if __name__ == "__main__":
    sys.exit(main())
