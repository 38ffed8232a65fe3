"""The local Hub server itself: a threading HTTP server that holds the store, the accounts and
the limits its request handler (handler.py) reads, and tracks connections so it can really stop."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections import deque
from http.server import ThreadingHTTPServer

from .auth import Accounts, UploadSigner
from .handler import HubRequestHandler
from .store import HubStore

DEFAULT_MAX_UPLOAD_BYTES = 2 * 1024**3  # one LFS object (PUT /lfs-upload), streamed to disk
# JSON and ndjson bodies are held in memory; commits carry small files inline (>= 10 MB go
# through LFS), as base64, so 64 MiB leaves room for a few of the largest.
DEFAULT_MAX_JSON_BYTES = 64 * 1024**2


class HubHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self,
        address: tuple[str, int],
        store: HubStore,
        verbose: bool = False,
        accounts: Accounts | None = None,
        max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES,
        max_json_bytes: int = DEFAULT_MAX_JSON_BYTES,
    ):
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, HubRequestHandler)
        self.store = store
        self.verbose = verbose
        self.accounts = accounts or Accounts.single_user()
        self.upload_signer = UploadSigner()
        self.max_upload_bytes = max_upload_bytes
        self.max_json_bytes = max_json_bytes
        self.requests: deque[tuple[str, str, int]] = deque(maxlen=10_000)  # (method, path, status)
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

    def record(self, method: str, path: str, status: int) -> None:
        self.requests.append((method, path, status))

    def track_connection(self, connection: socket.socket, add: bool) -> None:
        with self._connections_lock:
            (self._connections.add if add else self._connections.discard)(connection)

    def close_all_connections(self) -> None:
        """Drop open keep-alive connections so a stopped server really stops answering."""
        with self._connections_lock:
            for connection in self._connections:
                with contextlib.suppress(OSError):
                    connection.shutdown(socket.SHUT_RDWR)
            self._connections.clear()
