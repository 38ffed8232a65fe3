"""hf_linear.convert_authors against the authors' formulation, written out here.

`AuthorsLinearModel` below is the model of github.com/emalach/LinearLM (models/linear_model.py):
a dense nn.Linear(T·d, T·d) multiplied by a block lower-triangular mask in every forward, no
bias in that product, and (activation="relu") relu → Linear(d, d) → relu before the output
layer. Inputs shorter than T are padded on the right with token 0, longer ones keep the last T.
"""

from __future__ import annotations

import pickle
import warnings

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from tokenizers import Tokenizer, models, pre_tokenizers
from torch import nn
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerFast

import hf_linear  # noqa: F401
from hf_linear.cli import SUBCOMMANDS
from hf_linear.convert_authors import NEVER_PREDICTED_BIAS, MaskedEntryWarning, convert_state_dict, main

T, D = 5, 4


class AuthorsLinearModel(nn.Module):
    def __init__(self, num_tokens, T=128, d=256, activation="none"):
        super().__init__()
        self.d, self.T = d, T
        self.in_embedding = nn.Embedding(num_tokens, d)
        self.linear1 = nn.Linear(T * d, T * d)
        self.activation = None
        if activation == "relu":
            self.activation = nn.ReLU()
            self.linear2 = nn.Linear(d, d)
        self.out_embedding = nn.Linear(d, num_tokens)
        self.mask = nn.Parameter((torch.triu(torch.ones(T, T)) == 1).transpose(0, 1), requires_grad=False)

    def forward(self, x):
        if x.shape[-1] < self.T:
            x = F.pad(x, (0, self.T - x.shape[-1]))
        if x.shape[-1] > self.T:
            x = x[:, -self.T :]
        x = self.in_embedding(x).view(-1, self.T * self.d)
        w = self.linear1.weight.view(self.T, self.d, self.T, self.d) * self.mask.view(self.T, 1, self.T, 1)
        x = F.linear(x, w.view(self.T * self.d, self.T * self.d)).view(-1, self.T, self.d)
        if self.activation is not None:
            x = self.activation(self.linear2(self.activation(x)))
        return self.out_embedding(x)


def word_tokenizer(words) -> PreTrainedTokenizerFast:
    word_level = Tokenizer(models.WordLevel(vocab={w: i for i, w in enumerate(words)}, unk_token=words[0]))
    word_level.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=word_level, unk_token=words[0], clean_up_tokenization_spaces=False)


WORDS = ["[UNK]", "[BOS]", *"0123456789", "x", "="]  # V = 14
V = len(WORDS)


@pytest.fixture
def tokenizer_dir(tmp_path):
    tokenizer = word_tokenizer(WORDS)
    tokenizer.add_special_tokens({"bos_token": "[BOS]", "pad_token": "[UNK]"})
    tokenizer.save_pretrained(tmp_path / "tokenizer")
    return str(tmp_path / "tokenizer")


def authors_model(activation="none", seed=0, vocab=V):
    torch.manual_seed(seed)
    return AuthorsLinearModel(vocab, T=T, d=D, activation=activation).eval()


def convert_quietly(*args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MaskedEntryWarning)
        return main(*args, **kwargs)


@pytest.mark.parametrize("activation", ["none", "relu"])
def test_converted_checkpoint_computes_the_authors_logits(tmp_path, tokenizer_dir, activation):
    authors = authors_model(activation)
    torch.save(authors.state_dict(), tmp_path / "authors.pt")
    assert (
        convert_quietly(
            [
                str(tmp_path / "authors.pt"),
                str(tmp_path / "out"),
                "--tokenizer",
                tokenizer_dir,
                "--context-length",
                str(T),
            ]
        )
        == 0
    )
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "out").eval()
    assert model.config.model_type == ("mlp_lm" if activation == "relu" else "linear_lm")
    assert (model.config.context_length, model.config.hidden_size, model.config.vocab_size) == (T, D, V)
    assert model.model.mixing.bias.abs().sum() == 0  # the authors' forward adds no linear1.bias

    ids = torch.randint(0, V, (3, T + 3), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        for length in (1, T - 2, T):  # the authors pad on the right: the first `length` outputs count
            torch.testing.assert_close(
                model(ids[:, :length]).logits, authors(ids[:, :length])[:, :length], rtol=1e-5, atol=1e-5
            )
        # longer: the authors keep the last T tokens; the last position is the same window for both
        torch.testing.assert_close(model(ids).logits[:, -1], authors(ids)[:, -1], rtol=1e-5, atol=1e-5)

        # greedy decoding as in the authors' get_text (argmax instead of sampling), up to T tokens
        prompt = ids[:1, :2]
        expected = prompt
        while expected.shape[1] < T:
            expected = torch.cat([expected, authors(expected)[:, expected.shape[1] - 1].argmax(-1, keepdim=True)], 1)
        got = model.generate(prompt, max_new_tokens=T - 2, do_sample=False, eos_token_id=None)
    assert got.tolist() == expected.tolist()

    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "out")
    assert tokenizer("[BOS] 1 2 x 3 =")["input_ids"] == [1, 3, 4, 12, 5, 13]
    assert (tmp_path / "out" / "model.safetensors").exists()
    assert (tmp_path / "out" / "modeling_hf_linear.py").exists()  # loadable with trust_remote_code


