"""Shared pytest fixtures: the local Hub-API server and the shared data directory.

Shared plain helpers live beside this file, so that test modules never import each other:
tests/helpers.py (tiny models, a tiny training config and its files, a tiny study) and
tests/schoolbook.py (the independent digit-loop references of the CoT formats).

How the Hub clients are pointed at the local server
----------------------------------------------------
`huggingface_hub`, `datasets` and `transformers` copy HF_ENDPOINT, HF_HOME, HF_HUB_CACHE, ... into
module-level constants when they are first imported (e.g. `huggingface_hub.constants.ENDPOINT`,
`HUGGINGFACE_CO_URL_TEMPLATE`, the module-level `HfApi()` behind `huggingface_hub.create_repo`,
`datasets.config.HF_ENDPOINT`, the shared `HfApi` of `transformers.utils.hub`). Setting environment
variables inside a test is therefore not enough. `hub_client_env()` below:

1. imports the three client libraries first (so nothing reads the test values at import time and
   keeps them after the test),
2. sets the environment variables AND patches every module-level copy listed in
   `_module_level_settings()` (restoring all of them afterwards),
3. checks that the clients really build URLs for the local server (fails loudly if a library
   upgrade adds a new cached copy).

For a fully faithful run (a fresh interpreter that reads the environment at import, e.g. for
`trust_remote_code`, whose module cache transformers also fixes at import), use
`hub_server.run_python(code)`: it runs `python -I -c code` with the hub environment set.

Fixtures
--------
- `hub_server` (function scope): server running, clients pointed at it, a fresh empty HF_HOME /
  HF_HUB_CACHE / HF_DATASETS_CACHE for this test. Yields a `LocalHub` (`.url`, `.hf_home`,
  `.repo_id(name)`, `.env`, `.run_python(code, block_imports=[...])`, `.requests`); plain
  `HfApi()`, `hf_hub_download`, `from_pretrained`, `load_dataset` then talk to the local server.
- `hub_server_module` (module scope): the same with one cache for the whole module, for
  module-scoped setup (e.g. push a model once); function-scoped `hub_server` nests inside it.
- `hub_http_server` (session scope): the bare server (one per session; repos persist across tests,
  so use `hub_server.repo_id("name")` for unique repo names).
- `dead_hub` (function scope): clients pointed at 127.0.0.1:<a port nobody listens on>, for
  "Hub is down" tests.
- `shared_data_dir` (session scope): `../shared/data` relative to the repo root, or
  `$HF_LINEAR_SHARED_DATA`; skips the test with a clear message if absent.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from hf_linear.hub.server import USER_NAME, Accounts, HubHTTPServer, User, serve_in_background

REPO_ROOT = Path(__file__).resolve().parent.parent
FAKE_TOKEN = "hf_local_test_token"  # the token of USER_NAME on the test server (others get 401)


# ----------------------------------------------------------------------------- client environment


def hub_environment(endpoint: str, hf_home: Path) -> dict[str, str]:
    """Environment variables that point all Hub clients at `endpoint` with caches under `hf_home`."""
    return {
        "HF_ENDPOINT": endpoint,
        "HF_HUB_DISABLE_XET": "1",  # hf_xet would upload through a Xet CAS server, which we don't have
        "HF_TOKEN": FAKE_TOKEN,
        "HF_HOME": str(hf_home),
        "HF_HUB_CACHE": str(hf_home / "hub"),
        "HF_DATASETS_CACHE": str(hf_home / "datasets"),
        "HF_MODULES_CACHE": str(hf_home / "modules"),
        "HF_HUB_OFFLINE": "0",
        "HF_DATASETS_OFFLINE": "0",
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "HF_HUB_DISABLE_UPDATE_CHECK": "1",
    }


def _module_level_settings(endpoint: str, hf_home: Path) -> list[tuple[Any, str, Any]]:
    """(object, attribute, value) for every import-time copy of the hub environment."""
    import datasets.config
    import huggingface_hub.constants as hf_constants
    import huggingface_hub.hf_api
    import huggingface_hub.hf_file_system
    import huggingface_hub.utils._http as hf_http
    import transformers.utils.hub

    hub_cache = str(hf_home / "hub")
    datasets_cache = hf_home / "datasets"
    settings = [
        (hf_constants, "ENDPOINT", endpoint),
        (hf_constants, "HUGGINGFACE_CO_URL_TEMPLATE", endpoint + "/{repo_id}/resolve/{revision}/{filename}"),
        (hf_constants, "HF_URL_HOSTS", hf_constants.HF_URL_HOSTS | {urlsplit(endpoint).hostname}),
        (hf_constants, "HF_HOME", str(hf_home)),
        (hf_constants, "HF_HUB_CACHE", hub_cache),
        (hf_constants, "HUGGINGFACE_HUB_CACHE", hub_cache),
        (hf_constants, "HF_ASSETS_CACHE", str(hf_home / "assets")),
        (hf_constants, "HUGGINGFACE_ASSETS_CACHE", str(hf_home / "assets")),
        (hf_constants, "HF_TOKEN_PATH", str(hf_home / "token")),
        (hf_constants, "HF_STORED_TOKENS_PATH", str(hf_home / "stored_tokens")),
        (hf_constants, "HF_XET_CACHE", str(hf_home / "xet")),
        (hf_constants, "HF_HUB_DISABLE_XET", True),
        (hf_constants, "HF_HUB_OFFLINE", False),
        (hf_constants, "HF_HUB_DISABLE_TELEMETRY", True),
        # Redirects are only followed to these origins (the auth header is forwarded to them).
        (hf_http, "_HUB_ORIGINS", hf_http._HUB_ORIGINS | {hf_http._url_origin(endpoint)}),
        # `huggingface_hub.create_repo`, `upload_file`, ... are bound methods of this instance.
        (huggingface_hub.hf_api.api, "endpoint", endpoint),
        (huggingface_hub.hf_file_system.hffs, "endpoint", endpoint),
        (huggingface_hub.hf_file_system.hffs._api, "endpoint", endpoint),
        (transformers.utils.hub, "_hf_api", None),  # lazily re-created with the current endpoint
        (datasets.config, "HF_ENDPOINT", endpoint),
        (datasets.config, "HUB_DATASETS_URL", endpoint + "/datasets/{repo_id}/resolve/{revision}/{path}"),
        (datasets.config, "HF_CACHE_HOME", str(hf_home)),
        (datasets.config, "HF_DATASETS_CACHE", datasets_cache),
        (datasets.config, "DOWNLOADED_DATASETS_PATH", datasets_cache / datasets.config.DOWNLOADED_DATASETS_DIR),
        (
            datasets.config,
            "EXTRACTED_DATASETS_PATH",
            datasets_cache / datasets.config.DOWNLOADED_DATASETS_DIR / datasets.config.EXTRACTED_DATASETS_DIR,
        ),
        (datasets.config, "HF_HUB_OFFLINE", False),
        (datasets.config, "HF_DATASETS_OFFLINE", False),
    ]
    return settings


def _check_clients_use(endpoint: str) -> None:
    import datasets.config
    import huggingface_hub
    from huggingface_hub import HfApi, hf_hub_url

    checks = {
        "hf_hub_url": hf_hub_url("a/b", "f.txt"),
        "HfApi().endpoint": HfApi().endpoint,
        "huggingface_hub.hf_api.api.endpoint": huggingface_hub.hf_api.api.endpoint,
        "datasets.config.HF_ENDPOINT": datasets.config.HF_ENDPOINT,
    }
    wrong = {name: value for name, value in checks.items() if not value.startswith(endpoint)}
    if wrong:
        raise RuntimeError(f"Hub clients are not pointed at {endpoint}: {wrong}")


@contextlib.contextmanager
def hub_client_env(endpoint: str, hf_home: Path) -> Iterator[dict[str, str]]:
    """Point the (already imported) Hub clients of this process at `endpoint`; restore on exit."""
    env = hub_environment(endpoint, hf_home)
    settings = _module_level_settings(endpoint, hf_home)  # imports the clients before patching
    saved_env = {key: os.environ.get(key) for key in env}
    saved_attrs = [(obj, name, getattr(obj, name)) for obj, name, _ in settings]
    try:
        os.environ.update(env)
        for obj, name, value in settings:
            setattr(obj, name, value)
        _check_clients_use(endpoint)
        yield env
    finally:
        for obj, name, value in reversed(saved_attrs):
            setattr(obj, name, value)
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


# ----------------------------------------------------------------------------- subprocesses

# Makes `import hf_linear` (or any listed package) fail as if it were not installed, even though
# the editable install puts a finder for it on sys.meta_path in every interpreter.
_BLOCK_IMPORTS_PRELUDE = """\
import importlib.abc as _abc, sys as _sys
class _BlockedImports(_abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {blocked!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}} (blocked by the test)", name=name)
_sys.meta_path.insert(0, _BlockedImports())
del _abc, _sys, _BlockedImports
"""


def run_python_with_env(
    code: str,
    env: dict[str, str],
    *,
    block_imports: Sequence[str] = (),
    cwd: Path | None = None,
    timeout: float = 300,
    check: bool = True,
) -> subprocess.CompletedProcess:
    """Run `code` in a fresh `python -I` (no repo dir or PYTHON* variables on sys.path) with `env`."""
    prelude = _BLOCK_IMPORTS_PRELUDE.format(blocked=set(block_imports)) if block_imports else ""
    result = subprocess.run(
        [sys.executable, "-I", "-c", prelude + textwrap.dedent(code)],
        env={**os.environ, **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"subprocess failed with exit code {result.returncode}\n--- stdout\n{result.stdout}\n"
            f"--- stderr\n{result.stderr}"
        )
    return result


# ----------------------------------------------------------------------------- fixtures


@dataclass
class LocalHub:
    """The local Hub as seen by one test: where it is and how to use it."""

    url: str
    hf_home: Path
    env: dict[str, str]
    server: HubHTTPServer | None = field(default=None, repr=False)

    def __str__(self) -> str:
        return self.url

    @property
    def user(self) -> str:
        return USER_NAME

    @property
    def requests(self) -> list[tuple[str, str, int]]:
        """(method, path, status) of every request the server has answered this session."""
        return list(self.server.requests) if self.server else []

    def repo_id(self, name: str) -> str:
        """A repo id unique to this call, `hf-linear-tester/{name}-{8 hex}` (the server outlives tests)."""
        return f"{USER_NAME}/{name}-{uuid.uuid4().hex[:8]}"

    def run_python(self, code: str, **kwargs: Any) -> subprocess.CompletedProcess:
        """`run_python_with_env(code, self.env, ...)`: a fresh interpreter pointed at this hub."""
        return run_python_with_env(code, self.env, **kwargs)


@pytest.fixture(scope="session")
def hub_http_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubHTTPServer]:
    # the test user may also write the namespaces of the real repos the project loads by default
    # (roneneldan/TinyStories, roneneldan/TinyStories-33M), which tests serve from the sample
    accounts = Accounts({FAKE_TOKEN: User(USER_NAME, orgs=frozenset({"roneneldan"}))})
    with serve_in_background(tmp_path_factory.mktemp("hub-root"), accounts=accounts) as server:
        yield server


@pytest.fixture(scope="module")
def hub_server_module(hub_http_server: HubHTTPServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalHub]:
    hf_home = tmp_path_factory.mktemp("hf-home-module")
    with hub_client_env(hub_http_server.url, hf_home) as env:
        yield LocalHub(hub_http_server.url, hf_home, env, hub_http_server)


@pytest.fixture
def hub_server(hub_http_server: HubHTTPServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalHub]:
    hf_home = tmp_path_factory.mktemp("hf-home")
    with hub_client_env(hub_http_server.url, hf_home) as env:
        yield LocalHub(hub_http_server.url, hf_home, env, hub_http_server)


def _unused_local_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def dead_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalHub]:
    url = f"http://127.0.0.1:{_unused_local_port()}"
    hf_home = tmp_path_factory.mktemp("hf-home-dead")
    with hub_client_env(url, hf_home) as env:
        yield LocalHub(url, hf_home, env)


@pytest.fixture(scope="session")
def shared_data_dir() -> Path:
    path = Path(os.environ.get("HF_LINEAR_SHARED_DATA") or REPO_ROOT.parent / "shared" / "data")
    if not path.is_dir():
        pytest.skip(f"shared data directory {path} not found (set HF_LINEAR_SHARED_DATA to its location)")
    return path
