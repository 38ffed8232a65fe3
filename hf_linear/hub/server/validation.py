"""What the local Hub server checks before anything reaches the store or a route: names, repo
ids, revisions and paths, sha256 oids, base64 and JSON bodies, header values; and the errors it
answers (`HubError`, in the Hub's shape). Only names checked here become file names (store.py).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import Any

MAX_JSON_DEPTH = 64  # nesting of a JSON body (or ndjson line); deeper bodies are refused

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")  # a namespace or a repo name
REF_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,199}$")  # a branch or tag name
FULL_SHA_RE = re.compile(r"^[0-9a-f]{40}$")
COMMIT_PREFIX_RE = re.compile(r"^[0-9a-f]{7,40}$")
SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
CONTROL_CHARS_RE = re.compile(r"[\x00-\x1f\x7f]")
# Repo paths the Hub refuses: backslashes (`C:\\x`, `a\\b`: Windows separators) and path segments
# that begin or end with whitespace (which clients and file systems handle inconsistently).
BAD_PATH_SEGMENT_RE = re.compile(r"\\|^\s|\s$")
MAX_PATH_LENGTH = 1000


# ----------------------------------------------------------------------------- errors


class HubError(Exception):
    """An error answered to the client the way the Hub does: status, X-Error-Code, JSON body."""

    def __init__(self, status: int, message: str, error_code: str | None = None, headers: dict | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.error_code = error_code
        self.headers = headers or {}


def bad_request(message: str) -> HubError:
    return HubError(400, message)


def repo_not_found(repo_type: str, repo_id: str) -> HubError:
    return HubError(404, f"{repo_type.capitalize()} repository '{repo_id}' not found", "RepoNotFound")


def revision_not_found(revision: str) -> HubError:
    return HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")


def entry_not_found(path: str, commit_id: str | None = None) -> HubError:
    headers = {"X-Repo-Commit": commit_id} if commit_id else {}
    return HubError(404, f"Entry not found: {path}", "EntryNotFound", headers)


# ----------------------------------------------------------------------------- validation


def validate_repo_id(repo_id: str) -> str:
    parts = repo_id.split("/") if isinstance(repo_id, str) else []
    if len(parts) != 2 or not all(NAME_RE.match(p) for p in parts) or any("--" in p or ".." in p for p in parts):
        raise bad_request(
            f"Invalid repo id {repo_id!r}: expected 'namespace/name' (letters, digits, '-', '_', '.'; no '--' or '..')"
        )
    return repo_id


def validate_path_in_repo(path: Any) -> str:
    """A relative POSIX path without empty, `.` or `..` segments, `.git`, control characters,
    backslashes, or segments with leading/trailing whitespace. Any other Unicode is fine."""
    if not isinstance(path, str):
        raise bad_request(f"Invalid path in repo: expected a string, got {type(path).__name__}")
    parts = path.split("/")
    if (
        not path
        or len(path) > MAX_PATH_LENGTH
        or CONTROL_CHARS_RE.search(path)
        or any(part in ("", ".", "..") or BAD_PATH_SEGMENT_RE.search(part) for part in parts)
        or ".git" in parts
    ):
        raise bad_request(f"Invalid path in repo: {path!r}")
    return path


def validate_revision(revision: str) -> str:
    """Branch/tag names, `refs/...` and commit ids; refuses `..`, `//`, control characters."""
    if not REF_NAME_RE.match(revision) or ".." in revision or "//" in revision or revision.endswith("/"):
        raise bad_request(f"Invalid revision {revision!r}")
    return revision


def validate_ref_name(name: Any, kind: str) -> str:
    """A new branch or tag name (not a commit id, not under `refs/`)."""
    if (
        not isinstance(name, str)
        or not REF_NAME_RE.match(name)
        or FULL_SHA_RE.match(name)
        or ".." in name
        or "//" in name
        or name.endswith("/")
        or name.startswith("refs/")
    ):
        raise bad_request(f"Invalid {kind} name {name!r}")
    return name


def validate_sha256(oid: Any, what: str = "LFS oid") -> str:
    if not isinstance(oid, str) or not SHA256_RE.match(oid):
        raise bad_request(f"Invalid {what} {oid!r}: expected 64 lowercase hex characters (a sha256)")
    return oid


def decode_base64(text: Any, what: str) -> bytes:
    """Strict base64 (invalid characters or padding are refused, not silently dropped)."""
    if not isinstance(text, str):
        raise bad_request(f"{what}: expected a base64 string, got {type(text).__name__}")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as e:
        raise bad_request(f"{what} is not valid base64: {e}") from e


INVALID_CREDENTIALS = "Invalid credentials in Authorization header"  # huggingface_hub keys on this text


def unauthorized() -> HubError:
    return HubError(401, INVALID_CREDENTIALS)


def header_value(value: str) -> str:
    """A header value that can travel: no control characters (no header injection), Latin-1 only."""
    return CONTROL_CHARS_RE.sub(" ", value).encode("latin-1", "backslashreplace").decode("latin-1")


def parse_json_object(raw: bytes, what: str) -> dict:
    """Every JSON body and ndjson line goes through here: a dict, at most MAX_JSON_DEPTH deep."""
    try:
        value = json.loads(raw or b"{}")
    # ValueError: also integers of more than 4,300 digits; RecursionError: ~1,000 nested brackets
    except (ValueError, RecursionError) as e:
        raise bad_request(f"{what} is not valid JSON: {type(e).__name__}: {str(e)[:200]}") from e
    if not isinstance(value, dict):
        raise bad_request(f"{what} must be a JSON object, got {type(value).__name__}")
    if json_depth(value) > MAX_JSON_DEPTH:
        raise bad_request(f"{what} nests deeper than {MAX_JSON_DEPTH} levels")
    return value


def json_depth(value: Any) -> int:
    """Nesting depth of parsed JSON, without recursion (1 for a scalar or an empty container)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        deepest = max(deepest, depth)
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else ()
        stack.extend((child, depth + 1) for child in children)
    return deepest
