"""The paper hf-linear implements, and the figures of it that the project compares against.

Source: Eran Malach, "Auto-Regressive Next-Token Predictors are Universal Learners", ICML 2024
(PMLR 235), arXiv:2309.06979 (https://arxiv.org/abs/2309.06979); the authors' code is
github.com/emalach/LinearLM. §4.1: the linear model on TinyStories; §5: an MLP learns 4-digit ×
4-digit multiplication from a Chain of Thought. Every other module takes these facts from here.
"""

from __future__ import annotations

TITLE = "Auto-Regressive Next-Token Predictors are Universal Learners"
ARXIV_ID = "2309.06979"
ARXIV_URL = f"https://arxiv.org/abs/{ARXIV_ID}"

# BibTeX of the paper, for dataset cards, model cards and the evaluate metric's info
CITATION = f"""@inproceedings{{malach2024autoregressive,
  title         = {{{TITLE}}},
  author        = {{Malach, Eran}},
  booktitle     = {{Proceedings of the 41st International Conference on Machine Learning}},
  series        = {{Proceedings of Machine Learning Research}},
  volume        = {{235}},
  publisher     = {{PMLR}},
  year          = {{2024}},
  eprint        = {{{ARXIV_ID}}},
  archivePrefix = {{arXiv}},
  url           = {{{ARXIV_URL}}}
}}"""

# §5: MLP-775M (d=128, T=307) after one pass over 100M sequences of 4x4 multiplication with the
# paper's 307-token CoT (~17 A100-hours): 96.9% exact match on 1000 held-out pairs
MULTIPLICATION_EXACT_MATCH = 0.969
MULTIPLICATION_A100_HOURS = 17  # approximate, as the paper states it
MULTIPLICATION_SEQUENCE_TOKENS = 307
MULTIPLICATION_SEQUENCES = 100_000_000
MULTIPLICATION_TRAINING_TOKENS = MULTIPLICATION_SEQUENCES * MULTIPLICATION_SEQUENCE_TOKENS  # 30.7B
MULTIPLICATION_RESULT = (
    f"{100 * MULTIPLICATION_EXACT_MATCH:.1f}% exact (MLP-775M: d=128, "
    f"T={MULTIPLICATION_SEQUENCE_TOKENS}; 100M sequences, ~{MULTIPLICATION_A100_HOURS} A100-hours; "
    "1000 held-out pairs)"
)

# The paper's two models with their effective parameter counts (model cards)
PAPER_LINEAR_MODEL = "the paper's TinyStories model, T=64, d=256, V=50258, has 162.1M"
PAPER_MLP_MODEL = f"the paper's multiplication model, T={MULTIPLICATION_SEQUENCE_TOKENS}, d=128, V=117, has 774.7M"

# §4.1: the linear model (162.1M parameters) trains on TinyStories for about 5.5 A100-hours;
# its samples are drawn from this prompt at this temperature
TINYSTORIES_A100_HOURS = 5.5
STORY_PROMPT = "Once upon a"
STORY_TEMPERATURE = 0.5
