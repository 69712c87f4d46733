"""Issue #6, faults 2: the loader SIGKILLed at many points of a sync, then run again, leaves the index exactly
as a clean load does (same keys, vectors and content hashes), with no duplicate and no orphan.

Each trial starts from the same state (the index holding corpus version 1, copied from a prepared data
dir) and syncs version 2, which writes, overwrites and deletes. The loader is the real CLI in a child
process (fake embedder); the endpoint runs in this process, so a hook on its operations can SIGKILL the
child at an exact point: just before the n-th request of an operation runs (the request is lost), or
just after it committed (the loader never hears the answer). Other trials kill at a seeded random
request, or after a seeded random delay.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from s3vectors_local import LocalEndpoint
from tests.reliability.support import (
    CLI_LOAD_FLAGS,
    CallHook,
    Snapshot,
    check_structure,
    client_for,
    diff,
    loader_process,
    new_index,
    record,
    run_load,
    snapshot,
    target_args,
    write_corpus,
)

BUCKET = "kill-trials"


@dataclass
class Base:
    data_dir: Path
    v2: Path
    clean: Snapshot
    counts: dict[str, int]  # requests of an uninterrupted v1 -> v2 sync, by operation (batching varies a little)
    items: dict[str, int]  # vectors written and keys deleted by that sync (fixed)


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Base:
    work = tmp_path_factory.mktemp("loader-kill")
    v1, v2 = write_corpus(work / "v1", 1), write_corpus(work / "v2", 2)
    data_dir = work / "base"
    with LocalEndpoint(data_dir) as ep:
        client = client_for(ep.endpoint_url)
        clean_target = new_index(client, "clean")
        run_load(v2, client, clean_target)
        clean = snapshot(client, clean_target)
        ref = new_index(client, "reference")
        run_load(v1, client, ref)
        with CallHook(ep.service, "-", 1, "after", lambda: None) as counter:
            run_load(v2, client, ref)
        assert snapshot(client, ref) == clean
        target = new_index(client, BUCKET)
        run_load(v1, client, target)
    assert counts_ok(counter.counts), counter.counts
    return Base(data_dir, v2, clean, dict(counter.counts), dict(counter.items))


def counts_ok(counts: dict[str, int]) -> bool:
    return all(counts.get(op, 0) >= n for op, n in (("PutVectors", 4), ("DeleteVectors", 2), ("ListVectors", 2)))


@pytest.fixture
def endpoint(base: Base, tmp_path: Path) -> Iterator[LocalEndpoint]:
    data_dir = tmp_path / "data"
    shutil.copytree(base.data_dir, data_dir, ignore=shutil.ignore_patterns(".lock", "endpoint.json"))
    with LocalEndpoint(data_dir) as ep:
        yield ep


def _target(ep: LocalEndpoint) -> Any:
    from loader.outputs import Target

    return Target(bucket=BUCKET, index="docs", region="us-east-1")


def _start_loader(ep: LocalEndpoint, v2: Path) -> subprocess.Popen[str]:
    return loader_process([*target_args(ep.endpoint_url, _target(ep)), "load", str(v2), *CLI_LOAD_FLAGS])


def _kill(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)


def _finish(proc: subprocess.Popen[str]) -> int:
    try:
        proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise
    return int(proc.returncode)


def _run_killed_at(
    ep: LocalEndpoint, v2: Path, operation: str, n: int, when: str, *, at_items: int | None = None
) -> None:
    proc: subprocess.Popen[str] | None = None

    def kill() -> None:
        assert proc is not None
        _kill(proc)

    with CallHook(ep.service, operation, n, when, kill, at_items=at_items) as hook:
        proc = _start_loader(ep, v2)
        code = _finish(proc)
    assert hook.fired.is_set(), f"the loader made fewer than {n} {operation} requests: {hook.counts}"
    assert code == -signal.SIGKILL


def _complete_and_check(ep: LocalEndpoint, base: Base, trial: str) -> None:
    client = client_for(ep.endpoint_url)
    target = _target(ep)
    interrupted = snapshot(client, target)
    report = run_load(base.v2, client, target)  # the re-run
    final = snapshot(client, target)
    assert final == base.clean, f"{trial}: {diff(final, base.clean)} key(s) differ from a clean load"
    check_structure(final)
    record(
        "loader-kill",
        trial=trial,
        keys_differing_after_kill=diff(interrupted, base.clean),
        rerun_written=report.vectors_written,
        rerun_deleted=report.vectors_deleted,
        vectors_lost=len(set(base.clean) - set(final)),
        orphans=len(set(final) - set(base.clean)),
    )


POINTS = [
    ("ListVectors", 1, "before"),  # while listing the index's state
    ("ListVectors", 2, "after"),
    ("PutVectors", 1, "before"),  # the first write never runs
    ("PutVectors", 1, "after"),  # the first write commits, its answer is lost
    ("PutVectors", 2, "after"),
    ("PutVectors", 3, "before"),
    ("PutVectors", -1, "after"),  # every write done, no delete yet
    ("DeleteVectors", 1, "before"),
    ("DeleteVectors", 1, "after"),
    ("DeleteVectors", -1, "after"),  # everything done; killed before it could report
]


@pytest.mark.parametrize(("operation", "n", "when"), POINTS, ids=[f"{o}-{n}-{w}" for o, n, w in POINTS])
def test_killed_at_a_request_then_rerun(base: Base, endpoint: LocalEndpoint, operation: str, n: int, when: str) -> None:
    # -1: the last request of that kind, found by its content (the one that completes the sync's vectors
    # or keys), since the number of requests depends on how the writer happened to batch.
    at_items = base.items[operation] if n == -1 else None
    _run_killed_at(endpoint, base.v2, operation, n, when, at_items=at_items)
    _complete_and_check(endpoint, base, f"SIGKILL {when} {operation} #{'last' if n == -1 else n}")


@pytest.mark.parametrize("seed", [2, 3])
def test_killed_at_a_random_request_then_rerun(base: Base, endpoint: LocalEndpoint, seed: int) -> None:
    rng = random.Random(seed)
    # Requests every run makes: writes and deletes are batched by at most 500, so at least this many.
    least = {
        op: -(-base.items[op] // 500) if op in ("PutVectors", "DeleteVectors") else n for op, n in base.counts.items()
    }
    calls = [(op, i + 1) for op, count in sorted(least.items()) for i in range(count)]
    operation, n = rng.choice(calls)
    when = rng.choice(["before", "after"])
    _run_killed_at(endpoint, base.v2, operation, n, when)
    _complete_and_check(endpoint, base, f"seed {seed}: SIGKILL {when} {operation} #{n}")


@pytest.mark.parametrize("seed", [4])
def test_killed_after_a_random_delay_then_rerun(base: Base, endpoint: LocalEndpoint, seed: int) -> None:
    """Not at a request boundary: a timer started by the first PutVectors kills the loader wherever it is then
    (embedding, encoding, sending, between requests)."""
    delay = random.Random(seed).uniform(0.0, 0.4)
    proc: subprocess.Popen[str] | None = None
    timers: list[threading.Timer] = []

    def arm() -> None:
        timers.append(threading.Timer(delay, _kill, args=(proc,)))
        timers[0].start()

    with CallHook(endpoint.service, "PutVectors", 1, "before", lambda: None) as hook:
        hook.when = "after"  # run the first write, then start the clock
        hook.action = arm
        proc = _start_loader(endpoint, base.v2)
        code = _finish(proc)
    for timer in timers:
        timer.cancel()
    _complete_and_check(endpoint, base, f"seed {seed}: SIGKILL {delay:.2f} s after the first PutVectors (exit {code})")


def test_killed_twice_then_rerun_by_the_cli(base: Base, endpoint: LocalEndpoint) -> None:
    _run_killed_at(endpoint, base.v2, "PutVectors", 2, "after")
    _run_killed_at(endpoint, base.v2, "DeleteVectors", 1, "before")
    proc = _start_loader(endpoint, base.v2)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    _complete_and_check(endpoint, base, "SIGKILL after PutVectors #2, then before DeleteVectors #1, then CLI re-run")
