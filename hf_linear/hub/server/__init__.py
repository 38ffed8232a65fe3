"""A small HTTP server that speaks enough of the Hugging Face Hub API for the unmodified clients.

This machine has no internet, so tests (and offline demos) point `huggingface_hub`, `transformers`
and `datasets` at this server with `HF_ENDPOINT=http://127.0.0.1:PORT` and `HF_HUB_DISABLE_XET=1`;
the clients then run their real code paths (`push_to_hub`, `from_pretrained`, `load_dataset`,
streaming) against it.

What it implements (the subset of the Hub API those clients use, with the Hub's JSON shapes,
status codes and `X-Error-Code` headers, read from huggingface_hub 2.4 / datasets 5.2):

- ``GET  /api/whoami-v2``; ``POST /api/repos/create``; ``DELETE /api/repos/delete``;
  ``POST /api/validate-yaml``
- ``GET  /api/{models,datasets}/{repo}`` and ``.../revision/{rev}`` (repo info: sha, siblings,
  lastModified, cardData); ``.../tree/{rev}[/{path}]`` (recursive, expand, cursor pagination);
  ``POST .../paths-info/{rev}``; ``GET .../refs``; ``GET .../commits/{rev}``;
  ``POST|DELETE .../branch/{name}``; ``POST .../tag/{rev}``, ``DELETE .../tag/{name}``
- ``POST .../preupload/{rev}`` ("lfs" for binary/large files, "regular" for small text) and
  ``POST .../commit/{rev}`` (ndjson: header, inline base64 files, lfsFile, deletedFile,
  deletedFolder; ``parentCommit`` checked → 412)
- git-LFS: ``POST /{repo}.git/info/lfs/objects/batch`` (basic transfer to this server),
  ``PUT /lfs-upload/{oid}`` (sha256-verified), ``POST .../objects/verify``
- ``HEAD|GET /{repo}/resolve/{rev}/{path}`` (also ``/datasets/...``) with X-Repo-Commit, ETag,
  X-Linked-Etag/X-Linked-Size for LFS files, Content-Length and single-range requests.

Spaces, pull requests, buckets and the dataset viewer are not implemented (404 / 400).
Any bearer token is accepted and belongs to the user ``hf-linear-tester``; it may write to any
namespace. Reads of public repos need no token.

Storage under ``--root``: ``blobs/<sha256>`` (content-addressed file contents, shared by all
repos) and per repo ``repos/<type>s/<namespace>/<name>/`` with ``repo.json``, ``refs.json`` and one
JSON manifest per commit in ``commits/<40-hex id>.json`` (path → size, sha256, lfs flag, git oid).
Commits are never deleted, so every old revision stays downloadable by its sha.

Start it with ``python -m hf_linear.hub.server --root DIR [--port 0]`` / ``hf-linear hub-server``,
or in-process with ``with run_hub_server(root) as url: ...``.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import fnmatch
import hashlib
import json
import os
import re
import shutil
import socket
import sys
import tempfile
import threading
import traceback
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlencode, urlsplit

USER_NAME = "hf-linear-tester"

REPO_TYPES = {"models": "model", "datasets": "dataset", "spaces": "space"}
SUPPORTED_REPO_TYPES = ("model", "dataset")

# Files at least this big always go through LFS, as on the Hub (10 MB).
LFS_SIZE_THRESHOLD = 10 * 1024 * 1024
TREE_PAGE_SIZE = 1000
TREE_PAGE_SIZE_EXPANDED = 50  # the Hub's page sizes (huggingface_hub relies on pagination)
READ_CHUNK = 1 << 20

# The `.gitattributes` the Hub writes into the initial commit of every new repo; its
# `filter=lfs` patterns decide (with size and binary content) what preupload answers "lfs".
DEFAULT_GITATTRIBUTES = "".join(
    f"{pattern} filter=lfs diff=lfs merge=lfs -text\n"
    for pattern in (
        "*.7z", "*.arrow", "*.bin", "*.bz2", "*.ckpt", "*.ftz", "*.gz", "*.h5", "*.joblib",
        "*.lfs.*", "*.mlmodel", "*.model", "*.msgpack", "*.npy", "*.npz", "*.onnx", "*.ot",
        "*.parquet", "*.pb", "*.pickle", "*.pkl", "*.pt", "*.pth", "*.rar", "*.safetensors",
        "saved_model/**/*", "*.tar.*", "*.tar", "*.tflite", "*.tgz", "*.wasm", "*.xz", "*.zip",
        "*.zst", "*tfevents*",
    )
)

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")
_BRANCH_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,199}$")
_FULL_SHA_RE = re.compile(r"^[0-9a-f]{40}$")
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
_SPECIAL_REF_KINDS = ("heads", "tags", "pr", "convert")


# ----------------------------------------------------------------------------- errors


class HubError(Exception):
    """An error answered to the client the way the Hub does: status, X-Error-Code, JSON body."""

    def __init__(self, status: int, message: str, error_code: str | None = None, headers: dict | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.error_code = error_code
        self.headers = headers or {}


def repo_not_found(repo_type: str, repo_id: str) -> HubError:
    return HubError(404, f"{repo_type.capitalize()} repository '{repo_id}' not found", "RepoNotFound")


def revision_not_found(revision: str) -> HubError:
    return HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")


def entry_not_found(path: str, commit_id: str | None = None) -> HubError:
    headers = {"X-Repo-Commit": commit_id} if commit_id else {}
    return HubError(404, f"Entry not found: {path}", "EntryNotFound", headers)


# ----------------------------------------------------------------------------- hashing helpers


def git_blob_oid(content: bytes) -> str:
    """Git's object id of a blob: sha1 of "blob {size}\\0" + content (what clients compare to)."""
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


def lfs_pointer(sha256: str, size: int) -> bytes:
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()


