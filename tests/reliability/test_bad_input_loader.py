"""Issue #6, bad input to the loader: each case is a clear error or a reasoned skip (or, for odd but valid
text, a correct load), and what is already stored is never damaged: after each case the vectors of the
documents that were there before are byte-for-byte what they were.

Every test loads a small good corpus first, snapshots the index, adds the bad input and loads again.
"""

from __future__ import annotations

import builtins
import json
import os
import time
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from loader import cli, documents
from loader.documents import DocumentError
from loader.errors import IndexMismatchError, WriteError
from loader.keys import MAX_KEY_BYTES
from loader.metadata import MAX_FILTERABLE_BYTES, MAX_TOTAL_BYTES
from loader.outputs import Target
from loader.report import LoadReport
from loader.sync import LoadSettings, load
from s3vectors_local import LocalEndpoint
from tests.loader.fakes import FakeEmbedder
from tests.reliability.support import DIM, FAST, Snapshot, client_for, new_index, record, snapshot, write_corpus

MAX_TOKENS = 512  # long chunks: the 10 MB and 1 MB cases stay a few thousand vectors


def _embedder() -> FakeEmbedder:
    return FakeEmbedder(dimension=DIM, max_tokens=MAX_TOKENS)


@dataclass
class Loaded:
    ep: LocalEndpoint
    client: Any
    target: Target
    corpus: Path
    before: Snapshot

    def load(self, **settings: Any) -> LoadReport:
        return load(
            self.corpus,
            client=self.client,
            target=self.target,
            embedder=settings.pop("embedder", None) or _embedder(),
            settings=LoadSettings(**settings),
            policy=FAST,
        )

    def assert_untouched(self) -> Snapshot:
        """Every vector stored before is still there, unchanged; returns the current snapshot."""
        now = snapshot(self.client, self.target)
        changed = [k for k in self.before if now.get(k) != self.before[k]]
        assert changed == [], f"{len(changed)} stored vector(s) changed or vanished"
        return now

    def assert_unchanged(self) -> None:
        assert self.assert_untouched().keys() == self.before.keys(), "the index gained vectors"

    def new_keys(self) -> dict[str, dict[str, Any]]:
        now = self.assert_untouched()
        return {k: json.loads(md) for k, (_, md) in now.items() if k not in self.before}


@pytest.fixture
def loaded(tmp_path: Path) -> Iterator[Loaded]:
    corpus = write_corpus(tmp_path / "corpus", 1, docs=5)
    with LocalEndpoint(tmp_path / "ep") as ep:
        client = client_for(ep.endpoint_url)
        target = new_index(client, "bad-input")
        state = Loaded(ep, client, target, corpus, {})
        first = state.load()
        assert first.count("new") == 5
        state.before = snapshot(client, target)
        yield state


def _reasons(report: LoadReport) -> dict[str, str]:
    return dict(report.skipped)


def _tried(case: str, outcome: str) -> None:
    record("bad-input", case=case, outcome=outcome)


def test_binary_files_are_skipped(loaded: Loaded) -> None:
    c = loaded.corpus
    (c / "nul.md").write_bytes(b"# Title\n\x00\x01\x02" + os.urandom(2000))
    (c / "noise.txt").write_bytes(bytes(range(1, 9)) * 400)  # no NUL, all control characters
    (c / "photo.png").write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(500))
    (c / "fake.pdf").write_bytes(b"%PDF-1.4 this is not really a pdf")
    (c / "utf16-garbage.txt").write_bytes(b"\xff\xfe" + os.urandom(301))  # a UTF-16 BOM, odd length
    report = loaded.load()
    reasons = _reasons(report)
    assert reasons["nul.md"] == "binary" and reasons["noise.txt"] == "binary"
    assert reasons["photo.png"] == "unsupported type"
    assert reasons["fake.pdf"].startswith("invalid PDF")
    assert reasons["utf16-garbage.txt"] in ("binary", "empty") or reasons["utf16-garbage.txt"].startswith("unreadable")
    loaded.assert_unchanged()
    with pytest.raises(DocumentError):
        loaded.load(strict=True)  # --strict: the first skip is an error
    loaded.assert_unchanged()
    _tried(
        "binary files (NUL bytes, control characters, PNG, fake PDF, broken UTF-16)",
        "skipped: binary / unsupported type / invalid PDF; --strict: DocumentError; index unchanged",
    )


