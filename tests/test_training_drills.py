"""Reliability drills for training runs and the train / eval CLIs: bad input gets a one-line error
naming what is wrong, nothing is deleted before the run is built, finished work is not lost."""

from __future__ import annotations

import copy
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch
import yaml
from helpers import losses, tiny_config, write_config

from hf_linear.checkpoints import load_model
from hf_linear.data.arithmetic import sequence_length
from hf_linear.output_dirs import OUTPUT_MARKER
from hf_linear.training import run_dir
from hf_linear.training import train as train_module
from hf_linear.training import trainer as trainer_module
from hf_linear.training.config import check_config, load_config
from hf_linear.training.train import split_command_line, train


def run_cli(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "hf_linear.cli", *args], capture_output=True, text=True, cwd=cwd, timeout=300
    )


def assert_one_line_error(result, *fragments):
    assert result.returncode != 0
    assert "Traceback" not in result.stderr, result.stderr[-2000:]
    error = [line for line in result.stderr.splitlines() if "error:" in line]
    assert error, result.stderr[-2000:]
    for fragment in fragments:
        assert fragment in error[-1], (fragment, error[-1])


# ---------------------------------------------------------------------------------------------
# --overwrite never deletes what it should not


def test_overwrite_refuses_a_directory_that_is_not_a_run(tmp_path):
    precious = tmp_path / "thesis"
    precious.mkdir()
    (precious / "chapter1.tex").write_text("years of work")
    with pytest.raises(ValueError, match="not written by hf-linear"):
        train(check_config(tiny_config(precious)), overwrite=True)
    assert (precious / "chapter1.tex").read_text() == "years of work"


@pytest.mark.slow
def test_a_bad_dataset_setting_leaves_the_old_run_untouched(tmp_path):
    out = tmp_path / "run"
    train(check_config(tiny_config(out, max_steps=2)))
    before = sorted(p.name for p in out.iterdir())
    config = tiny_config(out, max_steps=2)
    config["dataset"]["arithmetic"]["digits"] = [12, 12]  # checked only when the data is built
    with pytest.raises(ValueError, match="digits"):
        train(check_config(config), overwrite=True)
    assert sorted(p.name for p in out.iterdir()) == before
    train(check_config(tiny_config(out, max_steps=2)), overwrite=True)  # a run directory: replaced
    assert (out / OUTPUT_MARKER).is_file()


def test_not_enough_disk_is_a_clear_error_before_training(tmp_path, monkeypatch):
    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(run_dir.shutil, "disk_usage", lambda path: usage._replace(free=1000))
    with pytest.raises(ValueError, match="MiB free"):
        train(check_config(tiny_config(tmp_path / "run")))
    assert not (tmp_path / "run" / "model.safetensors").exists()


# ---------------------------------------------------------------------------------------------
# finished work is kept


@pytest.mark.slow
def test_the_final_model_is_saved_before_the_final_evaluation(tmp_path, monkeypatch):
    def broken_evaluation(*args, **kwargs):
        raise RuntimeError("evaluation crashed")

    monkeypatch.setattr(train_module, "evaluate_held_out", broken_evaluation)
    out = tmp_path / "run"
    with pytest.raises(RuntimeError, match="evaluation crashed"):
        train(check_config(tiny_config(out, max_steps=3)))
    model = load_model(str(out))  # the trained model is there and loads strictly
    assert model.config.context_length == sequence_length("multiplication", [2, 2], "lsb") + 1  # + [EOS]


@pytest.mark.slow
def test_resume_skips_an_incomplete_checkpoint(tmp_path, caplog):
    out = tmp_path / "run"
    train(check_config(tiny_config(out, max_steps=6, save_strategy="steps", save_steps=3, save_total_limit=3)))
    full = losses(out)
    # a kill -9 while checkpoint-6 was being written: weights there, trainer_state.json missing
    (out / "checkpoint-6" / "trainer_state.json").unlink()
    assert run_dir.last_complete_checkpoint(out).name == "checkpoint-3"
    train(
        check_config(tiny_config(out, max_steps=6, save_strategy="steps", save_steps=3, save_total_limit=3)),
        resume=True,
    )
    assert "incomplete checkpoint" in caplog.text
    resumed = losses(out)
    for step in (4, 5, 6):
        assert resumed[step] == pytest.approx(full[step], rel=1e-6)


@pytest.mark.slow
def test_resume_from_checkpoint_in_the_config_is_honoured(tmp_path):
    out = tmp_path / "run"
    train(check_config(tiny_config(out, max_steps=6, save_strategy="steps", save_steps=3)))
    full = losses(out)
    other = tmp_path / "other"
    # another seed: a run that ignored resume_from_checkpoint would start from another init
    config = tiny_config(other, max_steps=6, seed=1, resume_from_checkpoint=str(out / "checkpoint-3"))
    train(check_config(config))
    resumed = losses(other)
    assert sorted(resumed) == list(range(1, 7))
    assert resumed[1] == full[1] and resumed[3] == full[3]  # steps 1-3 are the checkpoint's history