def now_iso() -> str:
    """Hub timestamp format, e.g. 2024-05-01T12:00:00.123456Z (parsed by huggingface_hub)."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def lfs_patterns(gitattributes: str) -> list[str]:
    return [line.split()[0] for line in gitattributes.splitlines() if "filter=lfs" in line.split()[1:]]


def matches_gitattributes_pattern(path: str, pattern: str) -> bool:
    """Patterns without a slash match the file name, others the whole path (git semantics, simplified)."""
    if "/" not in pattern:
        return fnmatch.fnmatchcase(path.rsplit("/", 1)[-1], pattern)
    return fnmatch.fnmatchcase(path, pattern.replace("**/", "*").replace("/**", "/*"))


def choose_upload_mode(path: str, size: int, sample: bytes, patterns: list[str]) -> str:
    """"lfs" for files tracked by `.gitattributes`, files >= 10 MB and binary files; else "regular"."""
    if size >= LFS_SIZE_THRESHOLD or b"\0" in sample:
        return "lfs"
    if any(matches_gitattributes_pattern(path, pattern) for pattern in patterns):
        return "lfs"
    return "regular"


def _write_json_atomic(path: Path, obj: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=1, sort_keys=True)
    os.replace(tmp, path)


def _read_json(path: Path) -> Any:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


# ----------------------------------------------------------------------------- storage


@dataclass(frozen=True)
class Repo:
    type: str  # "model" | "dataset"
    id: str  # "namespace/name"

    @property
    def url_prefix(self) -> str:
        return "" if self.type == "model" else f"{self.type}s/"


class HubStore:
    """Repos on disk: content-addressed blobs, per-commit manifests and refs. Thread-safe writes."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        self.blobs = self.root / "blobs"
        self.blobs.mkdir(parents=True, exist_ok=True)
        (self.root / "repos").mkdir(exist_ok=True)
        self._lock = threading.RLock()

    # -- blobs
    def blob_path(self, sha256: str) -> Path:
        return self.blobs / sha256

    def has_blob(self, sha256: str, size: int | None = None) -> bool:
        path = self.blob_path(sha256)
        return path.is_file() and (size is None or path.stat().st_size == size)

    def put_blob(self, content: bytes) -> str:
        sha256 = hashlib.sha256(content).hexdigest()
        if not self.has_blob(sha256):
            fd, tmp = tempfile.mkstemp(dir=self.blobs, prefix=".tmp-")
            with os.fdopen(fd, "wb") as f:
                f.write(content)
            os.replace(tmp, self.blob_path(sha256))
        return sha256

    def put_blob_stream(self, chunks: Iterable[bytes], expected_sha256: str) -> int:
        """Store a streamed upload under its sha256; refuse (and drop) it if the hash differs."""
        hasher = hashlib.sha256()
        size = 0
        fd, tmp = tempfile.mkstemp(dir=self.blobs, prefix=".upload-")
        try:
            with os.fdopen(fd, "wb") as f:
                for chunk in chunks:
                    hasher.update(chunk)
                    size += len(chunk)
                    f.write(chunk)
            if hasher.hexdigest() != expected_sha256:
                raise HubError(400, f"Uploaded content has sha256 {hasher.hexdigest()}, expected {expected_sha256}")
            os.replace(tmp, self.blob_path(expected_sha256))
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
        return size

    def read_blob(self, sha256: str) -> bytes:
        return self.blob_path(sha256).read_bytes()

    # -- repos
    def _repo_dir(self, repo: Repo) -> Path:
        return self.root / "repos" / f"{repo.type}s" / repo.id

    def repo_meta(self, repo: Repo) -> dict:
        path = self._repo_dir(repo) / "repo.json"
        if not path.is_file():
            raise repo_not_found(repo.type, repo.id)
        return _read_json(path)

    def create_repo(self, repo: Repo, private: bool) -> bool:
        """Create the repo with the Hub's initial commit (.gitattributes); False if it exists."""
        with self._lock:
            repo_dir = self._repo_dir(repo)
            if (repo_dir / "repo.json").is_file():
                return False
            created_at = now_iso()
            _write_json_atomic(repo_dir / "refs.json", {"branches": {}, "tags": {}})
            gitattributes = DEFAULT_GITATTRIBUTES.encode()
            files = {".gitattributes": self._regular_entry(gitattributes)}
            commit_id = self._write_commit(repo, parents=[], title="initial commit", message="", files=files)
            _write_json_atomic(repo_dir / "refs.json", {"branches": {"main": commit_id}, "tags": {}})
            # repo.json last: a repo "exists" only once it is complete.
            _write_json_atomic(repo_dir / "repo.json", {"id": repo.id, "type": repo.type, "private": private,
                                                        "createdAt": created_at})
            return True

    def delete_repo(self, repo: Repo) -> None:
        with self._lock:
            self.repo_meta(repo)
            # Rename first so a concurrent reader never sees a half-deleted repo.
            trash = self.root / "trash" / f"{repo.type}-{repo.id.replace('/', '--')}-{os.getpid()}-{id(self)}"
            trash.parent.mkdir(exist_ok=True)
            os.replace(self._repo_dir(repo), trash)
            shutil.rmtree(trash, ignore_errors=True)

    # -- refs and revisions
    def refs(self, repo: Repo) -> dict:
        self.repo_meta(repo)
        return _read_json(self._repo_dir(repo) / "refs.json")

    def resolve(self, repo: Repo, revision: str) -> str:
        """Branch, tag, refs/heads/x, refs/tags/x, or (unique prefix of a) commit id → commit id."""
        refs = self.refs(repo)
        name = revision
        for kind, table in (("heads", "branches"), ("tags", "tags")):
            if revision.startswith(f"refs/{kind}/"):
                name = revision[len(f"refs/{kind}/"):]
                if name in refs[table]:
                    return refs[table][name]
                raise revision_not_found(revision)
        if name in refs["branches"]:
            return refs["branches"][name]
        if name in refs["tags"]:
            return refs["tags"][name]
        if re.fullmatch(r"[0-9a-f]{7,40}", name):
            matches = [p.stem for p in (self._repo_dir(repo) / "commits").glob(f"{name}*.json")]
            if len(matches) == 1:
                return matches[0]
        raise revision_not_found(revision)

    def read_commit(self, repo: Repo, commit_id: str) -> dict:
        return _read_json(self._repo_dir(repo) / "commits" / f"{commit_id}.json")

    def history(self, repo: Repo, commit_id: str) -> Iterator[dict]:
        """Commits reachable by first parents, newest first."""
        while commit_id:
            commit = self.read_commit(repo, commit_id)
            yield commit
            commit_id = commit["parents"][0] if commit["parents"] else ""

    def set_branch(self, repo: Repo, branch: str, commit_id: str | None) -> None:
        self._set_ref(repo, "branches", branch, commit_id)

    def set_tag(self, repo: Repo, tag: str, commit_id: str | None) -> None:
        self._set_ref(repo, "tags", tag, commit_id)

    def _set_ref(self, repo: Repo, table: str, name: str, commit_id: str | None) -> None:
        with self._lock:
            refs = self.refs(repo)
            if commit_id is None:
                refs[table].pop(name)
            else:
                refs[table][name] = commit_id
            _write_json_atomic(self._repo_dir(repo) / "refs.json", refs)

    # -- commits
    def _regular_entry(self, content: bytes) -> dict:
        return {"size": len(content), "sha256": self.put_blob(content), "lfs": False, "oid": git_blob_oid(content)}

    @staticmethod
    def _lfs_entry(sha256: str, size: int) -> dict:
        return {"size": size, "sha256": sha256, "lfs": True, "oid": git_blob_oid(lfs_pointer(sha256, size))}

    def _write_commit(self, repo: Repo, parents: list[str], title: str, message: str, files: dict) -> str:
        body = {"parents": parents, "title": title, "message": message, "date": now_iso(),
                "authors": [USER_NAME], "files": files}
        commit_id = hashlib.sha1(json.dumps(body, sort_keys=True).encode()).hexdigest()
        _write_json_atomic(self._repo_dir(repo) / "commits" / f"{commit_id}.json", {"id": commit_id, **body})
        return commit_id

    def commit(self, repo: Repo, branch: str, header: dict, operations: list[tuple[str, dict]]) -> str:
        """Apply ndjson commit operations on top of `branch` and advance it; returns the new commit id."""
        with self._lock:
            refs = self.refs(repo)
            if branch not in refs["branches"]:
                if branch in refs["tags"] or re.fullmatch(r"[0-9a-f]{7,40}", branch):
                    raise HubError(400, f"Invalid rev id: {branch} is not a branch; commits go to branches")
                raise revision_not_found(branch)
            head = refs["branches"][branch]
            parent = header.get("parentCommit")
            if parent and not head.startswith(parent):
                raise HubError(412, f"A commit has happened since {parent}: {branch} is at {head}. "
                                    "Please refresh and try again.")
            files = dict(self.read_commit(repo, head)["files"])
            for key, value in operations:
                self._apply_operation(files, key, value)
            commit_id = self._write_commit(repo, [head], header.get("summary") or "Update",
                                           header.get("description") or "", files)
            self.set_branch(repo, branch, commit_id)
            return commit_id

    def _apply_operation(self, files: dict, key: str, value: dict) -> None:
        path = validate_path_in_repo(value.get("path", ""))
        if key == "file":
            if value.get("encoding", "base64") != "base64":
                raise HubError(400, f"Unsupported encoding {value.get('encoding')!r} for {path}")
            files[path] = self._regular_entry(base64.b64decode(value["content"]))
        elif key == "lfsFile":
            sha256 = value.get("oid", "")
            if value.get("algo", "sha256") != "sha256" or not _SHA256_RE.match(sha256):
                raise HubError(400, f"lfsFile {path}: expected a sha256 oid, got {sha256!r}")
            if not self.has_blob(sha256, value.get("size")):
                raise HubError(422, f"lfsFile {path}: LFS object {sha256} was not uploaded (use the LFS batch API)")
            files[path] = self._lfs_entry(sha256, self.blob_path(sha256).stat().st_size)
        elif key == "deletedFile":
            if path not in files:
                raise HubError(404, f"A file with this name doesn't exist: {path}", "EntryNotFound")
            del files[path]
        elif key == "deletedFolder":
            prefix = path.rstrip("/") + "/"
            doomed = [p for p in files if p.startswith(prefix)]
            if not doomed:
                raise HubError(404, f"A folder with this name doesn't exist: {path}", "EntryNotFound")
            for p in doomed:
                del files[p]
        else:
            raise HubError(400, f"Unknown commit operation {key!r}")


