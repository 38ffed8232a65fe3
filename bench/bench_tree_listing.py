"""Server CPU of one anonymous expanded tree listing, before and after the last-commit tables.

    python bench/bench_tree_listing.py                       # 5,000 files, 302 commits: ~2.5 min on 2 shared cores
    python bench/bench_tree_listing.py --files 1000 --commits 60 --before-revisions 3   # a smoke run

`GET /api/models/{repo}/tree/{rev}?recursive=true&expand=true` answers each entry's last commit.
Before, the server walked the revision's first-parent history (every commit's manifest read and
compared with its parent's) once per revision, keeping 32 revisions in an LRU: anyone cycling
through more commit ids paid the whole walk on every request. Now each commit has a table of
its entries' last commits (hf_linear/hub/server/last_commits.py), and a request reads one.

The script builds one public repo (FILES files in 50 folders; COMMITS commits, each after the
first editing 3 files) in a temporary root, then runs the server in a subprocess twice: with the
previous walk (the code before the tables, kept below as `previous_last_commits`) and as it is.
Each request asks for the first page of another commit id (newest first, cycling), and its cost
is the server process's CPU time (user + system) across the request. The first request of the
second server builds the tables of the whole history (once: a repo written before the tables
existed; commits made through the server get theirs at the commit); it is printed apart. The
answers of both servers are compared.
"""

from __future__ import annotations

import argparse
import base64
import functools
import json
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import psutil

from hf_linear.atomic import write_text_atomically

REPO_ID = "bench/listing"


# ----------------------------------------------------------------------------- the previous code


@functools.lru_cache(maxsize=32)
def previous_last_commits(store, repo, commit_id: str) -> dict[str, dict]:
    """The last commits as the server computed them before the tables (one walk per revision)."""
    from hf_linear.hub.server.listing import folder_oids

    history = store.history(repo, commit_id)
    newer = next(history)
    pending = set(newer["files"]) | set(folder_oids(newer["files"]))
    found: dict[str, dict] = {}
    for older in history:
        if not pending:
            break
        summary = {"id": newer["id"], "title": newer["title"], "date": newer["date"]}
        new_files, old_files = newer["files"], older["files"]
        for path in new_files.keys() | old_files.keys():
            if new_files.get(path) == old_files.get(path):
                continue
            parts = path.split("/")
            for i in range(1, len(parts) + 1):
                changed = "/".join(parts[:i])
                if changed in pending:
                    pending.discard(changed)
                    found[changed] = summary
        newer = older
    summary = {"id": newer["id"], "title": newer["title"], "date": newer["date"]}
    return found | dict.fromkeys(pending, summary)


def serve(root: str, previous: bool) -> None:
    """The server subprocess: prints its port, then serves until killed."""
    from hf_linear.hub.server import HubHTTPServer, HubStore, listing

    if previous:
        listing.last_commits = previous_last_commits  # expand_info looks the name up at each call
    server = HubHTTPServer(("127.0.0.1", 0), HubStore(root))
    print(server.server_address[1], flush=True)
    server.serve_forever()


# ----------------------------------------------------------------------------- the measurement


def build_repo(root: Path, files: int, commits: int) -> list[str]:
    """The repo; returns its commit ids, newest first."""
    from hf_linear.hub.server import HubStore, Repo
    from hf_linear.hub.server import store as store_module

    # manifests as compact JSON: the store's indented JSON (pure-Python encoder) takes ~0.3 s per
    # commit of 5,000 files; the server reads either the same way
    store_module._write_json_atomic = lambda path, obj: write_text_atomically(
        path, json.dumps(obj, sort_keys=True), temp_prefix=store_module.TEMP_PREFIXES[0]
    )
    store, repo = HubStore(root), Repo("model", REPO_ID)
    store.create_repo(repo, private=False, author="bench")

    def content(text: str) -> str:
        return base64.b64encode(text.encode()).decode()

    paths = [f"folder{i % 50:02d}/file{i:05d}.txt" for i in range(files)]
    store.commit(repo, "main", {"summary": "files"}, [("file", {"path": p, "content": content(p)}) for p in paths], "b")
    for step in range(commits - 2):  # with the initial commit and the one above: `commits` in all
        edits = [paths[(step * 3 + k) * 7919 % files] for k in range(3)]
        operations = [("file", {"path": p, "content": content(f"{p} {step}")}) for p in edits]
        store.commit(repo, "main", {"summary": f"edit {step}"}, operations, "b")
    return [c["id"] for c in store.history(repo, store.resolve(repo, "main"))]


