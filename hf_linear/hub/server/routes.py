"""The routes of the local Hub server: one function per Hub API route.

Every request goes through `route()`, which turns URL segments into validated `Repo`s, revisions
and paths (validation.py) and checks access (auth.py) before a route function runs; the request
plumbing (bodies, responses, the user) is the handler's (handler.py).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, quote, unquote, urlencode, urlsplit

from .last_commits import last_commits
from .listing import (
    README_HEAD_BYTES,
    CardMetadataError,
    card_metadata_text,
    card_tags,
    check_card_metadata,
    expand_info,
    file_info,
    folder_oids,
    list_tree,
    parse_card_metadata,
    parse_card_metadata_text,
    path_info,
)
from .store import REPO_TYPES, SPACE_SDKS, SUPPORTED_REPO_TYPES, Repo, choose_upload_mode, lfs_patterns
from .validation import (
    FULL_SHA_RE,
    SHA256_RE,
    HubError,
    bad_request,
    decode_base64,
    entry_not_found,
    parse_json_object,
    repo_not_found,
    unauthorized,
    validate_path_in_repo,
    validate_ref_name,
    validate_revision,
    validate_sha256,
)

if TYPE_CHECKING:  # the handler imports this module: its class only names the requests' type here
    from .handler import HubRequestHandler as Handler

TREE_PAGE_SIZE = 1000
TREE_PAGE_SIZE_EXPANDED = 50  # the Hub's page sizes (huggingface_hub relies on pagination)
COMMITS_PAGE_SIZE = 50  # commits per page (huggingface_hub follows the Link header)
_SPECIAL_REF_KINDS = ("heads", "tags", "pr", "convert")
_MISSING = object()


def field(obj: dict, key: str, kind: type | tuple[type, ...], default: Any = _MISSING) -> Any:
    """`obj[key]` checked to be of `kind` (bools are not ints); 400 naming the field otherwise."""
    value = obj.get(key, _MISSING)
    if value is _MISSING or (value is None and default is not _MISSING):
        if default is _MISSING:
            raise bad_request(f"Missing field {key!r}")
        return default
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
        expected = " or ".join(k.__name__ for k in kinds)
        raise bad_request(f"Field {key!r} must be {expected}, got {type(value).__name__}")
    return value


def query_flag(query: dict, name: str) -> bool:
    return query.get(name, ["false"])[0].lower() in ("1", "true")


def query_int(query: dict, name: str, default: int, minimum: int, maximum: int | None = None) -> int:
    raw = query.get(name, [str(default)])[0] or str(default)
    if not re.fullmatch(r"[0-9]{1,12}", raw) or int(raw) < minimum or (maximum is not None and int(raw) > maximum):
        bounds = f">= {minimum}" + (f" and <= {maximum}" if maximum is not None else "")
        raise bad_request(f"Query parameter {name!r} must be an integer {bounds}, got {raw!r}")
    return int(raw)


def take_revision(segments: list[str]) -> tuple[str, list[str]]:
    """Split raw URL segments into (revision, rest). Clients quote revisions with safe="" (so
    `refs/pr/1` arrives as one segment), but `refs/{convert,pr,...}/x` may also come unquoted."""
    if not segments or not segments[0]:
        raise bad_request("Missing revision in URL")
    if segments[0] == "refs" and len(segments) >= 3 and segments[1] in _SPECIAL_REF_KINDS:
        return validate_revision("/".join(unquote(s) for s in segments[:3])), segments[3:]
    return validate_revision(unquote(segments[0])), segments[1:]


def join_path(segments: list[str]) -> str:
    """A path in the repo from URL segments ('' for the root), validated."""
    path = "/".join(unquote(s) for s in segments if s).strip("/")
    return validate_path_in_repo(path) if path else ""


def parse_range(header: str, size: int) -> tuple[int, int] | None:
    """`bytes=a-b`, `bytes=a-` or `bytes=-n` → inclusive (start, end); None if unsatisfiable or
    malformed (answered 416). Multi-range requests are answered with the first range only."""
    match = re.fullmatch(r"\s*bytes\s*=\s*([0-9]{0,19})\s*-\s*([0-9]{0,19})\s*(,.*)?", header)
    if not match or (not match.group(1) and not match.group(2)):
        return None
    if not match.group(1):  # suffix range: the last n bytes
        n = int(match.group(2))
        return (max(0, size - n), size - 1) if n > 0 and size > 0 else None
    start = int(match.group(1))
    end = min(int(match.group(2)), size - 1) if match.group(2) else size - 1
    return (start, end) if start < size and start <= end else None


def content_disposition(path: str) -> str:
    """As the Hub: RFC 5987 `filename*` (any Unicode name) plus an ASCII `filename` fallback."""
    name = path.rsplit("/", 1)[-1]
    fallback = "".join(c if 32 <= ord(c) < 127 and c not in '"\\;' else "_" for c in name)
    return f"inline; filename*=UTF-8''{quote(name, safe='')}; filename=\"{fallback}\";"


# ----------------------------------------------------------------------------- the handler


def route(req: Handler, method: str) -> None:
    url = urlsplit(req.path)
    segments = url.path.strip("/").split("/")
    query = parse_qs(url.query)
    not_implemented = HubError(404, f"Not implemented by the local hub server: {method} {url.path}")
    if segments[0] == "api":
        return route_api(req, method, segments[1:], query, not_implemented)
    if segments[0] == "lfs-upload" and method == "PUT" and len(segments) == 2:
        return lfs_upload(req, validate_sha256(unquote(segments[1])), query)
    repo_type, rest = "model", segments
    if segments[0] in REPO_TYPES:
        repo_type, rest = REPO_TYPES[segments[0]], segments[1:]
    if len(rest) >= 6 and rest[1].endswith(".git") and rest[2:5] == ["info", "lfs", "objects"] and method == "POST":
        repo = req.writable_repo(repo_type, f"{unquote(rest[0])}/{unquote(rest[1][:-4])}")
        if rest[5:] == ["batch"]:
            return lfs_batch(req, repo)
        if rest[5:] == ["verify"]:
            return lfs_verify(req, repo)
        raise not_implemented
    if len(rest) >= 2 and rest[1] == "resolve":  # a one-segment repo id (legacy canonical models)
        raise repo_not_found(repo_type, unquote(rest[0]))
    if len(rest) >= 5 and rest[2] == "resolve" and method in ("GET", "HEAD"):
        repo = req.readable_repo(repo_type, f"{unquote(rest[0])}/{unquote(rest[1])}")
        revision, path_segments = take_revision(rest[3:])
        path = join_path(path_segments)
        if not path:
            raise bad_request("Missing file path after the revision")
        return resolve_file(req, repo, revision, path)
    raise not_implemented


# repo routes under /api/{models,datasets,spaces}/{namespace}/{name}/{action}/...: (action, method) →
# (needs write access, handler(req, repo, args, query))
RepoRoute = Callable[["Handler", Repo, list[str], dict], None]


def route_api(req: Handler, method: str, segments: list[str], query: dict, not_implemented: HubError) -> None:
    account_routes = {
        (("whoami-v2",), "GET"): whoami,
        (("repos", "create"), "POST"): create_repo,
        (("repos", "delete"), "DELETE"): delete_repo,
        (("repos", "delete"), "POST"): delete_repo,
        (("validate-yaml",), "POST"): validate_yaml,
    }
    if (tuple(segments), method) in account_routes:
        return account_routes[tuple(segments), method](req)
    if len(segments) < 3 or segments[0] not in REPO_TYPES:
        raise not_implemented
    repo_type = REPO_TYPES[segments[0]]
    repo_id = f"{unquote(segments[1])}/{unquote(segments[2])}"
    action, args = (segments[3], segments[4:]) if len(segments) > 3 else ("", [])
    entry = REPO_ROUTES.get((action, method))
    if entry is None or (action in ("branch", "tag") and not args):
        raise not_implemented
    needs_write, handler = entry
    repo = req.writable_repo(repo_type, repo_id) if needs_write else req.readable_repo(repo_type, repo_id)
    return handler(req, repo, args, query)


# -- account and repos


def whoami(req: Handler) -> None:
    user = req.require_user()
    req.send_json(
        {
            "type": "user",
            "id": "0" * 24,
            "name": user.name,
            "fullname": user.name,
            "email": None,
            "emailVerified": False,
            "isPro": False,
            "orgs": [{"type": "org", "name": org, "fullname": org, "roleInOrg": "write"} for org in sorted(user.orgs)],
            "auth": {"type": "access_token", "accessToken": {"displayName": "local", "role": "write"}},
        }
    )


def repo_from_payload(req: Handler, payload: dict) -> Repo:
    repo_type = field(payload, "type", str, "model")
    if repo_type not in SUPPORTED_REPO_TYPES:
        raise bad_request(
            f"Repo type {repo_type!r} is not supported by the local hub server (only {', '.join(SUPPORTED_REPO_TYPES)})"
        )
    name = field(payload, "name", str)
    namespace = field(payload, "organization", str, "") or req.require_user().name
    return Repo(repo_type, f"{namespace}/{name}")


def create_repo(req: Handler) -> None:
    payload = req.json_body()
    user = req.require_user()
    repo = repo_from_payload(req, payload)
    private = field(payload, "visibility", str, "") == "private" or field(payload, "private", bool, False)
    sdk = space_sdk(payload) if repo.type == "space" else None
    if not user.can_write(repo.namespace):
        raise HubError(403, f"You don't have the rights to create a {repo.type} under the namespace '{repo.namespace}'")
    url = f"{req.base_url}/{repo.url_prefix}{repo.id}"
    if not req.store.create_repo(repo, private, author=user.name, sdk=sdk):
        return req.send_json({"error": f"You already created this {repo.type} repo", "url": url}, 409)
    req.send_json({"url": url, "name": repo.id, "id": repo.id})


def space_sdk(payload: dict) -> str:
    """The Hub needs an SDK for a new Space (huggingface_hub always sends one)."""
    sdk = field(payload, "sdk", str)
    if sdk not in SPACE_SDKS:
        raise bad_request(f"Invalid Space SDK {sdk!r}: expected one of {', '.join(SPACE_SDKS)}")
    return sdk


def delete_repo(req: Handler) -> None:
    payload = req.json_body()
    req.require_user()
    repo = repo_from_payload(req, payload)
    req.store.delete_repo(req.writable_repo(repo.type, repo.id))
    req.send(200, b"")


def validate_yaml(req: Handler) -> None:
    content = field(req.json_body(), "content", str, "")
    try:
        text = card_metadata_text(content.encode())
        if text is None and content.startswith("---"):
            raise CardMetadataError("README.md metadata block is not closed by a '---' line")
        if text is not None:
            check_card_metadata(parse_card_metadata_text(text))
    except CardMetadataError as e:
        return req.send_json({"errors": [{"message": str(e)}], "warnings": []}, 400)
    req.send_json({"errors": [], "warnings": []})


# -- reads


def commit_files(req: Handler, repo: Repo, revision: str) -> tuple[str, dict]:
    commit_id = req.store.resolve(repo, revision)
    return commit_id, req.store.read_commit(repo, commit_id)["files"]


def repo_info(req: Handler, repo: Repo, args: list[str], query: dict, revision: str = "main") -> None:
    store = req.store
    meta = store.repo_meta(repo)
    commit_id = store.resolve(repo, revision)
    commit = store.read_commit(repo, commit_id)
    with_blobs = query_flag(query, "blobs")
    siblings = []
    for path, entry in sorted(commit["files"].items()):
        sibling: dict[str, Any] = {"rfilename": path}
        if with_blobs:
            sibling.update(size=entry["size"], blobId=entry["oid"])
            if entry["lfs"]:
                lfs = file_info(path, entry)["lfs"]
                sibling["lfs"] = {"sha256": entry["sha256"], "size": entry["size"], "pointerSize": lfs["pointerSize"]}
        siblings.append(sibling)
    readme = commit["files"].get("README.md")
    # Only the head of the README can hold metadata; unparsable metadata is left out, as on the Hub.
    card = parse_card_metadata(store.read_blob(readme["sha256"], README_HEAD_BYTES)) if readme else None
    info: dict[str, Any] = {
        "_id": hashlib.sha1(repo.id.encode()).hexdigest()[:24],
        "id": repo.id,
        "author": repo.namespace,
        "sha": commit_id,
        "lastModified": commit["date"],
        "createdAt": meta["createdAt"],
        "private": meta["private"],
        "gated": False,
        "disabled": False,
        "downloads": 0,
        "likes": 0,
        "tags": card_tags(card or {}),
        "siblings": siblings,
    }
    if card is not None:
        info["cardData"] = card
    if repo.type == "space":  # the README's `sdk:` wins, as on the Hub; no runtime (no app runs here)
        sdk = (card or {}).get("sdk") or meta.get("sdk")
        if isinstance(sdk, str):
            info["sdk"] = sdk
    if repo.type == "model":
        info["modelId"] = repo.id
        for key in ("library_name", "pipeline_tag"):
            if card and isinstance(card.get(key), str) and card[key]:
                info[key] = card[key]
    req.send_json(info)


def repo_info_at_revision(req: Handler, repo: Repo, args: list[str], query: dict) -> None:
    repo_info(req, repo, args, query, revision=take_revision(args)[0])


def tree(req: Handler, repo: Repo, args: list[str], query: dict) -> None:
    revision, path_segments = take_revision(args)
    path = join_path(path_segments)
    commit_id, files = commit_files(req, repo, revision)
    folders = folder_oids(files)
    if path and path not in folders:
        raise entry_not_found(path, commit_id)
    expand = query_flag(query, "expand")
    entries = list_tree(files, folders, path, query_flag(query, "recursive"))
    start = query_int(query, "cursor", 0, minimum=0)
    # Expanded entries cost more (last commits), so their pages are capped lower, as on the Hub; a
    # larger `limit` is cut down, not refused (the Link header leads to the rest).
    page_size = TREE_PAGE_SIZE_EXPANDED if expand else TREE_PAGE_SIZE
    limit = min(page_size, query_int(query, "limit", page_size, minimum=1, maximum=TREE_PAGE_SIZE))
    page = entries[start : start + limit]
    if expand:
        page = [expand_info(req.store, repo, commit_id, info) for info in page]
    more = start + limit < len(entries)
    req.send_json(page, headers=next_page_link(req, query, str(start + limit)) if more else {})


def next_page_link(req: Handler, query: dict, cursor: str) -> dict:
    """The `Link: <...>; rel="next"` header huggingface_hub follows (the same query, a new cursor)."""
    next_query = {k: v[0] for k, v in query.items()} | {"cursor": cursor}
    return {"Link": f'<{req.base_url}{urlsplit(req.path).path}?{urlencode(next_query)}>; rel="next"'}


def paths_info(req: Handler, repo: Repo, args: list[str], query: dict) -> None:
    revision = take_revision(args)[0]
    body = req.form_or_json_body()
    paths = body.get("paths", [])
    paths = [paths] if isinstance(paths, str) else paths
    if not isinstance(paths, list) or not all(isinstance(p, str) for p in paths):
        raise bad_request("Field 'paths' must be a string or a list of strings")
    expand = body.get("expand", False)
    expand = (expand[0] if isinstance(expand, list) and expand else str(expand)).lower() in ("1", "true")
    # "" (the root) has no info; each path answered once
    paths = dict.fromkeys(validate_path_in_repo(p) for p in (p.strip("/") for p in paths) if p)
    commit_id, files = commit_files(req, repo, revision)
    folders = folder_oids(files)
    infos = [info for info in (path_info(p, files, folders) for p in paths) if info is not None]
    if expand:
        infos = [expand_info(req.store, repo, commit_id, info) for info in infos]
    req.send_json(infos)


def list_refs(req: Handler, repo: Repo, args: list[str], query: dict) -> None:
    refs = req.store.refs(repo)
    req.send_json(
        {
            "branches": [
                {"name": n, "ref": f"refs/heads/{n}", "targetCommit": c} for n, c in sorted(refs["branches"].items())
            ],
            "tags": [{"name": n, "ref": f"refs/tags/{n}", "targetCommit": c} for n, c in sorted(refs["tags"].items())],
            "converts": [],
            "pullRequests": [],
        }
    )


def list_commits(req: Handler, repo: Repo, args: list[str], query: dict) -> None:
    """Newest first, COMMITS_PAGE_SIZE per page; the next page starts at the commit named by
    `cursor` (so a page reads only its own commits, whatever the history's length)."""
    store = req.store
    head = store.resolve(repo, take_revision(args)[0])
    if query.get("cursor"):
        cursor = query["cursor"][0]
        if not FULL_SHA_RE.match(cursor):
            raise bad_request(f"Query parameter 'cursor' must be a commit id, got {cursor!r}")
        head = store.resolve(repo, cursor)
    page = list(itertools.islice(store.history(repo, head), COMMITS_PAGE_SIZE))
    parents = page[-1]["parents"]
    req.send_json(
        [
            {
                "id": c["id"],
                "title": c["title"],
                "message": c["message"],
                "date": c["date"],
                "authors": [{"user": a} for a in c["authors"]],
            }
            for c in page
        ],
        headers=next_page_link(req, query, parents[0]) if parents else {},
    )


def resolve_file(req: Handler, repo: Repo, revision: str, path: str) -> None:
    commit_id, files = commit_files(req, repo, revision)
    entry = files.get(path)
    if entry is None:
        raise entry_not_found(path, commit_id)
    size = entry["size"]
    etag = f'"{entry["sha256"]}"' if entry["lfs"] else f'"{entry["oid"]}"'
    headers = {
        "X-Repo-Commit": commit_id,
        "ETag": etag,
        "Accept-Ranges": "bytes",
        "Content-Disposition": content_disposition(path),
    }
    if entry["lfs"]:
        headers.update({"X-Linked-Etag": f'"{entry["sha256"]}"', "X-Linked-Size": str(size)})
    start, end, status = 0, size - 1, 200
    range_header = req.headers.get("Range")
    if range_header:
        byte_range = parse_range(range_header, size)
        if byte_range is None:
            raise HubError(
                416,
                f"Range not satisfiable: {range_header} (size {size})",
                headers={**headers, "Content-Range": f"bytes */{size}"},
            )
        start, end = byte_range
        status = 206
        headers["Content-Range"] = f"bytes {start}-{end}/{size}"
    req.send_blob(entry["sha256"], start, end, status, headers)


# -- writes


def preupload(req: Handler, repo: Repo, args: list[str], query: dict) -> None:
    revision = take_revision(args)[0]
    requested = field(req.json_body(), "files", list, [])
    commit_id, files = commit_files(req, repo, revision)
    gitattributes = files.get(".gitattributes")
    patterns = (
        lfs_patterns(req.store.read_blob(gitattributes["sha256"]).decode("utf-8", "replace")) if gitattributes else []
    )
    answer = []
    for item in requested:
        if not isinstance(item, dict):
            raise bad_request("Each entry of 'files' must be an object {path, size, sample}")
        path = validate_path_in_repo(field(item, "path", str))
        size = field(item, "size", int)
        if size < 0:
            raise bad_request(f"Negative size for {path}")
        sample = decode_base64(field(item, "sample", str, ""), f"Sample of {path}")
        existing = files.get(path)
        # What the client compares with its local oid to skip unchanged files.
        remote_oid = (existing["sha256"] if existing["lfs"] else existing["oid"]) if existing else None
        answer.append(
            {
                "path": path,
                "uploadMode": choose_upload_mode(path, size, sample, patterns),
                "shouldIgnore": False,
                "oid": remote_oid,
            }
        )
    req.send_json({"files": answer, "commitOid": commit_id})


def parse_commit_payload(raw: bytes) -> tuple[dict, list[tuple[str, dict]]]:
    """ndjson lines `{"key": ..., "value": {...}}` → (header, [(key, value), ...]), shape-checked."""
    items = []
    for number, line in enumerate(raw.splitlines(), 1):
        if line.strip():
            item = parse_json_object(line, f"Commit payload line {number}")
            key = field(item, "key", str)
            value = field(item, "value", dict)
            items.append((key, value))
    headers = [value for key, value in items if key == "header"]
    if len(headers) != 1:
        raise bad_request("Commit payload must contain exactly one header line")
    header = headers[0]
    for name in ("summary", "description", "parentCommit"):
        field(header, name, str, "")
    return header, [(key, value) for key, value in items if key != "header"]


def commit(req: Handler, repo: Repo, args: list[str], query: dict) -> None:
    revision = take_revision(args)[0]
    if query_flag(query, "create_pr"):
        raise bad_request("Pull requests are not supported by the local hub server")
    header, operations = parse_commit_payload(req.body())
    commit_id = req.store.commit(repo, revision, header, operations, author=req.require_user().name)
    last_commits(req.store, repo, commit_id)  # its table now, from its parent's: listings then read it whole
    req.send_json(
        {
            "success": True,
            "commitOid": commit_id,
            "hookOutput": "",
            "commitUrl": f"{req.base_url}/{repo.url_prefix}{repo.id}/commit/{commit_id}",
        }
    )


def branch(req: Handler, repo: Repo, args: list[str], query: dict) -> None:
    name = validate_ref_name(unquote("/".join(args)), "branch")
    if req.command == "POST":
        starting_point = field(req.json_body(), "startingPoint", str, "") or "main"
        req.store.create_ref(repo, "branches", name, req.store.resolve(repo, starting_point))
    elif name == "main":
        raise HubError(403, "Cannot delete the default branch 'main'")
    else:
        req.store.delete_ref(repo, "branches", name)
    req.send_json({})


def tag(req: Handler, repo: Repo, args: list[str], query: dict) -> None:
    if req.command == "POST":  # POST .../tag/{revision} {"tag": name}
        revision = take_revision(args)[0]
        name = validate_ref_name(field(req.json_body(), "tag", str), "tag")
        req.store.create_ref(repo, "tags", name, req.store.resolve(repo, revision))
    else:  # DELETE .../tag/{name}
        req.store.delete_ref(repo, "tags", validate_ref_name(unquote("/".join(args)), "tag"))
    req.send_json({})


REPO_ROUTES: dict[tuple[str, str], tuple[bool, RepoRoute]] = {
    ("", "GET"): (False, repo_info),
    ("revision", "GET"): (False, repo_info_at_revision),
    ("tree", "GET"): (False, tree),
    ("paths-info", "POST"): (False, paths_info),
    ("refs", "GET"): (False, list_refs),
    ("commits", "GET"): (False, list_commits),
    ("preupload", "POST"): (True, preupload),
    ("commit", "POST"): (True, commit),
    ("branch", "POST"): (True, branch),
    ("branch", "DELETE"): (True, branch),
    ("tag", "POST"): (True, tag),
    ("tag", "DELETE"): (True, tag),
}


# -- git-LFS


def lfs_batch(req: Handler, repo: Repo) -> None:
    payload = req.json_body()
    if field(payload, "operation", str) != "upload":
        raise bad_request("Only LFS 'upload' batches are supported; downloads go through /resolve")
    if "basic" not in field(payload, "transfers", list, ["basic"]):
        raise bad_request("Only the 'basic' LFS transfer is supported")
    objects = []
    for obj in field(payload, "objects", list, []):
        oid = obj.get("oid") if isinstance(obj, dict) else None
        size = obj.get("size") if isinstance(obj, dict) else None
        if (
            not isinstance(oid, str)
            or not SHA256_RE.match(oid)
            or not isinstance(size, int)
            or isinstance(size, bool)
            or size < 0
        ):
            objects.append(
                {
                    "oid": str(oid),
                    "size": size if isinstance(size, int) else -1,
                    "error": {"code": 422, "message": "Invalid oid (64 hex characters) or size"},
                }
            )
        elif req.store.has_lfs_object(repo, oid, size):
            # No "actions": nothing to upload. Only for objects of this repo: an answer about the
            # whole store would tell anyone who can create a repo which contents exist elsewhere.
            objects.append({"oid": oid, "size": size})
        else:
            # Clients PUT without their token (the Hub presigns storage URLs): sign the URL instead,
            # for this object into this repo.
            upload_url = f"{req.base_url}/lfs-upload/{oid}?{req.server.upload_signer.query(oid, repo_key(repo))}"
            verify_url = f"{req.base_url}/{repo.url_prefix}{repo.id}.git/info/lfs/objects/verify"
            objects.append(
                {
                    "oid": oid,
                    "size": size,
                    "authenticated": True,
                    "actions": {"upload": {"href": upload_url}, "verify": {"href": verify_url}},
                }
            )
    req.send(
        200,
        json.dumps({"transfer": "basic", "objects": objects, "hash_algo": "sha256"}).encode(),
        content_type="application/vnd.git-lfs+json",
    )


def repo_key(repo: Repo) -> str:
    """The repo named in an upload URL: `models/alice/x`."""
    return f"{repo.type}s/{repo.id}"


def lfs_upload(req: Handler, oid: str, query: dict) -> None:
    """PUT /lfs-upload/{oid}?repo=...: with the signature of the batch answer (no token), or with
    the token of a user who may write to the repo. The object is then committable in that repo."""
    key, expires, signature = (query.get(name, [""])[0] for name in ("repo", "expires", "signature"))
    signed = req.server.upload_signer.is_valid(oid, key, expires, signature)
    if not signed and req.user is None:
        raise unauthorized()
    repo_type, _, repo_id = key.partition("/")
    if repo_type not in REPO_TYPES:
        raise bad_request(f"Query parameter 'repo' must be {{models,datasets,spaces}}/namespace/name, got {key!r}")
    # Signed: the batch checked write access when it signed (the repo may have gone since).
    repo = Repo(REPO_TYPES[repo_type], repo_id) if signed else req.writable_repo(REPO_TYPES[repo_type], repo_id)
    req.store.repo_meta(repo)  # 404 before reading the body if the repo is gone
    req.store.put_blob_stream(req.body_chunks(req.server.max_upload_bytes), oid)
    req.store.add_lfs_object(repo, oid)
    req.send(200, b"")


def lfs_verify(req: Handler, repo: Repo) -> None:
    payload = req.json_body()
    oid = validate_sha256(field(payload, "oid", str))
    size = field(payload, "size", int)
    if not req.store.has_lfs_object(repo, oid, size):
        raise HubError(404, f"LFS object {oid} of size {size} not found")
    req.send_json({"success": True})