def validate_path_in_repo(path: str) -> str:
    parts = path.split("/")
    if not path or path.startswith("/") or any(part in ("", ".", "..") for part in parts) or ".git" in parts:
        raise HubError(400, f"Invalid path in repo: {path!r}")
    return path


def validate_repo_id(repo_id: str) -> str:
    parts = repo_id.split("/")
    if len(parts) != 2 or not all(_NAME_RE.match(p) for p in parts) or any("--" in p or ".." in p for p in parts):
        raise HubError(400, f"Invalid repo id {repo_id!r}: expected 'namespace/name' "
                            "(letters, digits, '-', '_', '.'; no '--' or '..')")
    return repo_id


# ----------------------------------------------------------------------------- listings


def file_info(path: str, entry: dict) -> dict:
    info = {"type": "file", "oid": entry["oid"], "size": entry["size"], "path": path}
    if entry["lfs"]:
        info["lfs"] = {"oid": entry["sha256"], "size": entry["size"],
                       "pointerSize": len(lfs_pointer(entry["sha256"], entry["size"]))}
    return info


def folder_info(path: str, files: dict) -> dict:
    prefix = path + "/"
    inside = sorted((p, e["oid"]) for p, e in files.items() if p.startswith(prefix))
    oid = hashlib.sha1(json.dumps(inside).encode()).hexdigest()
    return {"type": "directory", "oid": oid, "size": 0, "path": path}


