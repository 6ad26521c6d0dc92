"""Real servers on 127.0.0.1 for the tests: an S3 API (moto), a password-protected MLflow
tracking server and a small HTTP file server.

Each server is a child process started with :class:`subprocess.Popen` on a free loopback port,
waited for until it answers (with a deadline), and stopped by its PID (terminate, then kill).

Run as a script, this module is the HTTP server itself::

    python tests/servers.py http ROOT PORT

It serves the files under ``ROOT`` like ``python -m http.server``, answers 404 for missing
files, and has a few special paths that real download problems look like:

``/html/<anything>``
    200 with an HTML page (what a portal sends instead of the CSV when a link is wrong).
``/flaky<N>/<file>``
    503 for the first ``N`` requests of that path, then the file (a retry test).
``/truncated/<file>``
    announces the file's full length but sends half of it, then closes the connection.
``/status<code>/<anything>``
    always answers with that HTTP status (e.g. ``/status429/raw.csv``).
``/hangup/<anything>``
    closes the connection without answering.
``/slow/<file>``
    sends nothing for ``SLOW_SECONDS``, then the file (a timeout before the headers).
``/stall/<file>``
    announces the file's full length, sends half of it, then stalls for ``SLOW_SECONDS``
    (a timeout in the middle of the body).
"""

from __future__ import annotations

import base64
import contextlib
import http.server
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

HOST = "127.0.0.1"
#: How long ``/slow/`` and ``/stall/`` keep the client waiting.
SLOW_SECONDS = 3.0

HTML_PAGE = (
    b"<!DOCTYPE html>\n<html><head><title>Open Data</title></head>\n"
    b"<body><h1>Sorry, this dataset could not be found</h1></body></html>\n"
)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def _answers(url: str) -> bool:
    """Whether an HTTP server answers at ``url`` (any status counts)."""
    try:
        with urllib.request.urlopen(url, timeout=1):
            return True
    except urllib.error.HTTPError:
        return True
    except OSError:
        return False


@dataclass
class ServerProcess:
    """A server child process on ``127.0.0.1:port``; stop it with :meth:`stop`."""

    name: str
    port: int
    process: subprocess.Popen
    log: Path
    stopped: bool = field(default=False)

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def stop(self, grace: float = 5.0) -> None:
        """Terminate the server by its PID; kill it if it has not exited after ``grace`` s."""
        if self.stopped:
            return
        self.stopped = True
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                os.kill(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=grace)