def test_packed_blocks_are_the_transposed_dense_blocks():
    authors = authors_model()
    config, converted = convert_state_dict(authors.state_dict())
    dense = authors.linear1.weight.detach()
    k = 0
    for i in range(T):
        for j in range(i + 1):
            block = dense[i * D : (i + 1) * D, j * D : (j + 1) * D]  # (out, in) of nn.Linear
            assert torch.equal(converted["model.mixing.weight"][k], block.T)  # ours: (in, out)
            k += 1
    assert k == converted["model.mixing.weight"].shape[0] == T * (T + 1) // 2


def test_masked_entries_warn_by_default_and_fail_with_strict_mask(tmp_path, tokenizer_dir):
    authors = authors_model()  # nn.Linear init: the masked half is random, as in the authors' checkpoints
    with pytest.warns(MaskedEntryWarning, match="above the block diagonal"):
        convert_state_dict(authors.state_dict())
    with pytest.raises(ValueError, match="strict-mask"):
        convert_state_dict(authors.state_dict(), strict_mask=True)

    # exported with the mask applied: no warning, also under --strict-mask
    state = authors.state_dict()
    mask = torch.kron(torch.tril(torch.ones(T, T)), torch.ones(D, D))
    state["linear1.weight"] = state["linear1.weight"] * mask
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        convert_state_dict(state, strict_mask=True)
    torch.save(state, tmp_path / "masked.pt")
    assert (
        main([str(tmp_path / "masked.pt"), str(tmp_path / "out"), "--tokenizer", tokenizer_dir, "--strict-mask"]) == 0
    )
    torch.save(authors.state_dict(), tmp_path / "raw.pt")
    assert main([str(tmp_path / "raw.pt"), str(tmp_path / "out2"), "--tokenizer", tokenizer_dir, "--strict-mask"]) == 1


def test_inconsistent_inputs_are_clear_errors(tmp_path, tokenizer_dir, capsys):
    state = authors_model().state_dict()
    with pytest.raises(ValueError, match="context-length 6"):
        convert_state_dict(state, context_length=6)
    upper = dict(state, mask=torch.triu(torch.ones(T, T, dtype=torch.bool)))
    with pytest.raises(ValueError, match="not block lower-triangular"):
        convert_state_dict(upper)
    with pytest.raises(ValueError, match="missing linear1.weight"):
        convert_state_dict({k: v for k, v in state.items() if k != "linear1.weight"})
    with pytest.raises(ValueError, match="unexpected"):
        convert_state_dict(dict(state, **{"linear3.weight": torch.zeros(2)}))
    # a tokenizer with fewer tokens than the model
    small = word_tokenizer(WORDS[:-3])
    small.save_pretrained(tmp_path / "small")
    torch.save(state, tmp_path / "authors.pt")
    assert (
        convert_quietly([str(tmp_path / "authors.pt"), str(tmp_path / "out"), "--tokenizer", str(tmp_path / "small")])
        == 1
    )
    assert "tokenizer has 11 tokens" in capsys.readouterr().err


class _Payload:
    def __reduce__(self):  # what an unsafe torch.load would run
        return (open, ("PWNED", "w"))


