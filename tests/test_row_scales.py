"""The masked map along the sequence: pre-activation RMS per position and update ratio per row
(hf_linear.analysis.row_scales), in the Trainer's evaluations and in `eval --segments`."""

from __future__ import annotations

import copy
import json

import pytest
import torch
from helpers import tiny_config, tiny_model
from safetensors.torch import load_file

from hf_linear.analysis.row_scales import (
    RowUpdateProbe,
    along_sequence,
    preactivation_rms,
    row_norms,
    row_update_ratios,
)
from hf_linear.evaluation.cli import main as eval_main
from hf_linear.training.config import check_config
from hf_linear.training.train import train

WEIGHT = "model.mixing.weight"


def plain_row_rms(model, ids: torch.Tensor) -> list[float]:
    """Per position i: the RMS of x[:, :i+1] @ W_i + b_i over the rows and units, row by row."""
    mixing = model.model.mixing
    with torch.no_grad():
        x = model.get_input_embeddings()(ids)  # (N, L, d)
        return [
            float((x[:, : i + 1].reshape(len(ids), -1) @ mixing.row_weight(i) + mixing.bias[i]).pow(2).mean().sqrt())
            for i in range(ids.shape[1])
        ]


@pytest.mark.parametrize("kind", ["linear", "mlp"])
def test_preactivation_rms_matches_a_row_by_row_loop(kind):
    model = tiny_model(kind, seed=1, context_length=9, hidden_size=5)
    ids = torch.randint(0, 23, (11, 9), generator=torch.Generator().manual_seed(2))
    rms = preactivation_rms(model, ids, batch_size=4)  # three batches
    assert rms == pytest.approx(plain_row_rms(model, ids), rel=1e-5)
    assert preactivation_rms(model, ids.tolist(), batch_size=4) == pytest.approx(rms)  # id lists too
    assert preactivation_rms(model, [ids[0].tolist(), ids[1, :-1].tolist()]) is None  # two lengths: no template


def test_row_update_ratios_match_a_row_by_row_loop():
    before = tiny_model("mlp", seed=3, context_length=7, hidden_size=3).model.mixing
    after = copy.deepcopy(before)
    noise = 0.01 * torch.randn(after.weight.shape, generator=torch.Generator().manual_seed(4))
    noise[3:6] *= 5.0  # row 2 (blocks W[2, 0..2] at 3..5) moves more
    with torch.no_grad():
        after.weight.add_(noise)
    ratios = row_update_ratios(before.weight, after.weight)
    with torch.no_grad():
        expected = [
            float((after.row_weight(i).double() - before.row_weight(i).double()).norm() / before.row_weight(i).norm())
            for i in range(7)
        ]
    assert ratios == pytest.approx(expected, rel=1e-6)
    assert max(ratios) == ratios[2]
    with torch.no_grad():
        norms = [float(before.row_weight(i).norm()) for i in range(7)]
    assert row_norms(before.weight).tolist() == pytest.approx(norms, rel=1e-6)
    with pytest.raises(ValueError, match="differ in shape"):
        row_update_ratios(before.weight, after.weight[:-1])


def test_the_probe_measures_an_armed_step_only():
    model = tiny_model("mlp", seed=5, context_length=6).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    probe = RowUpdateProbe()
    probe.attach(optimizer, model)
    ids = torch.randint(0, 23, (8, 6), generator=torch.Generator().manual_seed(6))

    def step():
        optimizer.zero_grad()
        model(input_ids=ids, labels=ids).loss.backward()
        optimizer.step()

    step()
    assert probe.ratios is None  # not armed: nothing copied, nothing measured
    probe.armed = True
    before = model.model.mixing.weight.detach().clone()
    step()
    assert probe.ratios == pytest.approx(row_update_ratios(before, model.model.mixing.weight), rel=1e-9)
    assert not probe.armed and probe._before is None  # one step, and the copy dropped


