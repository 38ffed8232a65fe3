"""Chain-of-Thought arithmetic data (the paper's multiplication, and addition and parity)."""

from hf_linear.data.arithmetic.dataset import (
    CITATION,
    ArithmeticSpec,
    ArithmeticStream,
    build_arithmetic_dataset,
    push_arithmetic_dataset_to_hub,
    save_arithmetic_dataset,
)
from hf_linear.data.arithmetic.formats import (
    FORMATS,
    answer_of,
    example_tokens,
    prompt_of,
    sequence_length,
    text_of,
)
from hf_linear.data.arithmetic.tokenizer import build_arithmetic_tokenizer
