"""Reliability drills for the local Hub server (see RELIABILITY.md, "Hub server"): path traversal,
authorization, hostile file names, malformed and oversized requests, two server processes on one
root, stale temp files; and `hf-linear push` refusing corrupt checkpoints (`verify_checkpoint`).

Loopback only; every loop is bounded. A module-scoped server with two users (alice, member of the
organisation `team`, and bob) and small body limits is shared by the drills."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import random
import re
import shutil
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import quote, urlsplit

import httpx2
import pytest
import torch
from conftest import hub_client_env
from huggingface_hub import CommitOperationAdd, CommitOperationCopy, CommitOperationDelete, HfApi, hf_hub_download
from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError
from safetensors.torch import save_file

from hf_linear import LinearLMConfig, LinearLMForCausalLM
from hf_linear.hub.push import HubPushError, push_checkpoint, verify_checkpoint
from hf_linear.hub.server import Accounts, HubStore, Repo, User, serve_in_background
from hf_linear.hub.server.cli import check_listen_address, is_loopback
from hf_linear.hub.server.cli import main as server_main
from hf_linear.hub.server.store import STALE_TEMP_SECONDS

ALICE, BOB = "hf_alice_token_1", "hf_bob_token_2"
JSON_LIMIT = 1 << 20
UPLOAD_LIMIT = 2 << 20
PACKAGE_DIR = Path(__file__).resolve().parents[1] / "hf_linear"


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    accounts = Accounts({ALICE: User("alice", frozenset({"team"})), BOB: User("bob")})
    root = tmp_path_factory.mktemp("drill-root")
    with (
        serve_in_background(
            root, accounts=accounts, max_upload_bytes=UPLOAD_LIMIT, max_json_bytes=JSON_LIMIT
        ) as server,
        hub_client_env(server.url, tmp_path_factory.mktemp("drill-hf-home")),
    ):
        yield server


def api(hub, token) -> HfApi:
    return HfApi(endpoint=hub.url, token=token)


def call(hub, method: str, path: str, token: str | None = None, **kwargs) -> httpx2.Response:
    headers = dict(kwargs.pop("headers", {}))
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return httpx2.request(method, hub.url + path, headers=headers, timeout=30, **kwargs)


def new_repo(hub, name: str, token: str = ALICE, namespace: str = "alice", **kwargs) -> str:
    repo_id = f"{namespace}/{name}-{os.urandom(4).hex()}"
    api(hub, token).create_repo(repo_id, **kwargs)
    return repo_id


def commit_body(*operations: dict, summary: str = "drill") -> bytes:
    lines = [{"key": "header", "value": {"summary": summary, "description": ""}}, *operations]
    return "\n".join(json.dumps(line) for line in lines).encode()


def inline_file(path: str, content: bytes) -> dict:
    return {"key": "file", "value": {"path": path, "content": base64.b64encode(content).decode(), "encoding": "base64"}}


def raw_exchange(url: str, data: bytes, send_more: bytes = b"", timeout: float = 10) -> bytes:
    """Send raw bytes on one loopback connection; the response head (status line + headers)."""
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=timeout) as sock:
        sock.sendall(data + send_more)
        response = b""
        while b"\r\n\r\n" not in response:
            chunk = sock.recv(65536)
            if not chunk:
                break
            response += chunk
    return response


def status_of(response: bytes) -> int:
    return int(response.split(b" ", 2)[1])


def lfs_batch(hub, repo_id: str, token: str, oid: str, size: int) -> dict:
    """The batch answer's object for one upload of (oid, size) to repo_id."""
    return call(
        hub,
        "POST",
        f"/{repo_id}.git/info/lfs/objects/batch",
        token,
        json={"operation": "upload", "transfers": ["basic"], "objects": [{"oid": oid, "size": size}]},
    ).json()["objects"][0]


def readme(metadata: str) -> bytes:
    return f"---\n{metadata}\n---\n# A card\n".encode()


def commit_readme(hub, repo_id: str, metadata: str, repo_type: str = "models") -> None:
    """A raw commit: huggingface_hub would check the metadata with validate-yaml first."""
    response = call(
        hub,
        "POST",
        f"/api/{repo_type}/{repo_id}/commit/main",
        ALICE,
        content=commit_body(inline_file("README.md", readme(metadata))),
    )
    assert response.status_code == 200, response.text


def files_outside(root: Path) -> set[Path]:
    """Every file under root's parent directory that is not inside root."""
    return {p for p in root.parent.rglob("*") if p.is_file() and not p.is_relative_to(root)}


# ----------------------------------------------------------------------------- paths


@pytest.mark.slow
def test_no_route_reaches_outside_the_root(hub):
    root = Path(hub.store.root)
    repo_id = new_repo(hub, "traversal")
    api(hub, ALICE).upload_file(path_or_fileobj=b"x\n", path_in_repo="x.txt", repo_id=repo_id)
    # A complete, valid-looking repo outside the root: an absolute repo id must not find it.
    outside = root.parent / f"outside-{os.urandom(3).hex()}"
    shutil.copytree(root / "repos" / "models" / repo_id, outside / "ns" / "name")
    before = files_outside(root)
    absolute_ns = quote(str(outside / "ns"), safe="")
    requests = [
        ("GET", f"/api/models/{absolute_ns}/name", None),
        ("GET", f"/{absolute_ns}/name/resolve/main/x.txt", None),
        ("GET", "/api/models/%2E%2E/%2E%2E", None),
        ("GET", "/api/models/..%2F..%2Fetc/passwd", None),
        ("GET", "/api/datasets/%2Fetc/passwd/tree/main", None),
        ("GET", f"/{repo_id}/resolve/main/..%2F..%2Frepo.json", None),
        ("GET", f"/{repo_id}/resolve/main/a/../../refs.json", None),
        ("GET", f"/{repo_id}/resolve/..%2F..%2F..%2Fetc/x.txt", None),
        ("GET", f"/{repo_id}/resolve/{'a' * 7}*/x.txt", None),  # no glob through a commit prefix
        ("GET", f"/api/models/{repo_id}/tree/main/..%2F..", None),
        ("GET", f"/api/models/{repo_id}/revision/..%2Fmain", None),
        ("POST", f"/api/models/{absolute_ns}/name/commit/main", commit_body(inline_file("y.txt", b"y"))),
        ("POST", f"/api/models/{repo_id}/commit/main", commit_body(inline_file("../../escape.txt", b"e"))),
        ("POST", f"/api/models/{repo_id}/commit/main", commit_body(inline_file("/abs.txt", b"e"))),
        ("POST", f"/api/models/{repo_id}/branch/..%2F..%2Fevil", b"{}"),
        ("POST", f"/api/models/{repo_id}/tag/main", json.dumps({"tag": "../evil"}).encode()),
        ("POST", "/api/repos/create", json.dumps({"name": "../../evil"}).encode()),
        ("POST", "/api/repos/create", json.dumps({"name": "x", "organization": str(outside)}).encode()),
        ("PUT", "/lfs-upload/..%2F..%2Fevil", b"e"),
        (
            "POST",
            f"/{repo_id}.git/info/lfs/objects/verify",
            json.dumps({"oid": "../../etc/hostname", "size": 0}).encode(),
        ),
    ]
    for method, path, body in requests:
        response = call(hub, method, path, ALICE, content=body)
        assert 400 <= response.status_code < 500, (method, path, response.status_code, response.text)
        assert "error" in response.json()
    batch = call(
        hub,
        "POST",
        f"/{repo_id}.git/info/lfs/objects/batch",
        ALICE,
        json={"operation": "upload", "transfers": ["basic"], "objects": [{"oid": "../../etc/hostname", "size": 1}]},
    )
    assert batch.status_code == 200 and batch.json()["objects"][0]["error"]["code"] == 422
    assert files_outside(root) == before
    assert sorted(api(hub, ALICE).list_repo_files(repo_id)) == [".gitattributes", "x.txt"]