def test_invalid_utf8_is_read_as_cp1252(loaded: Loaded) -> None:
    (loaded.corpus / "latin.txt").write_bytes(b"Caf\xe9 policy\n\nA cr\xe8me br\xfbl\xe9e costs 5\x80 on board.\n")
    report = loaded.load()
    assert report.count("new") == 1 and not report.skipped
    texts = [md["text"] for md in loaded.new_keys().values()]
    assert any("crème brûlée costs 5€" in t for t in texts)
    assert loaded.load().count("unchanged") == 6  # stable: the same bytes decode the same way
    _tried("invalid UTF-8 (cp1252 bytes)", "read as cp1252 (documented fallback), loaded; others untouched")


def test_empty_files_are_skipped(loaded: Loaded) -> None:
    c = loaded.corpus
    (c / "empty.md").write_bytes(b"")
    (c / "blank.txt").write_text(" \n\t\n\n")
    (c / "only-front-matter.md").write_text("---\ntitle: Nothing here\n---\n")
    report = loaded.load()
    reasons = _reasons(report)
    assert reasons["empty.md"] == "empty" and reasons["blank.txt"] == "empty"
    assert reasons["only-front-matter.md"].startswith("empty")
    loaded.assert_unchanged()
    _tried("empty files (0 bytes, whitespace, front matter only)", "skipped: empty; index unchanged")


def test_a_loaded_document_emptied_on_disk_loses_its_vectors(loaded: Loaded) -> None:
    """Emptying a file removes its text, as one left with headings only does: its vectors go, with or
    without --no-prune (the document is still there, so this is not pruning); an unreadable file's stay."""
    files = sorted(loaded.corpus.rglob("*.md"))
    emptied, headings_only = files[0], files[1]
    sources = [p.relative_to(loaded.corpus).as_posix() for p in (emptied, headings_only)]
    stored = {s: [k for k in loaded.before if k.startswith(s + "#")] for s in sources}
    emptied.write_bytes(b"")
    headings_only.write_text("# Only a title\n")
    report = loaded.load(prune=False)
    assert _reasons(report)[sources[0]] == "empty"
    assert sorted(report.plan["changed"]) == sorted((s, 0) for s in sources) and report.plan["deleted"] == []
    assert report.vectors_deleted == sum(len(k) for k in stored.values())
    assert not any("no longer in" in w for w in report.warnings)
    now = snapshot(loaded.client, loaded.target)
    assert set(now) == set(loaded.before) - {k for keys in stored.values() for k in keys}
    assert all(now[k] == loaded.before[k] for k in now)


def _words(n_bytes: int, *, newlines: bool) -> str:
    vocab = [f"term{i}" for i in range(3000)]
    out, size, i = [], 0, 0
    while size < n_bytes:
        w = vocab[(i * 7919) % len(vocab)]
        sep = ".\n\n" if newlines and i % 150 == 149 else " "
        out.append(w + sep)
        size += len(w) + len(sep)
        i += 1
    return "".join(out)[:n_bytes]


def test_a_10_mb_file_loads_and_a_51_mb_file_is_skipped(loaded: Loaded) -> None:
    c = loaded.corpus
    (c / "big.txt").write_text(_words(10 * 1024 * 1024, newlines=True))
    with open(c / "huge.txt", "wb") as f:
        f.truncate(51 * 1024 * 1024)  # sparse: over the 50 MB limit without writing it
    started = time.monotonic()
    report = loaded.load()
    seconds = time.monotonic() - started
    assert _reasons(report)["huge.txt"].startswith("too large")
    assert [s for s, _ in report.plan["new"]] == ["big.txt"]
    new = loaded.new_keys()
    assert len(new) == report.plan["new"][0][1] > 1000
    assert all(len(json.dumps(md, ensure_ascii=False).encode()) <= MAX_TOTAL_BYTES for md in new.values())
    assert seconds < 60
    _tried("10 MB text file", f"loaded: {len(new)} chunks in {seconds:.1f} s; others untouched")
    _tried("51 MB file (over the loader's 50 MB limit)", "skipped: too large (> 50 MB)")


