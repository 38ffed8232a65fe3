"""Teacher-forced accuracy per CoT segment, checked against plain loops."""

from __future__ import annotations

import json

import pytest
import torch
from helpers import tiny_model

from hf_linear.analysis.segments import segment_accuracy, teacher_forced_predictions
from hf_linear.data.arithmetic import ArithmeticSpec, build_arithmetic_dataset, build_arithmetic_tokenizer
from hf_linear.data.arithmetic.formats import segments_of
from hf_linear.evaluation.cli import main as eval_main
from hf_linear.masked_mixing import num_masked_map_blocks as num_blocks

TOKENIZER = build_arithmetic_tokenizer()
# the fields of a tiny LinearLM over the arithmetic vocabulary (tiny_model(context_length=..., **ARITHMETIC))
ARITHMETIC = {
    "hidden_size": 6,
    "vocab_size": len(TOKENIZER),
    "bos_token_id": TOKENIZER.bos_token_id,
    "eos_token_id": TOKENIZER.eos_token_id,
    "pad_token_id": TOKENIZER.pad_token_id,
}


@pytest.fixture(scope="module")
def split():
    return build_arithmetic_dataset("multiplication", 2, "lsb", train_size=0, validation_size=0, test_size=40, seed=1)[
        "test"
    ]


def test_teacher_forced_predictions_are_the_predictions_from_each_prefix(split):
    model = tiny_model(context_length=len(split[0]["input_ids"]), **ARITHMETIC)
    ids = torch.tensor(split["input_ids"][:6], dtype=torch.long)
    predictions = teacher_forced_predictions(model, ids, batch_size=4)
    with torch.no_grad():
        for row in range(len(ids)):
            for t in range(1, ids.shape[1]):
                prefix = ids[row : row + 1, :t]
                assert predictions[row, t] == model(input_ids=prefix).logits[0, -1].argmax()
    assert (predictions[:, 0] == -1).all()


def test_segment_accuracy_matches_a_loop(split):
    tokenizer = build_arithmetic_tokenizer()
    model = tiny_model(seed=3, context_length=len(split[0]["input_ids"]), **ARITHMETIC)
    # bias the output towards "0" so that the accuracies differ from segment to segment
    with torch.no_grad():
        model.lm_head.bias[tokenizer.convert_tokens_to_ids("0")] += 5.0
    report = segment_accuracy(model, tokenizer, split["text"], ("long multiplication",), batch_size=7)

    # reference: per example, predict every token from its prefix, then cut at "=" by hand
    tokens = split[0]["text"].split()
    cuts = [i for i, token in enumerate(tokens) if token == "="]
    bounds = [
        ("prompt", 1, cuts[0]),
        ("long multiplication", cuts[0] + 1, cuts[1]),
        ("answer", cuts[1] + 1, len(tokens) - 1),
    ]
    hits = {name: [] for name, _, _ in bounds}
    whole = {name: [] for name, _, _ in bounds}
    with torch.no_grad():
        for text in split["text"]:
            ids = torch.tensor([tokenizer.convert_tokens_to_ids(text.split())])
            for name, start, end in bounds:
                right = [
                    bool(model(input_ids=ids[:, :t]).logits[0, -1].argmax() == ids[0, t]) for t in range(start, end + 1)
                ]
                hits[name] += right
                whole[name].append(all(right))
    assert [part["name"] for part in report] == [name for name, _, _ in bounds]
    for part, (name, start, end) in zip(report, bounds):
        assert (part["start"] if name != "prompt" else 1, part["end"]) == (start, end)
        assert part["tokens"] == end - start + 1
        assert part["token_accuracy"] == pytest.approx(sum(hits[name]) / len(hits[name]))
        assert part["segment_accuracy"] == pytest.approx(sum(whole[name]) / len(whole[name]))
        span = end - start + 1  # the loop's hits run example by example, token by token
        per_token = [sum(hits[name][e * span + t] for e in range(len(split))) / len(split) for t in range(span)]
        assert part["token_accuracy_per_position"] == pytest.approx(per_token)
    assert len({round(part["token_accuracy"], 6) for part in report}) > 1
    # the "+"-joined rows of the long multiplication, each with its "+" (the last with the "=")
    rows = report[1]["steps"]
    plus = [i for i, token in enumerate(tokens) if token == "+"]
    assert [(row["start"], row["end"]) for row in rows] == [(cuts[0] + 1, plus[0]), (plus[0] + 1, cuts[1])]
    first = (bounds[1][1], plus[0])  # the first row, scored from the loop's per-token hits
    right = [
        hits["long multiplication"][e * (cuts[1] - cuts[0]) + t - cuts[0] - 1]
        for e in range(len(split))
        for t in range(first[0], first[1] + 1)
    ]
    assert rows[0]["token_accuracy"] == pytest.approx(sum(right) / len(right))
    assert "steps" not in report[0] and "steps" not in report[2]