# ----------------------------------------------------------------------------- authorization


@pytest.mark.slow
def test_users_write_only_to_their_namespace_and_organisations(hub):
    alice, bob, anonymous = api(hub, ALICE), api(hub, BOB), api(hub, False)
    assert alice.whoami()["name"] == "alice" and [o["name"] for o in alice.whoami()["orgs"]] == ["team"]
    public = new_repo(hub, "public")
    team_repo = new_repo(hub, "shared", namespace="team")  # alice belongs to team
    alice.upload_file(path_or_fileobj=b"by alice\n", path_in_repo="a.txt", repo_id=team_repo)

    for namespace in ("alice", "team"):
        with pytest.raises(HfHubHTTPError) as exc:
            bob.create_repo(f"{namespace}/bobs-{os.urandom(3).hex()}")
        assert exc.value.response.status_code == 403
    for client, status in ((bob, 403), (anonymous, 401)):
        with pytest.raises(HfHubHTTPError) as exc:
            client.upload_file(path_or_fileobj=b"intruder\n", path_in_repo="b.txt", repo_id=public)
        assert exc.value.response.status_code == status
        with pytest.raises(HfHubHTTPError) as exc:
            client.delete_repo(public)
        assert exc.value.response.status_code == status
    assert alice.list_repo_files(public) == [".gitattributes"]
    assert anonymous.model_info(public).id == public  # anonymous reads of public repos stay allowed

    # Every write route, raw: anonymous → 401, bob → 403 (repo exists and is public).
    writes = [
        ("POST", f"/api/models/{public}/preupload/main", {"files": []}),
        ("POST", f"/api/models/{public}/branch/dev", {}),
        ("DELETE", f"/api/models/{public}/branch/dev", None),
        ("POST", f"/api/models/{public}/tag/main", {"tag": "v1"}),
        ("DELETE", f"/api/models/{public}/tag/v1", None),
        ("POST", f"/{public}.git/info/lfs/objects/batch", {"operation": "upload", "objects": []}),
        ("POST", f"/{public}.git/info/lfs/objects/verify", {"oid": "0" * 64, "size": 1}),
        ("POST", f"/api/models/{public}/commit/main", None),
    ]
    for method, path, payload in writes:
        for token, status in ((None, 401), (BOB, 403)):
            body = json.dumps(payload).encode() if payload is not None else commit_body()
            assert call(hub, method, path, token, content=body).status_code == status, (method, path, token)
    assert alice.list_repo_refs(public).tags == []


def test_private_repos_are_invisible_without_the_owners_token(hub, tmp_path):
    alice = api(hub, ALICE)
    private = new_repo(hub, "private", private=True)
    alice.upload_file(path_or_fileobj=b"secret\n", path_in_repo="s.txt", repo_id=private)
    assert hf_hub_download(private, "s.txt", token=ALICE, cache_dir=tmp_path / "a") is not None
    for token in (BOB, False):
        with pytest.raises(RepositoryNotFoundError):
            api(hub, token).model_info(private)
        with pytest.raises(RepositoryNotFoundError):
            hf_hub_download(private, "s.txt", token=token, cache_dir=tmp_path / "b")
    for token in (BOB, None):
        for path in (
            f"/api/models/{private}/tree/main",
            f"/api/models/{private}/refs",
            f"/{private}/resolve/main/s.txt",
        ):
            response = call(hub, "GET", path, token)
            assert response.status_code == 404 and response.headers["X-Error-Code"] == "RepoNotFound"
    with pytest.raises(HfHubHTTPError) as exc:
        api(hub, BOB).delete_repo(private)
    assert exc.value.response.status_code == 404
    assert alice.model_info(private).private is True


def test_unknown_token_is_refused_everywhere(hub):
    public = new_repo(hub, "unknown-token")
    for method, path in (
        ("GET", "/api/whoami-v2"),
        ("GET", f"/api/models/{public}"),
        ("GET", f"/{public}/resolve/main/.gitattributes"),
    ):
        response = call(hub, method, path, "hf_nobody_has_this")
        assert response.status_code == 401, path
        assert response.headers["X-Error-Message"] == "Invalid credentials in Authorization header"
    assert call(hub, "GET", "/api/whoami-v2", headers={"Authorization": "Basic YWxpY2U6eA=="}).status_code == 401


def test_lfs_upload_needs_a_signed_url_or_a_token(hub):
    content = os.urandom(3000) + b"\0"
    oid = hashlib.sha256(content).hexdigest()
    blob = Path(hub.store.root) / "blobs" / oid
    assert call(hub, "PUT", f"/lfs-upload/{oid}", content=content).status_code == 401
    forged = f"/lfs-upload/{oid}?expires=9999999999&signature={'0' * 64}"
    assert call(hub, "PUT", forged, content=content).status_code == 401
    assert not blob.exists()
    # The client's own path: the batch answer carries a signed URL, the PUT needs no token.
    repo_id = new_repo(hub, "lfs")
    batch = call(
        hub,
        "POST",
        f"/{repo_id}.git/info/lfs/objects/batch",
        ALICE,
        json={"operation": "upload", "transfers": ["basic"], "objects": [{"oid": oid, "size": len(content)}]},
    ).json()
    href = batch["objects"][0]["actions"]["upload"]["href"]
    assert "signature=" in href
    other = hashlib.sha256(b"another object").hexdigest()
    assert call(hub, "PUT", href.replace(oid, other).replace(hub.url, ""), content=b"another object").status_code == 401
    assert httpx2.put(href, content=content).status_code == 200 and blob.read_bytes() == content