def test_a_single_1_mb_line(loaded: Loaded) -> None:
    c = loaded.corpus
    (c / "one-line.txt").write_text(_words(1024 * 1024, newlines=False))
    (c / "one-token.txt").write_text("x" * (1024 * 1024))  # not even a space to cut at
    report = loaded.load()
    assert sorted(s for s, _ in report.plan["new"]) == ["one-line.txt", "one-token.txt"]
    new = loaded.new_keys()
    embedder = _embedder()
    for md in new.values():
        assert len(json.dumps(md, ensure_ascii=False).encode()) <= MAX_TOTAL_BYTES
        if md["source"] == "one-line.txt":
            assert embedder.count_tokens(md["text"]) <= MAX_TOKENS
    _tried(
        "a single 1 MB line (words; and one 1 MB token)",
        f"loaded in {len(new)} chunks within the model's token limit and the 40 KB metadata limit; others untouched",
    )


def _long_dir(root: Path, total_bytes: int) -> Path:
    path, size, i = root, 0, 0
    while size < total_bytes:
        part = "é" * 100 + str(i)  # 200+ bytes, under NAME_MAX (255 bytes)
        path, size, i = path / part, size + len(part.encode()) + 1, i + 1
    path.mkdir(parents=True)
    return path


def test_a_path_whose_key_would_exceed_1024_bytes(loaded: Loaded) -> None:
    deep = _long_dir(loaded.corpus, 2400)
    (deep / "deep.md").write_text("# Deep\n\nA policy stored very deep in the tree, about baggage.\n")
    report = loaded.load()
    assert report.count("new") == 1
    new = loaded.new_keys()
    (key,) = new
    assert len(key.encode()) <= MAX_KEY_BYTES and "~" in key  # hashed, not cut into another path's key
    md = new[key]
    filterable = {k: v for k, v in md.items() if k != "text"}
    assert len(json.dumps(filterable, ensure_ascii=False, separators=(",", ":")).encode()) <= MAX_FILTERABLE_BYTES
    assert any("source path cut" in w for w in report.warnings)
    again = loaded.load()
    assert again.count("unchanged") == 6 and again.vectors_written == again.vectors_deleted == 0
    loaded.assert_untouched()
    _tried(
        "a 2,400-byte path (key over 1,024 bytes)",
        "loaded: key hashed to <= 1,024 bytes, source metadata cut with a warning; re-run writes and deletes nothing",
    )


def test_a_long_path_document_is_tracked_although_its_source_metadata_was_cut(loaded: Loaded) -> None:
    """The stored ``source`` of a ~2,400-byte path is cut to fit 2 KB; its keys carry the full path's
    hash, which ties the vectors back to the file: a re-run neither reports it deleted nor re-writes
    it, an edit replaces it, ``delete --source`` finds it, and removing the file prunes it."""
    from loader.sync import delete_source

    deep = _long_dir(loaded.corpus, 2400)
    document = deep / "deep.md"
    document.write_text("# Deep\n\nA policy stored very deep in the tree.\n")
    loaded.load()
    again = loaded.load()
    assert again.plan["deleted"] == [] and again.count("unchanged") == 6
    document.write_text("# Deep\n\nAn edited policy.\n\n" + "More words about the policy. " * 300)
    edited = loaded.load()
    assert edited.count("changed") == 1 and edited.plan["deleted"] == []
    chunks = edited.plan["changed"][0][1]
    document.write_text("# Deep\n\nShort again.\n")
    shorter = loaded.load()
    assert shorter.vectors_deleted == chunks - 1  # the surplus chunks of the cut-source document
    source = document.relative_to(loaded.corpus).as_posix()
    assert delete_source(loaded.client, loaded.target, source) == 1
    loaded.load()
    document.unlink()
    gone = loaded.load()
    assert [n for _, n in gone.plan["deleted"]] == [1] and gone.vectors_deleted == 1
    loaded.assert_untouched()


def test_two_long_paths_whose_stored_sources_were_cut_alike_stay_apart(loaded: Loaded) -> None:
    """a.md and b.md deep in one folder: both stored sources are cut to the same prefix, but each
    document is tracked by the hash in its keys, so nothing done to one touches the other."""
    from loader.keys import vector_key
    from loader.sync import delete_source

    deep = _long_dir(loaded.corpus, 2200)
    text = "# Deep\n\nA policy stored very deep in the tree, about refunds and other things.\n"
    for name in ("a.md", "b.md"):
        (deep / name).write_text(text)
    a, b = ((deep / n).relative_to(loaded.corpus).as_posix() for n in ("a.md", "b.md"))
    loaded.load()

    def present() -> set[str]:
        keys = set(snapshot(loaded.client, loaded.target))
        return {n for n, s in (("a", a), ("b", b)) if vector_key(s, 0) in keys}

    assert present() == {"a", "b"}
    (deep / "b.md").unlink()
    kept = loaded.load(prune=False)
    assert present() == {"a", "b"} and kept.vectors_deleted == 0
    os.symlink(deep / "missing.md", deep / "b.md")  # b unreadable (a broken link): its vectors stay
    assert loaded.load().vectors_deleted == 0 and present() == {"a", "b"}
    (deep / "b.md").unlink()
    dry = loaded.load(dry_run=True)
    assert len(dry.plan["deleted"]) == 1 and dry.vectors_stale == 1  # the plan shows what a run deletes
    assert delete_source(loaded.client, loaded.target, a) == 1 and present() == {"b"}
    loaded.load()
    assert present() == {"a"}
    loaded.assert_untouched()