# ---------------------------------------------------------------------------------------------
# configs that used to do the wrong thing silently


def test_yaml_reads_no_as_a_string_and_1e_3_as_a_number(tmp_path):
    config = tiny_config(tmp_path / "out")
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config).replace("learning_rate: 0.01", "learning_rate: 1e-3") + "")
    checked = load_config(path, ["--training.eval_strategy", "no", "--training.max_steps", "3"])
    assert checked.training["eval_strategy"] == "no" and checked.training["learning_rate"] == 1e-3
    assert checked.training["max_steps"] == 3 and type(checked.training["max_steps"]) is int


@pytest.mark.parametrize(
    "key,value,message",
    [
        ("output_dir", None, "training.output_dir is required"),
        ("max_steps", 0, "training.max_steps must be >= 1"),
        ("eval_strategy", "sometimes", "training.eval_strategy must be one of"),
    ],
)
def test_training_values_that_did_the_wrong_thing_silently(tmp_path, key, value, message):
    config = tiny_config(tmp_path / "out")
    config["training"][key] = value
    with pytest.raises(ValueError, match=message):
        check_config(config)


def test_an_empty_evaluation_split_is_an_error(tmp_path):
    config = tiny_config(tmp_path / "out")
    config["dataset"]["arithmetic"]["test_size"] = 0
    with pytest.raises(ValueError, match="'test' is empty"):
        train(check_config(config))
    assert not (tmp_path / "out").exists()


def test_a_tokenizer_that_does_not_fit_arithmetic_data_is_an_error(tmp_path, shared_data_dir):
    config = tiny_config(tmp_path / "out")
    config["dataset"]["tokenizer"] = str(shared_data_dir / "gpt2-tokenizer")  # GPT-2's BPE: other ids
    with pytest.raises(ValueError, match="dataset.tokenizer: .* does not give the arithmetic tokens their ids"):
        train(check_config(config))


def test_an_option_first_keeps_the_default_config():
    config, flags, overrides = split_command_line(["--training.output_dir", "X", "--overwrite"])
    assert config.endswith("mul4x4_lsb_mlp.yaml") and Path(config).is_file()
    assert flags == ["--overwrite"] and overrides == ["--training.output_dir", "X"]
    config, _, overrides = split_command_line(["my.yaml", "--model.hidden_size", "8"])
    assert config == "my.yaml" and overrides == ["--model.hidden_size", "8"]


def test_relative_data_paths_are_relative_to_the_config_file(tmp_path):
    data = tmp_path / "project" / "data" / "windows"
    data.mkdir(parents=True)
    (data / "dataset_dict.json").write_text('{"splits": ["train"]}')
    configs = tmp_path / "project" / "configs"
    configs.mkdir()
    config = tiny_config(tmp_path / "out")
    config["dataset"] = {"path": "../data/windows"}
    path = write_config(configs, config)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    cwd = os.getcwd()
    try:
        os.chdir(elsewhere)
        assert load_config(path).dataset["path"] == str(data.resolve())
    finally:
        os.chdir(cwd)


# ---------------------------------------------------------------------------------------------
# one-line errors from the CLIs


@pytest.mark.slow
def test_train_cli_errors_are_one_line(tmp_path):
    config = tiny_config(tmp_path / "out", max_steps=2)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "notes.txt").write_text("keep")
    path = write_config(tmp_path, config)
    assert_one_line_error(run_cli("train", str(path)), "already holds files")
    assert_one_line_error(run_cli("train", str(path), "--resume"), "no complete checkpoint")
    assert_one_line_error(
        run_cli(
            "train", str(path), "--dataset.arithmetic.digits", "[12, 3]", "--training.output_dir", str(tmp_path / "new")
        ),
        "digits",
    )
    assert_one_line_error(run_cli("train", str(path), "--dataset.arithmetic.digits", "null"), "digits")
    assert_one_line_error(run_cli("train", str(tmp_path / "missing.yaml")), "does not exist")
    assert (tmp_path / "out" / "notes.txt").read_text() == "keep"


@pytest.mark.slow
def test_eval_cli_errors_are_one_line(tmp_path):
    arithmetic = '{"task": "multiplication", "digits": [2, 2], "cot": "lsb", "test_size": 5}'
    assert_one_line_error(
        run_cli("eval", str(tmp_path / "no-such-checkpoint"), "--arithmetic", arithmetic), "no-such-checkpoint"
    )
    assert_one_line_error(run_cli("eval", str(tmp_path), "--dataset", str(tmp_path / "no-such-data")), "no-such-data")
    assert_one_line_error(run_cli("eval", str(tmp_path), "--arithmetic", "{not json"), "not valid JSON")


