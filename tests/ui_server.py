"""Start the real Dagster webserver for Gradus on loopback, wait for it, stop it: used by the UI test and
`scripts/ui_screenshot.py`.

The server runs in its own process group (webserver, its gRPC code server and any run subprocesses launched by
the default run launcher), so stopping it kills the whole group and reaps the webserver: no strays, no zombies.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.conftest import free_port

REPO = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"
REPOSITORY_NAME = "__repository__"
"""The repository name Dagster gives a `Definitions` object."""
LOCATION_NAME = "pipelines.definitions"
"""The code location name for `-m pipelines.definitions`."""


@dataclass
class WebServer:
    """A running webserver: its port, process and the file its output goes to."""

    port: int
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def log_tail(self, chars: int = 6000) -> str:
        """The last `chars` characters of the server's stdout and stderr."""
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")[-chars:]
        except OSError as exc:
            return f"(server log unreadable: {exc})"

    def graphql(self, query: str, variables: dict[str, Any] | None = None, timeout: float = 60) -> dict[str, Any]:
        """POST one GraphQL request; return its `data`, raising with the errors (and server log) if any."""
        body = json.dumps({"query": query, "variables": variables or {}}).encode()
        request = urllib.request.Request(
            f"{self.url}/graphql", data=body, headers={"Content-Type": "application/json"}, method="POST"
        )
        with urllib.request.urlopen(request, timeout=timeout) as response:
            payload = json.load(response)
        if payload.get("errors"):
            raise RuntimeError(f"GraphQL errors: {payload['errors']}\n--- server log ---\n{self.log_tail()}")
        return payload["data"]


def write_instance_yaml(dagster_home: Path) -> Path:
    """A `dagster.yaml` keeping run storage, artifacts and compute logs under `dagster_home`, telemetry and the
    UI's first-visit "Join the Dagster community" dialog (`nux`) off.

    Runs are launched straight away (`DefaultRunCoordinator`): Dagster's default, the queued coordinator, leaves a
    run QUEUED until a `dagster-daemon` dequeues it, and the webserver alone runs no daemon.
    """
    dagster_home.mkdir(parents=True, exist_ok=True)
    base = dagster_home.resolve()
    path = base / "dagster.yaml"
    path.write_text(
        "storage:\n"
        "  sqlite:\n"
        f"    base_dir: {json.dumps(str(base / 'storage'))}\n"
        "local_artifact_storage:\n"
        "  module: dagster.core.storage.root\n"
        "  class: LocalArtifactStorage\n"
        "  config:\n"
        f"    base_dir: {json.dumps(str(base / 'artifacts'))}\n"
        "compute_logs:\n"
        "  module: dagster.core.storage.local_compute_log_manager\n"
        "  class: LocalComputeLogManager\n"
        "  config:\n"
        f"    base_dir: {json.dumps(str(base / 'compute_logs'))}\n"
        "run_coordinator:\n"
        "  module: dagster.core.run_coordinator\n"
        "  class: DefaultRunCoordinator\n"
        "telemetry:\n"
        "  enabled: false\n"
        "nux:\n"
        "  enabled: false\n",
        encoding="utf-8",
    )
    return path


def server_env(dagster_home: Path, config_path: Path) -> dict[str, str]:
    """The environment for the server: this one, with the instance and project config set and `GRADUS_HOME`
    removed (so the config's `data_root` is the one used)."""
    env = {key: value for key, value in os.environ.items() if key != "GRADUS_HOME"}
    env.update(
        DAGSTER_HOME=str(dagster_home.resolve()),
        GRADUS_CONFIG=str(config_path.resolve()),
        DAGSTER_DISABLE_TELEMETRY="1",
        PYTHONUNBUFFERED="1",
    )
    return env


def stop(server: subprocess.Popen[bytes], grace_s: float = 10) -> None:
    """SIGTERM the server's process group, SIGKILL whatever is left after `grace_s`, and reap the server."""
    with suppress(ProcessLookupError):
        os.killpg(server.pid, signal.SIGTERM)  # started with start_new_session: its pid is its group id
    with suppress(subprocess.TimeoutExpired):
        server.wait(timeout=grace_s)
    # children (code server, run workers) may outlive the webserver: kill the rest of the group
    with suppress(ProcessLookupError):
        os.killpg(server.pid, signal.SIGKILL)
    server.wait(timeout=grace_s)


def wait_until_ready(server: WebServer, timeout_s: float) -> dict[str, Any]:
    """Poll `/server_info` until it answers; return its JSON. Raise with the server's log on exit or timeout."""
    deadline = time.monotonic() + timeout_s
    last_error = "no answer yet"
    while time.monotonic() < deadline:
        code = server.process.poll()
        if code is not None:
            raise RuntimeError(
                f"dagster-webserver exited with code {code} before answering\n--- server log ---\n{server.log_tail()}"
            )
        try:
            with urllib.request.urlopen(f"{server.url}/server_info", timeout=5) as response:
                return json.load(response)
        except (urllib.error.URLError, ConnectionError, TimeoutError, json.JSONDecodeError) as exc:
            last_error = repr(exc)
        time.sleep(0.5)
    raise RuntimeError(
        f"dagster-webserver did not answer {server.url}/server_info within {timeout_s:.0f} s ({last_error})\n"
        f"--- server log ---\n{server.log_tail()}"
    )


def wait_for_code_location(server: WebServer, timeout_s: float) -> None:
    """Wait until the code location has loaded (the webserver answers before its code server is up)."""
    query = """
    query { workspaceOrError { __typename ... on Workspace { locationEntries { name loadStatus
      locationOrLoadError { __typename ... on PythonError { message stack } } } } } }
    """
    deadline = time.monotonic() + timeout_s
    entries: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        entries = server.graphql(query)["workspaceOrError"].get("locationEntries", [])
        loaded = [e for e in entries if e["loadStatus"] == "LOADED"]
        if loaded:
            error = loaded[0]["locationOrLoadError"]
            if error and error["__typename"] == "PythonError":
                raise RuntimeError(f"code location failed to load: {error['message']}\n{''.join(error['stack'])}")
            return
        time.sleep(0.5)
    raise RuntimeError(
        f"code location not loaded within {timeout_s:.0f} s: {entries}\n--- server log ---\n{server.log_tail()}"
    )


@contextmanager
def running_webserver(
    dagster_home: Path, config_path: Path, *, port: int | None = None, timeout_s: float = 90
) -> Iterator[WebServer]:
    """Run `dagster-webserver -m pipelines.definitions` on loopback with this instance and project config.

    Yields once `/server_info` answers and the code location has loaded (within `timeout_s` in all, else
    `RuntimeError` with the server's log); always stops the process group on the way out.
    """
    dagster_home = dagster_home.resolve()
    if not (dagster_home / "dagster.yaml").exists():
        write_instance_yaml(dagster_home)
    port = port or free_port()
    webserver = Path(sys.executable).parent / "dagster-webserver"
    command = [str(webserver), "-h", HOST, "-p", str(port), "-m", LOCATION_NAME]
    with tempfile.TemporaryDirectory(prefix="gradus-webserver-") as log_dir:
        log_path = Path(log_dir) / "webserver.log"  # a file, not a pipe: a chatty server never blocks on it
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                command,
                cwd=REPO,
                env=server_env(dagster_home, config_path),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, so stop() reaches the code server and run workers
            )
        server = WebServer(port=port, process=process, log_path=log_path)
        try:
            started = time.monotonic()
            wait_until_ready(server, timeout_s)
            wait_for_code_location(server, max(1.0, timeout_s - (time.monotonic() - started)))
            yield server
        finally:
            stop(process)
