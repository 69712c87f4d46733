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

    # One write in flight, killed just before its second PutVectors runs: the first is stored, the rest lost.
    process = loader_process(
        [
            "load",
            str(v1),
            *target_args(endpoint.endpoint_url, target),
            *CLI_LOAD_FLAGS,
            "--shard",
            "1/3",
            "--max-in-flight",
            "1",
        ]
    )

    def kill() -> None:
        os.kill(process.pid, signal.SIGKILL)

    with CallHook(endpoint.service, "PutVectors", 2, "before", kill):
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


def test_an_unreadable_folder_keeps_its_documents_in_every_shard(
    endpoint: LocalEndpoint, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A folder that cannot be listed (EACCES, a stale NFS handle) is skipped; the documents under it are
    any shard's, and no shard (nor an unsharded run) prunes them."""
    client = client_for(endpoint.endpoint_url)
    corpus = write_corpus(tmp_path / "c", 1, docs=10)
    real_scandir = os.scandir

    def scandir(path: Any) -> Any:
        if str(path).endswith("section1"):
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    for label, shards in (("unsharded", [Shard(0, 1)]), ("sharded", [Shard(i, 3) for i in range(3)])):
        target = new_index(client, f"unreadable-{label}")
        run_load(corpus, client, target)
        before = snapshot(client, target)
        monkeypatch.setattr(os, "scandir", scandir)
        reports = [run_load(corpus, client, target, shard=s) for s in shards]
        monkeypatch.setattr(os, "scandir", real_scandir)
        assert snapshot(client, target) == before, label
        assert sum(1 for r in reports for path, _ in r.skipped if path == "section1") == 1  # reported once
        assert all(r.vectors_deleted == 0 for r in reports)


def test_a_source_that_lists_no_document_is_not_pruned_sharded_or_not(endpoint: LocalEndpoint, tmp_path: Path) -> None:
    client = client_for(endpoint.endpoint_url)
    corpus = write_corpus(tmp_path / "c", 1, docs=6)
    for label, shards in (("unsharded", [Shard(0, 1)]), ("sharded", [Shard(i, 3) for i in range(3)])):
        target = new_index(client, f"nothing-listed-{label}")
        run_load(corpus, client, target)
        before = snapshot(client, target)
        only_other = tmp_path / f"other-{label}"
        only_other.mkdir()
        (only_other / "README.rst").write_text("not a supported document type\n")
        reports = [run_load(only_other, client, target, shard=s) for s in shards]
        assert snapshot(client, target) == before, label
        assert any("not pruning" in w for r in reports for w in r.warnings)


def test_s3_sources_are_nfc_like_folders_and_mistakes_are_errors(
    endpoint: LocalEndpoint, tmp_path: Path, s3_server: str, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    """An NFD key (uploaded from macOS) loads as the NFC path a folder gives; a prefix that lists nothing,
    or one whose every object is denied, is an error (exit 1) that deletes nothing."""
    import unicodedata

    import boto3

    from loader import cli
    from tests.reliability.support import embedder

    monkeypatch.setattr(cli, "make_embedder", lambda *a, **k: embedder())
    corpus = tmp_path / "c"
    (corpus / "café").mkdir(parents=True)
    (corpus / "café" / "menu.md").write_text("# Menu\n\nCoffee and cake are served on board.\n")
    upload_folder(s3_server, corpus, "nfd-docs", "")
    s3 = boto3.client("s3", endpoint_url=s3_server, region_name="us-east-1")
    s3.delete_object(Bucket="nfd-docs", Key="café/menu.md")
    nfd = unicodedata.normalize("NFD", "café/menu.md")
    s3.put_object(Bucket="nfd-docs", Key=nfd, Body=(corpus / "café" / "menu.md").read_bytes())
    client = client_for(endpoint.endpoint_url)
    folder_target, s3_target = new_index(client, "nfc-folder"), new_index(client, "nfc-s3")

    def cli_load(source: str, target: Any) -> tuple[int, str]:
        code = cli.main(
            [
                "load",
                source,
                *target_args(endpoint.endpoint_url, target),
                *CLI_LOAD_FLAGS,
                "--s3-endpoint-url",
                s3_server,
            ]
        )
        return code, capsys.readouterr().err

    assert cli_load(str(corpus), folder_target)[0] == 0
    assert cli_load("s3://nfd-docs/", s3_target)[0] == 0
    assert snapshot(client, s3_target) == snapshot(client, folder_target)

    code, err = cli_load("s3://nfd-docs/menu.md", s3_target)  # a key given for a prefix
    assert code == 1 and "lists no object" in err
    denied_key = "secret/policy.md"
    s3.put_object(Bucket="nfd-docs", Key=denied_key, Body=b"# Secret\n\nDenied text.\n")
    from loader import s3_source

    real_read = s3_source._read_object

    def deny(location: Any, s3_client: Any, key: str, source: str, *args: Any) -> Any:
        from loader.records import Skipped

        return (
            Skipped(source, "unreadable: AccessDenied")
            if key.startswith("secret/")
            else real_read(location, s3_client, key, source, *args)
        )

    monkeypatch.setattr(s3_source, "_read_object", deny)
    code, err = cli_load("s3://nfd-docs/secret/", s3_target)
    assert code == 1 and "denied" in err and "s3:GetObject" in err
    assert snapshot(client, s3_target) == snapshot(client, folder_target)