@pytest.mark.slow
def test_a_checkpoint_whose_weights_do_not_fit_its_config_is_an_error(tmp_path):
    out = tmp_path / "run"
    train(check_config(tiny_config(out, max_steps=1)))
    config = json.loads((out / "config.json").read_text())
    config["num_mlp_layers"] = 2  # the weights have one layer
    (out / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="do not match its config"):
        load_model(str(out))
    assert_one_line_error(
        run_cli(
            "eval",
            str(out),
            "--arithmetic",
            '{"task": "multiplication", "digits": [2, 2], "cot": "lsb", "test_size": 5}',
        ),
        "do not match",
    )


# ---------------------------------------------------------------------------------------------
# a budgeted run's schedule follows the budget, not the step count


def test_the_learning_rate_follows_the_time_budget(tmp_path, monkeypatch):
    from hf_linear.training.trainer import TimeBudget

    spent = {"fraction": 0.0}
    monkeypatch.setattr(TimeBudget, "fraction", lambda self: spent["fraction"])
    config = tiny_config(tmp_path / "run", max_steps=1000, lr_scheduler_type="linear", warmup_steps=0)
    config["budget"] = {"max_minutes": 60}
    rates = []

    class Recorder(trainer_module.HFLinearTrainer):
        def training_step(self, *args, **kwargs):
            rates.append(self.lr_scheduler.get_last_lr()[0])
            spent["fraction"] = min(1.0, spent["fraction"] + 0.25)  # each step "takes" a quarter of the budget
            if spent["fraction"] >= 1.0:
                self.control.should_training_stop = True
            return super().training_step(*args, **kwargs)

    monkeypatch.setattr(trainer_module, "HFLinearTrainer", Recorder)
    train(check_config(config))
    # linear decay over the elapsed fraction of the budget: 1, 3/4, 1/2, 1/4 of the peak — a
    # step-based schedule over 1000 steps would still be at ~100%
    assert rates[:4] == pytest.approx([1e-2, 7.5e-3, 5e-3, 2.5e-3])
    assert torch.isfinite(torch.tensor(rates)).all()


# ---------------------------------------------------------------------------------------------
# reliability: resume at the end, the disk estimate, one-line errors


def run_main(capsys, *argv) -> str:
    """`hf-linear ARGV` in this process (much cheaper than a subprocess): the error line of a
    failing command, which must fail with an exit code and without a traceback."""
    from hf_linear.cli import main as cli_main

    try:
        code = cli_main(list(argv))
    except SystemExit as exit_:
        code = exit_.code
    stderr = capsys.readouterr().err
    assert code not in (0, None), (argv, stderr[-2000:])
    assert "Traceback" not in stderr, stderr[-2000:]
    errors = [line for line in stderr.splitlines() if "error:" in line]
    assert errors, stderr[-2000:]
    return errors[-1]


def run_script(capsys, script: str, *argv) -> str:
    """A dataset script's main(argv) in this process; returns its error line (as `run_main`)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        script, Path(__file__).parents[1] / "dataset_scripts" / f"{script}.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    code = module.main(list(argv))
    stderr = capsys.readouterr().err
    assert code != 0 and "Traceback" not in stderr, stderr[-2000:]
    return [line for line in stderr.splitlines() if "error:" in line][-1]


def assert_in(line: str, *fragments) -> None:
    for fragment in fragments:
        assert fragment in line, (fragment, line)


@pytest.fixture
def refusing_dir(tmp_path) -> Path:
    """A directory in which creating anything fails although os.access may say it is writable
    (as a read-only file system does to root): /sys when running as root, else a mode-0555 folder."""
    folder = tmp_path / "read-only"
    folder.mkdir(mode=0o555)
    if os.access(folder, os.W_OK):  # root: permissions do not stop it
        folder = Path("/sys/hf-linear-drill")
    try:
        (folder / "probe").mkdir(parents=True)
    except OSError:
        return folder
    shutil.rmtree(folder / "probe")
    pytest.skip("no directory that refuses writes on this machine")


def state_of(path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(path))


def test_resume_from_the_final_checkpoint_trains_no_further(tmp_path):
    out = tmp_path / "run"
    config = tiny_config(out, max_steps=6, save_strategy="steps", save_steps=3)
    train(check_config(config))
    full = losses(out)
    # killed while saving the final model: its files are not all there, its staging directory is
    # left behind (the pid of a process that is gone)
    for name in ("model.safetensors", "eval_results.json"):
        (out / name).unlink()
    (out / ".final-999999999-k1ll3d").mkdir()
    (out / ".final-999999999-k1ll3d" / "model.safetensors").write_bytes(b"half")
    train(check_config(config), resume=True)
    assert losses(out) == full  # no step 7
    final, last = state_of(out / "model.safetensors"), state_of(out / "checkpoint-6" / "model.safetensors")
    assert final.keys() == last.keys() and all(torch.equal(final[k], last[k]) for k in final)
    assert json.loads((out / "eval_results.json").read_text())["training"]["global_step"] == 6
    assert not list(out.glob(".final-*"))
    assert run_dir.training_ended_at(out / "checkpoint-6", 6) and not run_dir.training_ended_at(out / "checkpoint-3", 6)
    assert not run_dir.training_ended_at(out / "checkpoint-6", 9)  # a raised max_steps trains on


@pytest.mark.slow
def test_the_disk_estimate_counts_every_checkpoint_kept(tmp_path, monkeypatch):
    weights = 4 * sum(p.numel() for p in tiny_trained_model(tmp_path).parameters())
    usage = shutil.disk_usage(tmp_path)
    # 6 checkpoints kept without save_total_limit: 1 + 3 * 6 = 19 model sizes; the old estimate
    # assumed 2 kept (10)
    monkeypatch.setattr(run_dir.shutil, "disk_usage", lambda path: usage._replace(free=15 * weights))
    with pytest.raises(ValueError, match="MiB free"):
        train(check_config(tiny_config(tmp_path / "all", max_steps=6, save_strategy="steps", save_steps=1)))
    assert not (tmp_path / "all").exists()
    # with save_total_limit: 2, at most 3 on disk at once (the newest before rotation): fits
    train(
        check_config(
            tiny_config(tmp_path / "two", max_steps=6, save_strategy="steps", save_steps=1, save_total_limit=2)
        )
    )
    assert sorted(p.name for p in run_dir.checkpoints(tmp_path / "two")) == ["checkpoint-5", "checkpoint-6"]


def tiny_trained_model(tmp_path):
    """The tiny config's model, trained one step (for its size)."""
    out = tmp_path / "size"
    train(check_config(tiny_config(out, max_steps=1)))
    return load_model(str(out))


