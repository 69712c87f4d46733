"""A detached server process per data dir, found again through ``DIR/endpoint.json``.

``serve`` writes ``{"endpoint_url": ..., "pid": ...}`` once it listens and removes it on a clean
shutdown; ``ensure_running`` reuses a recorded server only if it really answers.

This module imports only the standard library: ``python -m loader --local`` calls ``ensure_running`` on
every run, and the server's modules (werkzeug, numpy, the botocore model) would add ~0.2 s to each.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ENDPOINT_FILE = "endpoint.json"  # = s3vectors_local.endpoint.ENDPOINT_FILE (not imported: it loads the server)
_START_TIMEOUT_S = 60.0
_PROBE_BODY = b'{"maxResults":1}'


def read_endpoint(data_dir: Path) -> dict[str, Any] | None:
    try:
        info = json.loads((Path(data_dir) / ENDPOINT_FILE).read_text())
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) and "endpoint_url" in info and "pid" in info else None


def write_endpoint(data_dir: Path, endpoint_url: str, pid: int) -> None:
    path = Path(data_dir) / ENDPOINT_FILE
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps({"endpoint_url": endpoint_url, "pid": pid}))
    os.replace(tmp, path)  # atomic: a reader sees the old file or the whole new one


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def answers(endpoint_url: str, timeout_s: float = 2.0) -> bool:
    """True when an s3vectors endpoint answers at ``endpoint_url`` (a refusal, e.g. of our dummy credentials by a
    server that verifies signatures, is an answer too).

    The probe is an unsigned ``ListVectorBuckets`` over plain ``http.client`` (no botocore client to build):
    an s3vectors endpoint refuses it with its error code in ``x-amzn-errortype`` (the local one:
    AccessDeniedException, as AWS refuses unsigned calls), or lists buckets; anything else (nothing
    listening, another kind of server on a reused port, a timeout) is not an answer.
    """
    import http.client
    from urllib.parse import urlsplit

    try:
        url = urlsplit(endpoint_url)
        kind = http.client.HTTPSConnection if url.scheme == "https" else http.client.HTTPConnection
        conn = kind(url.hostname or "127.0.0.1", url.port, timeout=timeout_s)
        try:
            conn.request(
                "POST",
                url.path.rstrip("/") + "/ListVectorBuckets",
                body=_PROBE_BODY,
                headers={"Content-Type": "application/json"},
            )
            response = conn.getresponse()
            body = response.read(1 << 20)
        finally:
            conn.close()
    except (OSError, ValueError, http.client.HTTPException):
        return False
    if response.getheader("x-amzn-errortype"):
        return True
    if response.status != 200:
        return False
    try:
        return isinstance(json.loads(body).get("vectorBuckets"), list)
    except (ValueError, AttributeError):
        return False


def ensure_running(data_dir: Path | str, *, extra_args: list[str] | None = None) -> str:
    """The endpoint_url of a live server for ``data_dir``, starting a detached one if needed."""
    data_dir = Path(data_dir).resolve()
    info = read_endpoint(data_dir)
    if info and _alive(int(info["pid"])) and answers(str(info["endpoint_url"])):
        return str(info["endpoint_url"])
    data_dir.mkdir(parents=True, exist_ok=True)
    if info and not _alive(int(info["pid"])):
        with contextlib.suppress(FileNotFoundError):
            (data_dir / ENDPOINT_FILE).unlink()  # left behind by a killed server
    # The child must import this package even when the caller's cwd is elsewhere.
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
    log = open(data_dir / "server.log", "ab")  # noqa: SIM115 - handed to the child, closed below
    try:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "s3vectors_local",
                "serve",
                "--port",
                "0",
                "--data-dir",
                str(data_dir),
                *(extra_args or []),
            ],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    finally:
        log.close()
    deadline = time.monotonic() + _START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            # It may have lost the data dir lock to a server that started at the same moment.
            info = read_endpoint(data_dir)
            if info and _alive(int(info["pid"])) and answers(str(info["endpoint_url"])):
                return str(info["endpoint_url"])
            raise RuntimeError(f"s3vectors_local server exited with {proc.returncode}; see {data_dir / 'server.log'}")
        info = read_endpoint(data_dir)
        if info and int(info["pid"]) == proc.pid and answers(str(info["endpoint_url"])):
            return str(info["endpoint_url"])
        time.sleep(0.05)
    proc.terminate()
    raise TimeoutError(f"s3vectors_local server did not answer within {_START_TIMEOUT_S:.0f} s")


def stop_server(data_dir: Path | str, timeout_s: float = 15.0) -> bool:
    """Stop the server recorded in ``data_dir``: SIGTERM, then SIGKILL. True if one was running."""
    data_dir = Path(data_dir).resolve()
    info = read_endpoint(data_dir)
    if info is None:
        return False
    pid = int(info["pid"])
    if not _alive(pid):
        with contextlib.suppress(FileNotFoundError):
            (data_dir / ENDPOINT_FILE).unlink()
        return False
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not _alive(pid) or _zombie(pid):
            break
        time.sleep(0.05)
    else:
        os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)  # reap it if it was our child
    with contextlib.suppress(FileNotFoundError):
        (data_dir / ENDPOINT_FILE).unlink()
    return True


def _zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1].startswith("Z")
    except OSError:
        return False
