"""Issue #6, faults 3: the local endpoint SIGKILLed during a burst of writes, then restarted: every
acknowledged write is there, the database passes SQLite's integrity check, and no request is visible in
part (a PutVectors of 500 vectors, or a DeleteVectors of 500 keys, is all-or-nothing).

Four client threads send PutVectors of 500 vectors (their own keys, or the same 500 "shared" keys that
every such request overwrites whole) and DeleteVectors of keys they wrote, without retries, and note
which requests were acknowledged. A seeded timer kills the server mid-burst. Three kill/restart cycles
run on the same data dir.
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from s3vectors_local.endpoint import make_client
from s3vectors_local.process import read_endpoint
from tests.reliability.support import REPO, record

NAMES = {"vectorBucketName": "burst", "indexName": "idx"}
BATCH = 500
DIM = 4


@dataclass
class Ledger:
    """What each request was, and whether the server acknowledged it."""

    puts: dict[int, tuple[str, list[str]]] = field(default_factory=dict)  # request id -> (kind, keys)
    acked_puts: set[int] = field(default_factory=set)
    deletes: dict[int, tuple[int, list[str]]] = field(default_factory=dict)  # delete id -> (put id, keys)
    acked_deletes: set[int] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)
    next_id: int = 1

    def new_id(self) -> int:
        with self.lock:
            self.next_id += 1
            return self.next_id - 1


def _serve(data_dir: Path) -> tuple[subprocess.Popen[bytes], str]:
    (data_dir / "endpoint.json").unlink(missing_ok=True)  # left behind by the killed server
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "s3vectors_local", "serve", "--port", "0", "--data-dir", str(data_dir)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    deadline = time.monotonic() + 30
    while (info := read_endpoint(data_dir)) is None or info["pid"] != proc.pid:
        assert proc.poll() is None and time.monotonic() < deadline, "the endpoint did not start"
        time.sleep(0.05)
    return proc, str(info["endpoint_url"])


def _vector(request: int, i: int) -> list[float]:
    return [float(request), float(i), 1.0, -1.0]


def _writer(url: str, ledger: Ledger, seed: int, stop: threading.Event) -> None:
    rng = random.Random(seed)
    client = make_client(url, max_attempts=1, connect_timeout=2, read_timeout=10)
    while not stop.is_set():
        rid = ledger.new_id()
        kind = "shared" if rng.random() < 0.3 else "own"
        keys = [f"shared-{i:03d}" if kind == "shared" else f"r{rid}-{i:03d}" for i in range(BATCH)]
        with ledger.lock:
            ledger.puts[rid] = (kind, keys)
        try:
            client.put_vectors(
                **NAMES,
                vectors=[
                    {"key": k, "data": {"float32": _vector(rid, i)}, "metadata": {"req": rid, "i": i}}
                    for i, k in enumerate(keys)
                ],
            )
        except Exception:
            return  # the server is gone
        with ledger.lock:
            ledger.acked_puts.add(rid)
        if kind == "own" and rng.random() < 0.3:
            did = ledger.new_id()
            with ledger.lock:
                ledger.deletes[did] = (rid, keys)
            try:
                client.delete_vectors(**NAMES, keys=keys)
            except Exception:
                return
            with ledger.lock:
                ledger.acked_deletes.add(did)


def _stored(url: str) -> dict[str, tuple[list[float], dict[str, Any]]]:
    client = make_client(url, max_attempts=3)
    out: dict[str, tuple[list[float], dict[str, Any]]] = {}
    params: dict[str, Any] = {**NAMES, "returnData": True, "returnMetadata": True, "maxResults": 1000}
    while True:
        page = client.list_vectors(**params)
        for v in page["vectors"]:
            assert v["key"] not in out, f"{v['key']} listed twice"
            out[v["key"]] = (v["data"]["float32"], v["metadata"])
        if not page.get("nextToken"):
            return out
        params["nextToken"] = page["nextToken"]


def _check(ledger: Ledger, stored: dict[str, tuple[list[float], dict[str, Any]]]) -> dict[str, int]:
    deleted_by = {put: did for did, (put, _) in ledger.deletes.items()}
    figures = {
        "acked_puts": 0,
        "in_flight_puts_applied": 0,
        "in_flight_puts_absent": 0,
        "acked_deletes": 0,
        "in_flight_deletes": 0,
        "acked_vectors_checked": 0,
        "vectors_lost": 0,
    }
    for rid, (kind, keys) in ledger.puts.items():
        if kind == "shared":
            continue
        present = [k for k in keys if k in stored]
        did = deleted_by.get(rid)
        # All or nothing, whatever happened: a partial request would show as some keys and not others.
        assert len(present) in (0, BATCH), f"request {rid}: {len(present)} of {BATCH} vectors visible"
        if did is not None and did in ledger.acked_deletes:
            figures["acked_deletes"] += 1
            assert not present, f"acknowledged delete {did} of request {rid} not applied"
        elif rid in ledger.acked_puts:
            figures["acked_puts"] += 1
            if did is not None:
                figures["in_flight_deletes"] += 1  # sent, unacknowledged: either outcome is right
                continue
            if len(present) != BATCH:
                figures["vectors_lost"] += BATCH - len(present)
            assert len(present) == BATCH, f"acknowledged request {rid} lost"
            for i, k in enumerate(keys):
                data, meta = stored[k]
                assert data == _vector(rid, i) and meta == {"req": rid, "i": i}, k
            figures["acked_vectors_checked"] += BATCH
        else:
            figures["in_flight_puts_applied" if present else "in_flight_puts_absent"] += 1
    shared = {k: v for k, v in stored.items() if k.startswith("shared-")}
    acked_shared = [r for r in ledger.acked_puts if ledger.puts[r][0] == "shared"]
    if acked_shared:
        assert len(shared) == BATCH
    if shared:  # the 500 shared keys all come from one request: overwrites are whole too
        writers = {meta["req"] for _, meta in shared.values()}
        assert len(writers) == 1, f"shared keys mix requests {sorted(writers)}"
        (writer,) = writers
        assert ledger.puts[writer][0] == "shared"
        assert all(data == _vector(writer, meta["i"]) for data, meta in shared.values())
    figures["shared_overwrites_acked"] = len(acked_shared)
    return figures


def _integrity(data_dir: Path) -> str:
    conn = sqlite3.connect(data_dir / "s3vectors.sqlite3")  # recovers the WAL as SQLite does on any open
    try:
        return str(conn.execute("PRAGMA integrity_check").fetchone()[0])
    finally:
        conn.close()


def test_endpoint_killed_during_write_burst(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    ledger = Ledger()
    proc, url = _serve(data_dir)
    try:
        client = make_client(url, max_attempts=1)
        client.create_vector_bucket(vectorBucketName=NAMES["vectorBucketName"])
        client.create_index(**NAMES, dataType="float32", dimension=DIM, distanceMetric="euclidean")
        for cycle, seed in enumerate((21, 22, 23)):
            stop = threading.Event()
            threads = [threading.Thread(target=_writer, args=(url, ledger, seed * 10 + t, stop)) for t in range(4)]
            for t in threads:
                t.start()
            time.sleep(random.Random(seed).uniform(0.4, 1.0))
            os.kill(proc.pid, signal.SIGKILL)  # mid-burst: requests are in flight
            proc.wait(timeout=10)
            stop.set()
            for t in threads:
                t.join(timeout=30)
            assert _integrity(data_dir) == "ok"
            proc, url = _serve(data_dir)
            figures = _check(ledger, _stored(url))
            assert figures["acked_puts"] > 0
            record(
                "endpoint-kill",
                cycle=cycle + 1,
                requests_sent=len(ledger.puts) + len(ledger.deletes),
                integrity_check="ok",
                **figures,
            )
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    (data_dir / "endpoint.json").unlink(missing_ok=True)