def test_the_paper_format_has_named_segments():
    spec = ArithmeticSpec.create("multiplication", 4, "paper")
    parts = segments_of(spec.format.tokens((1234, 5678)) + ["[EOS]"], spec.format.step_names)
    assert [p["name"] for p in parts] == [
        "prompt",
        "operand expansions",
        "digit-pair terms",
        "partial products",
        "answer",
    ]
    assert parts[0] == {"name": "prompt", "start": 0, "end": 10}  # [BOS] 4 digits x 4 digits =
    assert parts[-1] == {"name": "answer", "start": 307 - 8, "end": 307}  # 8 digits + [EOS]
    assert all(a["end"] + 1 == b["start"] for a, b in zip(parts, parts[1:]))


def test_segments_refuse_examples_of_different_lengths():
    tokenizer = build_arithmetic_tokenizer()
    with pytest.raises(ValueError, match="differ in length"):
        segment_accuracy(
            tiny_model(context_length=40, **ARITHMETIC), tokenizer, ["[BOS] 1 x 2 = 2 [EOS]", "[BOS] 1 x 2 = 0 2 [EOS]"]
        )


def test_eval_cli_segments(tmp_path, capsys):
    tokenizer = build_arithmetic_tokenizer()
    window = ArithmeticSpec.create("multiplication", 2, "paper").length + 1
    tiny_model(context_length=window, **ARITHMETIC).save_pretrained(tmp_path / "ckpt")
    tokenizer.save_pretrained(tmp_path / "ckpt")
    arithmetic = json.dumps(
        {"task": "multiplication", "digits": [2, 2], "cot": "paper", "test_size": 20, "validation_size": 0}
    )
    assert (
        eval_main(
            [str(tmp_path / "ckpt"), "--arithmetic", arithmetic, "--segments", "--num-samples", "20", "--show", "0"]
        )
        == 0
    )
    report = json.loads((tmp_path / "ckpt" / "eval_results.json").read_text())
    assert [p["name"] for p in report["segments"]][1:4] == [
        "operand expansions",
        "digit-pair terms",
        "partial products",
    ]
    assert "teacher-forced accuracy per segment" in capsys.readouterr().out


def test_segments_of_a_transformer(split):
    """Any causal LM with a window in its config: a GPT-2 reads the same data."""
    from transformers import GPT2Config, GPT2LMHeadModel

    tokenizer = build_arithmetic_tokenizer()
    torch.manual_seed(0)
    gpt2 = GPT2LMHeadModel(GPT2Config(vocab_size=len(tokenizer), n_positions=32, n_embd=16, n_layer=1, n_head=2)).eval()
    report = segment_accuracy(gpt2, tokenizer, split["text"][:8])
    assert [part["name"] for part in report] == ["prompt", "cot step 1", "answer"]
    with pytest.raises(ValueError, match="window of 8"):
        short = GPT2LMHeadModel(GPT2Config(vocab_size=len(tokenizer), n_positions=8, n_embd=16, n_layer=1, n_head=2))
        segment_accuracy(short, tokenizer, split["text"][:2])