def test_a_failing_checkpoint_save_is_a_one_line_error(tmp_path, capsys, monkeypatch):
    from transformers import Trainer

    def disk_full(self, output_dir):
        raise RuntimeError(
            "[enforce fail at inline_container.cc:664] . PytorchStreamWriter failed writing file "
            "data/0: file write failed"
        )

    monkeypatch.setattr(Trainer, "_save_optimizer_and_scheduler", disk_full)
    out = tmp_path / "run"
    path = write_config(tmp_path, tiny_config(out, max_steps=6, save_strategy="steps", save_steps=3))
    assert_in(run_main(capsys, "train", str(path)), "checkpoint-3", "failed (", "PytorchStreamWriter", "--resume")
    assert not (out / "checkpoint-3").exists()  # the incomplete checkpoint does not take the space


def test_unreadable_checkpoints_are_one_line_errors_and_pickles_are_never_loaded(tmp_path, capsys):
    run = tmp_path / "run"
    train(check_config(tiny_config(run, max_steps=3, save_strategy="steps", save_steps=3)))
    broken = {}
    for kind in ("pickle", "truncated", "garbled"):
        broken[kind] = tmp_path / kind
        shutil.copytree(run, broken[kind])
        weights = broken[kind] / "checkpoint-3" / "model.safetensors"
        data = weights.read_bytes()
        if kind == "pickle":  # a pickle that would run code when loaded
            (weights.parent / "pytorch_model.bin").write_bytes(
                b"cos\nsystem\n(S'touch " + str(tmp_path / "pwned").encode() + b"'\ntR."
            )
            weights.unlink()
        else:
            weights.write_bytes(data[: len(data) // 2] if kind == "truncated" else data[:8] + b"x" * 32 + data[40:])
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "readme.txt").write_text("not a checkpoint")
    expected = {"pickle": "pytorch_model.bin", "truncated": "model.safetensors", "garbled": "model.safetensors"}
    arithmetic = '{"task": "multiplication", "digits": [2, 2], "cot": "lsb", "test_size": 5}'
    for kind, directory in broken.items():
        checkpoint = str(directory / "checkpoint-3")
        assert_in(run_main(capsys, "eval", checkpoint, "--arithmetic", arithmetic), checkpoint, expected[kind])
        assert_in(run_main(capsys, "inspect", checkpoint), checkpoint, expected[kind])
        fine_tune = tiny_config(tmp_path / f"tuned-{kind}", max_steps=1)
        fine_tune["model"] = {"init_from": checkpoint}
        assert_in(run_main(capsys, "train", str(write_config(tmp_path, fine_tune))), checkpoint, expected[kind])
        assert not (tmp_path / f"tuned-{kind}").exists()
        resumed = write_config(tmp_path, tiny_config(directory, max_steps=6, save_strategy="steps", save_steps=3))
        assert_in(run_main(capsys, "train", str(resumed), "--resume"), checkpoint, expected[kind])
    not_a_checkpoint = tiny_config(tmp_path / "tuned", max_steps=1)
    not_a_checkpoint["model"] = {"init_from": str(tmp_path / "notes")}
    assert_in(
        run_main(capsys, "train", str(write_config(tmp_path, not_a_checkpoint))),
        "notes is not a checkpoint: no config.json",
    )
    assert not (tmp_path / "pwned").exists() and not (tmp_path / "tuned").exists()


def test_cli_mistakes_are_one_line_errors(tmp_path, capsys, refusing_dir):
    run = tmp_path / "run"
    train(check_config(tiny_config(run, max_steps=1)))
    arithmetic = '{"task": "multiplication", "digits": [2, 2], "cot": "lsb", "test_size": 5}'
    assert_in(run_main(capsys, "eval", str(run), "--arithmetic", "[1,2]"), "--arithmetic must be a JSON object")
    assert_in(
        run_main(capsys, "eval", str(run), "--arithmetic", arithmetic, "--output", str(tmp_path)),
        "--output",
        "is a directory",
    )
    assert_in(
        run_main(capsys, "eval", str(run), "--arithmetic", arithmetic, "--output", str(refusing_dir / "r.json")),
        "--output",
    )
    assert_in(run_main(capsys, "inspect", str(run), "--top", "-1"), "--top must be >= 1")
    assert_in(run_main(capsys, "inspect", str(run), "--out", str(refusing_dir / "map.png")), "--out")
    (tmp_path / "empty.pt").write_bytes(b"")
    assert_in(
        run_main(
            capsys,
            "convert-authors",
            str(tmp_path / "empty.pt"),
            str(tmp_path / "converted"),
            "--tokenizer",
            "arithmetic",
        ),
        "empty.pt",
    )
    assert_in(
        run_script(
            capsys,
            "build_arithmetic",
            "--task",
            "multiplication",
            "--digits",
            "2",
            "--cot",
            "lsb",
            "--train-size",
            "10",
            "--out",
            str(refusing_dir / "data"),
        ),
        "--out",
    )
    stories = tmp_path / "binary-stories"
    stories.mkdir()
    for name in ("TinyStories-train.txt", "TinyStories-valid.txt"):
        (stories / name).write_bytes(bytes(range(128, 256)) * 8)
    assert_in(
        run_script(
            capsys,
            "build_tinystories",
            "--source",
            str(stories),
            "--train-bpe",
            "300",
            "--num-proc",
            "1",
            "--out",
            str(tmp_path / "ts"),
        ),
        "TinyStories-train.txt",
        "not UTF-8",
    )
    (tmp_path / "target").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "target")
    config = write_config(tmp_path, tiny_config(tmp_path / "link", max_steps=1))
    assert_in(run_main(capsys, "train", str(config), "--overwrite"), "is a symlink")

    base = tiny_config(tmp_path / "unused", max_steps=1)
    for extra, fragment in (
        ({"axes": {"training.learning_rate": 0.1}}, "axis 'training.learning_rate': give a list"),
        ({"axes": {"training.learning_rate": []}}, "axis 'training.learning_rate' has no values"),
        ({"stop_when": "exact_match"}, "stop_when must be a mapping"),
    ):
        study = tmp_path / "study.yaml"
        study.write_text(yaml.safe_dump({"base": base, **extra}))
        assert_in(run_main(capsys, "study", str(study), "--out", str(tmp_path / "study")), fragment)
    assert not (tmp_path / "study").exists()
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "results.jsonl").write_text('{"varied": {}}\n')
    assert_in(run_main(capsys, "report", str(tmp_path / "results")), "results.jsonl, line 1", "'name'")
    assert not (tmp_path / "converted").exists() and not (tmp_path / "ts").exists()
    assert not refusing_dir.exists() or not any(refusing_dir.iterdir())