def test_along_sequence_picks_first_middle_last():
    assert along_sequence([1.0, 2.0, 3.0, 4.0, 5.0], "x") == {"x_first": 1.0, "x_middle": 3.0, "x_last": 5.0}
    # of the trained positions only
    assert along_sequence([0.0, 2.0, 3.0, 4.0, 0.0], "x", range(1, 4)) == {
        "x_first": 2.0,
        "x_middle": 3.0,
        "x_last": 4.0,
    }


def test_training_evaluations_log_them_and_eval_segments_shows_them(tmp_path, capsys):
    """A 6-step run evaluated at steps 3 and 6, checkpointed at step 5: the ratios logged at step 6
    are those between checkpoint-5 and the final weights, the RMS that of the final model on the
    evaluated examples; `eval --segments --since checkpoint-5` gives the same ratios per row."""
    run = tmp_path / "run"
    config = tiny_config(run, max_steps=6, eval_strategy="steps", eval_steps=3, save_strategy="steps", save_steps=5)
    config["evaluation"]["during_training_samples"] = 20
    train(check_config(config))
    history = json.loads((run / "trainer_state.json").read_text())["log_history"]
    evaluations = [entry for entry in history if "eval_row_rms_first" in entry]
    assert [entry["step"] for entry in evaluations] == [3, 6]
    assert all("eval_row_update_ratio_last" in entry for entry in evaluations)

    before, after = (
        load_file(path)[WEIGHT] for path in (run / "checkpoint-5/model.safetensors", run / "model.safetensors")
    )
    ratios = row_update_ratios(before, after)
    from hf_linear.checkpoints import load_model
    from hf_linear.training.run_data import data_for

    during = data_for(check_config(copy.deepcopy(config))).during_training
    # first, middle and last of the positions that predict a trained token: from the one that
    # predicts the first token after the prompt to the one that predicts the last token
    (prompt_length,) = set(during["prompt_length"])
    (length,) = {len(row) for row in during["input_ids"]}
    first, last = prompt_length - 1, length - 2
    assert ratios[first] > 0 and ratios[last] > 0 and ratios[0] == 0 and ratios[-1] == 0
    assert evaluations[-1]["eval_row_update_ratio_first"] == pytest.approx(ratios[first], rel=1e-6)
    assert evaluations[-1]["eval_row_update_ratio_last"] == pytest.approx(ratios[last], rel=1e-6)

    final = load_model(run)
    rms = plain_row_rms(final, torch.tensor(during["input_ids"]))
    assert evaluations[-1]["eval_row_rms_first"] == pytest.approx(rms[first], rel=1e-5)
    assert evaluations[-1]["eval_row_rms_middle"] == pytest.approx(rms[(first + last + 1) // 2], rel=1e-5)
    assert evaluations[-1]["eval_row_rms_last"] == pytest.approx(rms[last], rel=1e-5)

    arithmetic = json.dumps({**config["dataset"]["arithmetic"], "train_size": 0})
    output = tmp_path / "eval.json"
    argv = [str(run), "--arithmetic", arithmetic, "--segments", "--show", "0", "--output", str(output)]
    assert eval_main([*argv, "--since", str(run / "checkpoint-5")]) == 0
    report = json.loads(output.read_text())
    assert report["row_scales"]["update_ratio"] == pytest.approx(ratios, rel=1e-9)
    test_rows = torch.tensor(data_for(check_config(copy.deepcopy(config))).held_out["input_ids"])
    assert report["row_scales"]["preactivation_rms"] == pytest.approx(plain_row_rms(final, test_rows), rel=1e-5)
    answer = report["segments"][-1]  # positions start-1 .. end-1 predict its tokens
    expected = ratios[answer["start"] - 1 : answer["end"]]
    assert answer["update_ratio"] == pytest.approx(sum(expected) / len(expected), rel=1e-9)
    out = capsys.readouterr().out
    assert "pre-act RMS" in out and "update ratio" in out
    with pytest.raises(SystemExit):
        eval_main([*argv[:3], "--since", str(run / "checkpoint-5")])  # --since without --segments
