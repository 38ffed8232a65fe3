"""Sharing models on the Hub: `push_checkpoint` / `hf-linear push`, `push_to_hub`, and loading back
with `from_pretrained` (also with `trust_remote_code` where hf_linear is not importable), all
against the local Hub-API server (see conftest.py)."""

from __future__ import annotations

import json
import os
from functools import partial
from pathlib import Path

import pytest
import torch
import yaml
from helpers import tiny_model
from huggingface_hub import HfApi, ModelCard, hf_hub_download
from huggingface_hub.errors import RepositoryNotFoundError
from safetensors.torch import save_file
from transformers import AutoModelForCausalLM, AutoTokenizer

import hf_linear
from hf_linear import LinearLMConfig, LinearLMForCausalLM, cli
from hf_linear.hub.push import HubPushError, push_checkpoint, read_eval_report, render_model_card

V, T, D = 23, 6, 4
tiny = partial(tiny_model, vocab_size=V, context_length=T, hidden_size=D)


IDS = torch.randint(0, V, (2, T + 3), generator=torch.Generator().manual_seed(7))


def logits(model) -> torch.Tensor:
    with torch.no_grad():
        return model(IDS).logits


def snapshot(folder: Path) -> dict[str, tuple[bytes, int, int]]:
    """Every file's bytes, mtime and mode: to show a directory was left exactly as it was."""
    return {
        p.relative_to(folder).as_posix(): (p.read_bytes(), p.stat().st_mtime_ns, p.stat().st_mode)
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


EVAL_REPORT = {
    "dataset": "hf-linear-tester/multiplication-4x4",
    "split": "test",
    "num_samples": 1000,
    "exact_match": 0.969,
    "per_digit_accuracy": 0.9912,
    "perplexity": 1.0234,
}
TRAINING_CONFIG = """\
model:
  kind: mlp
  context_length: 6
data:
  dataset: hf-linear-tester/multiplication-4x4
training:
  learning_rate: 0.001
  weight_decay: 0.1
"""


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["linear", "mlp"])
def test_push_then_from_pretrained_with_an_empty_cache_gives_identical_logits(hub_server, tmp_path, kind):
    model = tiny(kind)
    model.save_pretrained(tmp_path / "ckpt")
    before = snapshot(tmp_path / "ckpt")
    repo_id = hub_server.repo_id(kind)

    push_checkpoint(tmp_path / "ckpt", repo_id)

    assert snapshot(tmp_path / "ckpt") == before  # the checkpoint is only read
    assert sorted(HfApi().list_repo_files(repo_id)) == [
        ".gitattributes",
        "README.md",
        "config.json",
        "configuration_hf_linear.py",
        "generation_config.json",
        "masked_mixing.py",
        "model.safetensors",
        "modeling_hf_linear.py",
    ]
    assert not (hub_server.hf_home / "hub").exists()  # nothing cached yet
    loaded = AutoModelForCausalLM.from_pretrained(repo_id)
    assert type(loaded) is type(model)
    torch.testing.assert_close(logits(loaded), logits(model), rtol=0, atol=0)


@pytest.mark.slow
def test_trust_remote_code_load_where_hf_linear_is_not_importable(hub_server, tmp_path):
    model = tiny("mlp", num_mlp_layers=2, mlp_hidden_size=5)
    model.save_pretrained(tmp_path / "ckpt")
    repo_id = hub_server.repo_id("remote-code")
    push_checkpoint(tmp_path / "ckpt", repo_id)
    save_file({"ids": IDS, "logits": logits(model)}, tmp_path / "expected.safetensors")

    result = hub_server.run_python(
        f"""
        try:
            import hf_linear
        except ModuleNotFoundError:
            pass
        else:
            raise SystemExit("hf_linear is importable")
        import torch
        from safetensors.torch import load_file
        from transformers import AutoModelForCausalLM
        expected = load_file({str(tmp_path / "expected.safetensors")!r})
        model = AutoModelForCausalLM.from_pretrained({repo_id!r}, trust_remote_code=True)
        assert type(model).__module__.startswith("transformers_modules"), type(model).__module__
        with torch.no_grad():
            torch.testing.assert_close(model(expected["ids"]).logits, expected["logits"], rtol=0, atol=0)
        print("remote code ok:", type(model).__name__)
        """,
        block_imports=["hf_linear"],
        cwd=tmp_path,
    )
    assert "remote code ok: MLPLMForCausalLM" in result.stdout


