"""Every entry point runs torch with OpenMP's passive wait policy (hf_linear/omp_policy.py), unless
the user chose one. The OpenMP runtime itself is asked: with OMP_DISPLAY_ENV=verbose libgomp
prints the settings it loaded with, and GOMP_SPINCOUNT tells the policies apart (default 300000
spins, PASSIVE 0, ACTIVE 3e10); its OMP_WAIT_POLICY line says PASSIVE for the default too."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from hf_linear.cli import SUBCOMMANDS
from hf_linear.omp_policy import choose_wait_policy

REPO_ROOT = Path(__file__).resolve().parents[1]
SPIN_COUNTS = {"0": "PASSIVE", "300000": "default", "30000000000": "ACTIVE"}


def policy_in_force(command: list[str], **env) -> str:
    """The wait policy libgomp loaded with in `command` (run with --help: it imports its modules)."""
    environment = {key: value for key, value in os.environ.items() if key != "OMP_WAIT_POLICY"}
    environment.update(OMP_DISPLAY_ENV="verbose", OMP_NUM_THREADS="1", **env)
    result = subprocess.run(command, cwd=REPO_ROOT, env=environment, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "usage:" in result.stdout  # the command really ran
    spin_count = re.search(r"GOMP_SPINCOUNT = '(\d+)'", result.stderr)
    assert spin_count, f"the OpenMP runtime was not loaded by {command}:\n{result.stderr}"
    return SPIN_COUNTS[spin_count.group(1)]


@pytest.mark.slow
@pytest.mark.parametrize(
    "command",
    [
        [shutil.which("hf-linear") or "hf-linear", "eval", "--help"],  # the console script
        [sys.executable, "training/train.py", "--help"],  # the scripts in training/
        [sys.executable, "bench/bench_models.py", "--help"],  # the benches
    ],
    ids=["hf-linear", "training-script", "bench"],
)
def test_entry_points_load_torch_with_the_passive_policy(command):
    assert policy_in_force(command) == "PASSIVE"


@pytest.mark.slow
def test_a_policy_the_user_set_is_kept():
    # (and `python -m`, as `accelerate launch -m` runs it, loads the package first)
    command = [sys.executable, "-m", "hf_linear.training.train", "--help"]
    assert policy_in_force(command, OMP_WAIT_POLICY="ACTIVE") == "ACTIVE"


WATCH_TORCH = """
import importlib, os, sys

class WatchTorch:  # records the policy in the environment when torch is first imported
    def find_spec(self, name, path=None, target=None):
        if name == "torch" and "policy" not in seen:
            seen["policy"] = os.environ.get("OMP_WAIT_POLICY")

seen = {}
sys.meta_path.insert(0, WatchTorch())
importlib.import_module(sys.argv[1])
print(seen.get("policy", "torch not imported"))
"""


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(SUBCOMMANDS))
def test_every_subcommand_chooses_the_policy_before_torch_loads(name):
    environment = {key: value for key, value in os.environ.items() if key != "OMP_WAIT_POLICY"}
    module = SUBCOMMANDS[name][0]
    result = subprocess.run(
        [sys.executable, "-c", WATCH_TORCH, module], env=environment, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[-1] in ("PASSIVE", "imported"), f"{module}: torch loaded with {result.stdout}"


def test_no_claim_once_torch_is_loaded(monkeypatch):
    # in this process torch is loaded: setting the variable now would not change the runtime
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    assert choose_wait_policy() is None and "OMP_WAIT_POLICY" not in os.environ
    monkeypatch.setenv("OMP_WAIT_POLICY", "active")
    assert choose_wait_policy() == "active"
