"""The last commit of every file and folder of a revision (an expanded listing's `lastCommit`),
kept on disk per commit so that a listing reads one table instead of walking the history.

An entry's last commit is the newest commit, along first parents, that changed it or something
inside it (else the first commit). Walking the history for it reads every commit's manifest: about
3 s of CPU for a repo of 302 commits and 5,000 files (bench/bench_tree_listing.py), paid again by
anyone (anonymously) who asks for another commit id, and an LRU of revisions does not bound that.
A commit's table follows from its parent's table and the paths the commit changed, in one pass
over its files, so:

- each commit gets its table at the commit (routes.py), while the parent's is at hand;
- a commit without one (a repo written before the tables existed) gets it by one walk back to the
  newest ancestor that has one (or the first commit), reading each manifest once, and the tables
  of every commit on the way are written too: a history is walked at most once.

An expanded listing then costs what a plain one does: one table and one manifest read.
"""

from __future__ import annotations

import functools

from .store import HubStore, Repo


def ancestors(path: str) -> list[str]:
    """The folders containing `path`, e.g. "a/b/c.txt" → ["a", "a/b"]."""
    parts = path.split("/")
    return ["/".join(parts[:i]) for i in range(1, len(parts))]


@functools.lru_cache(maxsize=32)
def last_commits(store: HubStore, repo: Repo, commit_id: str) -> dict[str, dict]:
    """Every file and folder at `commit_id` → {"id", "title", "date"} of its last commit. Shared
    between requests (cached): do not modify the result."""
    table = store.read_last_commit_table(repo, commit_id)
    if table is None:
        table = build_tables(store, repo, commit_id)
    summaries = [{"id": cid, "title": title, "date": date} for cid, title, date in table["commits"]]
    return {path: summaries[index] for path, index in table["paths"].items()}


def build_tables(store: HubStore, repo: Repo, commit_id: str) -> dict:
    """Write the tables of `commit_id` and of its ancestors that have none; returns its table.

    Walking back, each commit's manifest is read once and compared with its parent's (what it
    changed, and whether each changed path still exists); then the tables follow forward from the
    table found (or an empty one before the first commit).
    """
    steps = []  # newest first: (id, title, date, {changed path: exists after the commit})
    commit = store.read_commit(repo, commit_id)
    while True:
        parent_id = commit["parents"][0] if commit["parents"] else ""
        table = store.read_last_commit_table(repo, parent_id) if parent_id else {"commits": [], "paths": {}}
        parent = store.read_commit(repo, parent_id) if parent_id else {"files": {}}
        new, old = commit["files"], parent["files"]
        changes = {path: path in new for path in new.keys() | old.keys() if new.get(path) != old.get(path)}
        steps.append((commit["id"], commit["title"], commit["date"], changes))
        if table is not None:
            break
        commit = parent
    files = set(old)  # the files of the commit whose table was found
    for step_id, title, date, changes in reversed(steps):
        for path, exists in changes.items():
            (files.add if exists else files.discard)(path)
        table = next_table(table, files, step_id, title, date, changes)
        store.write_last_commit_table(repo, step_id, table)
    return table


def next_table(parent: dict, files: set[str], commit_id: str, title: str, date: str, changes: dict) -> dict:
    """A commit's table from its parent's: the commit for what it changed (a path, and the folders
    around a changed path), the parent's entry for the rest.

    Table: {"commits": [[id, title, date], ...], "paths": {path: index into commits}}."""
    changed = set(changes)
    for path in changes:
        changed.update(ancestors(path))
    commits = [[commit_id, title, date]]
    index_of = {commit_id: 0}
    paths = {}
    for path in sorted(files | {folder for file in files for folder in ancestors(file)}):
        if path in changed:
            paths[path] = 0
            continue
        old = parent["commits"][parent["paths"][path]]  # unchanged: the parent has it
        if old[0] not in index_of:
            index_of[old[0]] = len(commits)
            commits.append(old)
        paths[path] = index_of[old[0]]
    return {"commits": commits, "paths": paths}
