"""Running the server (server.py): in-process helpers for tests and the command line."""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import os
import socket
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

from .auth import Accounts
from .server import DEFAULT_MAX_JSON_BYTES, DEFAULT_MAX_UPLOAD_BYTES, HubHTTPServer
from .store import USER_NAME, HubStore


def is_loopback(host: str) -> bool:
    """True if every address `host` stands for is a loopback address ("" and 0.0.0.0 are not)."""
    if not host:
        return False
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(host, None)}
    except socket.gaierror:
        return False
    return all(ipaddress.ip_address(a.split("%")[0]).is_loopback for a in addresses)


def check_listen_address(host: str, accounts: Accounts) -> str | None:
    """Beyond loopback the server needs configured tokens (ValueError otherwise); returns the
    warning to print in that case, None on loopback."""
    if is_loopback(host):
        return None
    if accounts.generated:
        raise ValueError(
            f"Listening on {host!r} (not a loopback address) needs configured tokens: "
            "pass --token NAME=TOKEN or --tokens-file FILE"
        )
    return (
        f"WARNING: the local hub server listens on {host!r}, beyond loopback: anyone who can reach "
        "this port can read public repos, and tokens and files travel unencrypted (plain HTTP). "
        "Use it only on a trusted network."
    )


@contextlib.contextmanager
def serve_in_background(
    root: str | os.PathLike,
    host: str = "127.0.0.1",
    port: int = 0,
    verbose: bool = False,
    accounts: Accounts | None = None,
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES,
    max_json_bytes: int = DEFAULT_MAX_JSON_BYTES,
) -> Iterator[HubHTTPServer]:
    """Run a server in a daemon thread; yields it (`.url`, `.store`, `.requests`, `.accounts`).
    Without `accounts`, one user `hf-linear-tester` with the random token `.accounts.default_token`."""
    accounts = accounts or Accounts.single_user()
    warning = check_listen_address(host, accounts)
    if warning:
        print(warning, file=sys.stderr)
    server = HubHTTPServer(
        (host, port),
        HubStore(root),
        verbose=verbose,
        accounts=accounts,
        max_upload_bytes=max_upload_bytes,
        max_json_bytes=max_json_bytes,
    )
    thread = threading.Thread(target=server.serve_forever, name="hf-linear-hub-server", daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.close_all_connections()
        server.server_close()
        thread.join(timeout=10)


@contextlib.contextmanager
def run_hub_server(
    root: str | os.PathLike, host: str = "127.0.0.1", port: int = 0, token: str | None = None
) -> Iterator[str]:
    """`with run_hub_server(tmp_dir, token="t") as url:` — the base URL for HF_ENDPOINT; `token`
    (HF_TOKEN) belongs to the user `hf-linear-tester` (random if not given)."""
    with serve_in_background(root, host, port, accounts=Accounts.single_user(USER_NAME, token)) as server:
        yield server.url


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def _setup(args: argparse.Namespace) -> tuple[Accounts, HubStore, str | None]:
    """Users, the store and the beyond-loopback warning from the options; ValueError naming the
    option or file at fault."""
    if not 0 <= args.port <= 65535:
        raise ValueError(f"--port must be in 0..65535, got {args.port}")
    root = Path(args.root)
    if root.exists() and not root.is_dir():
        raise ValueError(f"--root {root} exists and is not a directory")
    if args.token or args.tokens_file:
        accounts = Accounts.from_sources(args.token, args.tokens_file)
    else:
        accounts = Accounts.single_user()
    warning = check_listen_address(args.host, accounts)
    try:
        store = HubStore(root)
    except OSError as e:  # e.g. not writable, or under /proc
        raise ValueError(f"--root {root}: cannot create or use the directory: {e.strerror or e}") from e
    return accounts, store, warning


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="hf-linear hub-server",
        description="Serve a local Hugging Face Hub-compatible API (for offline use and tests). Without "
        "--token/--tokens-file there is one user, hf-linear-tester, with a token generated "
        "at start (printed).",
    )
    parser.add_argument("--root", required=True, help="directory holding the repos (created if missing)")
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="interface to listen on (default 127.0.0.1; anything else needs tokens and prints a warning)",
    )
    parser.add_argument("--port", type=int, default=0, help="port; 0 picks a free one (default)")
    parser.add_argument(
        "--token", action="append", default=[], metavar="NAME=TOKEN", help="a user and its token (repeatable)"
    )
    parser.add_argument(
        "--tokens-file",
        metavar="FILE",
        help="users: a JSON list of {name, token, orgs} or lines 'name token [org ...]'",
    )
    parser.add_argument(
        "--max-body-bytes",
        type=_positive_int,
        default=DEFAULT_MAX_UPLOAD_BYTES,
        help=f"largest LFS upload, streamed to disk (default {DEFAULT_MAX_UPLOAD_BYTES})",
    )
    parser.add_argument(
        "--max-json-bytes",
        type=_positive_int,
        default=DEFAULT_MAX_JSON_BYTES,
        help="largest JSON/ndjson request body (commits with inline files), held in "
        f"memory (default {DEFAULT_MAX_JSON_BYTES})",
    )
    parser.add_argument("--quiet", action="store_true", help="do not log each request to stderr")
    args = parser.parse_args(argv)
    try:
        accounts, store, warning = _setup(args)
    except ValueError as e:  # user mistakes: one line naming the option or file, no traceback
        parser.exit(2, f"{parser.prog}: error: {e}\n")
    if warning:
        print(warning, file=sys.stderr, flush=True)
    try:
        server = HubHTTPServer(
            (args.host, args.port),
            store,
            verbose=not args.quiet,
            accounts=accounts,
            max_upload_bytes=args.max_body_bytes,
            max_json_bytes=args.max_json_bytes,
        )
    except OSError as e:
        parser.exit(1, f"{parser.prog}: error: cannot listen on {args.host}:{args.port}: {e}\n")
    token = accounts.default_token if accounts.generated else "<your token>"
    print(server.url, flush=True)
    if accounts.generated:
        print(f"# user {USER_NAME}, token {token} (generated; choose users with --token NAME=TOKEN)")
    if store.removed_temp_files:
        print(f"# removed {len(store.removed_temp_files)} stale temp file(s) of interrupted uploads")
    print(
        f"# repos stored in {store.root}; point the clients at it with:\n"
        f"#   export HF_ENDPOINT={server.url} HF_HUB_DISABLE_XET=1 HF_TOKEN={token}",
        flush=True,
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0
