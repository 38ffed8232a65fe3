"""The local Hub-API server, exercised only through the unmodified clients (huggingface_hub,
datasets) — plus a few raw HTTP checks of what those clients rely on (ranges, LFS hashing)."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import datasets
import httpx2
import pytest
from huggingface_hub import (
    CommitOperationAdd,
    HfApi,
    HfFileSystem,
    hf_hub_download,
    snapshot_download,
)
from huggingface_hub.errors import (
    EntryNotFoundError,
    HfHubHTTPError,
    LocalEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

from hf_linear.hub import server as hub_server


def _binary(n: int, seed: int) -> bytes:
    """Deterministic non-text bytes (contain NUL bytes → the Hub stores them with LFS)."""
    return b"".join(hashlib.sha256(f"{seed}-{i}".encode()).digest() for i in range(n // 32 + 1))[:n] + b"\0"


def _tree(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_client_environment_is_restored(hub_http_server, tmp_path):
    import datasets.config
    import huggingface_hub.constants
    from conftest import hub_client_env

    before = (
        huggingface_hub.constants.ENDPOINT,
        huggingface_hub.constants.HF_HUB_CACHE,
        datasets.config.HF_ENDPOINT,
        os.environ.get("HF_ENDPOINT"),
    )
    with hub_client_env(hub_http_server.url, tmp_path):
        assert huggingface_hub.constants.ENDPOINT == datasets.config.HF_ENDPOINT == hub_http_server.url
        assert str(tmp_path / "hub") == huggingface_hub.constants.HF_HUB_CACHE
    after = (
        huggingface_hub.constants.ENDPOINT,
        huggingface_hub.constants.HF_HUB_CACHE,
        datasets.config.HF_ENDPOINT,
        os.environ.get("HF_ENDPOINT"),
    )
    assert after == before


def test_whoami_and_create_repo(hub_server):
    api = HfApi()
    assert api.whoami()["name"] == hub_server.user
    repo_id = hub_server.repo_id("created")

    url = api.create_repo(repo_id)
    assert url.repo_id == repo_id and url.repo_type == "model"
    with pytest.raises(HfHubHTTPError) as exc:
        api.create_repo(repo_id)
    assert exc.value.response.status_code == 409
    assert api.create_repo(repo_id, exist_ok=True).repo_id == repo_id

    info = api.model_info(repo_id)
    assert len(info.sha) == 40 and int(info.sha, 16) >= 0
    assert [s.rfilename for s in info.siblings] == [".gitattributes"]  # the Hub's initial commit


def test_repo_without_namespace_goes_to_the_user(hub_server):
    name = hub_server.repo_id("no-namespace").split("/")[1]
    url = HfApi().create_repo(name)
    assert url.repo_id == f"{hub_server.user}/{name}"


def test_upload_regular_and_lfs_files_then_download_with_empty_cache(hub_server, tmp_path):
    api = HfApi()
    repo_id = hub_server.repo_id("upload")
    api.create_repo(repo_id)
    weights = _binary(200_000, seed=1)
    config = b'{"hidden_size": 8}\n'
    api.upload_file(path_or_fileobj=weights, path_in_repo="model.safetensors", repo_id=repo_id)
    api.upload_file(path_or_fileobj=config, path_in_repo="config.json", repo_id=repo_id)

    infos = {i.path: i for i in api.get_paths_info(repo_id, ["model.safetensors", "config.json", "missing"])}
    assert set(infos) == {"model.safetensors", "config.json"}
    assert infos["model.safetensors"].lfs.sha256 == hashlib.sha256(weights).hexdigest()
    assert infos["model.safetensors"].size == len(weights)
    assert infos["config.json"].lfs is None
    uploads = [path.split("?")[0] for method, path, status in hub_server.requests if method == "PUT" and status == 200]
    assert f"/lfs-upload/{hashlib.sha256(weights).hexdigest()}" in uploads  # weights went through LFS

    assert not (hub_server.hf_home / "hub").exists()  # the test starts with an empty cache
    for name, content in (("model.safetensors", weights), ("config.json", config)):
        path = hf_hub_download(repo_id, name)
        assert Path(path).read_bytes() == content
        assert str(hub_server.hf_home / "hub") in path
    assert sorted(api.list_repo_files(repo_id)) == [".gitattributes", "config.json", "model.safetensors"]


def test_upload_folder_and_snapshot_download(hub_server, tmp_path):
    api = HfApi()
    repo_id = hub_server.repo_id("folder")
    api.create_repo(repo_id)
    folder = tmp_path / "ckpt"
    (folder / "nested" / "deeper").mkdir(parents=True)
    (folder / "config.json").write_text('{"a": 1}')
    (folder / "model.safetensors").write_bytes(_binary(50_000, seed=2))
    (folder / "nested" / "notes.txt").write_text("hello\n")
    (folder / "nested" / "deeper" / "data.bin").write_bytes(_binary(3_000, seed=3))
    api.upload_folder(folder_path=folder, repo_id=repo_id)

    snapshot = Path(snapshot_download(repo_id))
    downloaded = _tree(snapshot)
    gitattributes = downloaded.pop(".gitattributes")
    assert downloaded == _tree(folder)
    assert b"*.safetensors filter=lfs" in gitattributes

    listing = {e.path: type(e).__name__ for e in api.list_repo_tree(repo_id, "nested")}
    assert listing == {"nested/deeper": "RepoFolder", "nested/notes.txt": "RepoFile"}


def test_reupload_makes_new_commit_and_old_revision_stays_loadable(hub_server):
    api = HfApi()
    repo_id = hub_server.repo_id("revisions")
    api.create_repo(repo_id)
    old, new = _binary(10_000, seed=4), _binary(10_000, seed=5)
    first = api.upload_file(path_or_fileobj=old, path_in_repo="model.safetensors", repo_id=repo_id)
    second = api.upload_file(path_or_fileobj=new, path_in_repo="model.safetensors", repo_id=repo_id)

    assert first.oid != second.oid
    assert api.model_info(repo_id).sha == second.oid
    assert api.model_info(repo_id, revision=first.oid).sha == first.oid
    assert Path(hf_hub_download(repo_id, "model.safetensors")).read_bytes() == new
    assert Path(hf_hub_download(repo_id, "model.safetensors", revision=first.oid)).read_bytes() == old
    commits = [c.commit_id for c in api.list_repo_commits(repo_id)]
    assert commits[:2] == [second.oid, first.oid] and len(commits) == 3  # + the initial commit


def test_unchanged_file_is_not_recommitted(hub_server):
    api = HfApi()
    repo_id = hub_server.repo_id("unchanged")
    api.create_repo(repo_id)
    first = api.upload_file(path_or_fileobj=b"same text\n", path_in_repo="a.txt", repo_id=repo_id)
    again = api.upload_file(path_or_fileobj=b"same text\n", path_in_repo="a.txt", repo_id=repo_id)
    assert again.oid == first.oid  # preupload reported the remote oid; the client skipped the commit
    assert len(api.list_repo_commits(repo_id)) == 2


def test_delete_file_keeps_it_in_old_revisions(hub_server):
    api = HfApi()
    repo_id = hub_server.repo_id("delete-file")
    api.create_repo(repo_id)
    added = api.upload_file(path_or_fileobj=b"x\n", path_in_repo="dir/x.txt", repo_id=repo_id)
    api.delete_file("dir/x.txt", repo_id)
    assert "dir/x.txt" not in api.list_repo_files(repo_id)
    assert Path(hf_hub_download(repo_id, "dir/x.txt", revision=added.oid)).read_bytes() == b"x\n"
    with pytest.raises(EntryNotFoundError):
        api.delete_file("dir/x.txt", repo_id)


def test_commit_on_a_stale_parent_is_refused(hub_server):
    api = HfApi()
    repo_id = hub_server.repo_id("stale-parent")
    api.create_repo(repo_id)
    parent = api.model_info(repo_id).sha
    api.upload_file(path_or_fileobj=b"1\n", path_in_repo="one.txt", repo_id=repo_id)
    with pytest.raises(HfHubHTTPError) as exc:
        api.create_commit(repo_id, [CommitOperationAdd("two.txt", b"2\n")], commit_message="late", parent_commit=parent)
    assert exc.value.response.status_code == 412
    assert "two.txt" not in api.list_repo_files(repo_id)


def test_branches_and_tags(hub_server):
    api = HfApi()
    repo_id = hub_server.repo_id("refs")
    api.create_repo(repo_id)
    on_main = api.upload_file(path_or_fileobj=b"main\n", path_in_repo="f.txt", repo_id=repo_id)
    api.create_branch(repo_id, branch="dev")
    with pytest.raises(HfHubHTTPError) as exc:
        api.create_branch(repo_id, branch="dev")
    assert exc.value.response.status_code == 409
    api.create_branch(repo_id, branch="dev", exist_ok=True)
    on_dev = api.upload_file(path_or_fileobj=b"dev\n", path_in_repo="f.txt", repo_id=repo_id, revision="dev")
    api.create_tag(repo_id, tag="v1", revision=on_main.oid)

    refs = api.list_repo_refs(repo_id)
    assert {b.name: b.target_commit for b in refs.branches} == {"main": on_main.oid, "dev": on_dev.oid}
    assert {t.name: t.target_commit for t in refs.tags} == {"v1": on_main.oid}
    assert Path(hf_hub_download(repo_id, "f.txt", revision="dev")).read_bytes() == b"dev\n"
    assert Path(hf_hub_download(repo_id, "f.txt", revision="v1")).read_bytes() == b"main\n"
    assert Path(hf_hub_download(repo_id, "f.txt")).read_bytes() == b"main\n"

    api.delete_branch(repo_id, branch="dev")
    api.delete_tag(repo_id, tag="v1")
    with pytest.raises(RevisionNotFoundError):
        api.model_info(repo_id, revision="dev")
    with pytest.raises(RevisionNotFoundError):
        hf_hub_download(repo_id, "f.txt", revision="v1")


def test_range_requests(hub_server):
    api = HfApi()
    repo_id = hub_server.repo_id("range")
    api.create_repo(repo_id)
    data = _binary(5_000, seed=6)
    api.upload_file(path_or_fileobj=data, path_in_repo="blob.bin", repo_id=repo_id)
    url = f"{hub_server.url}/{repo_id}/resolve/main/blob.bin"

    partial = httpx2.get(url, headers={"Range": "bytes=100-199"})
    assert partial.status_code == 206 and partial.content == data[100:200]
    assert partial.headers["Content-Range"] == f"bytes 100-199/{len(data)}"
    assert httpx2.get(url, headers={"Range": "bytes=-10"}).content == data[-10:]
    assert httpx2.get(url, headers={"Range": "bytes=4990-"}).content == data[4990:]
    assert httpx2.get(url, headers={"Range": f"bytes={len(data)}-"}).status_code == 416

    head = httpx2.head(url)
    assert head.headers["X-Linked-Etag"] == f'"{hashlib.sha256(data).hexdigest()}"'
    assert int(head.headers["X-Linked-Size"]) == int(head.headers["Content-Length"]) == len(data)
    assert head.headers["X-Repo-Commit"] == api.model_info(repo_id).sha

    with HfFileSystem().open(f"{repo_id}/blob.bin", "rb", block_size=256) as f:  # ranged reads
        f.seek(1234)
        assert f.read(700) == data[1234:1934]


def test_lfs_upload_with_wrong_content_is_rejected(hub_server):
    repo_id = hub_server.repo_id("wrong-content")
    HfApi().create_repo(repo_id)
    claimed = hashlib.sha256(b"the real content").hexdigest()
    auth = {"Authorization": f"Bearer {hub_server.env['HF_TOKEN']}"}
    response = httpx2.put(
        f"{hub_server.url}/lfs-upload/{claimed}?repo=models/{repo_id}", content=b"something else", headers=auth
    )
    assert response.status_code == 400 and "sha256" in response.json()["error"]
    assert not (Path(hub_server.server.store.root) / "blobs" / claimed).exists()


def test_tree_pagination_and_expand(hub_server):
    api = HfApi()
    repo_id = hub_server.repo_id("many-files")
    api.create_repo(repo_id)
    operations = [CommitOperationAdd(f"files/{i:03d}.txt", f"{i}\n".encode()) for i in range(60)]
    commit = api.create_commit(repo_id, operations, commit_message="sixty files")

    entries = list(api.list_repo_tree(repo_id, "files", expand=True))  # the Hub pages by 50 when expanding
    assert [e.path for e in entries] == [f"files/{i:03d}.txt" for i in range(60)]
    assert all(e.last_commit.oid == commit.oid and e.last_commit.title == "sixty files" for e in entries)
    assert sum(1 for m, p, _ in hub_server.requests if m == "GET" and f"{repo_id}/tree/" in p and "cursor=" in p) == 1


def test_missing_repo_file_and_revision_raise_the_usual_errors(hub_server):
    api = HfApi()
    repo_id = hub_server.repo_id("errors")
    api.create_repo(repo_id)
    with pytest.raises(RepositoryNotFoundError):
        api.model_info(hub_server.repo_id("never-created"))
    with pytest.raises(RepositoryNotFoundError):
        hf_hub_download(hub_server.repo_id("never-created"), "config.json")
    with pytest.raises(RepositoryNotFoundError):
        api.dataset_info(repo_id)  # it is a model repo
    with pytest.raises(EntryNotFoundError):
        hf_hub_download(repo_id, "no-such-file.json")
    with pytest.raises(RevisionNotFoundError):
        hf_hub_download(repo_id, ".gitattributes", revision="no-such-branch")
    with pytest.raises(RevisionNotFoundError):
        api.model_info(repo_id, revision="0" * 40)


def test_private_repo_needs_a_token(hub_server):
    repo_id = hub_server.repo_id("private")
    HfApi().create_repo(repo_id, private=True)
    assert HfApi().model_info(repo_id).private is True
    with pytest.raises(RepositoryNotFoundError):
        HfApi(token=False).model_info(repo_id)


def test_delete_repo(hub_server):
    api = HfApi()
    repo_id = hub_server.repo_id("doomed")
    api.create_repo(repo_id, repo_type="dataset")
    api.delete_repo(repo_id, repo_type="dataset")
    with pytest.raises(RepositoryNotFoundError):
        api.dataset_info(repo_id)
    with pytest.raises(RepositoryNotFoundError):
        api.delete_repo(repo_id, repo_type="dataset")
    api.delete_repo(repo_id, repo_type="dataset", missing_ok=True)


def test_space_create_upload_snapshot_download(hub_server, tmp_path):
    api = HfApi()
    repo_id = hub_server.repo_id("space")
    url = api.create_repo(repo_id, repo_type="space", space_sdk="gradio")
    assert url.repo_type == "space" and url.repo_id == repo_id and "/spaces/" in url
    with pytest.raises(HfHubHTTPError) as exc:
        api.create_repo(repo_id, repo_type="space", space_sdk="gradio")
    assert exc.value.response.status_code == 409
    folder = tmp_path / "app"
    folder.mkdir()
    (folder / "app.py").write_text("import gradio as gr\n")
    (folder / "requirements.txt").write_text("gradio\nhf-linear\n")
    (folder / "README.md").write_text("---\ntitle: Demo\nsdk: gradio\napp_file: app.py\n---\n# Demo\n")
    (folder / "examples.bin").write_bytes(_binary(4_000, seed=9))  # binary: goes through LFS
    commit = api.upload_folder(folder_path=folder, repo_id=repo_id, repo_type="space")

    info = api.space_info(repo_id)
    assert info.sha == commit.oid and info.sdk == "gradio" and info.card_data["title"] == "Demo"
    assert api.repo_info(repo_id, repo_type="space").sha == commit.oid
    assert f"/spaces/{repo_id}.git/info/lfs/objects/batch" in {p for _, p, _ in hub_server.requests}
    snapshot = Path(snapshot_download(repo_id, repo_type="space"))
    downloaded = _tree(snapshot)
    downloaded.pop(".gitattributes")
    assert downloaded == _tree(folder)
    assert Path(hf_hub_download(repo_id, "app.py", repo_type="space")).read_text() == "import gradio as gr\n"
    with pytest.raises(RepositoryNotFoundError):
        api.model_info(repo_id)  # a Space is not a model
    # A Space needs an SDK (huggingface_hub refuses space_sdk=None itself, so ask raw).
    no_sdk = httpx2.post(
        f"{hub_server.url}/api/repos/create",
        json={"name": "no-sdk", "type": "space"},
        headers={"Authorization": f"Bearer {hub_server.env['HF_TOKEN']}"},
    )
    assert no_sdk.status_code == 400 and "sdk" in no_sdk.json()["error"]


def test_private_space_is_invisible_to_others(hub_server):
    repo_id = hub_server.repo_id("private-space")
    api = HfApi()
    api.create_repo(repo_id, repo_type="space", space_sdk="static", private=True)
    api.upload_file(path_or_fileobj=b"<html></html>\n", path_in_repo="index.html", repo_id=repo_id, repo_type="space")
    assert api.space_info(repo_id).private is True and api.space_info(repo_id).sdk == "static"
    anonymous = HfApi(token=False)
    with pytest.raises(RepositoryNotFoundError):
        anonymous.space_info(repo_id)
    with pytest.raises(RepositoryNotFoundError):
        hf_hub_download(repo_id, "index.html", repo_type="space", token=False)
    response = httpx2.get(f"{hub_server.url}/spaces/{repo_id}/resolve/main/index.html")
    assert response.status_code == 404 and response.headers["X-Error-Code"] == "RepoNotFound"
    api.delete_repo(repo_id, repo_type="space")
    with pytest.raises(RepositoryNotFoundError):
        api.space_info(repo_id)


def test_server_down_gives_a_connection_error(dead_hub):
    # (hf_hub_download of an uncached file also fails, but only after ~23 s of client retries.)
    with pytest.raises(LocalEntryNotFoundError, match="check your internet connection") as exc:
        snapshot_download("someone/model")
    assert isinstance(exc.value.__cause__, httpx2.ConnectError)
    with pytest.raises(httpx2.ConnectError, match="Connection refused"):
        HfApi().create_repo("someone/model")
    with pytest.raises(httpx2.ConnectError, match="Connection refused"):
        HfApi().model_info("someone/model")


def _dataset_dict() -> datasets.DatasetDict:
    features = datasets.Features(
        {
            "id": datasets.Value("int64"),
            "text": datasets.Value("string"),
            "digits": datasets.Sequence(datasets.Value("int32")),
        }
    )

    def split(n: int, offset: int) -> datasets.Dataset:
        rows = [
            {"id": offset + i, "text": f"row {offset + i}", "digits": [int(c) for c in str(offset + i)]}
            for i in range(n)
        ]
        return datasets.Dataset.from_list(rows, features=features)

    return datasets.DatasetDict({"train": split(40, 0), "test": split(7, 1000)})


@pytest.mark.slow
def test_dataset_push_to_hub_then_load_dataset(hub_server):
    repo_id = hub_server.repo_id("dataset")
    dataset = _dataset_dict()
    dataset.push_to_hub(repo_id)

    loaded = datasets.load_dataset(repo_id)
    assert set(loaded) == {"train", "test"}
    for split in dataset:
        assert loaded[split].features == dataset[split].features
        assert loaded[split].to_list() == dataset[split].to_list()
    files = HfApi().list_repo_files(repo_id, repo_type="dataset")
    assert "README.md" in files and any(f.startswith("data/train-") and f.endswith(".parquet") for f in files)


@pytest.mark.slow
def test_dataset_streaming_from_hub(hub_server):
    repo_id = hub_server.repo_id("dataset-stream")
    dataset = _dataset_dict()
    dataset.push_to_hub(repo_id)

    streamed = datasets.load_dataset(repo_id, streaming=True)
    for split in dataset:
        assert list(streamed[split]) == dataset[split].to_list()


@pytest.mark.slow
def test_dataset_repush_keeps_old_revision_loadable(hub_server):
    repo_id = hub_server.repo_id("dataset-revisions")
    first = _dataset_dict()
    first_commit = first.push_to_hub(repo_id).oid
    second = datasets.DatasetDict({"train": first["train"].select(range(5))})
    second.push_to_hub(repo_id)

    assert datasets.load_dataset(repo_id, split="train").to_list() == second["train"].to_list()
    old = datasets.load_dataset(repo_id, split="train", revision=first_commit)
    assert old.to_list() == first["train"].to_list()


def test_cli_rejects_a_bad_port(tmp_path):
    with pytest.raises(SystemExit) as exc:
        hub_server.main(["--root", str(tmp_path), "--port", "70000"])
    assert exc.value.code == 2


@pytest.mark.slow
@pytest.mark.parametrize("command", [["-m", "hf_linear.hub.server"], ["-m", "hf_linear.cli", "hub-server"]])
def test_command_line_server(tmp_path, command):
    """Without --token the server makes one user with a generated token and prints it."""
    root = tmp_path / "hub-root"
    process = subprocess.Popen(
        [sys.executable, *command, "--root", str(root), "--port", "0", "--quiet"],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        url = process.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        banner = [process.stdout.readline() for _ in range(3)]  # token, root, export line
        assert "HF_TOKEN=" in banner[-1]
        token = banner[-1].split("HF_TOKEN=")[1].strip()
        api = HfApi(endpoint=url, token=token)
        assert api.whoami()["name"] == hub_server.USER_NAME
        api.create_repo("cli-repo")
        assert (root / "repos" / "models" / hub_server.USER_NAME / "cli-repo" / "repo.json").is_file()
        with pytest.raises(HfHubHTTPError) as exc:
            HfApi(endpoint=url, token="not-the-token").whoami()
        assert exc.value.response.status_code == 401
    finally:
        process.terminate()
        process.wait(timeout=10)
