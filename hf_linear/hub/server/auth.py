"""Who may do what: users known by their tokens, their organisations, and signed LFS upload URLs.

Rules (those of the Hub, simplified):

- A request without a token is anonymous: it may read public repos only. A token the server does
  not know is refused with 401 on every route, as the Hub does.
- A user writes (create/delete repos, commit, preupload, branches, tags, LFS) only in its own
  namespace and in the organisations it belongs to; others get 403.
- A private repo is visible only to users who may write to its namespace; everyone else gets
  404 RepoNotFound, as if it did not exist.
- `PUT /lfs-upload/{oid}?repo=...` is done by the clients without their token (the Hub hands out
  presigned storage URLs), so the LFS batch answer carries an upload URL signed (HMAC, expiring)
  for that object and that repo; the PUT needs that signature or the token of a user who may write
  to the repo. The upload is recorded for that repo only (see store.py: blobs are shared, access
  is per repo).

Tokens come from `--token NAME=TOKEN` (repeatable) and/or `--tokens-file FILE`: JSON
(`[{"name": "alice", "token": "...", "orgs": ["team"]}, ...]`) or lines `name token [org ...]`
(`#` starts a comment). Without any, the server has one user, `hf-linear-tester`, whose token is
generated at start (or given by the caller of `serve_in_background`).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

from .store import USER_NAME
from .validation import NAME_RE

UPLOAD_URL_LIFETIME = 3600  # seconds a signed LFS upload URL stays valid


@dataclass(frozen=True)
class User:
    name: str
    orgs: frozenset[str] = frozenset()

    def can_write(self, namespace: str) -> bool:
        return namespace == self.name or namespace in self.orgs


class Accounts:
    """The token → user table of one server."""

    def __init__(self, users_by_token: Mapping[str, User], generated: bool = False):
        for token, user in users_by_token.items():
            if not token or any(c.isspace() for c in token):
                raise ValueError(f"Token of user {user.name!r} is empty or contains whitespace")
            for name in (user.name, *user.orgs):
                if not NAME_RE.match(name) or "--" in name or ".." in name:
                    raise ValueError(f"Invalid user or organisation name {name!r}")
        if not users_by_token:
            raise ValueError("No users configured")
        self._users = dict(users_by_token)
        self.generated = generated  # True: a random token made at start, not configured by anyone

    @classmethod
    def single_user(cls, name: str = USER_NAME, token: str | None = None) -> Accounts:
        """One user; with `token=None` a random token (shown by the CLI at start)."""
        return cls({token or f"hf_local_{secrets.token_urlsafe(24)}": User(name)}, generated=token is None)

    @classmethod
    def from_sources(cls, token_args: Iterable[str] = (), tokens_file: str | Path | None = None) -> Accounts:
        """`--token NAME=TOKEN` values plus a tokens file; ValueError naming what is wrong."""
        entries: list[tuple[str, str, list[str]]] = []
        for arg in token_args:
            name, sep, token = arg.partition("=")
            if not sep:
                raise ValueError(f"--token expects NAME=TOKEN, got {arg!r}")
            entries.append((name.strip(), token.strip(), []))
        if tokens_file is not None:
            entries += read_tokens_file(Path(tokens_file))
        users: dict[str, User] = {}
        for name, token, orgs in entries:
            if token in users:
                raise ValueError(f"The same token is given to users {users[token].name!r} and {name!r}")
            users[token] = User(name, frozenset(orgs))
        return cls(users)

    @property
    def default_token(self) -> str:
        """The first user's token (the only one in the single-user setup)."""
        return next(iter(self._users))

    def user_for_token(self, token: str) -> User | None:
        # compare_digest against every token: the answer time does not depend on the token's prefix
        found = None
        for known, user in self._users.items():
            if hmac.compare_digest(known.encode(), token.encode()):
                found = user
        return found


def read_tokens_file(path: Path) -> list[tuple[str, str, list[str]]]:
    """(name, token, orgs) entries of a JSON list or a `name token [org ...]` lines file."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ValueError(f"Cannot read tokens file {path}: {e}") from e
    if text.lstrip().startswith(("[", "{")):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise ValueError(f"Tokens file {path} is not valid JSON: {e}") from e
        if not isinstance(data, list):
            raise ValueError(f"Tokens file {path}: expected a JSON list of {{name, token, orgs}} objects")
        return [json_token_entry(path, number, item) for number, item in enumerate(data, 1)]
    entries = []
    for number, line in enumerate(text.splitlines(), 1):
        fields = line.split("#", 1)[0].split()
        if not fields:
            continue
        if len(fields) < 2:
            raise ValueError(f"Tokens file {path}, line {number}: expected 'name token [org ...]'")
        entries.append((fields[0], fields[1], fields[2:]))
    return entries


def json_token_entry(path: Path, number: int, item: object) -> tuple[str, str, list[str]]:
    """One `{"name", "token", "orgs"}` object of a JSON tokens file; ValueError naming the field."""
    where = f"Tokens file {path}, entry {number}"
    if not isinstance(item, dict):
        raise ValueError(f"{where}: expected an object {{name, token, orgs}}, got {type(item).__name__}")
    for key in ("name", "token"):
        if not isinstance(item.get(key), str):
            raise ValueError(f"{where}: '{key}' must be a string, got {type(item.get(key)).__name__}")
    orgs = item.get("orgs", [])
    # A string is iterable too: "orgs": "team" must not become the organisations t, e, a, m.
    if not isinstance(orgs, list) or not all(isinstance(o, str) for o in orgs):
        raise ValueError(f"{where}: 'orgs' must be a list of organisation names, got {orgs!r}")
    unknown = sorted(set(item) - {"name", "token", "orgs"})
    if unknown:
        raise ValueError(f"{where}: unknown field(s) {', '.join(map(repr, unknown))} (expected name, token, orgs)")
    return item["name"], item["token"], list(orgs)


class UploadSigner:
    """HMAC signatures for LFS upload URLs of one object into one repo (`repo_key`, e.g.
    `models/alice/x`), with a key that lives only in this server process."""

    def __init__(self) -> None:
        self._key = secrets.token_bytes(32)

    def _signature(self, oid: str, repo_key: str, expires: int) -> str:
        return hmac.new(self._key, f"{oid}:{repo_key}:{expires}".encode(), hashlib.sha256).hexdigest()

    def query(self, oid: str, repo_key: str) -> str:
        expires = int(time.time()) + UPLOAD_URL_LIFETIME
        return urlencode({"repo": repo_key, "expires": expires, "signature": self._signature(oid, repo_key, expires)})

    def is_valid(self, oid: str, repo_key: str, expires: str, signature: str) -> bool:
        # Shape first: compare_digest refuses non-ASCII str (a TypeError, once answered 500).
        if not re.fullmatch(r"[0-9]{1,12}", expires) or not re.fullmatch(r"[0-9a-f]{64}", signature):
            return False
        if int(expires) < time.time():
            return False
        return hmac.compare_digest(self._signature(oid, repo_key, int(expires)), signature)
