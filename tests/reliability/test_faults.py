"""Issue #6, faults 1: a load under injected 429/503 answers, lost responses and latency spikes lands every
expected vector exactly once, with the right content hash, and its summary counts the retries."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from botocore.config import Config

from loader.client import USER_AGENT, make_session
from s3vectors_local import LocalEndpoint
from s3vectors_local.errors import UnavailableError
from s3vectors_local.faults import FaultInjector
from tests.reliability.support import (
    CallHook,
    check_structure,
    client_for,
    hashes,
    new_index,
    record,
    run_load,
    snapshot,
    write_corpus,
)


def _clean(corpus: Path, client: Any) -> Any:
    target = new_index(client, "clean")
    run_load(corpus, client, target)
    return snapshot(client, target)


@pytest.mark.parametrize("seed", [1, 3])
def test_load_under_20_percent_429_503_and_latency_spikes(tmp_path: Path, seed: int) -> None:
    corpus = write_corpus(tmp_path / "corpus", 1, docs=100)  # ~6,600 vectors: 14 PutVectors of <= 500
    faults = FaultInjector(0.2, seed=seed, codes=(429, 503), spike_rate=0.05, spike_ms=150)
    with LocalEndpoint(tmp_path / "ep") as ep:
        client = client_for(ep.endpoint_url)
        clean = _clean(corpus, client)
        target = new_index(client, "faulty")
        ep.server.app.faults = faults  # only the load itself runs under faults
        report = run_load(corpus, client, target, max_in_flight=4)
        ep.server.app.faults = None
        got = snapshot(client, target)

    assert got == clean  # every expected key, once, with the same vector and metadata
    assert hashes(got) == hashes(clean)
    check_structure(got)
    injected = faults.injected
    total = sum(injected.values())
    assert total > 0 and {code for (_, code, _) in injected} <= {429, 503}
    # Every injected fault was retried and counted, except on GetIndex, which the summary does not count
    # (see test_retries_of_get_index_are_counted below).
    uncounted = sum(n for (op, _, _), n in injected.items() if op == "GetIndex")
    assert report.retries == total - uncounted
    assert report.throttled == sum(n for (op, code, _), n in injected.items() if code == 429 and op != "GetIndex")
    assert report.vectors_written == report.chunks_embedded == len(clean)
    record(
        "faults",
        trial=f"429/503 at 20% + 5% spikes of 150 ms, seed {seed}",
        vectors=len(clean),
        requests=report.requests,
        faults_injected=total,
        by_operation={f"{op} {code}": n for (op, code, _), n in sorted(injected.items())},
        spikes=faults.spikes,
        retries_reported=report.retries,
        throttled_reported=report.throttled,
        vectors_lost=len(set(clean) - set(got)),
        extra_vectors=len(set(got) - set(clean)),
        wrong_content=sum(1 for k in clean if k in got and got[k] != clean[k]),
    )


def _short_timeout_client(endpoint_url: str, read_timeout: float) -> Any:
    """The loader's own client configuration (loader.client.s3vectors_client: botocore retries off, the loader
    retries), with a read timeout short enough for a latency spike to make the client give up and retry
    while the server still runs the first attempt."""
    config = Config(
        retries={"total_max_attempts": 1, "mode": "standard"},
        max_pool_connections=24,
        connect_timeout=5,
        read_timeout=read_timeout,
        user_agent_extra=USER_AGENT,
    )
    return make_session(region="us-east-1", local=True).client("s3vectors", endpoint_url=endpoint_url, config=config)


class _Scripted(FaultInjector):
    """Random faults, plus some at fixed points so every run has them: the answer of the 2nd PutVectors and of
    the 1st DeleteVectors is lost after they committed, and the 1st PutVectors is held longer than the client
    waits (it retries while the first attempt still runs)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lose = {("PutVectors", 2), ("DeleteVectors", 1)}
        self.hold = {("PutVectors", 1)}
        self.seen: dict[tuple[str, str], int] = {}

    def _count(self, operation: str, phase: str) -> int:
        with self._lock:
            n = self.seen[(operation, phase)] = self.seen.get((operation, phase), 0) + 1
            return n

    def before(self, operation: str = "") -> None:
        if (operation, self._count(operation, "before")) in self.hold:
            with self._lock:
                self.spikes += 1
            time.sleep(self.spike_s)
        super().before(operation)

    def after(self, operation: str = "") -> None:
        if (operation, self._count(operation, "after")) in self.lose:
            with self._lock:
                self.injected[(operation, 503, "after")] += 1
            raise UnavailableError("Injected fault: service unavailable (after the request was applied)")
        super().after(operation)


def test_load_survives_lost_responses_and_timeouts(tmp_path: Path) -> None:
    """A write that succeeded but whose answer was lost (503 after commit, or the client timing out while the
    server works) is retried; PutVectors/DeleteVectors being idempotent, nothing is doubled or lost."""
    v1 = write_corpus(tmp_path / "v1", 1)
    v2 = write_corpus(tmp_path / "v2", 2)
    faults = _Scripted(0.1, seed=8, codes=(429, 503), after_rate=0.1, spike_rate=0.1, spike_ms=900)
    with LocalEndpoint(tmp_path / "ep") as ep:
        client = client_for(ep.endpoint_url)
        clean = _clean(v2, client)
        target = new_index(client, "faulty")
        run_load(v1, client, target)  # then sync to v2 under faults: writes, overwrites and deletes
        ep.server.app.faults = faults
        report = run_load(v2, _short_timeout_client(ep.endpoint_url, 0.4), target, max_in_flight=4)
        ep.server.app.faults = None
        got = snapshot(client, target)
    assert got == clean
    check_structure(got)
    after = faults.total("after")
    assert after > 0 and faults.spikes > 0
    assert report.retries >= after  # each lost answer was retried (timeouts add more)
    record(
        "faults",
        trial="v1->v2 sync: 10% 429/503, 10% lost responses (and 2 fixed), 10% spikes of 900 ms (and 1 fixed); "
        "client timeout 400 ms",
        vectors=len(clean),
        faults_injected=faults.total(),
        lost_responses=after,
        spikes=faults.spikes,
        retries_reported=report.retries,
        vectors_lost=len(set(clean) - set(got)),
        extra_vectors=len(set(got) - set(clean)),
    )


def test_retries_of_get_index_are_counted(tmp_path: Path) -> None:
    corpus = write_corpus(tmp_path / "corpus", 1, docs=2)
    with LocalEndpoint(tmp_path / "ep") as ep:
        client = client_for(ep.endpoint_url)
        target = new_index(client, "get-index-retries")
        with CallHook(ep.service, "GetIndex", 1, "before", lambda: None):  # answers 503 once; the retry works
            report = run_load(corpus, client, target)
    assert report.retries == 1
