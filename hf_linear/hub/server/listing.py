"""Listings in the Hub's JSON shapes: tree entries, paths-info, last commits, model-card metadata."""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from .store import HubStore, Repo, lfs_pointer


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
