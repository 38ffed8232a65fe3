"""A program named in a file the user did not write is never imported.

A checkpoint's training_config.yaml, a dataset's build record and `--program` JSON can all name
a "module:function" program; importing a module runs its code. The module planted here writes a
marker file when imported, so each test sees whether anything ran: the demo, `eval`, `train`
(its config and `--init-from` a hostile checkpoint) and `program_of` refuse without
`--trust-program-code` / `trust_program_code=True`, with a message saying so.
"""

from __future__ import annotations

import json
import sys

import pytest
import yaml

from hf_linear.data.programs import compile_program
from hf_linear.data.programs.certificate import certificate_model
from hf_linear.data.programs.dataset import build_program_dataset, build_program_tokenizer, program_of

PLANTED = """
import pathlib
pathlib.Path(__file__).with_name("IMPORTED").write_text("ran")

def program(size):
    from hf_linear.data.programs import compile_program
    return compile_program("multiplication", size)
"""


@pytest.fixture
def planted(tmp_path, monkeypatch):
    """(name, marker): a "module:function" program whose import leaves `marker` behind."""
    folder = tmp_path / "site"
    folder.mkdir()
    module = f"planted_{tmp_path.name.replace('-', '_')}"
    (folder / f"{module}.py").write_text(PLANTED)
    monkeypatch.syspath_prepend(str(folder))
    monkeypatch.delitem(sys.modules, module, raising=False)
    return f"{module}:program", folder / "IMPORTED"


@pytest.fixture
def hostile_checkpoint(tmp_path, planted):
    """The certificate of 4-bit multiplication, saved as a run whose config names the planted program."""
    name, _ = planted
    program = compile_program("multiplication", 16)
    path = tmp_path / "hostile"
    certificate_model(program).save_pretrained(path)
    build_program_tokenizer(program).save_pretrained(path)
    (path / "training_config.yaml").write_text(
        yaml.safe_dump({"dataset": {"program_stream": {"program": name, "size": 16}}})
    )
    return path


def test_compile_program_imports_only_when_trusted(planted):
    name, marker = planted
    for hostile in (name, "os:_exit", "time:sleep", "os:getcwd"):
        with pytest.raises(ValueError, match="trust-program-code"):
            compile_program(hostile, 16)
    assert not marker.exists()
    assert compile_program(name, 16, trust_program_code=True).tokens(3, 5) == compile_program(
        "multiplication", 16
    ).tokens(3, 5)
    assert marker.exists()
    with pytest.raises(ValueError, match="not a program function"):
        compile_program("json:loads", 16, trust_program_code=True)  # json.loads(16): a TypeError, named


def test_a_program_passed_as_code_needs_no_import():
    def my_program(size):
        return compile_program("parity", size)

    assert compile_program(my_program, 6).tokens(0b101101) == compile_program("parity", 6).tokens(0b101101)


def test_the_demo_refuses_a_checkpoint_that_names_code(hostile_checkpoint, planted):
    from hf_linear.demo.models import load_demo_model

    _, marker = planted
    with pytest.raises(ValueError, match="not a shipped program .* --trust-program-code"):
        load_demo_model(str(hostile_checkpoint))
    assert not marker.exists()
    assert load_demo_model(str(hostile_checkpoint), trust_program_code=True).task.program.name == "multiplication-16"
    assert marker.exists()


def test_eval_refuses_program_json_that_names_code(hostile_checkpoint, planted, capsys):
    from hf_linear.evaluation.cli import main

    name, marker = planted
    with pytest.raises(SystemExit) as exit_:
        main([str(hostile_checkpoint), "--program", json.dumps({"program": name, "size": 16})])
    assert exit_.value.code == 2 and "--trust-program-code" in capsys.readouterr().err
    assert not marker.exists()


def test_train_refuses_a_config_that_names_code_and_init_from_reads_no_program(
    tmp_path, hostile_checkpoint, planted, capsys
):
    from hf_linear.training.train import main

    name, marker = planted
    config = {
        "model": {"type": "linear_lm", "hidden_size": 4, "context_length": 40},
        "dataset": {"program": {"program": name, "size": 16, "train_size": 64}},
        "training": {"output_dir": str(tmp_path / "run"), "max_steps": 1, "report_to": "none"},
    }
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    with pytest.raises(SystemExit) as exit_:
        main([str(tmp_path / "config.yaml")])
    assert exit_.value.code == 2 and "--trust-program-code" in capsys.readouterr().err
    assert not marker.exists() and not (tmp_path / "run").exists()

    # fine-tuning the hostile checkpoint on a shipped program: its training_config.yaml is never acted on
    config["model"] = {"init_from": str(hostile_checkpoint)}
    config["dataset"] = {
        "program": {"program": "multiplication", "size": 16, "train_size": 64, "validation_size": 4, "test_size": 4},
        "allow_sliding": True,
    }
    config["evaluation"] = {"num_samples": 4}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    assert main([str(tmp_path / "config.yaml")]) == 0
    assert not marker.exists() and (tmp_path / "run" / "model.safetensors").is_file()


def test_a_dataset_that_names_code_is_read_only_when_trusted(tmp_path, planted):
    name, marker = planted
    dataset = build_program_dataset(name, 16, train_size=4, validation_size=2, test_size=2, trust_program_code=True)
    marker.unlink()
    dataset.save_to_disk(tmp_path / "data")
    from datasets import load_from_disk

    sys.modules.pop(name.split(":")[0])
    with pytest.raises(ValueError, match="trust-program-code"):
        program_of(load_from_disk(tmp_path / "data"))
    assert not marker.exists()


def test_a_config_cannot_grant_itself_trust(tmp_path, planted):
    from hf_linear.data.sources import data_source

    name, marker = planted
    for key in ("program", "program_stream"):
        with pytest.raises(ValueError, match="trust_program_code"):
            data_source({key: {"program": name, "size": 16, "trust_program_code": True}})
    assert not marker.exists()
