"""`hf-linear inspect`: block norms of the masked map, against a plain loop over the blocks."""

from __future__ import annotations

import json

import pytest
import torch
import yaml
from transformers import AutoModelForCausalLM, AutoTokenizer

from hf_linear import LinearLMConfig, LinearLMForCausalLM, MLPLMConfig, MLPLMForCausalLM
from hf_linear.analysis.block_norms import block_norms, inspect_checkpoint, main
from hf_linear.data.arithmetic import build_arithmetic_tokenizer, sequence_length
from hf_linear.data.arithmetic.formats import segments_of

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def norms_by_loop(model) -> torch.Tensor:
    """‖W[i, j]‖_F block by block, read from the packed weight at index i(i+1)/2 + j."""
    weight = model.model.mixing.weight.detach()
    T = model.config.context_length
    norms = torch.full((T, T), float("nan"))
    for i in range(T):
        for j in range(i + 1):
            norms[i, j] = torch.sqrt((weight[i * (i + 1) // 2 + j] ** 2).sum())
    return norms


@pytest.mark.parametrize(
    "model_class,config_class", [(LinearLMForCausalLM, LinearLMConfig), (MLPLMForCausalLM, MLPLMConfig)]
)
def test_block_norms_match_a_loop_over_blocks(model_class, config_class):
    torch.manual_seed(0)
    model = model_class(config_class(context_length=7, hidden_size=3, vocab_size=20))
    torch.testing.assert_close(block_norms(model), norms_by_loop(model), equal_nan=True)
    assert torch.isnan(block_norms(model)[0, 1]) and not torch.isnan(block_norms(model)[6, 6])


def test_segments_cut_at_each_equals():
    tokens = ["[BOS]", "1", "x", "2", "=", "2", "=", "2", "[EOS]"]
    assert segments_of(tokens) == [
        {"name": "prompt", "start": 0, "end": 4},
        {"name": "cot step 1", "start": 5, "end": 6},
        {"name": "answer", "start": 7, "end": 8},
    ]


@pytest.fixture(scope="module")
def arithmetic_checkpoint(tmp_path_factory):
    """A tiny untrained LinearLM saved as a run directory of 2x2 `lsb` multiplication."""
    path = tmp_path_factory.mktemp("checkpoint")
    tokenizer = build_arithmetic_tokenizer()
    window = sequence_length("multiplication", 2, "lsb") + 1  # + [EOS]
    torch.manual_seed(0)
    config = LinearLMConfig(
        context_length=window,
        hidden_size=4,
        vocab_size=len(tokenizer),
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    LinearLMForCausalLM(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    dataset = {"arithmetic": {"task": "multiplication", "digits": [2, 2], "cot": "lsb", "train_size": 10}}
    (path / "training_config.yaml").write_text(yaml.safe_dump({"dataset": dataset}))
    return path


@pytest.mark.slow
def test_inspect_cli_on_an_arithmetic_checkpoint(arithmetic_checkpoint, tmp_path, capsys):
    out = tmp_path / "map.png"
    assert main([str(arithmetic_checkpoint), "--out", str(out), "--top", "2"]) == 0
    assert out.read_bytes()[:8] == PNG_SIGNATURE
    summary = json.loads(out.with_suffix(".json").read_text())
    tokens = summary["example"].split()
    assert len(tokens) == summary["context_length"] and tokens[0] == "[BOS]" and tokens[-1] == "[EOS]"
    # 2x2: "[BOS] a a x b b =" is the prompt, then CoT steps, then the answer
    assert summary["segments"][0] == {"name": "prompt", "start": 0, "end": 6}
    assert summary["segments"][-1]["name"] == "answer"

    # the top inputs of each output position are the largest blocks of its row
    expected = norms_by_loop(LinearLMForCausalLM.from_pretrained(arithmetic_checkpoint))
    for position in summary["positions"]:
        i = position["i"]
        assert [r["j"] for r in position["top_inputs"]] == torch.topk(
            expected[i, : i + 1], min(2, i + 1)
        ).indices.tolist()
        assert position["top_inputs"][0]["norm"] == pytest.approx(float(expected[i, : i + 1].max()), rel=1e-5)
        assert position["token"] == tokens[i]
    printed = capsys.readouterr().out
    assert f"{summary['context_length'] - 1:4d}" in printed and "reads" in printed


@pytest.mark.slow
def test_inspect_completes_a_given_prompt(arithmetic_checkpoint, tmp_path):
    summary = inspect_checkpoint(arithmetic_checkpoint, tmp_path / "p.png", example="[BOS] 1 2 x 3 4 =", quiet=True)
    # the reference: greedy completion written as a plain loop over the model's own logits
    model = AutoModelForCausalLM.from_pretrained(arithmetic_checkpoint).eval()
    tokenizer = AutoTokenizer.from_pretrained(arithmetic_checkpoint)
    ids = tokenizer("[BOS] 1 2 x 3 4 =", add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        while len(ids) < model.config.context_length and ids[-1] != tokenizer.eos_token_id:
            ids.append(int(model(torch.tensor([ids])).logits[0, -1].argmax()))
    assert len(ids) > 7 and summary["example"].split() == tokenizer.convert_ids_to_tokens(ids)


def test_inspect_refuses_a_model_without_a_masked_map(tmp_path):
    from transformers import GPT2Config, GPT2LMHeadModel

    GPT2LMHeadModel(GPT2Config(n_embd=8, n_layer=1, n_head=2, vocab_size=20, n_positions=8)).save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="needs an hf-linear model"):
        inspect_checkpoint(tmp_path, tmp_path / "x.png")