def test_lfs_objects_are_reachable_only_through_their_repo(hub):
    """Blobs are shared by sha256, but an lfsFile commit needs the object uploaded through the same
    repo, and batch/verify answer alike for another repo's object and for one nobody has."""
    secret = b"bob's private weights\0" + os.urandom(64)
    oid, size = hashlib.sha256(secret).hexdigest(), len(secret)
    vault = new_repo(hub, "vault", token=BOB, namespace="bob", private=True)
    api(hub, BOB).upload_file(path_or_fileobj=secret, path_in_repo="w.bin", repo_id=vault)
    assert api(hub, BOB).get_paths_info(vault, ["w.bin"])[0].lfs.sha256 == oid  # stored as an LFS object
    public = new_repo(hub, "pub")
    leak = commit_body({"key": "lfsFile", "value": {"path": "leak.txt", "algo": "sha256", "oid": oid}})
    assert call(hub, "POST", f"/api/models/{public}/commit/main", ALICE, content=leak).status_code == 422
    assert call(hub, "GET", f"/{public}/resolve/main/leak.txt").status_code == 404
    nobodys = hashlib.sha256(os.urandom(32)).hexdigest()
    for probe in (oid, nobodys):  # no existence oracle: bob's object looks like one nobody has
        assert set(lfs_batch(hub, public, ALICE, probe, size)["actions"]) == {"upload", "verify"}
        verify = call(hub, "POST", f"/{public}.git/info/lfs/objects/verify", ALICE, json={"oid": probe, "size": size})
        assert verify.status_code == 404
    # The signed upload URL is for one repo: pointed at another one of alice's repos it is refused.
    href = lfs_batch(hub, public, ALICE, oid, size)["actions"]["upload"]["href"]
    other = new_repo(hub, "other")
    assert httpx2.put(href.replace(public.split("/")[1], other.split("/")[1]), content=secret).status_code == 401
    # Uploading the bytes herself (she has them) makes the object hers to commit.
    assert httpx2.put(href, content=secret).status_code == 200
    assert call(hub, "POST", f"/api/models/{public}/commit/main", ALICE, content=leak).status_code == 200
    assert call(hub, "GET", f"/{public}/resolve/main/leak.txt").content == secret
    assert call(hub, "POST", f"/api/models/{other}/commit/main", ALICE, content=leak).status_code == 422
    # An object a repo already references stays committable there (a copy sends only its oid).
    api(hub, BOB).create_commit(vault, [CommitOperationCopy("w.bin", "copy.bin")], commit_message="copy")
    assert call(hub, "GET", f"/{vault}/resolve/main/copy.bin", BOB).content == secret
    assert "actions" not in lfs_batch(hub, vault, BOB, oid, size)  # already there, for bob's repo


def test_lfs_index_of_a_repo_written_before_it_is_rebuilt_from_its_commits(tmp_path):
    store = HubStore(tmp_path / "root")
    repo, other = Repo("model", "alice/old"), Repo("model", "alice/other")
    for r in (repo, other):
        store.create_repo(r, private=False, author="alice")
    content = b"weights\0"
    oid = hashlib.sha256(content).hexdigest()
    store.put_blob_stream([content], oid)
    store.add_lfs_object(repo, oid)
    store.commit(repo, "main", {"summary": "w"}, [("lfsFile", {"path": "w.bin", "oid": oid})], author="alice")
    for r in (repo, other):  # the layout before the index existed
        shutil.rmtree(tmp_path / "root" / "repos" / "models" / r.id / "lfs")
    assert store.has_lfs_object(repo, oid, len(content)) and not store.has_lfs_object(other, oid)


# ----------------------------------------------------------------------------- listening address


def test_listening_beyond_loopback_needs_tokens_and_warns(tmp_path, capsys):
    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("::1")
    assert not is_loopback("0.0.0.0") and not is_loopback("")
    assert check_listen_address("127.0.0.1", Accounts.single_user()) is None
    with pytest.raises(ValueError, match="needs configured tokens"):
        check_listen_address("0.0.0.0", Accounts.single_user())
    assert "WARNING" in check_listen_address("0.0.0.0", Accounts.single_user(token="chosen"))
    from hf_linear.hub.server import main

    with pytest.raises(SystemExit) as exc:  # refused before anything listens
        main(["--root", str(tmp_path), "--host", "0.0.0.0", "--port", "0"])
    assert exc.value.code == 2 and "--token" in capsys.readouterr().err


def test_tokens_file_formats(tmp_path):
    lines = tmp_path / "tokens.txt"
    lines.write_text("# name token orgs\nalice tok-a team lab\nbob tok-b\n")
    as_json = tmp_path / "tokens.json"
    as_json.write_text(json.dumps([{"name": "carol", "token": "tok-c", "orgs": ["team"]}]))
    accounts = Accounts.from_sources(["dave=tok-d"], lines)
    assert accounts.user_for_token("tok-a") == User("alice", frozenset({"team", "lab"}))
    assert accounts.user_for_token("tok-d") == User("dave")
    assert accounts.user_for_token("tok-x") is None
    assert Accounts.from_sources([], as_json).user_for_token("tok-c").can_write("team")
    for bad in (["no-equals-sign"], ["../evil=tok"], ["a=same", "b=same"]):
        with pytest.raises(ValueError):
            Accounts.from_sources(bad)


def test_hub_server_cli_errors_are_one_line(tmp_path, capsys):
    """Each mistake: exit 2 before listening, one `error:` line naming the option, file or field."""

    def tokens(entries) -> str:
        path = tmp_path / f"tokens-{os.urandom(3).hex()}.json"
        path.write_text(json.dumps(entries))
        return str(path)

    (tmp_path / "a-file").write_text("x")
    root = str(tmp_path / "root")
    cases = [
        (["--root", "/proc/self/x"], "--root /proc/self/x"),
        (["--root", str(tmp_path / "a-file")], "not a directory"),
        (["--root", root, "--port", "70000"], "--port"),
        (["--root", root, "--tokens-file", tokens([{"name": "a", "token": "t", "orgs": "team"}])], "'orgs'"),
        (["--root", root, "--tokens-file", tokens([{"name": "a", "token": 5}])], "'token'"),
        (["--root", root, "--tokens-file", tokens([{"name": "a", "token": "t", "org": ["x"]}])], "'org'"),
        (["--root", root, "--tokens-file", tokens({"name": "a"})], "expected a JSON list"),
        (["--root", root, "--tokens-file", str(tmp_path / "missing.json")], "missing.json"),
        (["--root", root, "--token", "no-equals-sign"], "--token"),
    ]
    for argv, fragment in cases:
        with pytest.raises(SystemExit) as exc:
            server_main(argv)
        err = capsys.readouterr().err.strip()
        assert exc.value.code == 2 and len(err.splitlines()) == 1, (argv, err)
        assert err.startswith("hf-linear hub-server: error:") and fragment in err, (argv, err)


# ----------------------------------------------------------------------------- file names


def test_file_names_control_characters_refused_unicode_served(hub, tmp_path):
    repo_id = new_repo(hub, "names")
    for name in ("a\r\nSet-Cookie: x.txt", "tab\there.txt", "nul\0.txt"):
        response = call(
            hub, "POST", f"/api/models/{repo_id}/commit/main", ALICE, content=commit_body(inline_file(name, b"x"))
        )
        assert response.status_code == 400, name
    alice = api(hub, ALICE)
    alice.upload_file(path_or_fileobj="数据\n".encode(), path_in_repo="目录/数据.txt", repo_id=repo_id)
    assert (
        Path(hf_hub_download(repo_id, "目录/数据.txt", token=ALICE, cache_dir=tmp_path)).read_bytes()
        == "数据\n".encode()
    )
    head = call(hub, "HEAD", f"/{repo_id}/resolve/main/{quote('目录/数据.txt')}")
    assert head.status_code == 200
    assert "filename*=UTF-8''%E6%95%B0%E6%8D%AE.txt" in head.headers["Content-Disposition"]
    missing = call(hub, "GET", f"/{repo_id}/resolve/main/{quote('不存在.txt')}")  # non-Latin-1 error message
    assert missing.status_code == 404 and "不存在" in missing.json()["error"]
    assert sorted(alice.list_repo_files(repo_id)) == [".gitattributes", "目录/数据.txt"]


