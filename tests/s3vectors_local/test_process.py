"""The detached server (`ensure_running`/`stop_server`) and the `serve` command line."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from s3vectors_local import ensure_running, stop_server
from s3vectors_local.endpoint import make_client
from s3vectors_local.process import read_endpoint
from tests.s3vectors_local.support import wait_for_endpoint


def test_ensure_running_starts_reuses_and_stops(tmp_path: Path) -> None:
    url = ensure_running(tmp_path)
    try:
        info = read_endpoint(tmp_path)
        assert info is not None and info["endpoint_url"] == url
        assert url.startswith("http://127.0.0.1:")
        make_client(url).create_vector_bucket(vectorBucketName="kept")
        assert ensure_running(tmp_path) == url  # the live server is reused
    finally:
        assert stop_server(tmp_path)
    assert read_endpoint(tmp_path) is None
    assert stop_server(tmp_path) is False
    # A fresh server on the same data dir sees the earlier data.
    url2 = ensure_running(tmp_path)
    try:
        names = [b["vectorBucketName"] for b in make_client(url2).list_vector_buckets()["vectorBuckets"]]
        assert names == ["kept"]
    finally:
        stop_server(tmp_path)


def test_stale_endpoint_file_is_replaced(tmp_path: Path) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (tmp_path / "endpoint.json").write_text(json.dumps({"endpoint_url": "http://127.0.0.1:9", "pid": dead.pid}))
    url = ensure_running(tmp_path)
    try:
        assert url != "http://127.0.0.1:9"
        make_client(url).list_vector_buckets()
    finally:
        stop_server(tmp_path)


def test_serve_writes_and_removes_endpoint_file(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "s3vectors_local",
            "serve",
            "--port",
            "0",
            "--data-dir",
            str(tmp_path),
            "--throttle",
            "--latency-ms",
            "1",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        info = wait_for_endpoint(tmp_path, proc)
        assert info["pid"] == proc.pid
        make_client(info["endpoint_url"]).list_vector_buckets()
        os.kill(proc.pid, signal.SIGTERM)
        out, _ = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0
    assert "listening on http://127.0.0.1:" in out
    assert not (tmp_path / "endpoint.json").exists()


def test_help_has_examples() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "s3vectors_local", "serve", "--help"], capture_output=True, text=True, check=True
    ).stdout
    for flag in ("--port", "--data-dir", "--host", "--throttle", "--fault-rate", "--latency-ms", "--account-id"):
        assert flag in out
    assert "examples:" in out and "provision --template" in out


def test_cli_defaults_match_the_library() -> None:
    from s3vectors_local import __main__ as cli
    from s3vectors_local import endpoint

    assert (cli.DEFAULT_ACCOUNT_ID, cli.DEFAULT_REGION) == (endpoint.DEFAULT_ACCOUNT_ID, endpoint.DEFAULT_REGION)


def test_stop_command_stops_a_background_endpoint(tmp_path: Path) -> None:
    ensure_running(tmp_path)
    command = [sys.executable, "-m", "s3vectors_local", "stop", "--data-dir", str(tmp_path)]
    first = subprocess.run(command, capture_output=True, text=True, timeout=60, check=True)
    assert "stopped" in first.stdout
    assert read_endpoint(tmp_path) is None
    second = subprocess.run(command, capture_output=True, text=True, timeout=60, check=True)
    assert "no endpoint was running" in second.stdout


def test_the_endpoint_file_name_matches_the_server() -> None:
    from s3vectors_local import endpoint, process

    assert process.ENDPOINT_FILE == endpoint.ENDPOINT_FILE


def test_process_imports_only_the_standard_library() -> None:
    """`python -m loader --local` probes the endpoint on every run: the server's modules would cost ~0.2 s."""
    code = (
        "import sys; import s3vectors_local.process; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'botocore', 'boto3', 'werkzeug', 'numpy'}))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out.strip() == "[]"


def test_answers_only_for_an_s3vectors_endpoint(tmp_path: Path) -> None:
    import http.server
    import socket
    import threading

    from s3vectors_local.endpoint import LocalEndpoint
    from s3vectors_local.process import answers

    with LocalEndpoint(tmp_path / "open") as ep:
        assert answers(ep.endpoint_url)  # refuses the unsigned probe: AccessDeniedException is an answer
    with LocalEndpoint(tmp_path / "signed", credentials={"AKIDEXAMPLE": "secret"}) as ep:
        assert answers(ep.endpoint_url)  # verifies signatures: a refusal too

    class NotS3Vectors(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.send_response(404)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            self.wfile.write(b"<html>not here</html>")

        def log_message(self, *args: object) -> None:
            pass

    other = http.server.ThreadingHTTPServer(("127.0.0.1", 0), NotS3Vectors)
    thread = threading.Thread(target=other.serve_forever, daemon=True)
    thread.start()
    try:
        assert not answers(f"http://127.0.0.1:{other.server_address[1]}")  # another server on a reused port
    finally:
        other.shutdown()
        other.server_close()
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        free = s.getsockname()[1]
    assert not answers(f"http://127.0.0.1:{free}", timeout_s=0.5)
    assert not answers("not a url")
