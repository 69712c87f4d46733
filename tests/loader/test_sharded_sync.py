"""``--shard I/N`` (issue 7): N shards together leave the index exactly as one unsharded load does, each
shard prunes only its own documents, shards may run at once in separate processes, a killed shard is
completed by running it again, and an ``s3://`` prefix loads like the same files in a folder.

Small and fast on purpose: the reliability suite's seeded corpus (two versions: edits, deletions,
additions), 16-dimensional fake embeddings and 24-token chunks, i.e. a few thousand vectors.
"""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from loader.keys import vector_key
from loader.sharding import Shard
from s3vectors_local import LocalEndpoint
from tests.conftest import upload_folder
from tests.reliability.support import (
    CLI_LOAD_FLAGS,
    CallHook,
    Snapshot,
    check_structure,
    client_for,
    hashes,
    loader_process,
    new_index,
    run_load,
    snapshot,
    target_args,
    write_corpus,
)

SHARDS = 4


def _long_path_document(root: Path) -> str:
    """A ~2,400-byte path: its key is hashed and its stored source cut, so ownership must come from the key."""
    path = root
    for i in range(11):
        path = path / ("é" * 100 + str(i))
    path.mkdir(parents=True, exist_ok=True)
    (path / "deep.md").write_text("# Deep\n\nA policy stored very deep in the tree, about refunds.\n")
    return (path / "deep.md").relative_to(root).as_posix()


@pytest.fixture
def corpora(tmp_path: Path) -> tuple[Path, Path]:
    v1, v2 = write_corpus(tmp_path / "v1", 1), write_corpus(tmp_path / "v2", 2)
    _long_path_document(v1)
    return v1, v2


@pytest.fixture
def endpoint(tmp_path: Path) -> Iterator[LocalEndpoint]:
    with LocalEndpoint(tmp_path / "ep") as ep:
        yield ep


def _sources(snap: Snapshot) -> set[str]:
    return {json.loads(md)["source"] for _, md in snap.values()}


def test_shards_together_write_what_one_load_writes(endpoint: LocalEndpoint, corpora: tuple[Path, Path]) -> None:
    v1, v2 = corpora
    client = client_for(endpoint.endpoint_url)
    single, sharded = new_index(client, "single"), new_index(client, "sharded")

    run_load(v1, client, single)
    reports = [run_load(v1, client, sharded, shard=Shard(i, SHARDS)) for i in range(SHARDS)]
    assert snapshot(client, sharded) == snapshot(client, single)
    read = [r.documents_read for r in reports]
    assert sum(read) == 41 and all(n > 0 for n in read)  # every document by exactly one shard
    assert [r.shard for r in reports] == [f"{i}/{SHARDS}" for i in range(SHARDS)]
    assert not [w for r in reports for w in r.warnings if "2 KB" not in w]  # only the long path's
    # Each shard's sync state held only its own vectors; it counted the others without keeping them.
    assert sum(r.vectors_before - r.other_shards_vectors for r in reports) == 0
    again = [run_load(v1, client, sharded, shard=Shard(i, SHARDS)) for i in range(SHARDS)]
    assert all(r.vectors_written == r.vectors_deleted == 0 for r in again)
    assert sum(r.count("unchanged") for r in again) == 41

    # v2 edits, deletes (the long path among them) and adds; shards run in reverse order.
    run_load(v2, client, single)
    for i in reversed(range(SHARDS)):
        run_load(v2, client, sharded, shard=Shard(i, SHARDS))
    final = snapshot(client, sharded)
    assert final == snapshot(client, single)
    check_structure(final)


def test_a_shard_prunes_only_documents_it_owns(endpoint: LocalEndpoint, corpora: tuple[Path, Path]) -> None:
    v1, v2 = corpora
    client = client_for(endpoint.endpoint_url)
    target = new_index(client, "prune-one-shard")
    run_load(v1, client, target)
    removed = _files(v1) - _files(v2)  # the long path among them

    shard = Shard(1, SHARDS)
    report = run_load(v2, client, target, shard=shard)
    mine = {f for f in removed if shard.owns(f)}
    assert mine and len(report.plan["deleted"]) == len(mine)
    stored = set(snapshot(client, target))
    assert not {f for f in mine if vector_key(f, 0) in stored}
    # Documents other shards own stay until their shard runs.
    assert {f for f in removed - mine if vector_key(f, 0) in stored} == removed - mine