@pytest.mark.slow
def test_file_names_with_backslashes_or_edge_spaces_are_refused(hub):
    """As the Hub: Windows separators and leading/trailing spaces in a path segment get 400."""
    repo_id = new_repo(hub, "odd-names")

    def commit_file(name: str) -> httpx2.Response:
        return call(
            hub, "POST", f"/api/models/{repo_id}/commit/main", ALICE, content=commit_body(inline_file(name, b"x"))
        )

    for name in ("a\\b.txt", "C:\\x", "dir\\", " lead.txt", "trail.txt ", "dir /f.txt", "d/ f.txt", "\u3000wide.txt"):
        response = commit_file(name)
        assert response.status_code == 400 and "Invalid path" in response.json()["error"], name
    for name in ("inner space.txt", "ünïcödé/файл.txt", "C:x.txt"):  # still fine
        assert commit_file(name).status_code == 200, name
    assert sorted(api(hub, ALICE).list_repo_files(repo_id)) == [
        ".gitattributes",
        "C:x.txt",
        "inner space.txt",
        "ünïcödé/файл.txt",
    ]


# ----------------------------------------------------------------------------- malformed requests


@pytest.mark.slow
def test_malformed_requests_get_4xx_with_the_hub_error_shape(hub):
    repo_id = new_repo(hub, "malformed")
    commit_url = f"/api/models/{repo_id}/commit/main"
    cases = [
        ("POST", "/api/repos/create", b"{not json"),
        ("POST", "/api/repos/create", b"[1, 2]"),
        ("POST", "/api/repos/create", json.dumps({"name": 5}).encode()),
        ("POST", "/api/repos/create", json.dumps({"name": "ok", "private": "yes"}).encode()),
        ("POST", "/api/repos/create", b"\xff\xfe"),
        ("POST", commit_url, b'{"key": "header", "value": {"summary": "s"}}\nnot json'),
        ("POST", commit_url, b'{"key": "file"}'),
        ("POST", commit_url, commit_body(inline_file("ok.txt", b"ok"))[:-1] + b"\n[]"),
        ("POST", commit_url, b'{"key": "file", "value": {"path": "a.txt", "content": "YQ=="}}'),  # no header
        ("POST", commit_url, commit_body({"key": "file", "value": {"path": "bad.txt", "content": "!!!not base64"}})),
        ("POST", commit_url, commit_body({"key": "file", "value": {"path": "bad.txt", "content": 12}})),
        ("POST", commit_url, commit_body({"key": "lfsFile", "value": {"path": "w.bin", "oid": "x", "algo": "sha256"}})),
        ("POST", commit_url, commit_body({"key": "lfsFile", "value": {"path": "w.bin", "oid": "0" * 64, "size": "9"}})),
        ("POST", commit_url, commit_body({"key": "mystery", "value": {"path": "m.txt"}})),
        ("POST", f"/api/models/{repo_id}/preupload/main", json.dumps({"files": [{"path": "a"}]}).encode()),
        ("POST", f"/api/models/{repo_id}/preupload/main", json.dumps({"files": "nope"}).encode()),
        (
            "POST",
            f"/api/models/{repo_id}/preupload/main",
            json.dumps({"files": [{"path": "a", "size": 1, "sample": "%%%"}]}).encode(),
        ),
        ("POST", f"/api/models/{repo_id}/paths-info/main", b"paths=\xff\xfe"),  # a form body, not UTF-8
        ("POST", f"/api/models/{repo_id}/paths-info/main", json.dumps({"paths": [1, 2]}).encode()),
        ("POST", f"/api/models/{repo_id}/tag/main", json.dumps({"tag": None}).encode()),
        ("POST", f"/{repo_id}.git/info/lfs/objects/batch", json.dumps({"operation": 3}).encode()),
        ("POST", f"/{repo_id}.git/info/lfs/objects/verify", json.dumps({"oid": "0" * 64, "size": "big"}).encode()),
        ("GET", f"/api/models/{repo_id}/tree/main?cursor=abc", None),
        ("GET", f"/api/models/{repo_id}/tree/main?limit=-1", None),
    ]
    for method, path, body in cases:
        form = body is not None and body.startswith(b"paths=")
        headers = {"Content-Type": "application/x-www-form-urlencoded" if form else "application/json"}
        response = call(hub, method, path, ALICE, content=body, headers=headers)
        assert 400 <= response.status_code < 500, (path, body, response.status_code, response.text)
        assert response.json()["error"] and response.headers["X-Error-Message"], (path, body)
    # Nothing half-done: bad base64 was refused, not stored as an empty file.
    assert api(hub, ALICE).list_repo_files(repo_id) == [".gitattributes"]

    url = f"/{repo_id}/resolve/main/.gitattributes"
    for bad_range in ("bytes=abc", "bytes=5-2", "chars=0-1", "bytes=99999999999999999999999-", "bytes=-0"):
        assert call(hub, "GET", url, headers={"Range": bad_range}).status_code == 416, bad_range
    for head in (b"Content-Length: -5\r\n", b"Content-Length: lots\r\n", b"Transfer-Encoding: chunked\r\n\r\nzz\r\n"):
        request = b"POST /api/repos/create HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + ALICE.encode() + b"\r\n"
        response = raw_exchange(hub.url, request + head + (b"" if head.endswith(b"zz\r\n") else b"\r\n"))
        assert status_of(response) == 400, head


