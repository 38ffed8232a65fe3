"""Files that ship inside the package: the card templates (repository folder `model_cards/`,
package `hf_linear.model_cards`) and the training configs (`configs/`, `hf_linear.configs`).

pyproject.toml maps those top-level folders into the package, so the same lookup works in a
checkout, an editable install and a regular `pip install .`.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

# the package's own folder (in a checkout: hf_linear/ of the repository), for the code files a
# checkpoint or a Space carries and for git, which finds the checkout from here
PACKAGE_DIR = Path(__file__).resolve().parent

# The README's main job: an MLP learns 4x4 multiplication from the `lsb` Chain-of-Thought.
DEFAULT_CONFIG = "cpu/mul4x4_lsb_mlp.yaml"


def card_template(name: str) -> str:
    """Text of the card template `model_cards/<name>` (e.g. "model_card.md")."""
    return files("hf_linear.model_cards").joinpath(name).read_text(encoding="utf-8")


def packaged_config(name: str = DEFAULT_CONFIG):
    """The shipped config `configs/<name>` (a Traversable; `str()` of it is a filesystem path
    in every supported install)."""
    return files("hf_linear.configs").joinpath(name)