class Server:
    """A server subprocess on `root` and the CPU time it spends per request."""

    def __init__(self, root: Path, previous: bool):
        command = [sys.executable, __file__, "--serve", str(root)] + (["--previous"] if previous else [])
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
        self.url = f"http://127.0.0.1:{self.process.stdout.readline().strip()}"
        self.cpu = psutil.Process(self.process.pid)

    def cpu_seconds(self) -> float:
        times = self.cpu.cpu_times()
        return times.user + times.system

    def listings(self, revisions: list[str], expand: bool = True) -> tuple[float, list]:
        """(server CPU seconds per request, the answers) of the first expanded page at each
        revision. CPU times tick every 10 ms: a cheap request is measured as the mean over many."""
        answers = []
        before = self.cpu_seconds()
        for revision in revisions:
            url = f"{self.url}/api/models/{REPO_ID}/tree/{revision}?recursive=true&expand={str(expand).lower()}"
            with urllib.request.urlopen(url, timeout=600) as response:
                answers.append(json.loads(response.read()))
        time.sleep(0.1)  # the handler thread's bookkeeping after the last response
        return (self.cpu_seconds() - before) / len(revisions), answers

    def stop(self) -> None:
        self.process.kill()
        self.process.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=5000)
    parser.add_argument("--commits", type=int, default=302)
    parser.add_argument("--revisions", type=int, default=40, help="commit ids cycled through after")
    parser.add_argument("--before-revisions", type=int, default=5, help="commit ids asked before (each ~4 s)")
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    parser.add_argument("--previous", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.previous)
        return

    with tempfile.TemporaryDirectory(prefix="bench-tree-") as tmp:
        root = Path(tmp)
        started = time.monotonic()
        commit_ids = build_repo(root, args.files, args.commits)
        print(
            f"repo: {args.files:,} files in 50 folders, {len(commit_ids)} commits ({time.monotonic() - started:.0f} s)"
        )

        previous = Server(root, previous=True)
        try:
            before, before_answers = previous.listings(commit_ids[: args.before_revisions])
        finally:
            previous.stop()
        tables = Server(root, previous=False)
        try:
            first, _ = tables.listings(commit_ids[:1])
            cycle = [commit_ids[i % len(commit_ids)] for i in range(args.revisions)]
            after, after_answers = tables.listings(cycle)
            plain, _ = tables.listings(cycle, expand=False)
        finally:
            tables.stop()

    same = all(b == a for b, a in zip(before_answers, after_answers))
    print("\nserver CPU per request, first page (50 entries) of recursive=true&expand=true, mean:")
    print(f"  before: a walk per revision, LRU of 32  {before * 1e3:8.1f} ms   ({args.before_revisions} commit ids)")
    print(f"  after:  one last-commit table read     {after * 1e3:8.1f} ms   ({args.revisions} commit ids, cycled)")
    print(f"  (a plain listing, 1000 entries without last commits: {plain * 1e3:.1f} ms)")
    print(f"  ratio before / after: {before / after:.0f}x")
    print(f"  once, the first request after: {first:.2f} s (builds the tables of all {len(commit_ids)} commits)")
    print(f"  a pass over 40 commit ids: before ~{40 * before:.0f} s, after {40 * after:.1f} s")
    print(f"  same answers for the {len(before_answers)} commit ids asked of both: {'yes' if same else 'NO'}")


if __name__ == "__main__":
    main()