def billion_laughs(levels: int) -> str:
    """YAML whose aliases nest `levels` deep: 9**levels strings from a few hundred bytes."""
    lines = ['l0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]" for i in range(1, levels)]
    return "\n".join(lines)


def test_card_metadata_aliases_are_refused_not_expanded(hub):
    """A README's YAML is parsed without aliases: no expansion on repo info or validate-yaml."""
    repo_id = new_repo(hub, "laughs")
    alice = api(hub, ALICE)
    # 5 levels first (59,049 strings, which the old parser expanded into cardData), then the
    # 557-byte 9-level README of the report (387 million strings: MemoryError under 3 GB).
    for levels in (5, 9):
        bomb = readme(billion_laughs(levels))
        commit_readme(hub, repo_id, billion_laughs(levels))
        started = time.monotonic()
        response = call(hub, "GET", f"/api/models/{repo_id}")  # anonymous
        assert response.status_code == 200 and "cardData" not in response.json(), levels
        assert time.monotonic() - started < 5
        check = call(hub, "POST", "/api/validate-yaml", json={"content": bomb.decode(), "repoType": "model"})
        assert check.status_code == 400 and "aliases" in check.json()["errors"][0]["message"]
    alice.upload_file(path_or_fileobj=readme("license: mit\nbase: &b x"), path_in_repo="README.md", repo_id=repo_id)
    assert alice.model_info(repo_id).card_data.to_dict() == {"license": "mit", "base": "x"}  # anchors alone are fine


def strict_json(text: str):
    """JSON as RFC 8259 has it: NaN and Infinity are not JSON (Python's json reads them by default)."""

    def refuse(constant):
        raise ValueError(f"{constant} is not JSON")

    return json.loads(text, parse_constant=refuse)


def test_card_metadata_is_valid_json_with_the_users_keys(hub):
    """`.nan` and `.inf` used to reach repo info as NaN and Infinity (not JSON: strict parsers
    refuse the answer) and `~: 1, 1: 2, true: 3` became {"null": 1, "1": 3} (as Python values 1
    and True are one key). Now they are null, as the Hub answers them, and every key stays the
    text the YAML gives it; validate-yaml accepts the README."""
    repo_id = new_repo(hub, "card-json")
    metadata = "y: .nan\nz: [.inf, -.inf, 1.5]\n~: 1\n1: 2\ntrue: 3\nnested:\n  2: {false: x}\nlicense: mit"
    commit_readme(hub, repo_id, metadata)
    response = call(hub, "GET", f"/api/models/{repo_id}")  # anonymous
    assert response.status_code == 200
    card = strict_json(response.text)["cardData"]
    assert card == {
        "y": None,
        "z": [None, None, 1.5],
        "~": 1,
        "1": 2,
        "true": 3,
        "nested": {"2": {"false": "x"}},
        "license": "mit",
    }
    assert api(hub, False).model_info(repo_id).card_data.to_dict()["true"] == 3
    check = call(hub, "POST", "/api/validate-yaml", json={"content": readme(metadata).decode(), "repoType": "model"})
    assert check.status_code == 200, check.text
    commit_readme(hub, repo_id, "? [a, b]\n: 1")  # a key that is a list: not JSON metadata
    assert "cardData" not in strict_json(call(hub, "GET", f"/api/models/{repo_id}").text)


@pytest.mark.slow
def test_an_abandoned_upload_logs_one_line_and_no_traceback(hub, capfd):
    """A client that stops in the middle of a chunked LFS upload (closing or resetting its
    connection, between chunks or inside one) used to leave a BrokenPipeError traceback in the
    server's log (the server answered 400 to a connection already gone); a keep-alive connection
    reset between requests, a ConnectionResetError traceback. Now: one line per abandoned upload,
    nothing for the idle connection, nothing stored."""
    repo_id = new_repo(hub, "abandoned")
    oid = hashlib.sha256(b"never sent whole").hexdigest()
    head = (
        f"PUT /lfs-upload/{oid}?repo=models/{repo_id} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ALICE}\r\n"
        "Transfer-Encoding: chunked\r\n\r\n"
    ).encode()
    parts = urlsplit(hub.url)
    capfd.readouterr()
    abandoned = (b"10\r\n" + b"a" * 16 + b"\r\n", b"1000\r\n" + b"a" * 100)  # between chunks, inside one
    for body in abandoned:
        for reset in (False, True):
            sock = socket.create_connection((parts.hostname, parts.port), timeout=10)
            sock.sendall(head + body)
            time.sleep(0.2)
            if reset:  # an RST instead of a FIN
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.close()
    idle = socket.create_connection((parts.hostname, parts.port), timeout=10)
    idle.sendall(f"GET /api/models/{repo_id} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    answer = b""  # read the whole answer: a reset in the middle of it is a client gone

    def read_more() -> bytes:
        chunk = idle.recv(65536)
        assert chunk, f"the server closed the idle connection after {answer!r}"
        return chunk

    while b"\r\n\r\n" not in answer:
        answer += read_more()
    assert answer.startswith(b"HTTP/1.1 200")
    head_end = answer.index(b"\r\n\r\n") + 4
    length = int(re.search(rb"(?i)content-length: *(\d+)", answer[:head_end]).group(1))
    while len(answer) < head_end + length:
        answer += read_more()
    idle.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    idle.close()
    deadline = time.monotonic() + 10
    log = ""
    while log.count("client went away") < 4 and time.monotonic() < deadline:
        time.sleep(0.1)
        log += capfd.readouterr().err
    time.sleep(0.5)  # the idle connection's handler has answered and seen the reset by now
    log += capfd.readouterr().err
    assert "Traceback" not in log and "Exception occurred" not in log, log
    lines = log.strip().splitlines()
    assert len(lines) == 4 and all(f"PUT /lfs-upload/{oid}" in line and "client went away" in line for line in lines)
    assert not hub.store.has_blob(oid)


@pytest.mark.slow
def test_malformed_metadata_and_bodies_get_4xx_or_are_ignored_never_500(hub, tmp_path):
    """The eleven 500s of the report. Repo info leaves out metadata it cannot answer as JSON (as the
    Hub leaves out `cardData`); validate-yaml names the problem; bodies and queries get 4xx."""
    repo_id = new_repo(hub, "bad-meta")
    alice = api(hub, ALICE)
    deep = "x: " + "[" * 5000 + "]" * 5000
    cases = [  # (metadata, expected cardData (None: left out), expected tags, validate-yaml status)
        ("date: 2024-01-01", {"date": "2024-01-01"}, [], 200),  # a date stays the string it was
        ("tags: 5", {"tags": 5}, [], 400),
        ("tags: true", {"tags": True}, [], 400),
        ("tags: [a, 5, b]", {"tags": ["a", 5, "b"]}, ["a", "b"], 400),
        ("blob: !!binary aGVsbG8=", None, [], 400),
        ("s: !!set {a, b}", None, [], 400),
        ("when: !!timestamp 2024-01-01", None, [], 400),
        (deep, None, [], 400),
        ("x: " + "[" * 40 + "]" * 40, None, [], 400),  # deeper than the limit, shallower than recursion
        ("n: " + "7" * 5000, None, [], 400),  # beyond Python's int-from-string limit
    ]
    for metadata, card, tags, validate_status in cases:
        commit_readme(hub, repo_id, metadata)
        response = call(hub, "GET", f"/api/models/{repo_id}")
        assert response.status_code == 200, (metadata[:40], response.text[:300])
        assert response.json().get("cardData") == card and response.json()["tags"] == tags, metadata[:40]
        check = call(hub, "POST", "/api/validate-yaml", json={"content": readme(metadata).decode()})
        assert check.status_code == validate_status, (metadata[:40], check.text[:300])
    # load_dataset on a dataset whose card has a date (it failed on the repo-info 500).
    dataset_id = new_repo(hub, "dated", repo_type="dataset")
    commit_readme(hub, dataset_id, "date: 2024-01-01", repo_type="datasets")
    alice.upload_file(path_or_fileobj=b"a,b\n1,2\n", path_in_repo="data.csv", repo_id=dataset_id, repo_type="dataset")
    import datasets

    loaded = datasets.load_dataset(dataset_id, split="train", token=ALICE, cache_dir=str(tmp_path / "cache"))
    assert loaded.to_list() == [{"a": 1, "b": 2}]
    # Bodies and queries.
    brackets = b"[" * 100_000
    bodies = [
        ("POST", "/api/repos/create", brackets),
        ("POST", f"/api/models/{repo_id}/commit/main", brackets),
        (
            "POST",
            f"/api/models/{repo_id}/commit/main",
            commit_body() + b"\n" + b'{"key": "file", "value": ' + b"[" * 100 + b"]" * 100 + b"}",
        ),
        ("POST", "/api/repos/create", b'{"name": "x", "n": ' + b"9" * 5000 + b"}"),
        ("POST", "/api/validate-yaml", json.dumps({"content": readme(deep).decode()}).encode()),
    ]
    for method, path, body in bodies:
        response = call(hub, method, path, ALICE, content=body, headers={"Content-Type": "application/json"})
        assert 400 <= response.status_code < 500, (path, body[:40], response.status_code, response.text[:300])
    oid = hashlib.sha256(b"x").hexdigest()
    for query in (
        "expires=9999999999&signature=%C3%A9",
        f"repo=models/{repo_id}&expires=9999999999&signature=%C3%A9",
        "expires=%C3%A9&signature=%00",
        "repo=%C3%A9%2F..&expires=1&signature=0",
    ):
        assert call(hub, "PUT", f"/lfs-upload/{oid}?{query}", content=b"x").status_code == 401, query


@pytest.mark.slow
def test_fuzzed_bodies_never_answer_500(hub):
    repo_id = new_repo(hub, "fuzz")
    routes = [
        ("POST", "/api/repos/create"),
        ("DELETE", "/api/repos/delete"),
        ("POST", "/api/validate-yaml"),
        ("POST", f"/api/models/{repo_id}/paths-info/main"),
        ("POST", f"/api/models/{repo_id}/preupload/main"),
        ("POST", f"/api/models/{repo_id}/commit/main"),
        ("POST", f"/api/models/{repo_id}/branch/fz"),
        ("POST", f"/api/models/{repo_id}/tag/main"),
        ("POST", f"/{repo_id}.git/info/lfs/objects/batch"),
        ("POST", f"/{repo_id}.git/info/lfs/objects/verify"),
    ]
    rng = random.Random(1234)
    yaml_snippets = [
        "date: 2024-01-01",
        "tags: 5",
        "a: !!binary aGk=",
        "s: !!set {a}",
        "a: &x [1]\nb: *x",
        "x: " + "[" * 300,
        "n: " + "9" * 5000,
        "- list\n- top",
        ": :",
        "a: {b: [c, {d: e}]}",
    ]
    atoms = [
        None,
        True,
        0,
        -1,
        2**70,
        1.5,
        "",
        "x",
        "../x",
        "\r\n",
        "数据",
        [],
        {},
        [1, "a"],
        {"a": None},
        "a\\b",
        " lead",
        *(f"---\n{snippet}\n---\n" for snippet in yaml_snippets),
    ]
    keys = [
        "name",
        "organization",
        "type",
        "private",
        "content",
        "paths",
        "expand",
        "files",
        "path",
        "size",
        "sample",
        "key",
        "value",
        "summary",
        "operation",
        "objects",
        "transfers",
        "oid",
        "tag",
        "startingPoint",
    ]

    def random_value(depth: int = 0):
        if depth < 2 and rng.random() < 0.3:
            return {rng.choice(keys): random_value(depth + 1) for _ in range(rng.randint(0, 4))}
        if depth < 2 and rng.random() < 0.2:
            return [random_value(depth + 1) for _ in range(rng.randint(0, 3))]
        return rng.choice(atoms)

    statuses = []
    for _ in range(12):  # 12 bodies per route, 120 requests
        for method, path in routes:
            kind = rng.random()
            if kind < 0.1:  # deep nesting, huge integers: what json.loads itself chokes on
                body = rng.choice(
                    [
                        b"[" * rng.randint(50, 20_000),
                        b'{"a": ' * rng.randint(50, 5_000),
                        b'{"name": ' + b"1" * rng.randint(4_000, 9_000) + b"}",
                    ]
                )
            elif kind < 0.2:
                body = bytes(rng.randrange(256) for _ in range(rng.randint(0, 64)))
            elif kind < 0.5 and path.endswith("/commit/main"):
                body = "\n".join(
                    json.dumps(
                        {"key": rng.choice(["header", "file", "lfsFile", "deletedFile"]), "value": random_value()}
                    )
                    for _ in range(rng.randint(1, 3))
                ).encode()
            else:
                body = json.dumps(random_value()).encode()
            response = call(
                hub,
                method,
                path,
                rng.choice([ALICE, ALICE, None]),
                content=body,
                headers={"Content-Type": "application/json"},
            )
            statuses.append(response.status_code)
            assert response.status_code < 500, (method, path, body[:200], response.text[:500])
    assert any(400 <= s < 500 for s in statuses)
    # README metadata reaches repo info (anonymous) through commits; upload URLs get random queries.
    for snippet in rng.sample(yaml_snippets, len(yaml_snippets)):
        commit_readme(hub, repo_id, snippet)
        for path in (
            f"/api/models/{repo_id}",
            f"/api/models/{repo_id}/tree/main?expand=true",
            f"/api/models/{repo_id}/commits/main",
        ):
            assert call(hub, "GET", path).status_code == 200, (snippet[:40], path)
    oid = hashlib.sha256(b"fuzz").hexdigest()
    for _ in range(20):
        query = "&".join(
            f"{rng.choice(['repo', 'expires', 'signature', 'x'])}="
            f"{quote(rng.choice(['', '%', 'é', 'models/alice/x', '9' * 20, '0' * 64, 'datasets/..']))}"
            for _ in range(rng.randint(0, 4))
        )
        response = call(hub, "PUT", f"/lfs-upload/{oid}?{query}", rng.choice([ALICE, None]), content=b"fuzz")
        assert response.status_code < 500, (query, response.text[:300])


# ----------------------------------------------------------------------------- expensive listings


@pytest.mark.slow
def test_expanded_tree_listing_walks_the_history_once(hub, monkeypatch):
    """`tree?expand=true` (last commit of every entry) used to walk the whole history once per entry:
    37 s for one page of a repo with 400 commits. Now one walk per revision (cached), pages of 50,
    and huggingface_hub still gets every entry; commits are listed in pages too."""
    store, repo_id = hub.store, new_repo(hub, "history")
    repo = Repo("model", repo_id)
    n_files, n_commits = 1000, 200
    first = store.commit(
        repo,
        "main",
        {"summary": "many files"},
        [
            ("file", {"path": f"d{i % 10}/f{i:04d}.txt", "content": base64.b64encode(b"%d" % i).decode()})
            for i in range(n_files)
        ],
        author="alice",
    )
    touched = {}
    for j in range(n_commits - 1):  # each later commit changes one file
        path = f"d{j % 10}/f{j:04d}.txt"
        touched[path] = store.commit(
            repo,
            "main",
            {"summary": f"edit {j}"},
            [("file", {"path": path, "content": base64.b64encode(b"edit %d" % j).decode()})],
            author="alice",
        )
    reads = []
    read_commit = store.read_commit
    monkeypatch.setattr(store, "read_commit", lambda r, c: reads.append(c) or read_commit(r, c))

    started = time.monotonic()
    pages = api(hub, False).list_repo_tree(repo_id, recursive=True, expand=True)  # anonymous
    first_page = [next(pages) for _ in range(50)]
    assert len(reads) <= n_commits + 2, len(reads)  # before: 50 entries × 201 commits
    entries = first_page + list(pages)
    assert time.monotonic() - started < 30
    assert len(entries) == n_files + 1 + 10  # every file, .gitattributes and the 10 folders: 21 pages
    last = {e.path: e.last_commit.oid for e in entries}
    assert all(last[path] == commit for path, commit in touched.items())
    assert last["d9/f0999.txt"] == first and last["d0"] == touched["d0/f0190.txt"]
    assert len(reads) <= n_commits + 2 + 2 * 21  # the walk, plus each page's head commit

    plain = call(hub, "GET", f"/api/models/{repo_id}/tree/main?recursive=true")  # pages of 1000 unexpanded
    assert len(plain.json()) == 1000 and 'rel="next"' in plain.headers["Link"]
    assert len(list(api(hub, False).list_repo_tree(repo_id, recursive=True))) == n_files + 1 + 10  # 2 pages

    capped = call(hub, "GET", f"/api/models/{repo_id}/tree/main?recursive=true&expand=true&limit=1000")
    assert len(capped.json()) == 50 and 'rel="next"' in capped.headers["Link"]  # expanded pages: 50 at most
    reads.clear()
    commits = api(hub, False).list_repo_commits(repo_id)  # 201 commits in pages of 50
    assert len(commits) == n_commits + 1 and commits[-1].title == "initial commit"
    assert len(reads) <= n_commits + 1 + 5


def reference_last_commits(store: HubStore, repo: Repo, commit_id: str) -> dict[str, str]:
    """Every file and folder at `commit_id` → the newest first-parent commit at which it or
    something inside it differs from the parent (else the first commit): a plain walk per path."""
    history = list(store.history(repo, commit_id)) + [{"id": None, "files": {}}]  # before the first
    files = history[0]["files"]
    paths = set(files) | {path.rsplit("/", 1)[0] for path in files if "/" in path}
    while any("/" in path and path.rsplit("/", 1)[0] not in paths for path in paths):
        paths |= {path.rsplit("/", 1)[0] for path in paths if "/" in path}
    found = {}
    for path in paths:
        for newer, older in zip(history, history[1:]):
            inside = [p for p in newer["files"].keys() | older["files"].keys() if p == path or p.startswith(path + "/")]
            if any(newer["files"].get(p) != older["files"].get(p) for p in inside):
                found[path] = newer["id"]
                break
    return found


@pytest.mark.slow
def test_expanded_listings_read_one_last_commit_table(hub, monkeypatch):
    """The last commits of an expanded listing come from a table per commit, made at the commit
    (or, for commits without one, by one walk back to an ancestor that has one): every commit id of
    a random history (adds in nested folders, edits, deleted files and folders, re-adds) answers
    the last commits of a plain walk of its history, and a listing of any commit id, the in-process
    cache emptied, reads one manifest — cycling through commit ids costs no walk."""
    from hf_linear.hub.server import last_commits as last_commits_module

    repo_id = new_repo(hub, "tables")
    repo, store, client = Repo("model", repo_id), hub.store, api(hub, ALICE)
    rng = random.Random(0)
    present: set[str] = set()
    for step in range(24):
        operations = []
        for _ in range(rng.randint(1, 3)):
            if present and rng.random() < 0.3:
                victim = rng.choice(sorted(present))
                folder = victim.rsplit("/", 1)[0] if "/" in victim and rng.random() < 0.3 else None
                gone = {p for p in present if folder and p.startswith(folder + "/")} or {victim}
                operations = [op for op in operations if op.path_in_repo not in gone]
                operations.append(CommitOperationDelete(folder + "/" if folder else victim))
                present -= gone
            else:
                path = "/".join(rng.choice("ab") for _ in range(rng.randint(0, 2))) + f"/f{rng.randint(0, 9)}.txt"
                path = path.lstrip("/")
                if any(p.startswith(path + "/") for p in present) or any(path.startswith(p + "/") for p in present):
                    continue  # a file where a folder is, or the other way round
                operations = [op for op in operations if op.path_in_repo != path]
                operations.append(CommitOperationAdd(path, f"{step} {rng.random()}".encode()))
                present.add(path)
        if operations:
            client.create_commit(repo_id, operations, commit_message=f"step {step}")
    commits = [c["id"] for c in store.history(repo, store.resolve(repo, "main"))]
    tables = store._repo_dir(repo) / "last-commits"
    assert sorted(p.stem for p in tables.glob("*.json")) == sorted(commits)  # made at the commits
    for stale in commits[1::3]:  # as in a repo written before the tables: some commits have none
        (tables / f"{stale}.json").unlink()
    last_commits_module.last_commits.cache_clear()  # as a server started on that root

    anonymous = api(hub, False)
    for commit_id in [commits[len(commits) // 2], *commits]:  # mid-history first: built from older tables
        entries = anonymous.list_repo_tree(repo_id, revision=commit_id, recursive=True, expand=True)
        assert {e.path: e.last_commit.oid for e in entries} == reference_last_commits(store, repo, commit_id)

    reads = []
    read_commit = store.read_commit
    monkeypatch.setattr(store, "read_commit", lambda r, c: reads.append(c) or read_commit(r, c))
    for commit_id in commits:
        last_commits_module.last_commits.cache_clear()
        reads.clear()
        list(anonymous.list_repo_tree(repo_id, revision=commit_id, recursive=True, expand=True))
        assert reads == [commit_id]  # the revision's manifest; its last commits: one table
    reads.clear()
    new = client.create_commit(repo_id, [CommitOperationAdd("new.txt", b"x")], commit_message="one more").oid
    # preupload and commit read the head; the new commit's table, its manifest and its parent's
    assert set(reads) == {commits[0], new} and len(reads) <= 4


# ----------------------------------------------------------------------------- body sizes


def test_oversized_bodies_get_413_before_being_read(hub):
    repo_id = new_repo(hub, "sizes")
    auth = b"Authorization: Bearer " + ALICE.encode() + b"\r\n"
    oid = hashlib.sha256(b"whatever").hexdigest()
    # Headers only: if the server waited for the announced body, raw_exchange would time out.
    for method, path, size in (
        ("POST", f"/api/models/{repo_id}/commit/main", JSON_LIMIT + 1),
        ("PUT", f"/lfs-upload/{oid}?repo=models/{repo_id}", UPLOAD_LIMIT + 1),
    ):
        request = f"{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {size}\r\n".encode() + auth + b"\r\n"
        response = raw_exchange(hub.url, request)
        assert status_of(response) == 413 and b"X-Error-Message" in response, path
    chunked = (
        f"PUT /lfs-upload/{oid}?repo=models/{repo_id} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n".encode()
        + auth
        + b"\r\n"
        + f"{UPLOAD_LIMIT + 1:x}\r\n".encode()
    )
    assert status_of(raw_exchange(hub.url, chunked)) == 413
    assert api(hub, ALICE).list_repo_files(repo_id) == [".gitattributes"]


def test_lfs_upload_is_streamed_to_a_temp_file_and_dropped_if_interrupted(hub):
    blobs = Path(hub.store.root) / "blobs"
    repo_id = new_repo(hub, "interrupted")
    content = os.urandom(UPLOAD_LIMIT // 2)
    oid = hashlib.sha256(content).hexdigest()
    head = (
        f"PUT /lfs-upload/{oid}?repo=models/{repo_id} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(content)}\r\n"
        f"Authorization: Bearer {ALICE}\r\n\r\n"
    ).encode()
    parts = urlsplit(hub.url)
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
        sock.sendall(head + content[:200_000])
        deadline = time.monotonic() + 10
        temp_sizes: list[int] = []
        while time.monotonic() < deadline and not any(s >= 150_000 for s in temp_sizes):
            temp_sizes = [p.stat().st_size for p in blobs.glob(".upload-*")]
            time.sleep(0.02)
        assert any(s >= 150_000 for s in temp_sizes)  # on disk while the body is still arriving
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and list(blobs.glob(".upload-*")):
        time.sleep(0.02)
    assert not list(blobs.glob(".upload-*")) and not (blobs / oid).exists()


# ----------------------------------------------------------------------------- concurrency and restarts


def _start_server_process(root: Path) -> tuple[subprocess.Popen, str]:
    # `python -m hf_linear.hub.server` would import hf_linear/__init__ (transformers: seconds per
    # process); the server needs none of it, so the child registers a bare `hf_linear` package.
    code = (
        "import sys, types; package = types.ModuleType('hf_linear'); "
        f"package.__path__ = [{str(PACKAGE_DIR)!r}]; sys.modules['hf_linear'] = package; "
        "from hf_linear.hub.server.cli import main; sys.exit(main(sys.argv[1:]))"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", code, "--root", str(root), "--quiet", "--token", f"alice={ALICE}"],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    return process, process.stdout.readline().strip()


@pytest.mark.slow
def test_two_server_processes_on_one_root_lose_no_commit(tmp_path):
    root = tmp_path / "shared-root"
    servers = [_start_server_process(root) for _ in range(2)]
    try:
        urls = [url for _, url in servers]
        assert all(url.startswith("http://127.0.0.1:") for url in urls) and urls[0] != urls[1]
        repo_id = "alice/contended"
        HfApi(endpoint=urls[0], token=ALICE).create_repo(repo_id)
        errors: list[BaseException] = []

        def commit_many(index: int) -> None:
            client = HfApi(endpoint=urls[index], token=ALICE)
            try:
                for j in range(15):
                    client.create_commit(
                        repo_id,
                        [CommitOperationAdd(f"p{index}/f{j:02d}.txt", f"{index}-{j}\n".encode())],
                        commit_message=f"server {index} commit {j}",
                    )
            except BaseException as e:  # reported below
                errors.append(e)

        threads = [threading.Thread(target=commit_many, args=(i,)) for i in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        assert not errors, errors
        expected = {f"p{i}/f{j:02d}.txt" for i in range(2) for j in range(15)}
        for url in urls:  # both processes see every commit, in one linear history
            client = HfApi(endpoint=url, token=ALICE)
            assert set(client.list_repo_files(repo_id)) == expected | {".gitattributes"}
            assert len(client.list_repo_commits(repo_id)) == 31
    finally:
        for process, _ in servers:
            process.terminate()
            process.wait(timeout=10)


def test_a_commit_waits_for_the_root_lock_held_by_another_process(tmp_path):
    import fcntl

    store = HubStore(tmp_path / "root")
    repo = Repo("model", "alice/locked")
    store.create_repo(repo, private=False, author="alice")
    done = threading.Event()
    with open(tmp_path / "root" / ".lock", "a") as lock_file:  # another open file = another process for flock
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        thread = threading.Thread(
            target=lambda: (
                store.commit(
                    repo, "main", {"summary": "s"}, [("file", {"path": "a.txt", "content": "YQ=="})], author="alice"
                ),
                done.set(),
            )
        )
        thread.start()
        assert not done.wait(0.5)  # blocked while the lock is held elsewhere
    assert done.wait(10)
    thread.join(timeout=10)
    assert "a.txt" in store.read_commit(repo, store.resolve(repo, "main"))["files"]


def test_stale_temp_files_are_removed_at_start(tmp_path):
    root = tmp_path / "root"
    HubStore(root).create_repo(Repo("model", "alice/temp"), private=False, author="alice")
    old = time.time() - STALE_TEMP_SECONDS - 60
    stale = [
        root / "blobs" / ".upload-killed",
        root / "blobs" / ".tmp-killed",
        root / "repos" / "models" / "alice" / "temp" / "commits" / ".tmp-half.json",
    ]
    fresh = root / "blobs" / ".upload-in-progress"  # maybe another live server process's upload
    for path in [*stale, fresh]:
        path.write_bytes(b"partial")
    for path in stale:
        os.utime(path, (old, old))
    (root / "trash" / "model-alice--gone").mkdir(parents=True)
    (root / "trash" / "model-alice--gone" / "repo.json").write_text("{}")

    store = HubStore(root)
    assert sorted(store.removed_temp_files) == sorted(p.resolve() for p in stale)
    assert not any(p.exists() for p in stale) and fresh.exists()
    assert list((root / "trash").iterdir()) == []
    assert store.resolve(Repo("model", "alice/temp"), "main")  # the repo itself is untouched


# ----------------------------------------------------------------------------- push: verify_checkpoint


def _checkpoint(path: Path) -> Path:
    torch.manual_seed(0)
    LinearLMForCausalLM(LinearLMConfig(vocab_size=23, context_length=6, hidden_size=4)).save_pretrained(path)
    return path


def test_verify_checkpoint_accepts_a_good_one_and_push_uses_signed_lfs(hub, tmp_path):
    checkpoint = _checkpoint(tmp_path / "good")
    verify_checkpoint(checkpoint)
    commit = push_checkpoint(checkpoint, "alice/verified", endpoint=hub.url, token=ALICE)
    files = api(hub, ALICE).list_repo_files("alice/verified", revision=commit.oid)
    assert "model.safetensors" in files


@pytest.mark.parametrize(
    "damage",
    [
        "truncated",
        "garbled-header",
        "missing-tensor",
        "wrong-shape",
        "extra-tensor",
        "bad-config-json",
        "unbuildable-config",
    ],
)
def test_push_refuses_a_corrupt_checkpoint_before_any_request(hub, tmp_path, damage):
    checkpoint = _checkpoint(tmp_path / "ckpt")
    weights = checkpoint / "model.safetensors"
    from safetensors.torch import load_file

    tensors = load_file(weights)
    if damage == "truncated":
        weights.write_bytes(weights.read_bytes()[:-16])
        expected = r"model\.safetensors is corrupt or truncated"
    elif damage == "garbled-header":
        data = bytearray(weights.read_bytes())
        data[8:24] = b"\xff" * 16
        weights.write_bytes(bytes(data))
        expected = r"model\.safetensors is corrupt or truncated"
    elif damage == "missing-tensor":
        dropped = sorted(tensors)[0]
        save_file({k: v for k, v in tensors.items() if k != dropped}, weights, metadata={"format": "pt"})
        expected = f"missing tensors.*{dropped}"
    elif damage == "wrong-shape":
        name = max(tensors, key=lambda k: tensors[k].numel())
        save_file({**tensors, name: tensors[name].flatten()[:-1].clone()}, weights, metadata={"format": "pt"})
        expected = f"wrong shapes.*{name}"
    elif damage == "extra-tensor":
        save_file({**tensors, "stray.weight": torch.zeros(2)}, weights, metadata={"format": "pt"})
        expected = "unexpected tensors.*stray.weight"
    elif damage == "bad-config-json":
        (checkpoint / "config.json").write_text('{"model_type": "linear_lm", ')
        expected = r"config\.json"
    else:
        config = json.loads((checkpoint / "config.json").read_text())
        (checkpoint / "config.json").write_text(json.dumps({**config, "hidden_size": "four"}))
        expected = r"config\.json does not describe a buildable model"
    with pytest.raises(HubPushError, match=expected):
        verify_checkpoint(checkpoint)
    if damage == "bad-config-json":
        return  # inspect_checkpoint (run first by push_checkpoint) already refuses invalid JSON
    requests_before = len(hub.requests)
    with pytest.raises(HubPushError, match=expected):
        push_checkpoint(checkpoint, f"alice/corrupt-{damage}", endpoint=hub.url, token=ALICE)
    assert len(hub.requests) == requests_before  # refused before talking to the Hub