def test_silent_mistakes_are_errors(tmp_path, capsys):
    # a section given twice: the second replaced the first
    config = write_config(tmp_path, tiny_config(tmp_path / "out", max_steps=1))
    config.write_text(config.read_text() + "model:\n  type: linear_lm\n")
    assert_in(run_main(capsys, "train", str(config)), "duplicate key 'model' at line", "config.yaml")
    study = tmp_path / "study.yaml"
    study.write_text("base_config: config.yaml\naxes:\n  training.seed: [0, 1]\n  training.seed: [2]\n")
    assert_in(run_main(capsys, "study", str(study)), "duplicate key 'training.seed' at line 4 (first given at line 3)")
    # nothing to train on: found before the output directory is made
    empty = tiny_config(tmp_path / "empty", max_steps=1)
    empty["dataset"]["arithmetic"]["train_size"] = 0
    assert_in(run_main(capsys, "train", str(write_config(tmp_path, empty))), "'train' split is empty")
    assert not (tmp_path / "empty").exists()
    # windows longer than every story: an error, not a dataset load_from_disk cannot read
    stories = tmp_path / "stories"
    stories.mkdir()
    for name in ("TinyStories-train.txt", "TinyStories-valid.txt"):
        (stories / name).write_text("Once upon a time there was a cat.\n<|endoftext|>\nThe dog ran home.\n")
    assert_in(
        run_script(
            capsys,
            "build_tinystories",
            "--source",
            str(stories),
            "--train-bpe",
            "300",
            "--num-proc",
            "1",
            "--context-length",
            "100000",
            "--out",
            str(tmp_path / "ts"),
        ),
        "context_length=100000",
    )
    assert not (tmp_path / "ts").exists()


