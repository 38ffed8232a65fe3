"""Push an hf-linear checkpoint to the Hugging Face Hub, with its code and a model card.

`hf-linear push CHECKPOINT REPO` (or `push_checkpoint(checkpoint_dir, repo_id)`) uploads, in one
commit: the safetensors weights, `config.json`, `generation_config.json`, the tokenizer files,
the model code (`modeling_hf_linear.py`, `configuration_hf_linear.py`, so the repo loads with
`trust_remote_code=True` where hf-linear is not installed), the training config and evaluation
report if present, and a README.md rendered from `model_cards/model_card.md`.

The checkpoint directory is only read: anything that has to be added or changed (the card, a
missing code file, a config without `auto_map`) is built in memory and uploaded from there.
Pickled files (`pytorch_model.bin`, `optimizer.pt`, `training_args.bin`, ...) are never uploaded.
The checks before any upload are verification.py's, the card card.py's; this module uploads.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from huggingface_hub import CommitInfo, CommitOperationAdd, CommitOperationDelete, HfApi
from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError

from hf_linear.hub.card import dataset_ids, read_eval_report, read_training_config, render_model_card
from hf_linear.hub.http import TransportError
from hf_linear.hub.verification import (
    EVAL_REPORT_FILE,
    SAFETENSORS_INDEX,
    Checkpoint,
    HubPushError,
    inspect_checkpoint,
    remote_code_files,
    safetensors_parameter_count,
    verify_checkpoint,
)

__all__ = [
    "HubPushError",
    "push_checkpoint",
    "verify_checkpoint",
    "read_eval_report",
    "render_model_card",
    "dataset_ids",
    "main",
]


def push_checkpoint(
    checkpoint_dir: str | Path,
    repo_id: str,
    *,
    revision: str | None = None,
    private: bool = False,
    commit_message: str = "Upload hf-linear checkpoint",
    eval_results: str | Path | dict | None = None,
    create_repo: bool = True,
    token: str | None = None,
    endpoint: str | None = None,
) -> CommitInfo:
    """Push a saved checkpoint (weights, configs, tokenizer, code, card) as one commit.

    `eval_results`: an eval report (path or dict); default: `eval_results.json` in the checkpoint.
    `revision`: a branch (created if missing). `create_repo=False` refuses to create a new repo.
    Raises ValueError for an unusable checkpoint/report and HubPushError for corrupt weights (both
    before any network call, see `verify_checkpoint`) and if the Hub is unreachable or refuses;
    the checkpoint directory is never modified.
    """
    checkpoint = inspect_checkpoint(checkpoint_dir)
    verify_checkpoint(checkpoint.path)
    report_source = eval_results if eval_results is not None else checkpoint.eval_report
    report = read_eval_report(report_source) if report_source is not None else None
    training_text, training_config = read_training_config(checkpoint.training_config)
    config, missing_code = remote_code_files(checkpoint)
    parameters = safetensors_parameter_count(checkpoint.weights)

    api = HfApi(endpoint=endpoint, token=token)
    where = f"{repo_id} on {api.endpoint}"
    try:
        if create_repo:
            repo_id = api.create_repo(repo_id, private=private, exist_ok=True).repo_id
        else:
            repo_id = api.repo_info(repo_id).id
        if revision is not None:
            api.create_branch(repo_id, branch=revision, exist_ok=True)
        card = render_model_card(
            config,
            repo_id=repo_id,
            parameters=parameters,
            report=report,
            training_config_name=checkpoint.training_config.name if checkpoint.training_config else None,
            training_config_text=training_text,
            training_datasets=dataset_ids(training_config),
            has_tokenizer=checkpoint.has_tokenizer,
            training_dataset=training_config.get("dataset") if isinstance(training_config, dict) else None,
        )
        operations = upload_operations(
            checkpoint, config, missing_code, card, report.raw if eval_results is not None else None
        )
        uploaded = {op.path_in_repo for op in operations}
        stale_weights = [
            f
            for f in api.list_repo_files(repo_id, revision=revision)
            if (f.endswith(".safetensors") or f == SAFETENSORS_INDEX) and f not in uploaded
        ]
        operations += [CommitOperationDelete(path_in_repo=f) for f in stale_weights]
        return api.create_commit(repo_id, operations, commit_message=commit_message, revision=revision)
    except RepositoryNotFoundError as e:
        hint = " (it is created only with create_repo=True / without --no-create)" if not create_repo else ""
        raise HubPushError(
            f"Repository {where} not found{hint}; nothing was pushed, {checkpoint.path} is unchanged"
        ) from e
    except HfHubHTTPError as e:
        raise HubPushError(f"The Hub refused the push to {where}: {e}; {checkpoint.path} is unchanged") from e
    except TransportError as e:
        raise HubPushError(
            f"Cannot reach the Hub at {api.endpoint} ({type(e).__name__}: {e}); nothing was "
            f"pushed, {checkpoint.path} is unchanged"
        ) from e


def upload_operations(
    checkpoint: Checkpoint, config: dict, missing_code: dict[str, bytes], card: str, explicit_report: dict | None
) -> list[CommitOperationAdd]:
    """Files read from the checkpoint, plus what was built in memory (card, config, code, report)."""
    built = {"README.md": card.encode(), **missing_code}
    if config != checkpoint.config:  # auto_map was added
        built["config.json"] = (json.dumps(config, indent=2, sort_keys=True) + "\n").encode()
    if explicit_report is not None:  # a report given to push_checkpoint replaces the checkpoint's own
        built[EVAL_REPORT_FILE] = (json.dumps(explicit_report, indent=2) + "\n").encode()
    operations = [CommitOperationAdd(path_in_repo=name, path_or_fileobj=content) for name, content in built.items()]
    operations += [
        CommitOperationAdd(path_in_repo=p.name, path_or_fileobj=str(p))
        for p in checkpoint.weights + checkpoint.files
        if p.name not in built
    ]
    return operations


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="hf-linear push",
        description="Push an hf-linear checkpoint (safetensors weights, config, tokenizer, model code for "
        "trust_remote_code, model card) to the Hugging Face Hub (or the endpoint in HF_ENDPOINT).",
    )
    parser.add_argument("checkpoint", help="directory written by save_pretrained / the trainer")
    parser.add_argument("repo", help="Hub repo id, 'namespace/name' (or 'name' in your namespace)")
    parser.add_argument("--private", action="store_true", help="create the repo as private")
    parser.add_argument("--revision", help="branch to push to (created if missing; default main)")
    parser.add_argument("--commit-message", default="Upload hf-linear checkpoint")
    parser.add_argument(
        "--eval-report",
        help=f"evaluation JSON for the card (default: {EVAL_REPORT_FILE} in the checkpoint, if present)",
    )
    parser.add_argument("--no-create", action="store_true", help="fail instead of creating a missing repo")
    parser.add_argument(
        "--space",
        metavar="SPACE_REPO",
        help="then also push a Space (Gradio) running `hf-linear demo` on the pushed model (hf_linear.hub.space)",
    )
    args = parser.parse_args(argv)
    try:
        commit = push_checkpoint(
            args.checkpoint,
            args.repo,
            revision=args.revision,
            private=args.private,
            commit_message=args.commit_message,
            eval_results=args.eval_report,
            create_repo=not args.no_create,
        )
        if args.space:
            from hf_linear.hub.space import push_space

            space_commit = push_space(args.space, [commit.repo_url.repo_id], private=args.private)
    except (ValueError, HubPushError) as e:
        print(f"hf-linear push: error: {e}", file=sys.stderr)
        return 1
    print(commit.commit_url)
    if args.space:
        print(space_commit.commit_url)
    return 0


if __name__ == "__main__":
    sys.exit(main())
