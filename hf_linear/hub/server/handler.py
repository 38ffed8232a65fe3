"""The HTTP plumbing of the local Hub server: one request handler that reads bounded bodies,
answers in the Hub's shapes (JSON `{"error": ...}` plus `X-Error-Message` and, where the Hub sends
one, `X-Error-Code`; a 500 means a bug in this server) and knows who is asking (auth.py). What a
request means is routes.py's business: `_dispatch` hands every request to `routes.route`.
"""

from __future__ import annotations

import json
import re
import socket
import sys
import traceback
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from typing import Any, Protocol
from urllib.parse import parse_qs

from .auth import Accounts, UploadSigner, User
from .routes import route
from .store import HubStore, Repo
from .validation import HubError, bad_request, header_value, parse_json_object, repo_not_found, unauthorized

READ_CHUNK = 1 << 20
MAX_CHUNK_LINE = 1024
# a client that closed or reset its connection: one log line, no traceback (it is no server error)
CLIENT_GONE = (BrokenPipeError, ConnectionResetError, TimeoutError)


class ServerState(Protocol):
    """What the handler needs of the server it runs in (server.HubHTTPServer): the handler
    depends on this, not on the server class, so neither module imports the other's."""

    server_address: tuple
    store: HubStore
    verbose: bool
    accounts: Accounts
    upload_signer: UploadSigner
    max_upload_bytes: int
    max_json_bytes: int

    def record(self, method: str, path: str, status: int) -> None: ...

    def track_connection(self, connection: socket.socket, add: bool) -> None: ...