def test_pickled_objects_are_refused_never_run(tmp_path, tokenizer_dir, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    state = authors_model().state_dict()
    with open(tmp_path / "evil.pt", "wb") as f:
        torch.save({**state, "extra": _Payload()}, f)
    assert main([str(tmp_path / "evil.pt"), str(tmp_path / "out"), "--tokenizer", tokenizer_dir]) == 1
    assert "refusing to load" in capsys.readouterr().err
    assert not (tmp_path / "PWNED").exists()
    # plain pickle files too
    (tmp_path / "evil.bin").write_bytes(pickle.dumps(_Payload()))
    assert main([str(tmp_path / "evil.bin"), str(tmp_path / "out"), "--tokenizer", tokenizer_dir]) == 1
    assert not (tmp_path / "PWNED").exists()


def test_safetensors_prefixed_keys_and_linear1_bias(tmp_path, tokenizer_dir):
    authors = authors_model("relu")
    state = {f"module.{k}": v.contiguous() for k, v in authors.state_dict().items()}  # saved from DDP
    save_file(state, str(tmp_path / "authors.safetensors"))
    assert (
        convert_quietly(
            [
                str(tmp_path / "authors.safetensors"),
                str(tmp_path / "out"),
                "--tokenizer",
                tokenizer_dir,
                "--use-linear1-bias",
            ]
        )
        == 0
    )
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "out")
    torch.testing.assert_close(model.model.mixing.bias, authors.linear1.bias.detach().view(T, D), rtol=0, atol=0)


def test_tokenizer_with_more_tokens_never_predicts_them(tmp_path):
    authors = authors_model()
    torch.save(authors.state_dict(), tmp_path / "authors.pt")
    bigger = word_tokenizer(WORDS)
    bigger.add_special_tokens({"bos_token": "[BOS]", "eos_token": "[EOS]", "pad_token": "[PAD]"})  # V + 2
    bigger.save_pretrained(tmp_path / "bigger")
    assert (
        convert_quietly([str(tmp_path / "authors.pt"), str(tmp_path / "out"), "--tokenizer", str(tmp_path / "bigger")])
        == 0
    )
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "out").eval()
    assert model.config.vocab_size == V + 2
    assert (model.config.eos_token_id, model.config.pad_token_id) == (V, V + 1)
    ids = torch.randint(0, V, (2, T), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        logits = model(ids).logits
    torch.testing.assert_close(logits[..., :V], authors(ids), rtol=1e-5, atol=1e-5)
    assert (logits[..., V:] == NEVER_PREDICTED_BIAS).all()
    torch.testing.assert_close(logits.softmax(-1)[..., :V], authors(ids).softmax(-1), rtol=1e-5, atol=1e-6)


def test_tokenizer_one_short_gets_the_authors_pad_token(tmp_path):
    authors = authors_model(vocab=V + 1)  # the authors' TinyStories model: GPT-2's tokens + [PAD]
    torch.save(authors.state_dict(), tmp_path / "authors.pt")
    word_tokenizer(WORDS).save_pretrained(tmp_path / "tok")  # V tokens, no pad token
    assert (
        convert_quietly([str(tmp_path / "authors.pt"), str(tmp_path / "out"), "--tokenizer", str(tmp_path / "tok")])
        == 0
    )
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "out")
    assert (tokenizer.pad_token, tokenizer.pad_token_id, len(tokenizer)) == ("[PAD]", V, V + 1)
    assert AutoModelForCausalLM.from_pretrained(tmp_path / "out").config.pad_token_id == V


def test_cli_has_the_subcommand():
    assert SUBCOMMANDS["convert-authors"][0] == "hf_linear.convert_authors"


def test_authors_product_model_with_the_arithmetic_tokenizer(tmp_path):
    pytest.importorskip("hf_linear.data.arithmetic.tokenizer")
    authors = authors_model("relu", vocab=117)  # the paper's multiplication vocabulary (joined digit pairs)
    torch.save(authors.state_dict(), tmp_path / "authors.pt")
    assert convert_quietly([str(tmp_path / "authors.pt"), str(tmp_path / "out"), "--tokenizer", "arithmetic"]) == 0
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "out")
    ids = tokenizer("[BOS] 1 2 x 3 =", return_tensors="pt")["input_ids"]
    assert ids.tolist() == [[1, 3, 4, 15, 5, 16]]  # the authors' ids: [UNK] [BOS] 0-9 ( ) + x = 0x0 ...
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "out").eval()
    assert model.config.vocab_size == len(tokenizer) == 119
    with torch.no_grad():
        ids = ids[:, :T]
        torch.testing.assert_close(model(ids).logits[..., :117], authors(ids), rtol=1e-5, atol=1e-5)