def test_model_card_yaml_carries_the_metrics(hub_server, tmp_path):
    model = tiny("mlp")
    model.save_pretrained(tmp_path / "ckpt")
    (tmp_path / "ckpt" / "eval_results.json").write_text(json.dumps(EVAL_REPORT))
    (tmp_path / "ckpt" / "training_config.yaml").write_text(TRAINING_CONFIG)
    repo_id = hub_server.repo_id("card")
    push_checkpoint(tmp_path / "ckpt", repo_id)

    card = ModelCard.load(repo_id)  # downloads README.md and parses its YAML header
    assert card.data.library_name == "transformers"
    assert card.data.pipeline_tag == "text-generation"
    assert card.data.license == "apache-2.0"
    assert {"hf-linear", "mlp-lm"} <= set(card.data.tags)
    assert card.data.datasets == ["hf-linear-tester/multiplication-4x4"]
    assert card.data.model_name == repo_id
    metrics = {r.metric_type: r.metric_value for r in card.data.eval_results}
    assert metrics == {k: EVAL_REPORT[k] for k in ("exact_match", "per_digit_accuracy", "perplexity")}
    for result in card.data.eval_results:
        assert (result.task_type, result.dataset_name, result.dataset_split) == (
            "text-generation",
            "hf-linear-tester/multiplication-4x4",
            "test",
        )
    header = yaml.safe_load(card.content.split("---")[1])
    assert header["model-index"][0]["results"][0]["metrics"][0]["type"] == "exact_match"

    text = card.text
    assert f"| parameters | {model.num_parameters():,} |" in text
    assert f"| context length T | {T} |" in text and f"| vocabulary size V | {V} |" in text
    assert "learning_rate: 0.001" in text  # the training config section
    assert "| Exact match (`exact_match`) | 0.969 |" in text
    assert f'AutoModelForCausalLM.from_pretrained("{repo_id}", trust_remote_code=True)' in text
    assert "2309.06979" in text and "volume        = {235}" in text
    for name in ("## Intended use", "## Limitations", "## Citation"):
        assert name in text
    for name in ("eval_results.json", "training_config.yaml"):
        assert Path(hf_hub_download(repo_id, name)).read_bytes() == (tmp_path / "ckpt" / name).read_bytes()
    assert HfApi().model_info(repo_id).card_data.eval_results[0].metric_value == 0.969  # as the Hub sees it


def test_push_adds_missing_model_code_and_auto_map(hub_server, tmp_path):
    tiny("linear").save_pretrained(tmp_path / "ckpt")
    for name in ("modeling_hf_linear.py", "masked_mixing.py", "configuration_hf_linear.py"):
        (tmp_path / "ckpt" / name).unlink()
    config = json.loads((tmp_path / "ckpt" / "config.json").read_text())
    del config["auto_map"]
    (tmp_path / "ckpt" / "config.json").write_text(json.dumps(config))
    before = snapshot(tmp_path / "ckpt")
    repo_id = hub_server.repo_id("added-code")

    push_checkpoint(tmp_path / "ckpt", repo_id)

    assert snapshot(tmp_path / "ckpt") == before
    package = Path(hf_linear.__file__).parent
    for name in ("modeling_hf_linear.py", "masked_mixing.py", "configuration_hf_linear.py"):
        assert Path(hf_hub_download(repo_id, name)).read_bytes() == (package / name).read_bytes()
    pushed_config = json.loads(Path(hf_hub_download(repo_id, "config.json")).read_text())
    assert pushed_config["auto_map"] == {
        "AutoConfig": "configuration_hf_linear.LinearLMConfig",
        "AutoModel": "modeling_hf_linear.LinearLMModel",
        "AutoModelForCausalLM": "modeling_hf_linear.LinearLMForCausalLM",
    }