def folders_of(files: dict) -> set[str]:
    return {"/".join(p.split("/")[:i]) for p in files for i in range(1, p.count("/") + 1)}


def path_info(path: str, files: dict) -> dict | None:
    if path in files:
        return file_info(path, files[path])
    if path in folders_of(files):
        return folder_info(path, files)
    return None


def list_tree(files: dict, path: str, recursive: bool) -> list[dict]:
    """Entries below `path` (direct children, or all descendants), folders first, each sorted by path."""
    prefix = path + "/" if path else ""
    below = [p for p in files if p.startswith(prefix)]
    if recursive:
        folder_paths = {f for f in folders_of(files) if f.startswith(prefix)}
        file_paths = below
    else:
        folder_paths = {prefix + p[len(prefix):].split("/")[0] for p in below if "/" in p[len(prefix):]}
        file_paths = [p for p in below if "/" not in p[len(prefix):]]
    return ([folder_info(f, files) for f in sorted(folder_paths)]
            + [file_info(p, files[p]) for p in sorted(file_paths)])


def last_commit_of(store: HubStore, repo: Repo, commit_id: str, info: dict) -> dict:
    """The newest commit (first-parent history) that changed this file or something inside this folder."""
    def state(commit: dict) -> Any:
        files = commit["files"]
        if info["type"] == "file":
            return files.get(info["path"], {}).get("oid")
        prefix = info["path"] + "/"
        return sorted((p, e["oid"]) for p, e in files.items() if p.startswith(prefix))

    history = list(store.history(repo, commit_id))
    current = state(history[0])
    changed = history[-1]
    for newer, older in zip(history, history[1:]):
        if state(older) != current:
            changed = newer
            break
    return {"id": changed["id"], "title": changed["title"], "date": changed["date"]}


def expand_info(store: HubStore, repo: Repo, commit_id: str, info: dict) -> dict:
    info = {**info, "lastCommit": last_commit_of(store, repo, commit_id, info)}
    if info["type"] == "file":
        info["securityFileStatus"] = {"status": "safe", "avScan": {"virusFound": False, "virusNames": None},
                                      "pickleImportScan": None}
    return info


def parse_card_metadata(readme: bytes) -> dict | None:
    """The YAML block between leading `---` lines of a README.md, or None if absent/invalid."""
    import yaml  # a declared dependency of hf-linear (and of huggingface_hub)

    text = readme.decode("utf-8", errors="replace")
    match = re.match(r"^---\s*\n(.*?)\n---\s*(\n|$)", text, re.DOTALL)
    if not match:
        return None
    try:
        data = yaml.safe_load(match.group(1))
    except yaml.YAMLError:
        return None
    return data if isinstance(data, dict) else None


# ----------------------------------------------------------------------------- HTTP


class HubRequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: every response carries Content-Length
    server: "HubHTTPServer"
    timeout = 60  # idle keep-alive connections are dropped after this many seconds

    # -- plumbing
    def setup(self) -> None:
        super().setup()
        self.server.track_connection(self.connection, add=True)

    def finish(self) -> None:
        self.server.track_connection(self.connection, add=False)
        super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.verbose:
            super().log_message(format, *args)

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_HEAD(self) -> None:
        self._dispatch("HEAD")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def _dispatch(self, method: str) -> None:
        self._body_consumed = False
        self._status = 0
        try:
            self._route(method)
        except HubError as e:
            self._send_error(e)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception as e:  # a server bug: answer 500 with the reason instead of hanging the client
            traceback.print_exc(file=sys.stderr)
            self._send_error(HubError(500, f"Internal error in local hub server: {type(e).__name__}: {e}"))
        finally:
            if not self._body_consumed and self._has_body():
                self.close_connection = True  # unread request bytes would corrupt the next request
            self.server.record(method, self.path, self._status)

    def _has_body(self) -> bool:
        return "chunked" in self.headers.get("Transfer-Encoding", "").lower() or int(
            self.headers.get("Content-Length") or 0) > 0

    def _body_chunks(self) -> Iterator[bytes]:
        """The request body, de-chunked if needed, in pieces (uploads are streamed to disk)."""
        self._body_consumed = True
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            while True:
                size = int(self.rfile.readline(65537).split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return
                yield from self._read_exactly(size)
                self.rfile.readline(65537)  # CRLF closing the chunk
        else:
            yield from self._read_exactly(int(self.headers.get("Content-Length") or 0))

    def _read_exactly(self, remaining: int) -> Iterator[bytes]:
        while remaining > 0:
            data = self.rfile.read(min(remaining, READ_CHUNK))
            if not data:
                raise ConnectionResetError("client closed the connection mid-body")
            remaining -= len(data)
            yield data

    def _body(self) -> bytes:
        return b"".join(self._body_chunks())

    def _json_body(self) -> Any:
        raw = self._body()
        try:
            return json.loads(raw or b"{}")
        except json.JSONDecodeError as e:
            raise HubError(400, f"Request body is not valid JSON: {e}") from e

    def _form_or_json_body(self) -> dict[str, list[str]] | dict:
        raw = self._body()
        if "json" in self.headers.get("Content-Type", ""):
            return json.loads(raw or b"{}")
        return parse_qs(raw.decode(), keep_blank_values=True)

    @property
    def base_url(self) -> str:
        return f"http://{self.headers.get('Host') or '%s:%d' % self.server.server_address[:2]}"

    @property
    def has_token(self) -> bool:
        return self.headers.get("Authorization", "").lower().startswith("bearer ")

    # -- responses
    def _send(self, status: int, body: bytes = b"", headers: dict | None = None,
              content_type: str = "application/json; charset=utf-8") -> None:
        self._status = status
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _send_json(self, obj: Any, status: int = 200, headers: dict | None = None) -> None:
        self._send(status, json.dumps(obj).encode(), headers)

    def _send_error(self, error: HubError) -> None:
        headers = dict(error.headers)
        headers["X-Error-Message"] = error.message.replace("\n", " ")
        if error.error_code:
            headers["X-Error-Code"] = error.error_code
        self._send_json({"error": error.message}, error.status, headers)

    # -- routing
    def _route(self, method: str) -> None:
        url = urlsplit(self.path)
        segments = url.path.strip("/").split("/")
        query = parse_qs(url.query)
        if segments[0] == "api":
            return self._route_api(method, segments[1:], query)
        if segments[0] == "lfs-upload" and method == "PUT" and len(segments) == 2:
            return self._lfs_upload(segments[1])
        repo_type, rest = "model", segments
        if segments[0] in REPO_TYPES:
            repo_type, rest = REPO_TYPES[segments[0]], segments[1:]
        if len(rest) >= 6 and rest[1].endswith(".git") and rest[2:5] == ["info", "lfs", "objects"] and method == "POST":
            repo = self._repo(repo_type, f"{rest[0]}/{rest[1][:-4]}", write=True)
            return self._lfs_batch(repo) if rest[5] == "batch" else self._lfs_verify(repo)
        if len(rest) >= 2 and rest[1] == "resolve":  # a one-segment repo id (legacy canonical models)
            raise repo_not_found(repo_type, unquote(rest[0]))
        if len(rest) >= 5 and rest[2] == "resolve" and method in ("GET", "HEAD"):
            repo = self._repo(repo_type, f"{unquote(rest[0])}/{unquote(rest[1])}")
            revision, path_segments = take_revision(rest[3:])
            return self._resolve(repo, revision, join_path(path_segments))
        raise HubError(404, f"Not implemented by the local hub server: {method} {url.path}")

    def _route_api(self, method: str, segments: list[str], query: dict) -> None:
        if segments == ["whoami-v2"] and method == "GET":
            return self._whoami()
        if segments == ["repos", "create"] and method == "POST":
            return self._create_repo()
        if segments == ["repos", "delete"] and method in ("DELETE", "POST"):
            return self._delete_repo()
        if segments == ["validate-yaml"] and method == "POST":
            return self._validate_yaml()
        if len(segments) < 3 or segments[0] not in REPO_TYPES:
            raise HubError(404, f"Not implemented by the local hub server: {method} /api/{'/'.join(segments)}")
        repo_type = REPO_TYPES[segments[0]]
        repo_id = f"{unquote(segments[1])}/{unquote(segments[2])}"
        action, args = (segments[3], segments[4:]) if len(segments) > 3 else ("", [])
        writes = action in ("preupload", "commit", "branch", "tag") and method in ("POST", "DELETE")
        repo = self._repo(repo_type, repo_id, write=writes)
        if action == "" and method == "GET":
            return self._repo_info(repo, None, query)
        if action == "revision" and method == "GET":
            return self._repo_info(repo, take_revision(args)[0], query)
        if action == "tree" and method == "GET":
            revision, path_segments = take_revision(args)
            return self._tree(repo, revision, join_path(path_segments), query)
        if action == "paths-info" and method == "POST":
            return self._paths_info(repo, take_revision(args)[0])
        if action == "refs" and method == "GET":
            return self._refs(repo)
        if action == "commits" and method == "GET":
            return self._commits(repo, take_revision(args)[0], query)
        if action == "preupload" and method == "POST":
            return self._preupload(repo, take_revision(args)[0])
        if action == "commit" and method == "POST":
            return self._commit(repo, take_revision(args)[0], query)
        if action == "branch" and args:
            name = unquote("/".join(args))
            return self._create_branch(repo, name) if method == "POST" else self._delete_branch(repo, name)
        if action == "tag" and args:
            name = unquote("/".join(args))
            return self._create_tag(repo, name) if method == "POST" else self._delete_tag(repo, name)
        raise HubError(404, f"Not implemented by the local hub server: {method} /api/{'/'.join(segments)}")

    def _repo(self, repo_type: str, repo_id: str, write: bool = False) -> Repo:
        if write and not self.has_token:
            raise HubError(401, "Invalid credentials in Authorization header")
        if repo_type not in SUPPORTED_REPO_TYPES:
            raise repo_not_found(repo_type, repo_id)
        repo = Repo(repo_type, repo_id)
        meta = self.server.store.repo_meta(repo)
        if meta["private"] and not self.has_token:
            raise HubError(401, f"Repository '{repo_id}' is private", "RepoNotFound")
        return repo

    # -- account and repos
    def _whoami(self) -> None:
        if not self.has_token:
            raise HubError(401, "Invalid credentials in Authorization header")
        self._send_json({"type": "user", "id": "0" * 24, "name": USER_NAME, "fullname": "hf-linear local tester",
                         "email": None, "emailVerified": False, "isPro": False, "orgs": [],
                         "auth": {"type": "access_token", "accessToken": {"displayName": "local", "role": "write"}}})

    def _repo_from_payload(self, payload: dict) -> Repo:
        repo_type = payload.get("type") or "model"
        if repo_type not in SUPPORTED_REPO_TYPES:
            raise HubError(400, f"Repo type {repo_type!r} is not supported by the local hub server "
                                f"(only {', '.join(SUPPORTED_REPO_TYPES)})")
        name = payload.get("name") or ""
        namespace = payload.get("organization") or USER_NAME
        return Repo(repo_type, validate_repo_id(f"{namespace}/{name}"))

    def _create_repo(self) -> None:
        payload = self._json_body()
        if not self.has_token:
            raise HubError(401, "Invalid credentials in Authorization header")
        repo = self._repo_from_payload(payload)
        private = payload.get("visibility") == "private" or bool(payload.get("private"))
        url = f"{self.base_url}/{repo.url_prefix}{repo.id}"
        if not self.server.store.create_repo(repo, private):
            return self._send_json({"error": f"You already created this {repo.type} repo", "url": url}, 409)
        self._send_json({"url": url, "name": repo.id, "id": repo.id})

    def _delete_repo(self) -> None:
        payload = self._json_body()
        if not self.has_token:
            raise HubError(401, "Invalid credentials in Authorization header")
        repo = self._repo_from_payload(payload)
        self.server.store.delete_repo(repo)
        self._send(200, b"")

    def _validate_yaml(self) -> None:
        content = self._json_body().get("content", "")
        if content.startswith("---") and parse_card_metadata(content.encode()) is None:
            return self._send_json({"errors": [{"message": "README.md metadata is not a valid YAML mapping"}],
                                    "warnings": []}, 400)
        self._send_json({"errors": [], "warnings": []})

    # -- reads
    def _repo_info(self, repo: Repo, revision: str | None, query: dict) -> None:
        store = self.server.store
        meta = store.repo_meta(repo)
        commit_id = store.resolve(repo, revision or "main")
        commit = store.read_commit(repo, commit_id)
        with_blobs = query.get("blobs", ["false"])[0].lower() in ("1", "true")
        siblings = []
        for path, entry in sorted(commit["files"].items()):
            sibling: dict[str, Any] = {"rfilename": path}
            if with_blobs:
                info = file_info(path, entry)
                sibling.update(size=entry["size"], blobId=entry["oid"])
                if entry["lfs"]:
                    sibling["lfs"] = {"sha256": entry["sha256"], "size": entry["size"],
                                      "pointerSize": info["lfs"]["pointerSize"]}
            siblings.append(sibling)
        readme = commit["files"].get("README.md")
        card = parse_card_metadata(store.read_blob(readme["sha256"])) if readme else None
        info: dict[str, Any] = {
            "_id": hashlib.sha1(repo.id.encode()).hexdigest()[:24], "id": repo.id,
            "author": repo.id.split("/")[0], "sha": commit_id, "lastModified": commit["date"],
            "createdAt": meta["createdAt"], "private": meta["private"], "gated": False, "disabled": False,
            "downloads": 0, "likes": 0, "tags": list((card or {}).get("tags") or []), "siblings": siblings,
        }
        if card is not None:
            info["cardData"] = card
        if repo.type == "model":
            info["modelId"] = repo.id
            for key in ("library_name", "pipeline_tag"):
                if card and card.get(key):
                    info[key] = card[key]
        self._send_json(info)

    def _commit_files(self, repo: Repo, revision: str) -> tuple[str, dict]:
        commit_id = self.server.store.resolve(repo, revision)
        return commit_id, self.server.store.read_commit(repo, commit_id)["files"]

    def _tree(self, repo: Repo, revision: str, path: str, query: dict) -> None:
        commit_id, files = self._commit_files(repo, revision)
        if path and path not in folders_of(files):
            raise entry_not_found(path, commit_id)
        recursive = query.get("recursive", ["false"])[0].lower() in ("1", "true")
        expand = query.get("expand", ["false"])[0].lower() in ("1", "true")
        entries = list_tree(files, path, recursive)
        start = int(query.get("cursor", ["0"])[0] or 0)
        limit = int(query.get("limit", [TREE_PAGE_SIZE_EXPANDED if expand else TREE_PAGE_SIZE])[0])
        page = entries[start:start + limit]
        if expand:
            page = [expand_info(self.server.store, repo, commit_id, info) for info in page]
        headers = {}
        if start + limit < len(entries):
            next_query = {k: v[0] for k, v in query.items()} | {"cursor": str(start + limit)}
            headers["Link"] = f'<{self.base_url}{urlsplit(self.path).path}?{urlencode(next_query)}>; rel="next"'
        self._send_json(page, headers=headers)

    def _paths_info(self, repo: Repo, revision: str) -> None:
        body = self._form_or_json_body()
        paths = body.get("paths", [])
        paths = [paths] if isinstance(paths, str) else paths
        expand = body.get("expand", False)
        expand = (expand[0] if isinstance(expand, list) else str(expand)).lower() in ("1", "true")
        commit_id, files = self._commit_files(repo, revision)
        infos = [info for info in (path_info(p.strip("/"), files) for p in paths) if info is not None]
        if expand:
            infos = [expand_info(self.server.store, repo, commit_id, info) for info in infos]
        self._send_json(infos)

    def _refs(self, repo: Repo) -> None:
        refs = self.server.store.refs(repo)
        self._send_json({
            "branches": [{"name": n, "ref": f"refs/heads/{n}", "targetCommit": c} for n, c in sorted(refs["branches"].items())],
            "tags": [{"name": n, "ref": f"refs/tags/{n}", "targetCommit": c} for n, c in sorted(refs["tags"].items())],
            "converts": [], "pullRequests": [],
        })

    def _commits(self, repo: Repo, revision: str, query: dict) -> None:
        store = self.server.store
        commits = [{"id": c["id"], "title": c["title"], "message": c["message"], "date": c["date"],
                    "authors": [{"user": a} for a in c["authors"]]}
                   for c in store.history(repo, store.resolve(repo, revision))]
        self._send_json(commits)

    def _resolve(self, repo: Repo, revision: str, path: str) -> None:
        commit_id, files = self._commit_files(repo, revision)
        entry = files.get(path)
        if entry is None:
            raise entry_not_found(path, commit_id)
        size = entry["size"]
        etag = f'"{entry["sha256"]}"' if entry["lfs"] else f'"{entry["oid"]}"'
        headers = {"X-Repo-Commit": commit_id, "ETag": etag, "Accept-Ranges": "bytes",
                   "Content-Disposition": f'inline; filename="{path.rsplit("/", 1)[-1]}"'}
        if entry["lfs"]:
            headers.update({"X-Linked-Etag": f'"{entry["sha256"]}"', "X-Linked-Size": str(size)})
        start, end = 0, size - 1
        status = 200
        range_header = self.headers.get("Range")
        if range_header:
            byte_range = parse_range(range_header, size)
            if byte_range is None:
                raise HubError(416, f"Range not satisfiable: {range_header} (size {size})",
                               headers={**headers, "Content-Range": f"bytes */{size}"})
            start, end = byte_range
            status = 206
            headers["Content-Range"] = f"bytes {start}-{end}/{size}"
        self._send_blob(entry["sha256"], start, end, status, headers)

    def _send_blob(self, sha256: str, start: int, end: int, status: int, headers: dict) -> None:
        length = max(0, end - start + 1)
        self._status = status
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(length))
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        if self.command == "HEAD" or length == 0:
            return
        with open(self.server.store.blob_path(sha256), "rb") as f:
            f.seek(start)
            remaining = length
            while remaining > 0:
                chunk = f.read(min(remaining, READ_CHUNK))
                self.wfile.write(chunk)
                remaining -= len(chunk)

    # -- writes
    def _preupload(self, repo: Repo, revision: str) -> None:
        files_requested = self._json_body().get("files", [])
        commit_id, files = self._commit_files(repo, revision)
        gitattributes = files.get(".gitattributes")
        patterns = lfs_patterns(self.server.store.read_blob(gitattributes["sha256"]).decode()) if gitattributes else []
        answer = []
        for item in files_requested:
            path, size = item["path"], int(item["size"])
            mode = choose_upload_mode(path, size, base64.b64decode(item.get("sample", "")), patterns)
            existing = files.get(path)
            # What the client compares with its local oid to skip unchanged files.
            remote_oid = (existing["sha256"] if existing["lfs"] else existing["oid"]) if existing else None
            answer.append({"path": path, "uploadMode": mode, "shouldIgnore": False, "oid": remote_oid})
        self._send_json({"files": answer, "commitOid": commit_id})

    def _commit(self, repo: Repo, revision: str, query: dict) -> None:
        lines = [line for line in self._body().splitlines() if line.strip()]
        if query.get("create_pr", ["0"])[0] in ("1", "true"):
            raise HubError(400, "Pull requests are not supported by the local hub server")
        try:
            items = [json.loads(line) for line in lines]
        except json.JSONDecodeError as e:
            raise HubError(400, f"Commit payload is not valid ndjson: {e}") from e
        headers = [item["value"] for item in items if item.get("key") == "header"]
        if len(headers) != 1:
            raise HubError(400, "Commit payload must start with exactly one header line")
        operations = [(item["key"], item["value"]) for item in items if item.get("key") != "header"]
        commit_id = self.server.store.commit(repo, revision, headers[0], operations)
        self._send_json({"success": True, "commitOid": commit_id, "hookOutput": "",
                         "commitUrl": f"{self.base_url}/{repo.url_prefix}{repo.id}/commit/{commit_id}"})

    def _create_branch(self, repo: Repo, branch: str) -> None:
        store = self.server.store
        starting_point = self._json_body().get("startingPoint") or "main"
        if not _BRANCH_RE.match(branch) or _FULL_SHA_RE.match(branch) or ".." in branch or branch.startswith("refs/"):
            raise HubError(400, f"Invalid branch name {branch!r}")
        commit_id = store.resolve(repo, starting_point)
        if branch in store.refs(repo)["branches"]:
            raise HubError(409, f"Reference already exists: refs/heads/{branch}")
        store.set_branch(repo, branch, commit_id)
        self._send_json({})

    def _delete_branch(self, repo: Repo, branch: str) -> None:
        store = self.server.store
        if branch == "main":
            raise HubError(403, "Cannot delete the default branch 'main'")
        if branch not in store.refs(repo)["branches"]:
            raise revision_not_found(branch)
        store.set_branch(repo, branch, None)
        self._send_json({})

    def _create_tag(self, repo: Repo, revision: str) -> None:
        store = self.server.store
        tag = self._json_body().get("tag") or ""
        if not _BRANCH_RE.match(tag) or _FULL_SHA_RE.match(tag) or ".." in tag:
            raise HubError(400, f"Invalid tag name {tag!r}")
        commit_id = store.resolve(repo, revision)
        if tag in store.refs(repo)["tags"]:
            raise HubError(409, f"Reference already exists: refs/tags/{tag}")
        store.set_tag(repo, tag, commit_id)
        self._send_json({})

    def _delete_tag(self, repo: Repo, tag: str) -> None:
        store = self.server.store
        if tag not in store.refs(repo)["tags"]:
            raise revision_not_found(tag)
        store.set_tag(repo, tag, None)
        self._send_json({})

    # -- git-LFS
    def _lfs_batch(self, repo: Repo) -> None:
        payload = self._json_body()
        if payload.get("operation") != "upload":
            raise HubError(400, "Only LFS 'upload' batches are supported; downloads go through /resolve")
        if "basic" not in payload.get("transfers", ["basic"]):
            raise HubError(400, "Only the 'basic' LFS transfer is supported")
        objects = []
        for obj in payload.get("objects", []):
            oid, size = obj.get("oid", ""), int(obj.get("size", -1))
            if not _SHA256_RE.match(oid) or size < 0:
                objects.append({"oid": str(oid), "size": size, "error": {"code": 422, "message": "Invalid oid or size"}})
            elif self.server.store.has_blob(oid, size):
                objects.append({"oid": oid, "size": size})  # no "actions": already stored, nothing to upload
            else:
                verify_url = f"{self.base_url}/{repo.url_prefix}{repo.id}.git/info/lfs/objects/verify"
                objects.append({"oid": oid, "size": size, "authenticated": True, "actions": {
                    "upload": {"href": f"{self.base_url}/lfs-upload/{oid}"},
                    "verify": {"href": verify_url}}})
        self._send(200, json.dumps({"transfer": "basic", "objects": objects, "hash_algo": "sha256"}).encode(),
                   content_type="application/vnd.git-lfs+json")

    def _lfs_upload(self, oid: str) -> None:
        if not _SHA256_RE.match(oid):
            raise HubError(400, f"Invalid LFS oid {oid!r}")
        self.server.store.put_blob_stream(self._body_chunks(), oid)
        self._send(200, b"")

    def _lfs_verify(self, repo: Repo) -> None:
        payload = self._json_body()
        if not self.server.store.has_blob(payload.get("oid", ""), payload.get("size")):
            raise HubError(404, f"LFS object {payload.get('oid')} of size {payload.get('size')} not found")
        self._send_json({"success": True})