def test_unicode_file_names(loaded: Loaded) -> None:
    c = loaded.corpus
    names = {
        unicodedata.normalize("NFD", "café/crème.md"): "# Crème\n\nDessert policy on board.\n",
        "日本語/手荷物.md": "# 手荷物\n\n機内持ち込み手荷物は7kgまでです。\n",
        "emoji 🚀 launch.txt": "Launch policy\n\nRockets are not allowed as checked baggage.\n",
        "עברית.md": "# מדיניות\n\nמזוודה אחת לנוסע.\n",  # noqa: RUF001 - right-to-left on purpose
        "Ελληνικά με κενά.md": "# Πολιτική\n\nΑποσκευές.\n",  # noqa: RUF001 - Greek on purpose
    }
    for name, text in names.items():
        (c / name).parent.mkdir(parents=True, exist_ok=True)
        (c / name).write_text(text, encoding="utf-8")
    # The same name in NFC and NFD (possible on Linux): one is read, the other skipped, never mixed up.
    (c / unicodedata.normalize("NFC", "résumé.md")).write_text("# One\n\nfirst\n")
    (c / unicodedata.normalize("NFD", "résumé.md")).write_text("# Two\n\nsecond\n")
    with open(os.path.join(os.fsencode(c), b"not-utf8-\xff.md"), "w") as f:
        f.write("# Bad name\n\ntext\n")
    report = loaded.load()
    new_sources = {s for s, _ in report.plan["new"]}
    expected = {unicodedata.normalize("NFC", n) for n in names} | {"résumé.md"}
    assert new_sources == expected
    reasons = _reasons(report)
    assert list(reasons.values()).count("duplicate path after Unicode normalization") == 1
    assert "file name is not valid UTF-8" in reasons.values()
    new = loaded.new_keys()
    assert {md["source"] for md in new.values()} == expected  # NFC in the index, whatever is on disk
    again = loaded.load()
    assert again.vectors_written == again.vectors_deleted == 0 and again.count("new") == 0
    _tried(
        "unicode file names (NFD, CJK, emoji, RTL, spaces; NFC/NFD twins; undecodable bytes)",
        "loaded with NFC sources; twin skipped as duplicate; undecodable name skipped; re-run no-op",
    )


def test_symlink_loops(loaded: Loaded) -> None:
    c = loaded.corpus
    (c / "loop").symlink_to(c, target_is_directory=True)
    (c / "section0" / "up").symlink_to(c / "section0", target_is_directory=True)
    (c / "broken.md").symlink_to(c / "does-not-exist.md")
    (c / "self.md").symlink_to(c / "self.md")  # a link to itself: ELOOP
    report = loaded.load()
    reasons = _reasons(report)
    assert reasons["loop"] == reasons["section0/up"] == "symlink loop"
    assert reasons["broken.md"] == "unreadable: broken symlink"
    assert reasons["self.md"].startswith("unreadable")
    loaded.assert_unchanged()
    _tried(
        "symlink loops (to the root, to a parent, to itself) and a broken link",
        "skipped: symlink loop / unreadable; the walk ends; index unchanged",
    )