def test_dead_positions_are_those_whose_units_never_fire(split, tmp_path, capsys):
    """A position whose masked-map outputs are all negative (here: its bias pushed down) has no
    live unit after the ReLU: its prediction cannot depend on the input, and it is reported."""
    from hf_linear.analysis.dead_units import dead_positions

    window = len(split[0]["input_ids"])
    ids = torch.tensor(split["input_ids"], dtype=torch.long)
    model = tiny_model("mlp", context_length=window, **ARITHMETIC)
    assert dead_positions(model, ids, batch_size=16) == []
    with torch.no_grad():
        model.model.mixing.bias[5] = -1e4  # (T, d): every unit of position 5
        model.model.mixing.bias[9, :-1] = -1e4  # position 9 keeps one unit: alive
    assert dead_positions(model, ids, batch_size=16) == [5]
    with torch.no_grad():
        logits = model(input_ids=ids).logits[:, 5]
    assert torch.allclose(logits, logits[0].expand_as(logits))  # the same output for every input
    assert dead_positions(tiny_model(context_length=window, **ARITHMETIC), ids) is None  # a LinearLM has no ReLU
    assert dead_positions(model, [ids[0].tolist(), ids[1, :-1].tolist()]) is None  # rows of two lengths: no template
    assert dead_positions(model, ids.tolist(), batch_size=16) == [5]  # id lists, as a dataset column gives them

    model.save_pretrained(tmp_path / "ckpt")
    TOKENIZER.save_pretrained(tmp_path / "ckpt")
    arithmetic = json.dumps(
        {"task": "multiplication", "digits": [2, 2], "cot": "lsb", "test_size": 20, "validation_size": 0}
    )
    assert (
        eval_main(
            [str(tmp_path / "ckpt"), "--arithmetic", arithmetic, "--segments", "--num-samples", "20", "--show", "0"]
        )
        == 0
    )
    assert json.loads((tmp_path / "ckpt" / "eval_results.json").read_text())["dead_positions"] == [5]
    out = capsys.readouterr().out
    assert "are 0 on every example" in out and "[5]" in out
    # the segment holding token 6 (predicted by dead position 5) has a position without units
    segments = json.loads((tmp_path / "ckpt" / "eval_results.json").read_text())["segments"]
    holder = next(part for part in segments if part["start"] <= 6 <= part["end"])
    assert holder["alive_units"]["min"] == 0 and "alive units" in out
    first_predictor = max(holder["start"], 1) - 1  # position p predicts token p + 1
    per_position = holder["alive_units"]["per_position"]
    assert len(per_position) == holder["end"] - first_predictor and per_position[5 - first_predictor] == 0


def test_alive_units_match_a_plain_loop(split):
    """Units after the ReLU that fire on some example, per position, against the pre-activations
    computed block row by block row from the embeddings."""
    from hf_linear.analysis.dead_units import alive_units

    window = len(split[0]["input_ids"])
    ids = torch.tensor(split["input_ids"], dtype=torch.long)
    model = tiny_model("mlp", seed=2, context_length=window, **ARITHMETIC)
    mixing = model.model.mixing
    with torch.no_grad():
        mixing.bias[3, :4] = -1e4  # 2 of 6 units left at position 3
        mixing.bias[7, 1:] -= 2.0  # fewer firing at position 7
        x = model.get_input_embeddings()(ids)  # (N, L, d)
        expected = []
        for i in range(window):
            pre = x[:, : i + 1].reshape(len(ids), -1) @ mixing.row_weight(i) + mixing.bias[i]  # (N, d)
            expected.append(int((pre > 0).any(dim=0).sum()))
    assert alive_units(model, ids, batch_size=16) == expected
    assert expected[3] <= 2 and min(expected) < max(expected)


