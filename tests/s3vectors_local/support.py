"""Shared by tests that run the endpoint as a `python -m s3vectors_local serve` child process."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

from s3vectors_local.process import read_endpoint


def wait_for_endpoint(data_dir: Path, proc: subprocess.Popen[Any], timeout_s: float = 30) -> dict[str, Any]:
    """The endpoint file a `serve` child writes into data_dir, once it is there; fails the test if the
    child exits first or the file does not appear within timeout_s."""
    deadline = time.monotonic() + timeout_s
    while (info := read_endpoint(data_dir)) is None:
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.05)
    return info