def _files(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*.md")}


def test_a_shard_that_owns_nothing_still_prunes(endpoint: LocalEndpoint, tmp_path: Path) -> None:
    """A source with documents, none of them this shard's, is not an empty folder: the shard prunes its
    own documents that left (an unsharded run would refuse to prune from a folder that yields nothing)."""
    client = client_for(endpoint.endpoint_url)
    target = new_index(client, "owns-nothing")
    corpus = tmp_path / "two"
    corpus.mkdir()
    (corpus / "a.md").write_text("# A\n\nFirst policy about baggage allowances.\n")
    (corpus / "b.md").write_text("# B\n\nSecond policy about pets in the cabin.\n")
    run_load(corpus, client, target)
    count = 8
    owner_a = next(i for i in range(count) if Shard(i, count).owns("a.md"))
    owner_b = next(i for i in range(count) if Shard(i, count).owns("b.md"))
    assert owner_a != owner_b, "pick names that hash to different shards"
    (corpus / "a.md").unlink()
    report = run_load(corpus, client, target, shard=Shard(owner_a, count))
    assert report.documents_read == 0 and report.plan["deleted"] == [("a.md", 1)] and not report.warnings
    assert _sources(snapshot(client, target)) == {"b.md"}


def _shard_process(endpoint_url: str, target: Any, corpus: Path, shard: str) -> Any:
    return loader_process(["load", str(corpus), *target_args(endpoint_url, target), *CLI_LOAD_FLAGS, "--shard", shard])


def test_n_loader_processes_at_once_equal_one_process(endpoint: LocalEndpoint, corpora: tuple[Path, Path]) -> None:
    v1, v2 = corpora
    client = client_for(endpoint.endpoint_url)
    single, sharded = new_index(client, "one-process"), new_index(client, "n-processes")
    for corpus in (v1, v2):
        one = loader_process(["load", str(corpus), *target_args(endpoint.endpoint_url, single), *CLI_LOAD_FLAGS])
        shards = [_shard_process(endpoint.endpoint_url, sharded, corpus, f"{i}/3") for i in range(3)]
        summaries = []
        for process in (one, *shards):
            out, err = process.communicate(timeout=120)
            assert process.returncode == 0, err
            summaries.append(json.loads(out))
        assert [s["shard"] for s in summaries] == [None, "0/3", "1/3", "2/3"]
        assert sum(s["documents"]["read"] for s in summaries[1:]) == summaries[0]["documents"]["read"]
    final = snapshot(client, sharded)
    assert final == snapshot(client, single)
    check_structure(final)


def test_a_killed_shard_converges_when_run_again(endpoint: LocalEndpoint, corpora: tuple[Path, Path]) -> None:
    v1, _ = corpora
    client = client_for(endpoint.endpoint_url)
    clean, target = new_index(client, "clean-load"), new_index(client, "killed-shard")
    run_load(v1, client, clean)
    for i in (0, 2):
        run_load(v1, client, target, shard=Shard(i, 3))

    process = _shard_process(endpoint.endpoint_url, target, v1, "1/3")

    def kill() -> None:
        os.kill(process.pid, signal.SIGKILL)

    with CallHook(endpoint.service, "PutVectors", 2, "after", kill):
        process.communicate(timeout=120)
    assert process.returncode == -signal.SIGKILL
    partial = snapshot(client, target)
    assert len(set(snapshot(client, clean)) - set(partial)) > 0  # the kill left shard 1 incomplete

    rerun = _shard_process(endpoint.endpoint_url, target, v1, "1/3")
    out, err = rerun.communicate(timeout=120)
    assert rerun.returncode == 0, err
    summary = json.loads(out)
    assert summary["shard"] == "1/3" and summary["chunks"]["written"] > 0
    final = snapshot(client, target)
    assert hashes(final) == hashes(snapshot(client, clean)) and final == snapshot(client, clean)


def test_an_s3_prefix_loads_in_shards_like_the_same_folder(
    endpoint: LocalEndpoint, tmp_path: Path, s3_server: str, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    """The CLI, end to end: ``load s3://bucket/prefix/ --shard I/N`` for every shard, then an edit in S3."""
    from loader import cli
    from tests.reliability.support import embedder

    monkeypatch.setattr(cli, "make_embedder", lambda *a, **k: embedder())
    v1, v2 = write_corpus(tmp_path / "v1", 1, docs=12), write_corpus(tmp_path / "v2", 2, docs=12)
    client = client_for(endpoint.endpoint_url)
    folder_target, s3_target = new_index(client, "from-folder"), new_index(client, "from-s3")

    def cli_load(source: str, target: Any, *extra: str) -> dict[str, Any]:
        code = cli.main(
            [
                "load",
                source,
                *target_args(endpoint.endpoint_url, target),
                *CLI_LOAD_FLAGS,
                "--s3-endpoint-url",
                s3_server,
                *extra,
            ]
        )
        out, err = capsys.readouterr()
        assert code == 0, err
        return dict(json.loads(out))

    for version, corpus in (("v1", v1), ("v2", v2)):
        upload_folder(s3_server, corpus, "corpus-docs", f"{version}/")
        cli_load(str(corpus), folder_target)
        summaries = [cli_load(f"s3://corpus-docs/{version}", s3_target, "--shard", f"{i}/3") for i in range(3)]
        assert [s["root"] for s in summaries] == [f"s3://corpus-docs/{version}/"] * 3
        assert snapshot(client, s3_target) == snapshot(client, folder_target)
    again = cli_load("s3://corpus-docs/v2/", s3_target)
    assert again["chunks"]["embedded"] == again["chunks"]["written"] == again["chunks"]["deleted"] == 0

    code = cli.main(
        [
            "load",
            "s3://no-such-bucket/docs/",
            *target_args(endpoint.endpoint_url, s3_target),
            "--s3-endpoint-url",
            s3_server,
            "--quiet",
        ]
    )
    err = capsys.readouterr().err
    assert code == 1 and "NoSuchBucket" in err and len(err.strip().splitlines()) == 1
    assert snapshot(client, s3_target) == snapshot(client, folder_target)  # nothing deleted
