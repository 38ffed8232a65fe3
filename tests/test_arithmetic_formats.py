"""CoT arithmetic formats and their tokenizer, checked against independent plain digit loops."""

from __future__ import annotations

import random
import sys

import pytest
from schoolbook import check_addition, check_multiplication, check_parity, check_parity_threshold, random_operand
from transformers import AutoTokenizer

from hf_linear.data.arithmetic import FORMATS, answer_of, example_tokens, prompt_of, sequence_length, text_of
from hf_linear.data.arithmetic.formats import multiplication_paper, parity_running
from hf_linear.data.arithmetic.tokenizer import VOCABULARY, build_arithmetic_tokenizer

# The paper's example (Malach, ICML 2024, arXiv:2309.06979, and the authors' code), verbatim.
PAPER_EXAMPLE = (
    "[BOS] 1 2 3 4 x 5 6 7 8 = ( 4 x 1 + 3 x 1 0 + 2 x 1 0 0 + 1 x 1 0 0 0 ) x ( 8 x 1 + 7 x 1 0 + 6 x 1 0 0 "
    "+ 5 x 1 0 0 0 ) = 4x8 x 1 x 1 + 4x7 x 1 x 1 0 + 4x6 x 1 x 1 0 0 + 4x5 x 1 x 1 0 0 0 + 3x8 x 1 0 x 1 "
    "+ 3x7 x 1 0 x 1 0 + 3x6 x 1 0 x 1 0 0 + 3x5 x 1 0 x 1 0 0 0 + 2x8 x 1 0 0 x 1 + 2x7 x 1 0 0 x 1 0 "
    "+ 2x6 x 1 0 0 x 1 0 0 + 2x5 x 1 0 0 x 1 0 0 0 + 1x8 x 1 0 0 0 x 1 + 1x7 x 1 0 0 0 x 1 0 "
    "+ 1x6 x 1 0 0 0 x 1 0 0 + 1x5 x 1 0 0 0 x 1 0 0 0 = 3 2 + 2 8 0 + 2 4 0 0 + 2 0 0 0 0 + 2 4 0 + 2 1 0 0 "
    "+ 1 8 0 0 0 + 1 5 0 0 0 0 + 1 6 0 0 + 1 4 0 0 0 + 1 2 0 0 0 0 + 1 0 0 0 0 0 0 + 0 8 0 0 0 + 0 7 0 0 0 0 "
    "+ 0 6 0 0 0 0 0 + 0 5 0 0 0 0 0 0 = 0 7 0 0 6 6 5 2"
)
PAPER_VOCABULARY = (
    "[UNK] [BOS] 0 1 2 3 4 5 6 7 8 9 ( ) + x = " + " ".join(f"{a}x{b}" for a in range(10) for b in range(10))
).split()


# ----------------------------------------------------------------------------- tests


def test_paper_example_token_for_token():
    tokens = multiplication_paper(1234, 5678)
    assert tokens == PAPER_EXAMPLE.split()
    assert len(tokens) == 307
    assert prompt_of(tokens) == "[BOS] 1 2 3 4 x 5 6 7 8 ="
    assert answer_of(text_of(tokens)) == "0 7 0 0 6 6 5 2"
    assert text_of(tokens) == PAPER_EXAMPLE + " [EOS]"


NUMBER_CHECKS = {"multiplication": check_multiplication, "addition": check_addition}


@pytest.mark.parametrize("task, cot", [(task, cot) for task in NUMBER_CHECKS for cot in FORMATS[task]])
def test_number_formats_against_schoolbook(task, cot):
    check = NUMBER_CHECKS[task]
    rng = random.Random(cot)
    for n in range(1, 10):
        for m in range(1, 10):
            for _ in range(3):
                a, b = random_operand(rng, n), random_operand(rng, m)
                tokens = example_tokens(task, cot, (a, b))
                check(tokens, a, b, cot)
                assert len(tokens) == sequence_length(task, [n, m], cot)
    # extremes: all nines (every carry), the smallest operands, and a carry through every column
    for n, m in [(1, 1), (4, 4), (9, 9), (3, 7)]:
        for a, b in [(10**n - 1, 10**m - 1), (10 ** (n - 1), 10 ** (m - 1))]:
            check(example_tokens(task, cot, (a, b)), a, b, cot)
    check(example_tokens(task, cot, (9999, 1)), 9999, 1, cot)


