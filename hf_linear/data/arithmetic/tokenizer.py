"""Word-level tokenizer of the arithmetic datasets (`tokenizers` WordLevel + WhitespaceSplit).

Vocabulary, in this fixed order (ids never change between runs or machines):

* ids 0..116 — the paper's 117 tokens in the paper's order:
  ``[UNK] [BOS] 0 1 2 3 4 5 6 7 8 9 ( ) + x =`` then the joined digit pairs ``0x0 0x1 ... 9x9``
  (pair ``AxB`` has id 17 + 10*A + B), so the ``paper`` format has exactly the paper's ids;
* 117 ``[EOS]``, 118 ``[PAD]`` — the specials the paper's code does not need (its sequences all
  have one length) but `generate` and batching do.

Every format of `hf_linear.data.arithmetic.registry` (multiplication, addition, parity) uses only these 119
tokens, so one tokenizer serves all datasets.

The tokenizer adds NO special tokens itself: dataset texts already hold their [BOS] and [EOS],
and prompts their [BOS]. Padding is on the LEFT, so that batched generation continues every
prompt right after its last token.
"""

from __future__ import annotations

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

from hf_linear.data.arithmetic.formats import BOS, EOS, PAD, UNK

PAPER_VOCABULARY: tuple[str, ...] = (
    UNK,
    BOS,
    *"0123456789",
    "(",
    ")",
    "+",
    "x",
    "=",
    *(f"{a}x{b}" for a in range(10) for b in range(10)),
)
VOCABULARY: tuple[str, ...] = (*PAPER_VOCABULARY, EOS, PAD)
TOKEN_TO_ID: dict[str, int] = {token: index for index, token in enumerate(VOCABULARY)}

DIGIT_ID = TOKEN_TO_ID["0"]  # digit d has id DIGIT_ID + d
PAIR_ID = TOKEN_TO_ID["0x0"]  # pair AxB has id PAIR_ID + 10*A + B


def word_level_tokenizer(token_to_id: dict[str, int]) -> PreTrainedTokenizerFast:
    """A whitespace-split word-level tokenizer of `token_to_id` (which holds [UNK], [BOS], [EOS],
    [PAD]), left padding, no added specials: the arithmetic and program data's kind."""
    word_level = Tokenizer(models.WordLevel(vocab=token_to_id, unk_token=UNK))
    word_level.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    # Decoding writes every token after a space, as GPT-2's BPE does, except [BOS], which starts
    # a text: the decoded continuation of a prompt (" 5 6 ...", what `pipeline` appends to the
    # prompt text) then keeps its space, and a whole example still decodes as "[BOS] 1 2 x ...".
    word_level.decoder = decoders.Sequence([decoders.Replace(Regex("^"), " "), decoders.Replace(f" {BOS}", BOS)])
    return PreTrainedTokenizerFast(
        tokenizer_object=word_level,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
        unk_token=UNK,
        padding_side="left",
        clean_up_tokenization_spaces=False,
    )


def build_arithmetic_tokenizer() -> PreTrainedTokenizerFast:
    """The arithmetic tokenizer (119 tokens, see the module docstring); save it with `save_pretrained`
    and load it back with `AutoTokenizer.from_pretrained(directory)`."""
    return word_level_tokenizer(TOKEN_TO_ID)