def take_revision(segments: list[str]) -> tuple[str, list[str]]:
    """Split raw URL segments into (revision, rest). Clients quote revisions with safe="" (so
    `refs/pr/1` arrives as one segment), but `refs/{convert,pr,...}/x` may also come unquoted."""
    if not segments or not segments[0]:
        raise HubError(400, "Missing revision in URL")
    if segments[0] == "refs" and len(segments) >= 3 and segments[1] in _SPECIAL_REF_KINDS:
        return "/".join(unquote(s) for s in segments[:3]), segments[3:]
    return unquote(segments[0]), segments[1:]


def join_path(segments: list[str]) -> str:
    return "/".join(unquote(s) for s in segments if s).strip("/")


def parse_range(header: str, size: int) -> tuple[int, int] | None:
    """`bytes=a-b`, `bytes=a-` or `bytes=-n` → inclusive (start, end); None if unsatisfiable.
    Multi-range requests are answered with the first range only."""
    match = re.fullmatch(r"\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*(,.*)?", header)
    if not match or (not match.group(1) and not match.group(2)):
        return None
    if not match.group(1):  # suffix range: the last n bytes
        n = int(match.group(2))
        return (max(0, size - n), size - 1) if n > 0 and size > 0 else None
    start = int(match.group(1))
    end = min(int(match.group(2)), size - 1) if match.group(2) else size - 1
    return (start, end) if start < size and start <= end else None


class HubHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], store: HubStore, verbose: bool = False):
        super().__init__(address, HubRequestHandler)
        self.store = store
        self.verbose = verbose
        self.requests: deque[tuple[str, str, int]] = deque(maxlen=10_000)  # (method, path, status)
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"

    def record(self, method: str, path: str, status: int) -> None:
        self.requests.append((method, path, status))

    def track_connection(self, connection: socket.socket, add: bool) -> None:
        with self._connections_lock:
            (self._connections.add if add else self._connections.discard)(connection)

    def close_all_connections(self) -> None:
        """Drop open keep-alive connections so a stopped server really stops answering."""
        with self._connections_lock:
            for connection in self._connections:
                with contextlib.suppress(OSError):
                    connection.shutdown(socket.SHUT_RDWR)
            self._connections.clear()


@contextlib.contextmanager
def serve_in_background(root: str | os.PathLike, host: str = "127.0.0.1", port: int = 0,
                        verbose: bool = False) -> Iterator[HubHTTPServer]:
    """Run a server on a free port in a daemon thread; yields the server (`.url`, `.store`, `.requests`)."""
    server = HubHTTPServer((host, port), HubStore(root), verbose=verbose)
    thread = threading.Thread(target=server.serve_forever, name="hf-linear-hub-server", daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.close_all_connections()
        server.server_close()
        thread.join(timeout=10)


@contextlib.contextmanager
def run_hub_server(root: str | os.PathLike, host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
    """`with run_hub_server(tmp_dir) as url:` — the server's base URL, for HF_ENDPOINT."""
    with serve_in_background(root, host, port) as server:
        yield server.url


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="hf-linear hub-server",
        description="Serve a local Hugging Face Hub-compatible API (for offline use and tests).")
    parser.add_argument("--root", required=True, help="directory holding the repos (created if missing)")
    parser.add_argument("--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port; 0 picks a free one (default)")
    parser.add_argument("--quiet", action="store_true", help="do not log each request to stderr")
    args = parser.parse_args(argv)
    if not 0 <= args.port <= 65535:
        parser.error(f"--port must be in 0..65535, got {args.port}")
    root = Path(args.root)
    if root.exists() and not root.is_dir():
        parser.error(f"--root {root} exists and is not a directory")
    try:
        server = HubHTTPServer((args.host, args.port), HubStore(root), verbose=not args.quiet)
    except OSError as e:
        print(f"hf-linear hub-server: cannot listen on {args.host}:{args.port}: {e}", file=sys.stderr)
        return 1
    print(server.url, flush=True)
    print(f"# repos stored in {root.resolve()}; point the clients at it with:\n"
          f"#   export HF_ENDPOINT={server.url} HF_HUB_DISABLE_XET=1 HF_TOKEN=any-token", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
