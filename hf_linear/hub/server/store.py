"""Repos on disk: content-addressed blobs, one JSON manifest per commit, refs, and locking so that
several server processes can share one root. Every name that reaches the disk is checked first
(validation.py).

Layout under the root::

    .lock                                  flock'ed around every commit / ref / repo update
    blobs/<sha256>                         file contents, shared by all repos
    repos/<type>s/<namespace>/<name>/      repo.json, refs.json, commits/<40-hex id>.json,
                                           lfs/<sha256> (empty: LFS objects this repo may commit),
                                           last-commits/<40-hex id>.json (last_commits.py)
    trash/                                 deleted repos on their way out

Only names checked by validation.py (`Repo` ids, sha256 oids, commit ids) become file names: revisions and
paths inside a repo are keys of JSON manifests and never touch the file system.

Blobs are shared, but a repo reaches a blob only through its own manifests. An `lfsFile` commit
operation names a blob by its sha256, so it is accepted only for objects in the repo's `lfs/`
index: objects whose content was uploaded through this repo's LFS batch (the uploader had the
bytes), which includes every LFS object its revisions reference. Knowing another repo's sha256 is
therefore not enough to read its file, and the LFS batch/verify answers say nothing about objects
outside the repo.
"""

from __future__ import annotations

import contextlib
import fcntl
import fnmatch
import hashlib
import json
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from hf_linear.atomic import write_text_atomically

from .validation import (
    COMMIT_PREFIX_RE,
    FULL_SHA_RE,
    SHA256_RE,
    HubError,
    bad_request,
    decode_base64,
    repo_not_found,
    revision_not_found,
    validate_path_in_repo,
    validate_repo_id,
    validate_revision,
    validate_sha256,
)

USER_NAME = "hf-linear-tester"  # the default (single) user of a server started without tokens

REPO_TYPES = {"models": "model", "datasets": "dataset", "spaces": "space"}  # URL segment → type
SUPPORTED_REPO_TYPES = ("model", "dataset", "space")
# The SDKs huggingface_hub accepts for a Space (`create_repo(..., space_sdk=...)`); the local server
# stores the files of a Space but runs no app.
SPACE_SDKS = ("gradio", "streamlit", "docker", "static")

# Files at least this big always go through LFS, as on the Hub (10 MB).
LFS_SIZE_THRESHOLD = 10 * 1024 * 1024
# Temp files untouched for this long belong to a dead upload or writer (a live upload writes at
# least every handler timeout, 60 s), so they are removed when a server starts on the root.
STALE_TEMP_SECONDS = 300
TEMP_PREFIXES = (".tmp-", ".upload-")

# The `.gitattributes` the Hub writes into the initial commit of every new repo; its
# `filter=lfs` patterns decide (with size and binary content) what preupload answers "lfs".
DEFAULT_GITATTRIBUTES = "".join(
    f"{pattern} filter=lfs diff=lfs merge=lfs -text\n"
    for pattern in (
        "*.7z",
        "*.arrow",
        "*.bin",
        "*.bz2",
        "*.ckpt",
        "*.ftz",
        "*.gz",
        "*.h5",
        "*.joblib",
        "*.lfs.*",
        "*.mlmodel",
        "*.model",
        "*.msgpack",
        "*.npy",
        "*.npz",
        "*.onnx",
        "*.ot",
        "*.parquet",
        "*.pb",
        "*.pickle",
        "*.pkl",
        "*.pt",
        "*.pth",
        "*.rar",
        "*.safetensors",
        "saved_model/**/*",
        "*.tar.*",
        "*.tar",
        "*.tflite",
        "*.tgz",
        "*.wasm",
        "*.xz",
        "*.zip",
        "*.zst",
        "*tfevents*",
    )
)

# ----------------------------------------------------------------------------- hashing and LFS policy


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
    """ "lfs" for files tracked by `.gitattributes`, files >= 10 MB and binary files; else "regular"."""
    if size >= LFS_SIZE_THRESHOLD or b"\0" in sample:
        return "lfs"
    if any(matches_gitattributes_pattern(path, pattern) for pattern in patterns):
        return "lfs"
    return "regular"


def _write_json_atomic(path: Path, obj: Any) -> None:
    write_text_atomically(path, json.dumps(obj, indent=1, sort_keys=True), temp_prefix=TEMP_PREFIXES[0])


def _read_json(path: Path) -> Any:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


# ----------------------------------------------------------------------------- storage


@dataclass(frozen=True)
class Repo:
    """A repo reference; its id is validated on construction, so it is always safe as a path."""

    type: str  # "model" | "dataset" | "space"
    id: str  # "namespace/name"

    def __post_init__(self) -> None:
        if self.type not in SUPPORTED_REPO_TYPES:
            raise repo_not_found(self.type, str(self.id))
        validate_repo_id(self.id)

    @property
    def namespace(self) -> str:
        return self.id.split("/")[0]

    @property
    def url_prefix(self) -> str:
        return "" if self.type == "model" else f"{self.type}s/"