# ---------------------------------------------------------------------------------------------
# non-finite numbers and diverging runs; bad configs that gave tracebacks or did the wrong thing


def cli_result(capsys, *argv) -> tuple[int, str]:
    """(exit code, stderr) of `hf-linear ARGV` run in this process."""
    from hf_linear.cli import main as cli_main

    try:
        code = cli_main(list(argv))
    except SystemExit as exit_:
        code = exit_.code
    return code or 0, capsys.readouterr().err


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory) -> Path:
    """A 2x2 multiplication checkpoint trained one step (for the eval cases)."""
    out = tmp_path_factory.mktemp("checkpoint") / "run"
    train(check_config(tiny_config(out, max_steps=1)))
    return out


def empty_dataset(directory: Path) -> Path:
    """A DatasetDict of arithmetic columns whose splits have no rows, with a tokenizer (save_to_disk)."""
    from datasets import Dataset, DatasetDict

    from hf_linear.data.arithmetic import build_arithmetic_tokenizer

    empty = Dataset.from_dict({"input_ids": [], "prompt": [], "answer": [], "text": []})
    DatasetDict({"train": empty, "validation": empty, "test": empty}).save_to_disk(str(directory))
    build_arithmetic_tokenizer().save_pretrained(str(directory))
    return directory


def train_call(change, *flags):
    """A case of `hf-linear train` on the tiny config (1 step, 64 examples) after `change(config, tmp_path)`."""

    def call(tmp_path, checkpoint):
        config = tiny_config(tmp_path / "out", max_steps=1)
        config["dataset"]["arithmetic"]["train_size"] = 64
        change(config, tmp_path)
        return ["train", str(write_config(tmp_path, config)), *flags]

    return call


def set_key(dotted: str, value):
    def change(config, tmp_path):
        section, key = dotted.split(".")
        config.setdefault(section, {})[key] = value

    return change


def without_train_size(config, tmp_path):
    del config["dataset"]["arithmetic"]["train_size"]


def with_empty_dataset(config, tmp_path):
    config["dataset"] = {"path": str(empty_dataset(tmp_path / "empty"))}


def with_program(config, tmp_path):
    config["dataset"] = {"program": {"program": "json:loads", "size": 16, "train_size": 8}}


def eval_call(*options):
    """A case of `hf-linear eval` of the tiny 2x2 checkpoint; "EMPTY" stands for an empty dataset."""

    def call(tmp_path, checkpoint):
        given = [str(empty_dataset(tmp_path / "empty")) if option == "EMPTY" else option for option in options]
        return ["eval", str(checkpoint), *given, "--output", str(tmp_path / "report.json")]

    return call


def arithmetic(digits: int) -> str:
    return json.dumps({"task": "multiplication", "digits": [digits, digits], "cot": "lsb", "test_size": 5})


FINITE = "must be a finite number, got"
# each case: its command line (made from tmp_path and the tiny checkpoint) and its error's fragment
BAD_CALLS = {
    "learning_rate_inf": (train_call(set_key("training.learning_rate", float("inf"))), f"learning_rate {FINITE} inf"),
    "weight_decay_nan": (train_call(set_key("training.weight_decay", float("nan"))), f"weight_decay {FINITE} nan"),
    "budget_nan": (train_call(set_key("budget.max_minutes", float("nan"))), f"budget.max_minutes {FINITE} nan"),
    "batch_size_0": (train_call(set_key("training.per_device_train_batch_size", 0)), "batch_size must be >= 1"),
    "accumulation_0": (train_call(set_key("training.gradient_accumulation_steps", 0)), "accumulation_steps must be"),
    "no_train_size": (train_call(without_train_size), "dataset.arithmetic.train_size is required"),
    "empty_dataset_path": (train_call(with_empty_dataset), "without rows (train, validation, test)"),
    "report_to_wandb": (train_call(set_key("training.report_to", "wandb")), "'wandb' is not an installed reporting"),
    "hidden_size_1e12": (train_call(set_key("model.hidden_size", 10**12)), "parameters need more than 8 EiB"),
    "hidden_size_1e5": (train_call(set_key("model.hidden_size", 10**5)), "parameters need about"),
    "not_a_program": (train_call(with_program, "--trust-program-code"), "'json:loads' is not a program function"),
    "eval_empty_dataset": (eval_call("--dataset", "EMPTY"), "without rows (train, validation, test)"),
    "eval_3x3_on_2x2": (eval_call("--arithmetic", arithmetic(3)), "51 tokens long, longer than the checkpoint's"),
    "eval_program_on_arithmetic": (
        eval_call("--program", '{"program": "multiplication", "size": 100}'),
        "the checkpoint's tokenizer and the data's disagree on token",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_CALLS))
