"""Issue #6, faults 4: two loaders syncing the same corpus into the same index at the same time converge to
the final set a single clean load gives (same keys, vectors, content hashes), and both succeed.

Both compute the same wanted keys from the same files, so neither deletes a key the other writes: a
loader deletes only keys outside that set, and deleting a key already gone is not an error.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from s3vectors_local import LocalEndpoint
from tests.reliability.support import (
    CLI_LOAD_FLAGS,
    check_structure,
    client_for,
    loader_process,
    new_index,
    record,
    run_load,
    snapshot,
    target_args,
    write_corpus,
)


@pytest.mark.parametrize("start", ["empty index", "index holding version 1"])
def test_two_loaders_at_once_converge(tmp_path: Path, start: str) -> None:
    v1, v2 = write_corpus(tmp_path / "v1", 1), write_corpus(tmp_path / "v2", 2)
    with LocalEndpoint(tmp_path / "ep") as ep:
        client = client_for(ep.endpoint_url)
        clean_target = new_index(client, "clean")
        run_load(v2, client, clean_target)
        clean = snapshot(client, clean_target)
        target = new_index(client, "shared")
        if start != "empty index":
            run_load(v1, client, target)
        args = [*target_args(ep.endpoint_url, target), "load", str(v2), *CLI_LOAD_FLAGS, "--max-in-flight", "2"]
        procs = [loader_process(args) for _ in range(2)]
        results = [p.communicate(timeout=120) for p in procs]
        for p, (_, err) in zip(procs, results, strict=True):
            assert p.returncode == 0, err
        reports = [json.loads(out) for out, _ in results]
        final = snapshot(client, target)
    assert final == clean
    check_structure(final)
    record(
        "concurrent-loaders",
        start=start,
        vectors=len(clean),
        written=[r["chunks"]["written"] for r in reports],
        deleted=[r["chunks"]["deleted"] for r in reports],
        vectors_lost=len(set(clean) - set(final)),
        extra_vectors=len(set(final) - set(clean)),
    )
