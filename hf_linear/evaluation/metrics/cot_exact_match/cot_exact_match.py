"""Exact match and per-digit accuracy of the final answer of Chain-of-Thought generations.

An `evaluate` metric module that works offline: load it by path,

    import evaluate
    from hf_linear.evaluation.exact_match import METRIC_PATH
    metric = evaluate.load(str(METRIC_PATH))
    metric.compute(predictions=["[BOS] 1 2 x 3 4 = ... = 0 4 0 8 [EOS]"], references=["0 4 0 8"])
    # {'exact_match': 1.0, 'per_digit_accuracy': 1.0, 'num_samples': 1}

The file is self-contained (evaluate copies it into its module cache), so it keeps its own copy
of the answer rule of `hf_linear.data.arithmetic.formats.answer_of` (`hf-linear eval`);
tests/test_arithmetic_formats.py pins the two to each other.
"""

import datasets
import evaluate

_DESCRIPTION = """
Final-answer accuracy of arithmetic Chain-of-Thought generations, as in Malach (ICML 2024):
`exact_match` is the fraction of predictions whose final answer (the space-separated tokens after
the last "=", up to [EOS] or [PAD]; a prediction without "=" has no answer and is wrong) equals the reference
answer token for token; `per_digit_accuracy` is the fraction of reference answer tokens that the
prediction's answer has at the same position (answers are zero-padded to a fixed width, so
positions align; a missing token counts as wrong).
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (list of str): generated texts, with or without the prompt, up to and including
        the "=" before the answer (a text without "=" has no answer).
    references (list of str): reference answers, e.g. "0 7 0 0 6 6 5 2".
Returns:
    exact_match (float), per_digit_accuracy (float), num_samples (int).
"""

_CITATION = """@inproceedings{malach2024autoregressive,
  title={Auto-Regressive Next-Token Predictors are Universal Learners},
  author={Malach, Eran}, booktitle={ICML}, series={PMLR}, volume={235}, year={2024}
}"""


def final_answer_tokens(text: str) -> list:
    """The tokens after the last "=" (before the first [EOS]), up to [PAD]; [] without "="."""
    tokens = text.split()
    if "[EOS]" in tokens:
        tokens = tokens[: tokens.index("[EOS]")]
    if "=" not in tokens:
        return []  # no answer: wrong, whatever the text says
    tokens = tokens[len(tokens) - tokens[::-1].index("=") :]
    if "[PAD]" in tokens:
        tokens = tokens[: tokens.index("[PAD]")]
    return tokens


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class CotExactMatch(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Value("string"), "references": datasets.Value("string")}
            ),
        )

    def _compute(self, predictions, references):
        exact = digits_right = digits_total = 0
        for prediction, reference in zip(predictions, references):
            got, want = final_answer_tokens(prediction), reference.split()
            exact += got == want
            digits_right += sum(g == w for g, w in zip(got, want))
            digits_total += len(want)
        n = len(references)
        return {
            "exact_match": exact / n if n else 0.0,
            "per_digit_accuracy": digits_right / digits_total if digits_total else 0.0,
            "num_samples": n,
        }