class HubStore:
    """Repos on disk. Updates take a thread lock and an flock on `root/.lock`, so concurrent
    requests, also from other server processes on the same root, never lose a commit."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root).resolve()
        self.blobs = self.root / "blobs"
        self.blobs.mkdir(parents=True, exist_ok=True)
        (self.root / "repos").mkdir(exist_ok=True)
        self._lock_path = self.root / ".lock"
        self._thread_lock = threading.RLock()
        self._lock_depth = 0  # nesting of _write_lock in the thread holding _thread_lock
        self._lock_fd = -1
        self.removed_temp_files = self.remove_stale_temp_files()

    # -- locking and housekeeping
    @contextlib.contextmanager
    def _write_lock(self) -> Iterator[None]:
        """Exclusive across threads and processes. Re-entrant: flock locks belong to an open file,
        so a second open+flock in the same process would deadlock; only the outermost call locks."""
        with self._thread_lock:
            if self._lock_depth == 0:
                fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o600)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX)
                except BaseException:
                    os.close(fd)
                    raise
                self._lock_fd = fd
            self._lock_depth += 1
            try:
                yield
            finally:
                self._lock_depth -= 1
                if self._lock_depth == 0:
                    os.close(self._lock_fd)  # closing the file releases the flock
                    self._lock_fd = -1

    def remove_stale_temp_files(self, max_age: float = STALE_TEMP_SECONDS) -> list[Path]:
        """Delete temp files left by killed uploads/writers (older than `max_age` seconds, so a
        live upload of another server process on this root is left alone) and the trash."""
        removed = []
        cutoff = time.time() - max_age
        for prefix in TEMP_PREFIXES:
            for path in self.root.rglob(f"{prefix}*"):
                with contextlib.suppress(OSError):
                    if path.is_file() and path.stat().st_mtime < cutoff:
                        path.unlink()
                        removed.append(path)
        trash = self.root / "trash"
        if trash.is_dir():
            for entry in trash.iterdir():
                shutil.rmtree(entry, ignore_errors=True)
        return removed

    # -- blobs
    def blob_path(self, sha256: str) -> Path:
        return self.blobs / validate_sha256(sha256)

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
        """Stream an upload to a temp file, then store it under its sha256; refuse (and drop) it
        if the hash differs. Nothing is held in memory beyond one chunk."""
        final_path = self.blob_path(expected_sha256)
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
                raise bad_request(f"Uploaded content has sha256 {hasher.hexdigest()}, expected {expected_sha256}")
            os.replace(tmp, final_path)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
        return size

    def read_blob(self, sha256: str, limit: int | None = None) -> bytes:
        """The blob's content, or its first `limit` bytes."""
        with open(self.blob_path(sha256), "rb") as f:
            return f.read(-1 if limit is None else limit)

    # -- the LFS objects a repo may commit (see the module docstring)
    def _lfs_index(self, repo: Repo) -> Path:
        """`lfs/` of the repo; repos written before the index existed get it from their commits."""
        index = self._repo_dir(repo) / "lfs"
        if not index.is_dir():
            with self._write_lock():
                self.repo_meta(repo)
                if not index.is_dir():
                    index.mkdir()
                    for manifest in (self._repo_dir(repo) / "commits").glob("*.json"):
                        for entry in _read_json(manifest)["files"].values():
                            if entry["lfs"]:
                                (index / validate_sha256(entry["sha256"])).touch()
        return index

    def has_lfs_object(self, repo: Repo, sha256: str, size: int | None = None) -> bool:
        """True if the blob is stored (with this size) and this repo may commit it."""
        return (self._lfs_index(repo) / validate_sha256(sha256)).is_file() and self.has_blob(sha256, size)

    def add_lfs_object(self, repo: Repo, sha256: str) -> None:
        """Record that the blob's content was uploaded through this repo."""
        with self._write_lock():
            index = self._lfs_index(repo)  # also checks that the repo (still) exists
            (index / validate_sha256(sha256)).touch()

    # -- repos
    def _repo_dir(self, repo: Repo) -> Path:
        path = self.root / "repos" / f"{repo.type}s" / repo.id
        # Repo ids are validated; this only guards against a future change that forgets to.
        if not path.resolve().is_relative_to(self.root / "repos"):
            raise bad_request(f"Invalid repo id {repo.id!r}")
        return path

    def repo_meta(self, repo: Repo) -> dict:
        path = self._repo_dir(repo) / "repo.json"
        if not path.is_file():
            raise repo_not_found(repo.type, repo.id)
        return _read_json(path)

    def create_repo(self, repo: Repo, private: bool, author: str, sdk: str | None = None) -> bool:
        """Create the repo with the Hub's initial commit (.gitattributes); False if it exists.
        `sdk`: a Space's SDK (kept in repo.json; a README's `sdk:` metadata takes precedence)."""
        with self._write_lock():
            repo_dir = self._repo_dir(repo)
            if (repo_dir / "repo.json").is_file():
                return False
            created_at = now_iso()
            files = {".gitattributes": self._regular_entry(DEFAULT_GITATTRIBUTES.encode())}
            commit_id = self._write_commit(repo, [], "initial commit", "", files, author)
            (repo_dir / "lfs").mkdir()
            _write_json_atomic(repo_dir / "refs.json", {"branches": {"main": commit_id}, "tags": {}})
            # repo.json last: a repo "exists" only once it is complete.
            meta = {"id": repo.id, "type": repo.type, "private": private, "createdAt": created_at}
            if sdk is not None:
                meta["sdk"] = sdk
            _write_json_atomic(repo_dir / "repo.json", meta)
            return True

    def delete_repo(self, repo: Repo) -> None:
        with self._write_lock():
            self.repo_meta(repo)
            # Rename first so a concurrent reader never sees a half-deleted repo.
            trash = self.root / "trash" / f"{repo.type}-{repo.id.replace('/', '--')}-{os.getpid()}-{time.time_ns()}"
            trash.parent.mkdir(exist_ok=True)
            os.replace(self._repo_dir(repo), trash)
            shutil.rmtree(trash, ignore_errors=True)

    # -- refs and revisions
    def refs(self, repo: Repo) -> dict:
        self.repo_meta(repo)
        return _read_json(self._repo_dir(repo) / "refs.json")

    def resolve(self, repo: Repo, revision: str) -> str:
        """Branch, tag, refs/heads/x, refs/tags/x, or (unique prefix of a) commit id → commit id."""
        validate_revision(revision)
        refs = self.refs(repo)
        for kind, table in (("heads", "branches"), ("tags", "tags")):
            if revision.startswith(f"refs/{kind}/"):
                name = revision[len(f"refs/{kind}/") :]
                if name in refs[table]:
                    return refs[table][name]
                raise revision_not_found(revision)
        if revision in refs["branches"]:
            return refs["branches"][revision]
        if revision in refs["tags"]:
            return refs["tags"][revision]
        if COMMIT_PREFIX_RE.match(revision):  # only hex reaches the glob
            matches = [p.stem for p in (self._repo_dir(repo) / "commits").glob(f"{revision}*.json")]
            if len(matches) == 1:
                return matches[0]
        raise revision_not_found(revision)

    def read_commit(self, repo: Repo, commit_id: str) -> dict:
        if not FULL_SHA_RE.match(commit_id):
            raise revision_not_found(commit_id)
        return _read_json(self._repo_dir(repo) / "commits" / f"{commit_id}.json")

    # -- the last-commit table of a commit (derived from the manifests: last_commits.py)
    def _last_commit_table_path(self, repo: Repo, commit_id: str) -> Path:
        if not FULL_SHA_RE.match(commit_id):
            raise revision_not_found(commit_id)
        return self._repo_dir(repo) / "last-commits" / f"{commit_id}.json"

    def read_last_commit_table(self, repo: Repo, commit_id: str) -> dict | None:
        """The table of `commit_id`, or None if it has none (yet)."""
        try:
            return _read_json(self._last_commit_table_path(repo, commit_id))
        except (OSError, ValueError):
            return None

    def write_last_commit_table(self, repo: Repo, commit_id: str, table: dict) -> None:
        """Keep a commit's table. No lock: any writer writes the same table, atomically; a repo
        deleted meanwhile just keeps none."""
        path = self._last_commit_table_path(repo, commit_id)
        with contextlib.suppress(OSError):
            path.parent.mkdir(exist_ok=True)  # not parents=True: a deleted repo's folder is not made again
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=TEMP_PREFIXES[0])
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as f:
                    json.dump(table, f, separators=(",", ":"))
                os.replace(tmp, path)
            finally:
                if os.path.exists(tmp):
                    os.remove(tmp)

    def history(self, repo: Repo, commit_id: str) -> Iterator[dict]:
        """Commits reachable by first parents, newest first."""
        while commit_id:
            commit = self.read_commit(repo, commit_id)
            yield commit
            commit_id = commit["parents"][0] if commit["parents"] else ""

    def create_ref(self, repo: Repo, table: str, name: str, commit_id: str) -> None:
        """Add a branch or tag (`table` "branches" / "tags"); 409 if it exists."""
        with self._write_lock():
            refs = self.refs(repo)
            if name in refs[table]:
                kind = "heads" if table == "branches" else "tags"
                raise HubError(409, f"Reference already exists: refs/{kind}/{name}")
            refs[table][name] = commit_id
            _write_json_atomic(self._repo_dir(repo) / "refs.json", refs)

    def delete_ref(self, repo: Repo, table: str, name: str) -> None:
        with self._write_lock():
            refs = self.refs(repo)
            if name not in refs[table]:
                raise revision_not_found(name)
            del refs[table][name]
            _write_json_atomic(self._repo_dir(repo) / "refs.json", refs)

    # -- commits
    def _regular_entry(self, content: bytes) -> dict:
        return {"size": len(content), "sha256": self.put_blob(content), "lfs": False, "oid": git_blob_oid(content)}

    @staticmethod
    def _lfs_entry(sha256: str, size: int) -> dict:
        return {"size": size, "sha256": sha256, "lfs": True, "oid": git_blob_oid(lfs_pointer(sha256, size))}

    def _write_commit(self, repo: Repo, parents: list[str], title: str, message: str, files: dict, author: str) -> str:
        body = {
            "parents": parents,
            "title": title,
            "message": message,
            "date": now_iso(),
            "authors": [author],
            "files": files,
        }
        commit_id = hashlib.sha1(json.dumps(body, sort_keys=True).encode()).hexdigest()
        _write_json_atomic(self._repo_dir(repo) / "commits" / f"{commit_id}.json", {"id": commit_id, **body})
        return commit_id

    def commit(self, repo: Repo, branch: str, header: dict, operations: list[tuple[str, dict]], author: str) -> str:
        """Apply validated commit operations on top of `branch` and advance it, as one step under the
        write lock (another request or server process cannot move the branch in between)."""
        with self._write_lock():
            refs = self.refs(repo)
            if branch not in refs["branches"]:
                if branch in refs["tags"] or COMMIT_PREFIX_RE.match(branch):
                    raise bad_request(f"Invalid rev id: {branch} is not a branch; commits go to branches")
                raise revision_not_found(branch)
            head = refs["branches"][branch]
            parent = header.get("parentCommit")
            if parent and not head.startswith(parent):
                raise HubError(
                    412, f"A commit has happened since {parent}: {branch} is at {head}. Please refresh and try again."
                )
            files = dict(self.read_commit(repo, head)["files"])
            for key, value in operations:
                self._apply_operation(repo, files, key, value)
            commit_id = self._write_commit(
                repo, [head], header.get("summary") or "Update", header.get("description") or "", files, author
            )
            refs["branches"][branch] = commit_id
            _write_json_atomic(self._repo_dir(repo) / "refs.json", refs)
            return commit_id

    def _apply_operation(self, repo: Repo, files: dict, key: str, value: dict) -> None:
        """One ndjson operation (already type-checked by the handler) applied to a manifest."""
        path = value.get("path")
        if key == "deletedFolder" and isinstance(path, str):
            path = path.rstrip("/")  # clients send folders as "dir/"
        path = validate_path_in_repo(path)
        if key == "file":
            if value.get("encoding", "base64") != "base64":
                raise bad_request(f"Unsupported encoding {value.get('encoding')!r} for {path}")
            files[path] = self._regular_entry(decode_base64(value.get("content"), f"Content of {path}"))
        elif key == "lfsFile":
            sha256 = value.get("oid")
            if value.get("algo", "sha256") != "sha256" or not isinstance(sha256, str) or not SHA256_RE.match(sha256):
                raise bad_request(f"lfsFile {path}: expected a sha256 oid, got {sha256!r}")
            size = value.get("size")
            if size is not None and (not isinstance(size, int) or isinstance(size, bool) or size < 0):
                raise bad_request(f"lfsFile {path}: size must be a non-negative integer, got {size!r}")
            if not self.has_lfs_object(repo, sha256, size):  # not: stored somewhere on the server
                raise HubError(
                    422, f"lfsFile {path}: LFS object {sha256} was not uploaded to this repo (use the LFS batch API)"
                )
            files[path] = self._lfs_entry(sha256, self.blob_path(sha256).stat().st_size)
        elif key == "deletedFile":
            if path not in files:
                raise HubError(404, f"A file with this name doesn't exist: {path}", "EntryNotFound")
            del files[path]
        elif key == "deletedFolder":
            prefix = path + "/"
            doomed = [p for p in files if p.startswith(prefix)]
            if not doomed:
                raise HubError(404, f"A folder with this name doesn't exist: {path}", "EntryNotFound")
            for p in doomed:
                del files[p]
        else:
            raise bad_request(f"Unknown commit operation {key!r}")
