"""Listings in the Hub's JSON shapes: tree entries, paths-info, expanded entries (their last commits:
last_commits.py), model-card metadata."""

from __future__ import annotations

import functools
import hashlib
import json
import math
import re
from collections import defaultdict
from typing import Any

import yaml  # a declared dependency of hf-linear (and of huggingface_hub)

from .last_commits import last_commits
from .store import HubStore, Repo, lfs_pointer

# README metadata is parsed on anonymous repo-info requests, with pure-Python PyYAML (~0.3 s for
# 64 KiB), so it is bounded: larger blocks, deeper nesting, aliases and non-JSON tags are refused.
MAX_CARD_METADATA_BYTES = 64 * 1024
MAX_CARD_METADATA_DEPTH = 32
README_HEAD_BYTES = MAX_CARD_METADATA_BYTES + 16  # what is read of a README: the block and its fences


# ----------------------------------------------------------------------------- tree and paths-info


def file_info(path: str, entry: dict) -> dict:
    info = {"type": "file", "oid": entry["oid"], "size": entry["size"], "path": path}
    if entry["lfs"]:
        info["lfs"] = {
            "oid": entry["sha256"],
            "size": entry["size"],
            "pointerSize": len(lfs_pointer(entry["sha256"], entry["size"])),
        }
    return info


def folder_oids(files: dict) -> dict[str, str]:
    """Every folder of a manifest → its tree id (a hash of the paths and oids inside), in one pass
    over the files (a scan per folder would be folders × files)."""
    inside: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for path, entry in sorted(files.items()):
        parts = path.split("/")
        for i in range(1, len(parts)):
            inside["/".join(parts[:i])].append((path, entry["oid"]))
    return {folder: hashlib.sha1(json.dumps(items).encode()).hexdigest() for folder, items in inside.items()}


def folder_info(path: str, folders: dict[str, str]) -> dict:
    return {"type": "directory", "oid": folders[path], "size": 0, "path": path}


def path_info(path: str, files: dict, folders: dict[str, str]) -> dict | None:
    if path in files:
        return file_info(path, files[path])
    if path in folders:
        return folder_info(path, folders)
    return None


def list_tree(files: dict, folders: dict[str, str], path: str, recursive: bool) -> list[dict]:
    """Entries below `path` (direct children, or all descendants), folders first, each sorted by path."""
    prefix = path + "/" if path else ""
    below = [p for p in files if p.startswith(prefix)]
    if recursive:
        folder_paths = {f for f in folders if f.startswith(prefix)}
        file_paths = below
    else:
        folder_paths = {prefix + p[len(prefix) :].split("/")[0] for p in below if "/" in p[len(prefix) :]}
        file_paths = [p for p in below if "/" not in p[len(prefix) :]]
    return [folder_info(f, folders) for f in sorted(folder_paths)] + [
        file_info(p, files[p]) for p in sorted(file_paths)
    ]


# ----------------------------------------------------------------------------- expanded entries


def expand_info(store: HubStore, repo: Repo, commit_id: str, info: dict) -> dict:
    info = {**info, "lastCommit": last_commits(store, repo, commit_id)[info["path"]]}
    if info["type"] == "file":
        info["securityFileStatus"] = {
            "status": "safe",
            "avScan": {"virusFound": False, "virusNames": None},
            "pickleImportScan": None,
        }
    return info


# ----------------------------------------------------------------------------- card metadata


class CardMetadataError(ValueError):
    """README metadata that is not a valid, bounded YAML mapping of JSON values."""


_JSON_TAGS = {f"tag:yaml.org,2002:{name}" for name in ("null", "bool", "int", "float", "str", "seq", "map")}