@pytest.mark.slow
def test_repush_makes_a_new_commit_and_the_old_revision_keeps_the_old_logits(hub_server, tmp_path):
    repo_id = hub_server.repo_id("repush")
    old, new = tiny("linear", seed=0), tiny("linear", seed=1)
    assert not torch.equal(logits(old), logits(new))
    old.save_pretrained(tmp_path / "ckpt", max_shard_size="1KB")  # sharded first: the re-push must drop the shards
    first = push_checkpoint(tmp_path / "ckpt", repo_id)
    assert "model.safetensors.index.json" in HfApi().list_repo_files(repo_id)
    for shard in (tmp_path / "ckpt").glob("model*.safetensors*"):
        shard.unlink()
    new.save_pretrained(tmp_path / "ckpt")
    second = push_checkpoint(tmp_path / "ckpt", repo_id, commit_message="retrained")

    assert first.oid != second.oid
    assert [c.commit_id for c in HfApi().list_repo_commits(repo_id)][:2] == [second.oid, first.oid]
    assert not any(f.startswith("model-") for f in HfApi().list_repo_files(repo_id))
    torch.testing.assert_close(logits(AutoModelForCausalLM.from_pretrained(repo_id)), logits(new), rtol=0, atol=0)
    at_first = AutoModelForCausalLM.from_pretrained(repo_id, revision=first.oid)
    torch.testing.assert_close(logits(at_first), logits(old), rtol=0, atol=0)


def test_push_to_a_branch_of_a_private_repo(hub_server, tmp_path):
    repo_id = hub_server.repo_id("branch")
    model = tiny("mlp")
    model.save_pretrained(tmp_path / "ckpt")
    push_checkpoint(tmp_path / "ckpt", repo_id, private=True, revision="experiment")

    api = HfApi()
    assert api.model_info(repo_id).private is True
    assert api.list_repo_files(repo_id) == [".gitattributes"]  # main untouched
    loaded = AutoModelForCausalLM.from_pretrained(repo_id, revision="experiment")
    torch.testing.assert_close(logits(loaded), logits(model), rtol=0, atol=0)


def test_push_with_the_hub_down_is_a_clear_error_and_leaves_the_checkpoint_untouched(dead_hub, tmp_path):
    tiny("mlp").save_pretrained(tmp_path / "ckpt")
    before = snapshot(tmp_path / "ckpt")
    with pytest.raises(HubPushError, match=f"Cannot reach the Hub at {dead_hub.url}.*unchanged"):
        push_checkpoint(tmp_path / "ckpt", "someone/model")
    assert snapshot(tmp_path / "ckpt") == before


def test_push_to_a_missing_repo_without_creating_it(hub_server, tmp_path):
    tiny("mlp").save_pretrained(tmp_path / "ckpt")
    before = snapshot(tmp_path / "ckpt")
    repo_id = hub_server.repo_id("missing")
    with pytest.raises(HubPushError, match=f"Repository {repo_id} on {hub_server.url} not found"):
        push_checkpoint(tmp_path / "ckpt", repo_id, create_repo=False)
    assert snapshot(tmp_path / "ckpt") == before
    with pytest.raises(RepositoryNotFoundError):
        HfApi().model_info(repo_id)
    with pytest.raises(OSError, match=repo_id):
        AutoModelForCausalLM.from_pretrained(repo_id)


def test_unusable_checkpoints_are_refused_before_any_upload(dead_hub, tmp_path):
    with pytest.raises(ValueError, match=str(tmp_path / "nowhere")):
        push_checkpoint(tmp_path / "nowhere", "someone/model")
    pickled = tmp_path / "pickled"
    tiny("linear").save_pretrained(pickled)
    (pickled / "model.safetensors").unlink()
    torch.save({}, pickled / "pytorch_model.bin")
    with pytest.raises(ValueError, match=r"holds pytorch_model\.bin but no model\.safetensors"):
        push_checkpoint(pickled, "someone/model")
    tiny("linear").save_pretrained(tmp_path / "ckpt")
    with pytest.raises(ValueError, match="needs a 'dataset'"):
        push_checkpoint(tmp_path / "ckpt", "someone/model", eval_results={"exact_match": 1.0})