class HubRequestHandler(BaseHTTPRequestHandler):
    """Request plumbing: reading bounded bodies, answering, and knowing who is asking."""

    protocol_version = "HTTP/1.1"  # keep-alive: every response carries Content-Length
    server: ServerState
    timeout = 60  # idle keep-alive connections (and stalled uploads) are dropped after this many seconds
    user: User | None = None  # who sent the current request (None: anonymous), set by _dispatch

    def setup(self) -> None:
        super().setup()
        self.server.track_connection(self.connection, add=True)

    def finish(self) -> None:
        self.server.track_connection(self.connection, add=False)
        super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.verbose:
            super().log_message(format, *args)

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_HEAD(self) -> None:
        self._dispatch("HEAD")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def handle_one_request(self) -> None:
        try:
            super().handle_one_request()
        except CLIENT_GONE:  # between requests (a keep-alive connection reset): nothing was lost
            self.close_connection = True

    def _dispatch(self, method: str) -> None:
        self._body_consumed = False
        self._status = 0
        try:
            try:
                self.user = self._authenticate()
                route(self, method)
            except HubError as e:
                self.send_error_json(e)
            except CLIENT_GONE:
                raise
            except Exception as e:  # a server bug: answer 500 with the reason instead of hanging the client
                traceback.print_exc(file=sys.stderr)
                self.send_error_json(HubError(500, f"Internal error in local hub server: {type(e).__name__}: {e}"))
        except CLIENT_GONE as gone:  # mid-request (an abandoned upload or download), or while answering
            self.close_connection = True
            reason = str(gone) or type(gone).__name__
            BaseHTTPRequestHandler.log_message(self, "%s %s: client went away (%s)", method, self.path, reason)
        finally:
            if not self._body_consumed and self._announces_body():
                self.close_connection = True  # unread request bytes would corrupt the next request
            self.server.record(method, self.path, self._status)

    @property
    def store(self) -> HubStore:
        return self.server.store

    @property
    def base_url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{self.headers.get('Host') or f'{host}:{port}'}"

    # -- who is asking
    def _authenticate(self) -> User | None:
        """The user of the bearer token; None without one; 401 for a token nobody has."""
        authorization = self.headers.get("Authorization")
        if authorization is None:
            return None
        scheme, _, token = authorization.partition(" ")
        user = self.server.accounts.user_for_token(token.strip()) if scheme.lower() == "bearer" else None
        if user is None:
            raise unauthorized()
        return user

    def require_user(self) -> User:
        if self.user is None:
            raise unauthorized()
        return self.user

    def can_write(self, namespace: str) -> bool:
        return self.user is not None and self.user.can_write(namespace)

    def readable_repo(self, repo_type: str, repo_id: str) -> Repo:
        """The repo, if it exists and the caller may see it (private: only with write access)."""
        repo = Repo(repo_type, repo_id)
        meta = self.store.repo_meta(repo)
        if meta["private"] and not self.can_write(repo.namespace):
            raise repo_not_found(repo.type, repo.id)  # as the Hub: a private repo looks absent
        return repo

    def writable_repo(self, repo_type: str, repo_id: str) -> Repo:
        repo = Repo(repo_type, repo_id)
        user = self.require_user()
        self.readable_repo(repo.type, repo.id)
        if not user.can_write(repo.namespace):
            raise HubError(403, f"You don't have the rights to write to {repo.type} repository '{repo.id}'")
        return repo

    # -- request bodies
    def _announces_body(self) -> bool:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return True
        length = self.headers.get("Content-Length") or "0"
        return not length.isdigit() or int(length) > 0

    def body_chunks(self, limit: int) -> Iterator[bytes]:
        """The request body in pieces (de-chunked if needed); 413 as soon as it is known to exceed
        `limit` — before reading anything when Content-Length says so."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            total = 0
            while True:
                line = self.rfile.readline(MAX_CHUNK_LINE)
                if not line:
                    raise ConnectionResetError("client closed the connection mid-body")
                size_text = line.split(b";")[0].strip()
                if not re.fullmatch(rb"[0-9A-Fa-f]{1,15}", size_text):
                    raise bad_request(f"Malformed chunked body: chunk size line {line[:40]!r}")
                size = int(size_text, 16)
                total += size
                if total > limit:
                    raise HubError(413, f"Request body exceeds the limit of {limit} bytes")
                if size == 0:
                    while self.rfile.readline(MAX_CHUNK_LINE) not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    break
                yield from self._read_exactly(size)
                self.rfile.readline(MAX_CHUNK_LINE)  # CRLF closing the chunk
        else:
            length_text = (self.headers.get("Content-Length") or "0").strip()
            if not re.fullmatch(r"[0-9]{1,19}", length_text):
                raise bad_request(f"Invalid Content-Length {length_text!r}")
            if int(length_text) > limit:
                raise HubError(413, f"Request body of {length_text} bytes exceeds the limit of {limit} bytes")
            yield from self._read_exactly(int(length_text))
        self._body_consumed = True

    def _read_exactly(self, remaining: int) -> Iterator[bytes]:
        while remaining > 0:
            data = self.rfile.read1(min(remaining, READ_CHUNK))  # what has arrived: uploads reach disk as they come
            if not data:
                raise ConnectionResetError("client closed the connection mid-body")
            remaining -= len(data)
            yield data

    def body(self) -> bytes:
        """A JSON / ndjson / form body, bounded by the (small) --max-json-bytes limit."""
        return b"".join(self.body_chunks(self.server.max_json_bytes))

    def json_body(self) -> dict:
        return parse_json_object(self.body(), "Request body")

    def form_or_json_body(self) -> dict:
        raw = self.body()
        if "json" in self.headers.get("Content-Type", ""):
            return parse_json_object(raw, "Request body")
        try:
            return parse_qs(raw.decode("utf-8"), keep_blank_values=True)
        except UnicodeDecodeError as e:
            raise bad_request(f"Form body is not UTF-8: {e}") from e

    # -- responses
    def send(
        self,
        status: int,
        body: bytes = b"",
        headers: dict | None = None,
        content_type: str = "application/json; charset=utf-8",
    ) -> None:
        self._status = status
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, header_value(value))
        if status >= 400 and not self._body_consumed and self._announces_body():
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def send_json(self, obj: Any, status: int = 200, headers: dict | None = None) -> None:
        self.send(status, json.dumps(obj, allow_nan=False).encode(), headers)  # NaN is not JSON: a bug, 500

    def send_error_json(self, error: HubError) -> None:
        headers = {**error.headers, "X-Error-Message": error.message}
        if error.error_code:
            headers["X-Error-Code"] = error.error_code
        self.send_json({"error": error.message}, error.status, headers)

    def send_blob(self, sha256: str, start: int, end: int, status: int, headers: dict) -> None:
        length = max(0, end - start + 1)
        self._status = status
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(length))
        for key, value in headers.items():
            self.send_header(key, header_value(value))
        self.end_headers()
        if self.command == "HEAD" or length == 0:
            return
        with open(self.store.blob_path(sha256), "rb") as f:
            f.seek(start)
            remaining = length
            while remaining > 0:
                chunk = f.read(min(remaining, READ_CHUNK))
                self.wfile.write(chunk)
                remaining -= len(chunk)
