"""A small HTTP server that speaks enough of the Hugging Face Hub API for the unmodified clients.

This machine has no internet, so tests (and offline demos) point `huggingface_hub`, `transformers`
and `datasets` at this server with `HF_ENDPOINT=http://127.0.0.1:PORT` and `HF_HUB_DISABLE_XET=1`;
the clients then run their real code paths (`push_to_hub`, `from_pretrained`, `load_dataset`,
streaming) against it.

What it implements (the subset of the Hub API those clients use, with the Hub's JSON shapes,
status codes and `X-Error-Code` headers, read from huggingface_hub 2.4 / datasets 5.2):

- ``GET  /api/whoami-v2``; ``POST /api/repos/create``; ``DELETE /api/repos/delete``;
  ``POST /api/validate-yaml``
- ``GET  /api/{models,datasets,spaces}/{repo}`` and ``.../revision/{rev}`` (repo info: sha, siblings,
  lastModified, cardData); ``.../tree/{rev}[/{path}]`` (recursive, expand; pages of 1000, or 50
  when expanded, linked by a ``Link: rel="next"`` header); ``POST .../paths-info/{rev}``;
  ``GET .../refs``; ``GET .../commits/{rev}`` (pages of 50, linked the same way);
  ``POST|DELETE .../branch/{name}``; ``POST .../tag/{rev}``, ``DELETE .../tag/{name}``
- ``POST .../preupload/{rev}`` ("lfs" for binary/large files, "regular" for small text) and
  ``POST .../commit/{rev}`` (ndjson: header, inline base64 files, lfsFile, deletedFile,
  deletedFolder; ``parentCommit`` checked → 412)
- git-LFS: ``POST /{repo}.git/info/lfs/objects/batch`` (basic transfer to this server),
  ``PUT /lfs-upload/{oid}?repo=...`` (signed for one object and one repo, sha256-verified),
  ``POST .../objects/verify``
- ``HEAD|GET /{repo}/resolve/{rev}/{path}`` (also ``/datasets/...``, ``/spaces/...``) with
  X-Repo-Commit, ETag, X-Linked-Etag/X-Linked-Size for LFS files, Content-Length and single-range
  requests.

Spaces are repos like models and datasets (same routes under ``spaces/``, same rights, private
Spaces included); creating one needs an SDK (gradio, streamlit, docker, static), which repo info
reports as ``sdk`` (the README's ``sdk:`` metadata first). No app runs: the Space runtime,
hardware, secrets and variables routes are not implemented (404), nor are pull requests, buckets
and the dataset viewer (404 / 400).

Users and rights (auth.py): tokens map to users (``--token NAME=TOKEN``, ``--tokens-file``; without
them one user ``hf-linear-tester`` with a generated token). A user writes only to its namespace and
its organisations; private repos are 404 to everyone else; unknown tokens get 401; anonymous
clients read public repos. Listening beyond loopback needs configured tokens and prints a warning.
Every repo id, revision and path is validated before use (nothing escapes ``--root``), malformed
requests get 4xx, bodies are size-limited (413) and JSON depth-limited, LFS uploads are streamed to
disk. Blobs are shared by sha256, but an LFS object is committable only in a repo it was uploaded
through (store.py), so a sha256 alone reads nothing. README metadata is parsed with a bounded,
alias-free YAML loader (listing.py); what it cannot parse is left out of repo info, as on the Hub.

Storage under ``--root`` (store.py): ``blobs/<sha256>`` (content-addressed file contents, shared by
all repos) and per repo ``repos/<type>s/<namespace>/<name>/`` with ``repo.json``, ``refs.json``,
one JSON manifest per commit in ``commits/<40-hex id>.json`` (path → size, sha256, lfs flag, git
oid), ``lfs/<sha256>`` markers of the LFS objects the repo may commit and ``last-commits/<id>.json``,
each commit's table of its entries' last commits (what an expanded tree listing answers). Commits are never
deleted, so every old revision stays downloadable by its sha. Updates hold an flock on ``.lock``,
so several server processes may share one root.

Modules, one role each (imports run down this list, never back up): cli.py (command line,
in-process helpers) → server.py (`HubHTTPServer`: store, accounts, limits, connections) →
handler.py (HTTP plumbing: bodies, responses, the user) → routes.py (one function per route) →
listing.py (tree/paths-info JSON, card metadata) → last_commits.py (the last-commit tables), auth.py
(users, tokens, signed upload URLs) → store.py (disk, locking) → validation.py (names, paths, oids, JSON bodies; `HubError`).

Start it with ``python -m hf_linear.hub.server --root DIR [--port 0] [--token NAME=TOKEN]`` /
``hf-linear hub-server``, or in-process with ``with run_hub_server(root, token=...) as url: ...``.
"""

from .auth import Accounts, User
from .cli import main, run_hub_server, serve_in_background
from .handler import HubRequestHandler
from .server import DEFAULT_MAX_JSON_BYTES, DEFAULT_MAX_UPLOAD_BYTES, HubHTTPServer
from .store import USER_NAME, HubStore, Repo
from .validation import HubError

__all__ = [
    "USER_NAME",
    "Accounts",
    "User",
    "HubHTTPServer",
    "HubRequestHandler",
    "HubStore",
    "HubError",
    "Repo",
    "serve_in_background",
    "run_hub_server",
    "main",
    "DEFAULT_MAX_UPLOAD_BYTES",
    "DEFAULT_MAX_JSON_BYTES",
]