@pytest.mark.slow
def test_cli_push_with_tokenizer_and_eval_report(hub_server, tmp_path, shared_data_dir, capsys):
    tokenizer = AutoTokenizer.from_pretrained(shared_data_dir / "gpt2-tokenizer")
    torch.manual_seed(0)
    model = LinearLMForCausalLM(LinearLMConfig(vocab_size=len(tokenizer), context_length=4, hidden_size=2)).eval()
    model.save_pretrained(tmp_path / "ckpt")
    tokenizer.save_pretrained(tmp_path / "ckpt")
    report = {**EVAL_REPORT, "dataset": "hf-linear-tester/tinystories-sample", "perplexity": 123.4}
    (tmp_path / "report.json").write_text(json.dumps(report))
    repo_id = hub_server.repo_id("cli")

    code = cli.main(
        [
            "push",
            str(tmp_path / "ckpt"),
            repo_id,
            "--eval-report",
            str(tmp_path / "report.json"),
            "--commit-message",
            "first upload",
        ]
    )

    assert code == 0
    commit = HfApi().list_repo_commits(repo_id)[0]
    assert capsys.readouterr().out.strip().endswith(f"{repo_id}/commit/{commit.commit_id}")
    assert commit.title == "first upload"
    assert json.loads(Path(hf_hub_download(repo_id, "eval_results.json")).read_text()) == report
    assert AutoTokenizer.from_pretrained(repo_id)("Hello world").input_ids == [15496, 995]
    assert f'AutoTokenizer.from_pretrained("{repo_id}")' in ModelCard.load(repo_id).text


def test_cli_push_errors_are_reported(tmp_path, capsys):
    assert cli.main(["push", str(tmp_path / "nowhere"), "someone/model"]) == 1
    assert f"{tmp_path / 'nowhere'} does not exist" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        cli.main(["push", str(tmp_path)])  # missing REPO
    assert exc.value.code == 2


@pytest.mark.slow
def test_model_and_tokenizer_push_to_hub(hub_server, shared_data_dir):
    """What Trainer(push_to_hub=True) relies on: create_repo + commits of save_pretrained output."""
    tokenizer = AutoTokenizer.from_pretrained(shared_data_dir / "gpt2-tokenizer")
    torch.manual_seed(0)
    model = LinearLMForCausalLM(LinearLMConfig(vocab_size=len(tokenizer), context_length=4, hidden_size=2)).eval()
    repo_id = hub_server.repo_id("push-to-hub")

    model.push_to_hub(repo_id)
    tokenizer.push_to_hub(repo_id)

    ids = tokenizer("Once upon a time", return_tensors="pt").input_ids
    loaded = AutoModelForCausalLM.from_pretrained(repo_id)
    with torch.no_grad():
        torch.testing.assert_close(loaded(ids).logits, model(ids).logits, rtol=0, atol=0)
    assert AutoTokenizer.from_pretrained(repo_id)("Hello world").input_ids == [15496, 995]
    assert os.path.basename(hf_hub_download(repo_id, "modeling_hf_linear.py")) == "modeling_hf_linear.py"


def test_card_lists_only_hub_dataset_ids_as_datasets(tmp_path):
    """An eval run on a local save_to_disk directory keeps its metrics but is no Hub `datasets:` entry."""
    local = tmp_path / "mul4x4"
    local.mkdir()
    report = read_eval_report({"dataset": str(local), "split": "test", "exact_match": 0.5})
    config = tiny("linear").config.to_dict()
    card = ModelCard(
        render_model_card(
            config,
            repo_id="someone/model",
            parameters=587,
            report=report,
            training_config_name=None,
            training_config_text=None,
            training_datasets=["someone/tinystories", "arithmetic {'a': 1}"],
            has_tokenizer=False,
        )
    )
    assert card.data.datasets == ["someone/tinystories"]
    assert [(r.dataset_name, r.metric_value) for r in card.data.eval_results] == [(str(local), 0.5)]
    assert "No training configuration was stored" in card.text


def test_language_model_report_settings_are_not_card_metrics():
    from hf_linear.hub.push import dataset_ids, read_eval_report

    report = read_eval_report(
        {
            "dataset": "roneneldan/TinyStories",
            "split": "validation",
            "loss": 5.3,
            "perplexity": 201.4,
            "num_samples": 338,
            "num_tokens": 21294,
            "temperature": 0.5,
            "num_generations": 8,
            "distinct_2": 0.58,
        }
    )
    assert set(report.metrics) == {"loss", "perplexity", "distinct_2"}
    assert report.num_samples == 338
    config = {"dataset": {"tinystories": {"source": "roneneldan/TinyStories", "tokenizer": "gpt2"}}}
    assert "roneneldan/TinyStories" in dataset_ids(config)