def start_server(
    name: str,
    command: Callable[[int], list[str]],
    log_dir: Path,
    ready_path: str = "/",
    deadline: float = 30.0,
) -> ServerProcess:
    """Start ``command(port)`` on a free port; return once it answers HTTP, or fail loudly."""
    port = free_port()
    log = log_dir / f"{name}.log"
    with open(log, "wb") as sink:
        process = subprocess.Popen(
            command(port), stdout=sink, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
    server = ServerProcess(name, port, process, log)
    stop_at = time.monotonic() + deadline
    while time.monotonic() < stop_at:
        if process.poll() is not None:
            break
        if _answers(server.url + ready_path):
            return server
        time.sleep(0.1)
    server.stop()
    raise RuntimeError(
        f"{name} did not start on {server.url} within {deadline:.0f} s "
        f"(exit code {process.returncode}); its output:\n{log.read_text(errors='replace')[-2000:]}"
    )


def start_moto(log_dir: Path) -> ServerProcess:
    """moto's S3-compatible server (in memory, any credentials) on a free loopback port."""
    return start_server(
        "moto",
        lambda port: [sys.executable, "-m", "moto.server", "-H", HOST, "-p", str(port)],
        log_dir,
        ready_path="/moto-api/",
    )


def start_http(root: Path, log_dir: Path) -> ServerProcess:
    """This module's HTTP server, serving the files under ``root``."""
    return start_server(
        "http",
        lambda port: [sys.executable, __file__, "http", str(root), str(port)],
        log_dir,
    )


#: The run user's name on the tracking servers of the tests (one user per workflow run).
MLFLOW_RUN_USER = "drg-run"


@dataclass
class MlflowServer:
    """An ``mlflow server --app-name basic-auth`` and the user created for the workflow's run.

    The admin's password exists only in the server's environment and this object; the run
    user's is what the workflow gets, in ``MLFLOW_TRACKING_USERNAME``/``PASSWORD``
    (:meth:`run_environment`), the way docs/cluster.md sets it up.
    """

    process: ServerProcess
    folder: Path
    admin_password: str
    run_password: str

    @property
    def url(self) -> str:
        return self.process.url

    def run_environment(self) -> dict[str, str]:
        """What a workflow run needs to reach the server as its user."""
        return {
            "MLFLOW_TRACKING_URI": self.url,
            "MLFLOW_TRACKING_USERNAME": MLFLOW_RUN_USER,
            "MLFLOW_TRACKING_PASSWORD": self.run_password,
        }

    def create_user(self, username: str, password: str) -> None:
        """Create a user, as the admin does (POST /api/2.0/mlflow/users/create)."""
        token = base64.b64encode(f"admin:{self.admin_password}".encode()).decode()
        request = urllib.request.Request(
            f"{self.url}/api/2.0/mlflow/users/create",
            data=json.dumps({"username": username, "password": password}).encode(),
            headers={"Content-Type": "application/json", "Authorization": f"Basic {token}"},
        )
        with urllib.request.urlopen(request, timeout=30):
            pass

    def stop(self) -> None:
        self.process.stop()


def start_mlflow_server(folder: Path, deadline: float = 120.0) -> MlflowServer:
    """A password-protected MLflow tracking server on 127.0.0.1 (sqlite backend and users,
    artifacts proxied to ``folder/artifacts``) that lets no one in: an unauthenticated request
    gets 401, and a user sees only the experiments and models it created or was granted
    (``default_permission = NO_PERMISSIONS``). The admin's password is set from the server's
    environment (``MLFLOW_AUTH_ADMIN_PASSWORD``), then the admin creates the run's user."""
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "basic_auth.ini"
    config.write_text(
        "[mlflow]\n"
        "default_permission = NO_PERMISSIONS\n"
        f"database_uri = sqlite:///{folder / 'users.db'}\n"
        "admin_username = admin\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
        # Check a user's password hash (scrypt, ~0.09 s of CPU) once per 10 minutes, not on
        # every request: without it the server spent more CPU than the workflow it tracked
        # (docs/cluster.md).
        "auth_cache_ttl_seconds = 600\n"
    )
    admin_password = "admin-" + secrets.token_hex(12)
    run_password = "run-" + secrets.token_hex(12)
    process = start_server(
        "mlflow",
        lambda port: [
            # `env` execs Python, so the PID stopped at the end is the server's. No background
            # job runner: its worker processes would outlive the server's PID.
            "env",
            "MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false",
            f"MLFLOW_AUTH_CONFIG_PATH={config}",
            f"MLFLOW_AUTH_ADMIN_PASSWORD={admin_password}",
            f"MLFLOW_FLASK_SERVER_SECRET_KEY={secrets.token_hex(16)}",
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--app-name",
            "basic-auth",
            "--backend-store-uri",
            f"sqlite:///{folder / 'mlflow.db'}",
            "--artifacts-destination",
            str(folder / "artifacts"),
            "--host",
            HOST,
            "--port",
            str(port),
            "--workers",
            "2",
        ],
        folder,
        ready_path="/health",
        deadline=deadline,
    )
    server = MlflowServer(process, folder, admin_password, run_password)
    try:
        server.create_user(MLFLOW_RUN_USER, run_password)
    except BaseException:
        process.stop()
        raise
    return server


def unauthenticated_status(url: str) -> int:
    """The HTTP status of an API request to the tracking server at ``url`` without
    credentials."""
    try:
        with urllib.request.urlopen(
            f"{url}/api/2.0/mlflow/experiments/search?max_results=1", timeout=10
        ) as answer:
            return answer.status
    except urllib.error.HTTPError as error:
        return error.code


def s3_environment(server: ServerProcess) -> dict[str, str]:
    """Environment pointing the S3 storage plugin (and boto3) at ``server``, nothing else.

    Only the plugin's own SNAKEMAKE_STORAGE_S3_* variables carry endpoint and credentials; the
    AWS configuration files of whoever runs the tests are hidden.
    """
    return {
        "SNAKEMAKE_STORAGE_S3_ENDPOINT_URL": server.url,
        "SNAKEMAKE_STORAGE_S3_ACCESS_KEY": "testing",
        "SNAKEMAKE_STORAGE_S3_SECRET_KEY": "testing",
        "SNAKEMAKE_STORAGE_S3_REGION": "us-east-1",
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_EC2_METADATA_DISABLED": "true",
    }


# --------------------------------------------------------------------------------------------
# The HTTP server (run in a child process)
# --------------------------------------------------------------------------------------------


class _Handler(http.server.SimpleHTTPRequestHandler):
    """Static files plus the special paths described in the module docstring."""

    flaky_counts: dict[str, int] = {}

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        if self.path.startswith("/html/"):
            self._send(200, HTML_PAGE, "text/html; charset=utf-8")
            return
        status = re.match(r"^/status(\d{3})/", self.path)
        if status:
            self._send(int(status.group(1)), b"no\n", "text/plain")
            return
        if self.path.startswith("/hangup/"):
            self.close_connection = True
            return
        if self.path.startswith("/slow/"):
            time.sleep(SLOW_SECONDS)
            self.path = self.path[len("/slow") :]
        elif self.path.startswith(("/truncated/", "/stall/")):
            self._send_half(self.path.split("/", 2)[1])
            return
        flaky = re.match(r"^/flaky(\d+)(/.*)$", self.path)
        if flaky:
            seen = self.flaky_counts.get(self.path, 0)
            self.flaky_counts[self.path] = seen + 1
            if seen < int(flaky.group(1)):
                self._send(503, b"busy, try again\n", "text/plain")
                return
            self.path = flaky.group(2)
        super().do_GET()

    def _send_half(self, kind: str) -> None:
        """Announce the whole file, send half; ``stall``: then wait before closing."""
        body = self._file(self.path[len(kind) + 1 :])
        if body is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/csv")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body[: len(body) // 2])
        self.wfile.flush()
        if kind == "stall":
            time.sleep(SLOW_SECONDS)
        self.close_connection = True

    def _file(self, path: str) -> bytes | None:
        local = Path(self.translate_path(path))
        return local.read_bytes() if local.is_file() else None

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        sys.stderr.write(f"{self.address_string()} {format % args}\n")


def serve_http(root: Path, port: int) -> None:
    """Serve ``root`` on 127.0.0.1:``port`` until terminated."""
    handler = lambda *args: _Handler(*args, directory=str(root))  # noqa: E731
    with http.server.ThreadingHTTPServer((HOST, port), handler) as server:
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        with contextlib.suppress(KeyboardInterrupt):
            server.serve_forever()


if __name__ == "__main__":
    if len(sys.argv) != 4 or sys.argv[1] != "http":
        sys.exit("usage: python tests/servers.py http ROOT PORT")
    serve_http(Path(sys.argv[2]), int(sys.argv[3]))