def test_dead_unit_inputs_match_a_plain_loop(split, tmp_path, capsys):
    """What holds each dead unit down, split into the bias, the inputs that are the same token on
    every example and the others, against the pre-activation summed block by block."""
    from hf_linear.analysis.dead_units import alive_units, dead_unit_inputs

    window = len(split[0]["input_ids"])
    ids = torch.tensor(split["input_ids"], dtype=torch.long)
    model = tiny_model("mlp", seed=4, context_length=window, **ARITHMETIC)
    mixing, d = model.model.mixing, ARITHMETIC["hidden_size"]
    with torch.no_grad():
        mixing.bias[5, :3] = -50.0  # three units of position 5 held down by the bias
        # position 9 reads [BOS] (a fixed input) so that 4 of its units are strongly negative
        bos = model.get_input_embeddings().weight[ARITHMETIC["bos_token_id"]]
        mixing.weight[num_blocks(9) + 0, :, 2:] = -30.0 * bos.sign()[:, None]
        x = model.get_input_embeddings()(ids)  # (N, L, d)
        fixed = [bool((ids[:, j] == ids[0, j]).all()) for j in range(window)]
        expected = []
        for i in range(window):
            parts = {"fixed": torch.zeros(len(ids), d), "varying": torch.zeros(len(ids), d)}
            for j in range(i + 1):
                parts["fixed" if fixed[j] else "varying"] += x[:, j] @ mixing.weight[num_blocks(i) + j]
            dead = ~((parts["fixed"] + parts["varying"] + mixing.bias[i]) > 0).any(dim=0)
            expected.append(
                None
                if not dead.any()
                else {
                    "units": int(dead.sum()),
                    "bias": float(mixing.bias[i][dead].mean()),
                    **{name: float(part[:, dead].mean()) for name, part in parts.items()},
                }
            )
    got = dead_unit_inputs(model, ids, batch_size=16)
    assert [entry is None for entry in got] == [entry is None for entry in expected]
    assert [entry["units"] if entry else 0 for entry in got] == [d - a for a in alive_units(model, ids)]
    for entry, want in zip(got, expected):
        if want is not None:
            assert entry == pytest.approx(want, rel=1e-4, abs=1e-4)
    assert got[5]["bias"] == pytest.approx(-50.0) and got[9]["fixed"] < -20 and got[9]["units"] >= 4
    assert dead_unit_inputs(tiny_model(context_length=window, **ARITHMETIC), ids) is None  # no ReLU

    model.save_pretrained(tmp_path / "ckpt")
    TOKENIZER.save_pretrained(tmp_path / "ckpt")
    arithmetic = json.dumps({"task": "multiplication", "digits": [2, 2], "cot": "lsb", "test_size": 20})
    args = [str(tmp_path / "ckpt"), "--arithmetic", arithmetic, "--segments", "--num-samples", "20", "--show", "0"]
    assert eval_main(args) == 0
    assert "dead held by" in capsys.readouterr().out
    report = json.loads((tmp_path / "ckpt" / "eval_results.json").read_text())
    assert report["dead_unit_inputs"][9]["fixed"] < -20
    holder = next(part for part in report["segments"] if part["start"] <= 10 <= part["end"])
    assert holder["dead_unit_inputs"]["fixed"] < 0


def test_a_reports_weakest_step_carries_its_units():
    from hf_linear.studies.report import weakest_step

    step = {"token_accuracy": 0.862, "segment_accuracy": 0.0, "start": 220, "end": 253}
    fine = {"token_accuracy": 1.0, "segment_accuracy": 1.0, "start": 19, "end": 36}
    segment = {"steps": [fine, step]}
    assert weakest_step(segment) == ", weakest step 2 of 2: 86.2% / 0.0%"
    step["alive_units"] = {"mean": 17.7, "min": 6}
    step["dead_unit_inputs"] = {"bias": -0.06, "fixed": -1.63, "varying": -6.54}
    assert weakest_step(segment) == (
        ", weakest step 2 of 2: 86.2% / 0.0% (alive units 17.7, fewest 6; dead ones held at -1.63 by fixed, "
        "-6.54 by varying inputs)"
    )
    step["dead_unit_inputs"] = None
    assert weakest_step(segment).endswith("(alive units 17.7, fewest 6)")
    assert weakest_step({"steps": [step]}) == ""  # one step: nothing to single out
