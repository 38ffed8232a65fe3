"""Dotted keys ("training.learning_rate") into nested config mappings: the one walker shared by
command-line overrides (`training.config.apply_overrides`) and study axes (`studies.study`)."""

from __future__ import annotations

import copy


def parent_of(config: dict, key: str) -> tuple[dict, str]:
    """(the mapping that holds the last part of `key`, that last part); the sections on the way
    are created. ValueError when one of them is a value, not a mapping."""
    *sections, last = key.split(".")
    node = config
    for section in sections:
        node = node.setdefault(section, {})
        if not isinstance(node, dict):
            raise ValueError(f"{section} is not a section")
    return node, last


def set_dotted(config: dict, key: str, value) -> None:
    """config["a"]["b"]["c"] = a copy of value, for key "a.b.c"; None removes the key."""
    try:
        node, last = parent_of(config, key)
    except ValueError as error:
        raise ValueError(f"{key}: {error}") from None
    if value is None:
        node.pop(last, None)
    else:
        node[last] = copy.deepcopy(value)
