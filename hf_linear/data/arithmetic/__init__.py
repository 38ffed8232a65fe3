"""Chain-of-Thought arithmetic data: the paper's multiplication, and addition and parity.

One module per idea:

* `formats`    — the pure reference function of every CoT format (the paper made visible), the
                 token convention, and `prompt_of` / `answer_of` / `text_of`;
* `vectorised` — the same formats built with numpy for whole blocks of examples (fast path);
* `registry`   — the one table declaring each format (reference + builder + description);
* `spec`       — `ArithmeticSpec` (checked arguments; lengths derived from the formats) and the
                 prompt helpers that refuse operands a dataset never holds;
* `splits`     — the splitmix64 hash split and the seeded drawing of inputs;
* `strings`    — Arrow text columns straight from token ids;
* `builder`    — `build_arithmetic_dataset` (ids -> Arrow -> DatasetDict), citation, fingerprints;
* `stream`     — `ArithmeticStream`, endless training examples on the fly;
* `card`       — the dataset card, `save_arithmetic_dataset`, `push_arithmetic_dataset_to_hub`;
* `tokenizer`  — the 119-token word-level tokenizer.

Import the public API from here: ``from hf_linear.data.arithmetic import build_arithmetic_dataset``.
"""

from hf_linear.data.arithmetic.builder import build_arguments_of, build_arithmetic_dataset, spec_of
from hf_linear.data.arithmetic.card import push_arithmetic_dataset_to_hub, render_dataset_card, save_arithmetic_dataset
from hf_linear.data.arithmetic.formats import answer_of, prompt_of, text_of
from hf_linear.data.arithmetic.registry import FORMATS, REGISTRY, Format, example_tokens, get_format
from hf_linear.data.arithmetic.spec import ArithmeticSpec, arithmetic_prompt, prompt_for, sequence_length
from hf_linear.data.arithmetic.stream import ArithmeticStream
from hf_linear.data.arithmetic.tokenizer import build_arithmetic_tokenizer

__all__ = [
    "FORMATS",
    "REGISTRY",
    "ArithmeticSpec",
    "ArithmeticStream",
    "Format",
    "answer_of",
    "arithmetic_prompt",
    "build_arguments_of",
    "build_arithmetic_dataset",
    "build_arithmetic_tokenizer",
    "example_tokens",
    "get_format",
    "prompt_for",
    "prompt_of",
    "push_arithmetic_dataset_to_hub",
    "render_dataset_card",
    "save_arithmetic_dataset",
    "sequence_length",
    "spec_of",
    "text_of",
]