def test_parity_running_against_xor_loop():
    rng = random.Random(0)
    for n in [1, 2, 3, 7, 8, 16, 33, 64]:
        for every in sorted({1, 2, 3, n // 2 or 1, n - 1 or 1, n} & set(range(1, n + 1))):
            for _ in range(3):
                bits = "".join(rng.choice("01") for _ in range(n))
                tokens = example_tokens("parity", "running", (bits,), every)
                check_parity(tokens, bits, every)
                assert len(tokens) == sequence_length("parity", [n], "running", every)
        bits = "1" * n
        assert example_tokens("parity", "direct", (bits,)) == parity_running(bits, n)
        assert len(example_tokens("parity", "direct", (bits,))) == sequence_length("parity", [n], "direct") == n + 3


def test_parity_threshold_steps_are_threshold_functions_of_earlier_tokens():
    rng = random.Random(1)
    for n in [1, 2, 3, 7, 8, 17, 40, 64]:
        for every in sorted({1, 2, 3, n // 2 or 1, n - 1 or 1, min(n, 18)} & set(range(1, min(n, 18) + 1))):
            for _ in range(3):
                bits = "".join(rng.choice("01") for _ in range(n))
                tokens = example_tokens("parity", "threshold", (bits,), every)
                check_parity_threshold(tokens, bits, every)
                assert (
                    len(tokens)
                    == sequence_length("parity", [n], "threshold", every)
                    == n + 5 + 2 * (-(-n // every) - 1)
                )
    check_parity_threshold(example_tokens("parity", "threshold", ("1" * 18,), 18), "1" * 18, 18)  # a = 9


def test_threshold_example_reads_as_documented():
    # a_t = AND(p_{t-1}, b_t): 0 0 1 0 0 1 0 1, p_t: 1 1 0 1 1 0 1 0; the last p after "="
    assert " ".join(example_tokens("parity", "threshold", ("10110111",), 1)) == (
        "[BOS] 1 0 1 1 0 1 1 1 = 0 1 0 1 1 0 0 1 0 1 1 0 0 1 1 = 0"
    )
    # blocks 10|11|01|11 with sums 1, 2, 1, 2: totals 1, 3, 2, 2 -> a 0 1 1 1, p 1 1 0 0
    assert " ".join(example_tokens("parity", "threshold", ("10110111",), 2)) == (
        "[BOS] 1 0 1 1 0 1 1 1 = 0 1 1 1 1 0 1 = 0"
    )
    assert " ".join(example_tokens("parity", "threshold", ("1011",), 4)) == "[BOS] 1 0 1 1 = 1 = 1"


def test_lengths_for_4x4_and_8_bits():
    assert [sequence_length("multiplication", [4, 4], cot) for cot in ("paper", "direct", "lsb")] == [307, 19, 80]
    assert [sequence_length("addition", [4, 4], cot) for cot in ("direct", "lsb")] == [16, 25]
    assert sequence_length("parity", [8], "running", every=2) == 15
    assert sequence_length("parity", [8], "running", every=1) == 19
    assert sequence_length("parity", [8], "direct") == 11
    assert sequence_length("multiplication", 8, "lsb") == 270
    assert [sequence_length("parity", [8], "threshold", k) for k in (1, 2, 8)] == [27, 19, 13]


def test_lsb_example_reads_as_documented():
    assert " ".join(example_tokens("multiplication", "lsb", (1234, 5678))) == (
        "[BOS] 1 2 3 4 x 5 6 7 8 = 4x8 3x8 2x8 1x8 2 7 8 9 0 + 4x7 3x7 2x7 1x7 8 3 6 8 0 2 5 2 6 9 0 "
        "+ 4x6 3x6 2x6 1x6 4 0 4 7 0 2 5 6 6 3 8 0 + 4x5 3x5 2x5 1x5 0 7 1 6 0 2 5 6 6 0 0 7 0 = 0 7 0 0 6 6 5 2"
    )
    addition = "[BOS] 9 8 7 6 + 5 4 3 = 0 9 1 1 1 4 1 0 = 1 0 4 1 9"
    assert " ".join(example_tokens("addition", "lsb", (9876, 543))) == addition


def test_answer_of_generated_texts():
    assert answer_of("[BOS] 1 x 2 = 0 2 [EOS]") == "0 2"
    assert answer_of("[PAD] [PAD] [BOS] 1 2 x 3 = 4 = 0 3 6 [EOS] [PAD] [PAD]") == "0 3 6"
    assert answer_of("[BOS] 1 x 2 = 0 2 [EOS] = 9 9") == "0 2"  # nothing after [EOS] counts
    assert answer_of("[BOS] 1 x 2 = 0 2 [PAD] [PAD]") == "0 2"
    assert answer_of("1 x 2 = 0 2") == "0 2"  # decoded with skip_special_tokens
    assert answer_of("[BOS] 1 2 x 3 4") == ""
    assert answer_of(["[BOS]", "1", "x", "2", "=", "0", "2"]) == "0 2"
    assert answer_of("[BOS] 1 x 2 =") == ""


GENERATED_OUTPUTS = [
    "[BOS] 1 x 2 = 0 2 [EOS]",
    "[PAD] [PAD] [BOS] 1 2 x 3 = 4 = 0 3 6 [EOS] [PAD] [PAD]",
    "[BOS] 1 x 2 = 0 2 [EOS] = 9 9",
    "[BOS] 1 x 2 = 0 2 [PAD] [PAD]",
    "1 x 2 = 0 2",
    "[BOS] 1 x 2 =",
    # no "=": no answer, even where the text is the reference itself
    "0 2",
    "0 2 [EOS]",
    "[BOS] 1 2 x 3 4",
    "[BOS] 1 x 2 [EOS] = 0 2",
    "",
]


@pytest.mark.slow
def test_hf_linear_eval_and_the_evaluate_metric_read_the_same_answer():
    """`hf-linear eval` marks examples with answer_of; the `evaluate` metric (loaded by path, so
    it carries its own copy of the rule) scores them: both must read every output alike."""
    from hf_linear.evaluation.exact_match import load_metric

    metric = load_metric()
    final_answer_tokens = sys.modules[type(metric).__module__].final_answer_tokens  # the metric file's own
    for output in GENERATED_OUTPUTS:
        assert final_answer_tokens(output) == answer_of(output).split(), output
    # a bare answer without "=" is wrong for both, though it equals the reference
    assert (
        metric.compute(predictions=["0 2", "[BOS] 1 x 2 = 0 2 [EOS]"], references=["0 2", "0 2"])["exact_match"] == 0.5
    )
    assert answer_of("0 2") != "0 2"


@pytest.mark.parametrize(
    "call, name",
    [
        (lambda: example_tokens("multiplication", "nonsense", (12, 34)), "cot"),
        (lambda: example_tokens("division", "paper", (12, 34)), "task"),
        (lambda: example_tokens("addition", "paper", (12, 34)), "cot"),
        (lambda: example_tokens("parity", "running", ("0110",), 5), "every"),
        (lambda: example_tokens("parity", "running", ("0110",), 0), "every"),
        (lambda: example_tokens("parity", "running", ("0110",)), "every"),
        (lambda: example_tokens("parity", "direct", ("0110",), 2), "every"),
        (lambda: example_tokens("parity", "direct", ("0120",)), "bits"),
        (lambda: example_tokens("parity", "direct", ("",)), "bits"),
        (lambda: example_tokens("multiplication", "paper", (0, 34)), "a"),
        (lambda: example_tokens("multiplication", "lsb", (12, 10**9)), "b"),
        (lambda: sequence_length("multiplication", [0, 4], "paper"), "digits"),
        (lambda: sequence_length("multiplication", [4, 10], "lsb"), "digits"),
        (lambda: sequence_length("parity", [0], "direct"), "digits"),
        (lambda: sequence_length("parity", [65], "direct"), "digits"),
        (lambda: sequence_length("parity", [8], "running", 9), "every"),
        (lambda: sequence_length("parity", [30], "threshold", 19), "every"),
        (lambda: example_tokens("parity", "threshold", ("0110",)), "every"),
        (lambda: example_tokens("multiplication", "lsb", (12, 34), 2), "every"),
    ],
)
def test_bad_arguments_name_themselves(call, name):
    with pytest.raises(ValueError, match=rf"\b{name}="):
        call()


# ----------------------------------------------------------------------------- tokenizer


def test_vocabulary_starts_with_the_papers_117_tokens():
    assert list(VOCABULARY[:117]) == PAPER_VOCABULARY
    assert list(VOCABULARY[117:]) == ["[EOS]", "[PAD]"]
    tokenizer = build_arithmetic_tokenizer()
    assert tokenizer.convert_ids_to_tokens(list(range(119))) == PAPER_VOCABULARY + ["[EOS]", "[PAD]"]
    assert (tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id, tokenizer.unk_token_id) == (
        1,
        117,
        118,
        0,
    )
    assert tokenizer.convert_tokens_to_ids("7x3") == 17 + 73


def test_tokenizer_round_trip_after_save_and_autotokenizer_load(tmp_path):
    build_arithmetic_tokenizer().save_pretrained(tmp_path)
    tokenizer = AutoTokenizer.from_pretrained(tmp_path)
    assert tokenizer.padding_side == "left"
    rng = random.Random(1)
    examples = [
        example_tokens("multiplication", cot, (random_operand(rng, 4), random_operand(rng, 3)))
        for cot in FORMATS["multiplication"]
    ]
    examples += [example_tokens("addition", cot, (99, 1)) for cot in FORMATS["addition"]]
    examples += [example_tokens("parity", cot, ("1011001",), 3) for cot in ("running", "threshold")]
    for tokens in examples:
        text = text_of(tokens)
        ids = tokenizer(text)["input_ids"]  # no special tokens added: [BOS]/[EOS] come from the text
        assert ids == [VOCABULARY.index(t) for t in [*tokens, "[EOS]"]]
        assert tokenizer.decode(ids) == text
    assert tokenizer("[BOS] 1 2 ? =")["input_ids"] == [1, 3, 4, 0, 16]  # unknown word -> [UNK]
    batch = tokenizer(["[BOS] 1 x 2 =", "[BOS] 1 2 x 3 4 ="], padding=True)
    assert batch["input_ids"][0] == [118, 118, 1, 3, 15, 4, 16]
    assert batch["attention_mask"][0] == [0, 0, 1, 1, 1, 1, 1]