def test_bad_configs_and_calls_are_one_line_errors(tmp_path, capsys, request, case):
    """Each used to give a traceback (ZeroDivisionError, TypeError, IndexError, RuntimeError, an
    allocation error), to train a NaN model, or to evaluate quietly to 0%; now exit 2, one
    `error:` line naming what is wrong, and nothing written."""
    if case == "report_to_wandb" and importlib.util.find_spec("wandb") is not None:
        pytest.skip("wandb is installed here")
    call, fragment = BAD_CALLS[case]
    checkpoint = request.getfixturevalue("tiny_checkpoint") if case.startswith("eval") else None
    code, stderr = cli_result(capsys, *call(tmp_path, checkpoint))
    assert code == 2 and "Traceback" not in stderr, stderr[-2000:]
    errors = [line for line in stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and fragment in errors[0], (fragment, stderr[-2000:])
    assert not (tmp_path / "out").exists() and not (tmp_path / "report.json").exists()


def test_eval_of_the_checkpoints_own_task_passes_the_checks(tmp_path, capsys, tiny_checkpoint):
    """The other side of the eval cases above: the 2x2 task itself is evaluated, and the 3x3 task
    is with --allow-sliding."""
    for options in (["--arithmetic", arithmetic(2)], ["--arithmetic", arithmetic(3), "--allow-sliding"]):
        report = tmp_path / "report.json"
        code, stderr = cli_result(capsys, "eval", str(tiny_checkpoint), *options, "--output", str(report))
        assert code == 0, stderr[-2000:]
        assert json.loads(report.read_text())["num_samples"] == 5


def test_the_memory_estimate_counts_the_models_parameters(tmp_path, capsys):
    """The refusal's parameter count is the model's: an MLPLM's count is a quadratic in d (the
    masked map's d x d blocks, the MLP; embedding and output), fitted here on real models of
    d = 1, 2, 3 at the data's window and vocabulary and evaluated at d = 100,000."""
    from hf_linear import MLPLMConfig, MLPLMForCausalLM
    from hf_linear.data.arithmetic import build_arithmetic_tokenizer

    config = tiny_config(tmp_path / "out", max_steps=1)
    config["model"]["hidden_size"] = 10**5
    code, stderr = cli_result(capsys, "train", str(write_config(tmp_path, config)))
    assert code == 2, stderr[-2000:]
    estimate = float(stderr.split("model: ")[1].split(" parameters")[0])
    window = sequence_length("multiplication", [2, 2], "lsb") + 1  # + [EOS]
    vocabulary = len(build_arithmetic_tokenizer())
    counts = [
        sum(
            p.numel()
            for p in MLPLMForCausalLM(
                MLPLMConfig(hidden_size=d, context_length=window, vocab_size=vocabulary)
            ).parameters()
        )
        for d in (1, 2, 3)
    ]
    a = (counts[2] - 2 * counts[1] + counts[0]) / 2  # p(d) = a d^2 + b d + c through the three counts
    b = counts[1] - counts[0] - 3 * a
    c = counts[0] - a - b
    d = 10**5
    assert estimate == pytest.approx(a * d * d + b * d + c, rel=1e-3)  # the message shows 3 digits


def test_a_diverging_run_stops_naming_the_step_and_saves_no_model(tmp_path, capsys):
    """Learning rate 1e30: Adam's first step moves every weight by ~1e30 (still finite), the second
    step's logits overflow and its gradients and weights turn NaN. The run used to exit 0 with a
    NaN model and a logged loss of 0.0; now step 2 is an error, and only checkpoint-1 is written."""
    out = tmp_path / "run"
    config = tiny_config(out, max_steps=3, learning_rate=1e30, save_strategy="steps", save_steps=1)
    config["dataset"]["arithmetic"]["train_size"] = 64
    code, stderr = cli_result(capsys, "train", str(write_config(tmp_path, config)))
    assert code == 2 and "Traceback" not in stderr, stderr[-2000:]
    assert_in(stderr.strip().splitlines()[-1], "error: training diverged at step 2", "not finite", "no final model")
    assert [p.name for p in run_dir.checkpoints(out)] == ["checkpoint-1"]
    weights = state_of(out / "checkpoint-1" / "model.safetensors")
    assert all(torch.isfinite(w).all() for w in weights.values())
    assert max(w.abs().max() for w in weights.values()) > 1e29  # the first step's huge move
    for final in ("model.safetensors", "config.json", "eval_results.json", "trainer_state.json"):
        assert not (out / final).exists(), final  # nothing that looks like a finished run


def test_a_nan_planted_in_a_weight_stops_the_run_at_step_1(tmp_path, capsys, monkeypatch):
    """A NaN in one weight before training (monkeypatched into the built model): the first step's
    loss is NaN; the run stops at step 1 and names a weight."""
    build = train_module.model_for

    def model_with_a_nan(config, data):
        model = build(config, data)
        with torch.no_grad():
            model.lm_head.weight[0, 0] = float("nan")
        return model

    monkeypatch.setattr(train_module, "model_for", model_with_a_nan)
    out = tmp_path / "run"
    config = tiny_config(out, max_steps=3)
    config["dataset"]["arithmetic"]["train_size"] = 64
    code, stderr = cli_result(capsys, "train", str(write_config(tmp_path, config)))
    assert code == 2 and "Traceback" not in stderr, stderr[-2000:]
    assert_in(stderr.strip().splitlines()[-1], "training diverged at step 1: weight ", "is not finite")
    assert not (out / "model.safetensors").exists() and not run_dir.checkpoints(out)


def test_a_train_split_larger_than_its_distinct_inputs_warns_with_their_count(tmp_path):
    """2x2 multiplication has 8,100 inputs, about 3/4 of them in the train split: 100,000 training
    examples repeat each ~16 times. The warning's count is compared with the distinct (a, b) pairs
    of the built split (all of them are drawn: 100,000 draws miss one with probability ~1e-3)."""
    from hf_linear.data.arithmetic import build_arithmetic_dataset
    from hf_linear.data.arithmetic.splits import RepeatedTrainingInputsWarning

    with pytest.warns(RepeatedTrainingInputsWarning) as caught:
        data = build_arithmetic_dataset("multiplication", [2, 2], "lsb", train_size=100_000, test_size=8)
    table = data["train"].data  # (a Dataset's columns iterate row by row: seconds for 100,000)
    distinct = len(set(zip(table.column("a").to_pylist(), table.column("b").to_pylist())))
    message = str(caught[0].message)
    assert_in(message, "train_size=100,000", f"the {distinct:,} distinct training inputs", "2x2-digit multiplication")
    assert 5_900 < distinct < 6_200  # about 3/4 of 90 x 90
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a train split within the distinct inputs: no warning
        build_arithmetic_dataset("multiplication", [2, 2], "lsb", train_size=distinct, test_size=8)


def test_a_5000_digit_demo_operand_gets_the_fields_message():
    """Python refuses to read more than 4,300 digits (its own ValueError, quoting sys.set_int_max_str_digits);
    the demo's arithmetic and program boxes say what the field takes, quoting the operand shortened."""
    from hf_linear.data.arithmetic import ArithmeticSpec
    from hf_linear.demo.tasks import ArithmeticTask, ProgramTask

    huge = "9" * 5000
    with pytest.raises(ValueError) as arithmetic_error:
        ArithmeticTask(ArithmeticSpec.create("multiplication", [4, 4], "lsb")).prompt([huge, "1234"])
    with pytest.raises(ValueError) as program_error:
        ProgramTask.create("multiplication", 10000).prompt([huge, "12"])
    for error, rule in (
        (arithmetic_error, "must be a 4-digit integer"),
        (program_error, "must be an integer in [0, 10000)"),
    ):
        assert_in(str(error.value), "a='999999999999'... (5,000 characters)", rule)
        assert "4300" not in str(error.value) and len(str(error.value)) < 300
    # the neighbours of the limit still work: the largest operand, and a number with leading zeros
    assert ProgramTask.create("multiplication", 10000).prompt(["09999", "12"])
    assert ArithmeticTask(ArithmeticSpec.create("multiplication", [4, 4], "lsb")).prompt(["9999", "1234"])


def numeric_leaves(node, path: tuple = ()):
    """The paths (keys and list indices) of every number in a config."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield from numeric_leaves(value, (*path, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from numeric_leaves(value, (*path, index))
    elif isinstance(node, (int, float)) and not isinstance(node, bool):
        yield path


def test_every_non_finite_number_in_a_config_is_an_error_naming_its_key(tmp_path):
    """Every number of the tiny config, plus the optimiser's, the budget's, the model's and LoRA's,
    set in turn to NaN, +inf and -inf (written as YAML's .nan / .inf): each is an error naming its
    key before anything is built."""
    config = tiny_config(tmp_path / "out")
    config["training"].update(weight_decay=0.0, max_grad_norm=1.0, warmup_steps=0, adam_beta2=0.999, adam_epsilon=1e-8)
    config["budget"] = {"max_minutes": 5}
    config["lora"] = {"r": 4, "lora_alpha": 8, "lora_dropout": 0.0}
    config["model"]["num_mlp_layers"] = 1
    check_config(config)  # the config itself is fine
    paths = list(numeric_leaves(config))
    assert len(paths) == 26
    cases = 0
    for path in paths:
        key = ".".join(str(part) for part in path if isinstance(part, str))
        key += "".join(f"[{part}]" for part in path if isinstance(part, int))
        for value in (float("nan"), float("inf"), float("-inf")):
            changed = copy.deepcopy(config)
            node = changed
            for part in path[:-1]:
                node = node[part]
            node[path[-1]] = value
            (tmp_path / "config.yaml").write_text(yaml.safe_dump(changed))  # .nan, .inf, -.inf
            with pytest.raises(ValueError, match=rf"^{re.escape(key)} must be a finite number, got {value}$"):
                load_config(tmp_path / "config.yaml")
            cases += 1
    assert cases == 3 * len(paths)