def test_unreadable_files_and_folders(loaded: Loaded, monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests run as root, whom chmod 000 does not stop: the permission error is simulated where the loader
    meets it (open() of a file, os.scandir() of a folder)."""
    c = loaded.corpus
    (c / "secret.md").write_text("# Secret\n\nno access\n")
    (c / "locked").mkdir()
    (c / "locked" / "inside.md").write_text("# Inside\n\nno access\n")
    real_open, real_scandir = builtins.open, os.scandir

    def guarded_open(file: Any, *args: Any, **kwargs: Any) -> Any:
        if str(file).endswith("secret.md"):
            raise PermissionError(13, "Permission denied", str(file))
        return real_open(file, *args, **kwargs)

    def guarded_scandir(path: Any = ".") -> Any:
        if str(path).endswith("locked"):
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(builtins, "open", guarded_open)  # wherever the loader opens it (sync.py hashes first)
    monkeypatch.setattr(documents.os, "scandir", guarded_scandir)
    report = loaded.load()
    reasons = _reasons(report)
    assert reasons["secret.md"] == "unreadable: Permission denied"
    assert reasons["locked"] == "unreadable: Permission denied"
    loaded.assert_unchanged()
    assert loaded.load().count("deleted") == 0  # an unreadable file is not taken for a deleted one
    with pytest.raises(DocumentError):
        loaded.load(strict=True)
    loaded.assert_unchanged()
    _tried(
        "unreadable file and folder (EACCES simulated; tests run as root)",
        "skipped: unreadable: Permission denied; its stored vectors are not pruned; --strict: error",
    )


def test_an_unreadable_file_keeps_its_stored_vectors(loaded: Loaded, monkeypatch: pytest.MonkeyPatch) -> None:
    victim = "section0/doc00.md"
    real_open = builtins.open

    def guarded_open(file: Any, *args: Any, **kwargs: Any) -> Any:
        if str(file).endswith(victim):
            raise PermissionError(13, "Permission denied", str(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", guarded_open)
    report = loaded.load()
    assert _reasons(report)[victim].startswith("unreadable") and report.vectors_deleted == 0
    loaded.assert_unchanged()


class _NaNEmbedder(FakeEmbedder):
    def embed(self, texts: Any) -> Any:
        out = super().embed(texts)
        for i, text in enumerate(texts):
            if "POISON" in text:
                out[i, 0] = np.nan
        return out


def test_nan_in_a_vector_is_a_clear_error(loaded: Loaded) -> None:
    (loaded.corpus / "poison.md").write_text("# Poison\n\nPOISON makes the model return NaN.\n")
    with pytest.raises(WriteError) as e:
        loaded.load(embedder=_NaNEmbedder(dimension=DIM, max_tokens=MAX_TOKENS))
    assert "poison.md#0000" in str(e.value) and "NaN" in str(e.value)
    loaded.assert_unchanged()
    # And the endpoint refuses one directly, whole request, as AWS does.
    raw = loaded.ep.client(max_attempts=1, parameter_validation=False)
    with pytest.raises(raw.exceptions.ValidationException):
        raw.put_vectors(
            **loaded.target.index_ref(),
            vectors=[
                {"key": "ok", "data": {"float32": [0.5] * DIM}},
                {"key": "nan", "data": {"float32": [float("nan")] + [0.5] * (DIM - 1)}},
            ],
        )
    loaded.assert_unchanged()
    _tried(
        "NaN in a vector",
        f"loader: WriteError before sending ({str(e.value)[:80]}...); endpoint: 400 "
        "ValidationException for the whole request; index unchanged",
    )


def test_wrong_dimension_is_refused_before_any_write(loaded: Loaded) -> None:
    (loaded.corpus / "extra.md").write_text("# Extra\n\ntext\n")
    with pytest.raises(IndexMismatchError) as e:
        loaded.load(embedder=FakeEmbedder(dimension=DIM * 2, max_tokens=MAX_TOKENS))
    assert f"{DIM}-dimensional" in str(e.value)
    raw = loaded.ep.client(max_attempts=1)
    with pytest.raises(raw.exceptions.ValidationException):
        raw.put_vectors(**loaded.target.index_ref(), vectors=[{"key": "short", "data": {"float32": [1.0, 2.0]}}])
    loaded.assert_unchanged()
    _tried("wrong dimension", "loader: IndexMismatchError before any request; endpoint: 400; index unchanged")


def test_oversize_metadata_is_trimmed_not_fatal(loaded: Loaded) -> None:
    fields = "".join(f"field{i}: value {i}\n" for i in range(60))  # more than 50 keys
    (loaded.corpus / "many.md").write_text(f"---\n{fields}---\n# Many\n\nBody.\n")
    big = "x" * 50_000  # over the 2 KB filterable and the 40 KB total limits
    (loaded.corpus / "huge.md").write_text(f"---\nowner: ops\nhuge: {big}\nnested:\n  a: 1\n---\n# Huge\n\nBody.\n")
    report = loaded.load()
    assert report.count("new") == 2
    assert any("at most 50 metadata keys" in w for w in report.warnings)
    assert any("'huge' dropped (filterable metadata is limited to 2 KB" in w for w in report.warnings)
    for md in loaded.new_keys().values():
        assert len(md) <= 50
        assert len(json.dumps(md, ensure_ascii=False, separators=(",", ":")).encode()) <= MAX_TOTAL_BYTES
    raw = loaded.ep.client(max_attempts=1)
    for metadata in ({"f": "y" * 3000}, {f"k{i}": i for i in range(51)}, {"text": "z" * 41_000}):
        with pytest.raises(raw.exceptions.ValidationException):  # filterable > 2 KB, > 50 keys, > 40 KB
            raw.put_vectors(
                **loaded.target.index_ref(),
                vectors=[{"key": "m", "data": {"float32": [0.5] * DIM}, "metadata": metadata}],
            )
    loaded.assert_untouched()
    _tried(
        "oversize front matter (60 fields; a 50 KB value; a nested mapping)",
        "loaded with warnings: fields dropped to fit 50 keys and 2 KB filterable (nested mappings are skipped "
        "by design); endpoint refuses > 2 KB filterable, > 50 keys, > 40 KB with 400",
    )


def _cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    monkeypatch.setattr(cli, "make_embedder", lambda *a, **k: _embedder())
    code = cli.main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def test_invalid_filters_are_usage_errors(
    loaded: Loaded, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    where = [
        "--endpoint-url",
        loaded.ep.endpoint_url,
        "--bucket",
        loaded.target.bucket,
        "--index",
        loaded.target.index,
        "--region",
        "us-east-1",
    ]
    cases = {
        "{bad json": "not valid JSON",
        '{"category": {"$regex": "x"}}': "unknown operator",
        '{"$eq": 1}': "must be inside a field",
        '{"chunk": {"$gt": "three"}}': "compares numbers only",
        '{"text": "refund"}': "non-filterable",
        "[1, 2]": "non-empty JSON object",
        '{"a": {"$in": []}}': "non-empty array",
    }
    for text, message in cases.items():
        code, output = _cli(monkeypatch, capsys, *where, "query", "refund", "--filter", text)
        assert code == 2 and message in output, (text, output)
    raw = loaded.ep.client(max_attempts=1)
    bad: dict[str, Any]
    for bad in ({"$and": []}, {"chunk": {"$gt": "x"}}, {"a": {"$nope": 1}}, {"text": "x"}, {"a": {"$in": "x"}}):
        with pytest.raises(raw.exceptions.ValidationException):
            raw.query_vectors(**loaded.target.index_ref(), topK=3, queryVector={"float32": [0.5] * DIM}, filter=bad)
    loaded.assert_unchanged()
    _tried(
        f"invalid filters ({len(cases)} on the CLI, 5 sent to the endpoint)",
        "CLI: exit 2 with the reason, before any request; endpoint: 400 ValidationException",
    )


def test_missing_or_truncated_outputs_file(
    loaded: Loaded, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    good = {
        "S3VectorsDocSearch": {
            "VectorBucketName": loaded.target.bucket,
            "IndexName": loaded.target.index,
            "Region": "us-east-1",
        }
    }
    text = json.dumps(good)
    files = {
        "missing": (None, "not found"),
        "truncated": (text[: len(text) // 2], "not valid JSON (truncated?)"),
        "empty": ("", "is empty"),
        "wrong shape": ('["S3VectorsDocSearch"]', "not shaped like"),
        "no index output": (json.dumps({"S3VectorsDocSearch": {"Region": "us-east-1"}}), "lacks the output"),
        "not UTF-8": (b"\xff\xfe{", "not UTF-8"),
    }
    for name, (content, message) in files.items():
        path = tmp_path / f"{name.replace(' ', '-')}.json"
        if isinstance(content, bytes):
            path.write_bytes(content)
        elif content is not None:
            path.write_text(content)
        for command in (["status"], ["load", str(loaded.corpus), "--quiet"]):
            code, output = _cli(
                monkeypatch, capsys, "--outputs-file", str(path), "--endpoint-url", loaded.ep.endpoint_url, *command
            )
            assert code == 1 and message in output and "Traceback" not in output, (name, command, output)
    loaded.assert_unchanged()
    _tried(f"outputs file: {', '.join(files)}", "exit 1 with what is wrong and how to fix it; nothing written")