class CardMetadataLoader(yaml.SafeLoader):
    """PyYAML's safe loader, bounded for metadata anyone may commit and anyone may request:

    - no aliases: a few hundred bytes of nested aliases expand to gigabytes ("billion laughs");
    - nesting at most MAX_CARD_METADATA_DEPTH (PyYAML composes recursively);
    - JSON values only: `!!binary`, `!!set`, `!!omap`, `!!timestamp` are refused (undefined tag)
      and dates such as `2024-01-01` stay strings, so the metadata can be answered as JSON;
      `.nan` and `.inf` are null and keys stay the text the YAML gives them (`~`, `1`, `true`).
    """

    yaml_constructors = {
        tag: constructor
        for tag, constructor in yaml.SafeLoader.yaml_constructors.items()
        if tag in _JSON_TAGS or tag is None
    }  # None: unknown tags → ConstructorError
    yaml_implicit_resolvers = {
        first: [(tag, regexp) for tag, regexp in resolvers if tag in _JSON_TAGS]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }

    def __init__(self, stream: str):
        super().__init__(stream)
        self._depth = 0

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        """Keys as the YAML wrote them: JSON keys are strings, and as Python values `~`, `1` and
        `true` would become None (written "null"), 1 and True (the same dict key as 1)."""
        mapping = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                raise yaml.constructor.ConstructorError(
                    None, None, "card metadata keys must be plain values, not lists or mappings", key_node.start_mark
                )
            mapping[key_node.value] = self.construct_object(value_node, deep=deep)
        return mapping

    def construct_json_float(self, node: yaml.ScalarNode) -> float | None:
        """JSON has no NaN or infinity: `.nan` and `.inf` are null, as the Hub answers them."""
        value = self.construct_yaml_float(node)
        return value if math.isfinite(value) else None

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            raise yaml.composer.ComposerError(
                None, None, "aliases (*name) are not allowed in card metadata", event.start_mark
            )
        if self._depth >= MAX_CARD_METADATA_DEPTH:
            raise yaml.composer.ComposerError(
                None, None, f"card metadata nests deeper than {MAX_CARD_METADATA_DEPTH} levels", event.start_mark
            )
        self._depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


CardMetadataLoader.add_constructor("tag:yaml.org,2002:float", CardMetadataLoader.construct_json_float)

_METADATA_BLOCK_RE = re.compile(r"^---[ \t]*\r?\n(.*?)\r?\n---[ \t]*(\r?\n|$)", re.DOTALL)


def card_metadata_text(readme: bytes) -> str | None:
    """The YAML between the leading `---` lines of a README.md; None without such a block;
    CardMetadataError if the block is not closed within MAX_CARD_METADATA_BYTES."""
    text = readme[:README_HEAD_BYTES].decode("utf-8", errors="replace")
    if not re.match(r"---[ \t]*\r?\n", text):
        return None
    match = _METADATA_BLOCK_RE.match(text)
    if match is None:
        if len(readme) > MAX_CARD_METADATA_BYTES:
            raise CardMetadataError(f"README.md metadata is not closed within {MAX_CARD_METADATA_BYTES} bytes")
        return None  # an unclosed block: not metadata (as the Hub)
    return match.group(1)


def parse_card_metadata_text(text: str) -> dict:
    """The metadata mapping; CardMetadataError naming the problem. Do not modify the result (it is
    cached and shared between requests)."""
    result = _parse_card_metadata_cached(text)
    if isinstance(result, str):
        raise CardMetadataError(result)
    return result


@functools.lru_cache(maxsize=256)
def _parse_card_metadata_cached(text: str) -> dict | str:
    """The mapping or the error message. READMEs are parsed on every (anonymous) repo-info request
    and the parse is the expensive part, so invalid metadata is remembered too."""
    try:
        data = yaml.load(text, Loader=CardMetadataLoader)
    except (yaml.YAMLError, ValueError, RecursionError) as e:  # ValueError: e.g. an int of 5,000 digits
        return f"README.md metadata is not valid YAML: {e}"
    if data is None:
        return {}
    if not isinstance(data, dict):
        return f"README.md metadata must be a YAML mapping, got {type(data).__name__}"
    return data


def parse_card_metadata(readme: bytes) -> dict | None:
    """Repo info's `cardData`: the metadata mapping, or None if absent or invalid (the Hub then
    leaves `cardData` out rather than failing)."""
    try:
        text = card_metadata_text(readme)
        return (parse_card_metadata_text(text) or None) if text is not None else None
    except CardMetadataError:
        return None


def check_card_metadata(card: dict) -> None:
    """What validate-yaml checks beyond the YAML itself: the fields repo info derives from."""
    for key in ("tags", "library_name", "pipeline_tag", "sdk"):
        value = card.get(key)
        if key == "tags" and isinstance(value, list) and all(isinstance(tag, str) for tag in value):
            continue
        if value is not None and not isinstance(value, str):
            expected = "a string or a list of strings" if key == "tags" else "a string"
            raise CardMetadataError(f"README.md metadata: {key!r} must be {expected}, got {value!r}"[:300])


def card_tags(card: dict) -> list[str]:
    """`tags:` as a list of strings (a single string is one tag; anything else is ignored)."""
    tags = card.get("tags")
    if isinstance(tags, str):
        return [tags]
    if isinstance(tags, list):
        return [tag for tag in tags if isinstance(tag, str)]
    return []
