"""A saved checkpoint without hf_linear: the Auto classes with trust_remote_code, the tokenizer,
and the text-generation pipeline.

The subprocess runs `python -I` with stdin closed (an interactive "run custom code? [y/N]"
prompt cannot wait for an answer, and its text is looked for in the output) and with an import
hook that makes `import hf_linear` fail as if it were not installed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch
from helpers import tiny_model
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
from transformers import AutoTokenizer, PreTrainedTokenizerFast, pipeline

import hf_linear  # noqa: F401  (registers the Auto classes, marks the classes for save_pretrained)
from hf_linear import MLPLMConfig, MLPLMForCausalLM

PROMPT_MARK = "[y/N]"  # the end of transformers' trust_remote_code question
WORDS = ["[UNK]", "[BOS]", *"0123456789", "(", ")", "+", "x", "=", "[EOS]", "[PAD]"]
SPECIAL_IDS = [WORDS.index(t) for t in ("[UNK]", "[BOS]", "[EOS]", "[PAD]")]


def word_level_tokenizer(space_prefix_decoder: bool = False) -> PreTrainedTokenizerFast:
    """A word-level tokenizer built like hf_linear's arithmetic tokenizer (WordLevel + WhitespaceSplit).

    space_prefix_decoder: decode every token as " token" (and "[BOS]" as "[BOS]"), so that
    separately decoded pieces keep the space between them (see test_pipeline_keeps_the_space_*).
    """
    word_level = Tokenizer(models.WordLevel(vocab={t: i for i, t in enumerate(WORDS)}, unk_token="[UNK]"))
    word_level.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    if space_prefix_decoder:
        word_level.decoder = decoders.Sequence([decoders.Replace(Regex("^"), " "), decoders.Replace(" [BOS]", "[BOS]")])
    return PreTrainedTokenizerFast(
        tokenizer_object=word_level,
        bos_token="[BOS]",
        eos_token="[EOS]",
        pad_token="[PAD]",
        unk_token="[UNK]",
        padding_side="left",
        clean_up_tokenization_spaces=False,
    )


def word_model() -> MLPLMForCausalLM:
    """A tiny MLPLM over WORDS that never generates a special token."""
    model = tiny_model(
        "mlp",
        vocab_size=len(WORDS),
        context_length=6,
        hidden_size=4,
        num_mlp_layers=2,
        bos_token_id=1,
        eos_token_id=WORDS.index("[EOS]"),
        pad_token_id=WORDS.index("[PAD]"),
    )
    with torch.no_grad():
        model.lm_head.bias[SPECIAL_IDS] = -1e4  # generate words only, so that decoded text is never empty
    return model


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """(directory, reference outputs) of a saved model + tokenizer."""
    root = tmp_path_factory.mktemp("remote-code")
    model, tokenizer = word_model(), word_level_tokenizer()
    model.save_pretrained(root / "ckpt")
    tokenizer.save_pretrained(root / "ckpt")
    ids = torch.tensor([tokenizer("[BOS] 1 2 x 3 4 = ( 4 x 1 +")["input_ids"]])  # 12 tokens: slides beyond T=6
    with torch.no_grad():
        reference = {
            "ids": ids,
            "logits": model(ids).logits,
            "hidden": model.model(ids).last_hidden_state,
            "generated": model.generate(ids[:, :4], max_new_tokens=8, do_sample=False),
        }
    torch.save(reference, root / "reference.pt")
    return root, reference


@pytest.fixture(scope="module")
def without_hf_linear(checkpoint):
    """Run the loading script once in a fresh interpreter where hf_linear is not importable."""
    root, _ = checkpoint
    script = textwrap.dedent(
        f"""
        import contextlib, importlib.abc, io, json, sys

        class BlockHFLinear(importlib.abc.MetaPathFinder):  # as if hf_linear were not installed
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] == "hf_linear":
                    raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        sys.meta_path.insert(0, BlockHFLinear())
        try:
            import hf_linear
            raise SystemExit("hf_linear is importable")
        except ImportError:
            pass

        import torch
        from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, AutoTokenizer

        ckpt, ref = {str(root / "ckpt")!r}, torch.load({str(root / "reference.pt")!r})
        results = {{}}

        # a plain AutoTokenizer call, with its output captured to see whether it asked
        captured = io.StringIO()
        with contextlib.redirect_stdout(captured), contextlib.redirect_stderr(captured):
            plain = AutoTokenizer.from_pretrained(ckpt)
        results["plain_tokenizer_prompted"] = {PROMPT_MARK!r} in captured.getvalue()
        results["plain_tokenizer_ids"] = plain("[BOS] 1 2 x 3 4 = ( 4 x 1 +")["input_ids"]

        tokenizer = AutoTokenizer.from_pretrained(ckpt, trust_remote_code=False)  # needs no custom code
        results["tokenizer_ids"] = tokenizer("[BOS] 1 2 x 3 4 = ( 4 x 1 +")["input_ids"]
        results["tokenizer"] = [tokenizer.padding_side, tokenizer.pad_token, tokenizer.eos_token, len(tokenizer)]

        config = AutoConfig.from_pretrained(ckpt, trust_remote_code=True)
        causal_lm = AutoModelForCausalLM.from_pretrained(ckpt, trust_remote_code=True)
        base = AutoModel.from_pretrained(ckpt, trust_remote_code=True)
        results["modules"] = [type(o).__module__.split(".")[0] for o in (config, causal_lm, base)]
        results["classes"] = [type(o).__name__ for o in (config, causal_lm, base)]
        with torch.no_grad():
            results["logits_equal"] = torch.equal(causal_lm(ref["ids"]).logits, ref["logits"])
            results["hidden_equal"] = torch.equal(base(ref["ids"]).last_hidden_state, ref["hidden"])
            generated = causal_lm.generate(ref["ids"][:, :4], max_new_tokens=8, do_sample=False)
        results["generate_equal"] = torch.equal(generated, ref["generated"])

        # a remote-code model saved again keeps all its auto_map entries
        causal_lm.save_pretrained({str(root / "resaved")!r})
        results["resaved_auto_map"] = json.load(open({str(root / "resaved" / "config.json")!r}))["auto_map"]
        print("RESULTS=" + json.dumps(results))
        """
    )
    env = dict(os.environ, HF_MODULES_CACHE=str(root / "modules"), HF_HUB_OFFLINE="1")
    result = subprocess.run(
        [sys.executable, "-I", "-c", script],
        cwd=root,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    line = next(line for line in result.stdout.splitlines() if line.startswith("RESULTS="))
    return json.loads(line.removeprefix("RESULTS=")), result.stdout + result.stderr


def test_config_auto_map_names_all_three_auto_classes(checkpoint):
    root, _ = checkpoint
    auto_map = json.loads((root / "ckpt" / "config.json").read_text())["auto_map"]
    assert auto_map == {
        "AutoConfig": "configuration_hf_linear.MLPLMConfig",
        "AutoModel": "modeling_hf_linear.MLPLMModel",
        "AutoModelForCausalLM": "modeling_hf_linear.MLPLMForCausalLM",
    }
    assert not any((root / "ckpt").glob("*token*.py"))  # the tokenizer needs no custom code


@pytest.mark.slow
def test_auto_classes_load_without_hf_linear(without_hf_linear):
    results, output = without_hf_linear
    assert results["modules"] == ["transformers_modules"] * 3  # the checkpoint's own code
    assert results["classes"] == ["MLPLMConfig", "MLPLMForCausalLM", "MLPLMModel"]
    assert results["logits_equal"] and results["hidden_equal"] and results["generate_equal"]
    assert set(results["resaved_auto_map"]) == {"AutoConfig", "AutoModel", "AutoModelForCausalLM"}


@pytest.mark.slow
def test_tokenizer_loads_without_hf_linear_and_without_a_prompt(without_hf_linear, checkpoint):
    results, output = without_hf_linear
    _, reference = checkpoint
    assert results["tokenizer_ids"] == results["plain_tokenizer_ids"] == reference["ids"][0].tolist()
    assert results["tokenizer"] == ["left", "[PAD]", "[EOS]", len(WORDS)]
    # everything but the captured plain AutoTokenizer call: no question was asked
    assert PROMPT_MARK not in output


@pytest.mark.slow
@pytest.mark.xfail(
    strict=False,
    reason=(
        "transformers 5.24: AutoTokenizer.from_pretrained resolves the model config with "
        "AutoConfig.from_pretrained(path, trust_remote_code=None) before reading tokenizer_config.json; "
        "config.json needs auto_map.AutoConfig for trust_remote_code loading, so the plain call asks "
        "(15 s timeout) unless hf_linear is imported or trust_remote_code=False/True is passed"
    ),
)
def test_plain_auto_tokenizer_without_hf_linear_does_not_ask(without_hf_linear):
    results, _ = without_hf_linear
    assert not results["plain_tokenizer_prompted"]


def test_plain_auto_tokenizer_with_hf_linear_imported_does_not_ask(checkpoint, monkeypatch):
    root, reference = checkpoint
    monkeypatch.setattr("builtins.input", lambda *args: pytest.fail(f"AutoTokenizer asked: {args}"))
    tokenizer = AutoTokenizer.from_pretrained(root / "ckpt")
    assert tokenizer("[BOS] 1 2 x 3 4 = ( 4 x 1 +")["input_ids"] == reference["ids"][0].tolist()


# ---------------------------------------------------------------------------------------------
# text-generation pipeline: the pipeline returns prompt_text + decode(new tokens); a word-level
# tokenizer without a decoder joins tokens with spaces but puts none before the first one, so
# the continuation is glued to the prompt ("... x 3 4 =" + "7 2" → "... x 3 4 =7 2").


def expected_pipeline_text(model, tokenizer, prompt: str, max_new_tokens: int) -> str:
    ids = tokenizer(prompt, return_tensors="pt")
    with torch.no_grad():
        out = model.generate(**ids, max_new_tokens=max_new_tokens, do_sample=False)
    new_words = [
        t
        for t in tokenizer.convert_ids_to_tokens(out[0, ids["input_ids"].shape[1] :].tolist())
        if t not in tokenizer.all_special_tokens
    ]
    assert new_words  # the special tokens are never generated (word_model)
    return prompt + " " + " ".join(new_words)


def test_pipeline_keeps_the_space_with_a_space_prefix_decoder():
    model, tokenizer = word_model(), word_level_tokenizer(space_prefix_decoder=True)
    prompt = "[BOS] 1 2 x 3 4 ="
    generator = pipeline("text-generation", model=model, tokenizer=tokenizer)
    out = generator(prompt, max_new_tokens=5, do_sample=False)
    assert out[0]["generated_text"] == expected_pipeline_text(model, tokenizer, prompt, 5)
    # and decoding a whole sequence is unchanged
    ids = tokenizer("[BOS] 1 2 x 3 4 = 7 [EOS]")["input_ids"]
    assert tokenizer.decode(ids) == "[BOS] 1 2 x 3 4 = 7 [EOS]"
    assert tokenizer.decode(ids, skip_special_tokens=True).strip() == "1 2 x 3 4 = 7"


def test_pipeline_glues_the_continuation_without_a_decoder():
    model, tokenizer = word_model(), word_level_tokenizer()
    prompt = "[BOS] 1 2 x 3 4 ="
    out = pipeline("text-generation", model=model, tokenizer=tokenizer)(prompt, max_new_tokens=5, do_sample=False)
    expected = expected_pipeline_text(model, tokenizer, prompt, 5)
    assert out[0]["generated_text"] == prompt + expected[len(prompt) + 1 :]  # the space is lost


def test_pipeline_keeps_the_space_with_the_arithmetic_tokenizer():
    try:
        from hf_linear.data.arithmetic.tokenizer import build_arithmetic_tokenizer
    except ImportError as error:
        pytest.skip(f"arithmetic tokenizer not importable: {error}")
    tokenizer = build_arithmetic_tokenizer()
    torch.manual_seed(0)
    model = MLPLMForCausalLM(MLPLMConfig(vocab_size=len(tokenizer), context_length=6, hidden_size=4)).eval()
    with torch.no_grad():
        model.lm_head.bias[tokenizer.all_special_ids] = -1e4
    prompt = "[BOS] 1 2 x 3 4 ="
    out = pipeline("text-generation", model=model, tokenizer=tokenizer)(prompt, max_new_tokens=5, do_sample=False)
    assert out[0]["generated_text"] == expected_pipeline_text(model, tokenizer, prompt, 5)
