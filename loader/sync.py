"""Make the index mirror a folder: embed and write what changed, delete what is stale.

The state lives in the index itself (``loader.index.scan_index``), so a fresh machine, a CI runner or
a colleague syncs correctly without any local state file. Each vector carries its document's
``content_hash``: a hash of the document's bytes *and* of everything that shapes its vectors (model,
dimension, chunk size and overlap, chunker version, metadata layout). A document is unchanged only if
every key 0..n-1 is present with that hash and chunk count n; then it is neither re-embedded nor
re-written. Anything else (new, edited, half-written by an interrupted run, other settings) is
re-chunked, re-embedded and overwritten; its keys past the new chunk count are deleted.

Order makes re-runs complete an interrupted run: all new/changed chunks are written first, stale keys
are deleted only after every write succeeded. A run stopped during the writes leaves documents with
mixed hashes (redone next time); one stopped during the deletes leaves stale keys that the next run
computes again.

Pipeline (``loader.pipeline``): a reader thread reads, hashes, classifies and chunks documents ahead
of the embedder; the calling thread embeds the longest pending chunks in batches of ``batch_size``
(similar lengths, little padding); a writer thread pool sends PutVectors while the next batch is
embedded. The model is needed only if something must be embedded: an embedder that loads lazily
(``loader.lazy``) is asked to start loading when the first new or changed document is found, so a
run over an unchanged corpus never loads it.

Sources: a local folder, or an S3 prefix (``s3://bucket/prefix/``, ``loader.s3_source``) streamed
object by object. Sharding (``--shard I/N``, ``loader.sharding``): a run reads, writes and prunes
only the documents its shard owns, and keeps only their vectors in its sync state, so N runs of the
N shards, in any order, on any machines, leave the index exactly as one unsharded run would.
"""

from __future__ import annotations

import hashlib
import json
import queue
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loader.documents import EMPTY
from loader.errors import LoaderError
from loader.index import IndexInfo, IndexState, check_index, describe_index, document_id, scan_index
from loader.keys import normalize_source, split_key, vector_key
from loader.metadata import build_metadata
from loader.outputs import Target
from loader.pipeline import DONE, ChunkPool, DocWork, Reader, StageTimes, chunk_length
from loader.records import Chunk, Document, Embedder, Skipped
from loader.report import LoadReport, Progress
from loader.retry import DEFAULT_POLICY, RateLimiter, RetryPolicy, RetryStats
from loader.sharding import ALL, Shard
from loader.writer import VectorRecord, VectorWriter

# Bump when the stored metadata layout changes: every document then counts as changed once.
METADATA_SCHEMA = 1

ReadDocuments = Callable[..., Iterable[Document | Skipped]]
ChunkDocument = Callable[..., list[Chunk]]


@dataclass(frozen=True)
class LoadSettings:
    chunk_tokens: int | None = None  # None: the model's own limit (embedder.max_tokens)
    overlap_tokens: int = 32
    batch_size: int = 64  # chunks per embed() call
    sort_window: int = 1024  # pending chunks the embedder picks its batches from, longest first
    max_in_flight: int = 8  # PutVectors/DeleteVectors requests in flight
    prune: bool = True  # delete documents that left the folder
    prune_explicit: bool = False  # --prune given: may prune even when the folder yields no document
    strict: bool = False  # an unreadable document fails the run instead of being skipped
    dry_run: bool = False
    list_segments: int = 8  # ListVectors segments listed in parallel (at most 16)


def model_name(embedder: Embedder) -> str:
    return str(getattr(embedder, "model_name", None) or type(embedder).__name__)


def chunker_version() -> str:
    """The chunker's version (changing it must rewrite documents)."""
    from loader.records import CHUNKING_VERSION

    return CHUNKING_VERSION


def settings_fingerprint(embedder: Embedder, settings: LoadSettings) -> str:
    """Everything besides the document bytes that changes the stored vectors or metadata."""
    return json.dumps(
        {
            "model": model_name(embedder),
            "dimension": embedder.dimension,
            # The chunker's budget: --chunk-tokens, capped at what the model reads without truncation.
            "max_tokens": min(settings.chunk_tokens or embedder.max_tokens, embedder.max_tokens),
            "overlap_tokens": settings.overlap_tokens,
            "chunker": chunker_version(),
            "metadata_schema": METADATA_SCHEMA,
        },
        sort_keys=True,
    )


def stored_hash(document_hash: str, fingerprint: str) -> str:
    """The ``content_hash`` stored on each vector: document bytes + settings, 128 bits in hex."""
    return hashlib.sha256(f"{fingerprint}\n{document_hash}".encode()).hexdigest()[:32]


def classify(source: str, content_hash: str, state: IndexState) -> tuple[str, int]:
    """("new" | "changed" | "unchanged", chunk count if unchanged else 0)."""
    first = state.by_key.get(vector_key(source, 0))
    if first is None and not state.keys_of(source):
        return "new", 0
    if first is None or first.content_hash != content_hash or not first.chunks:
        return "changed", 0
    n = first.chunks
    for ordinal in range(n):
        stored = state.by_key.get(vector_key(source, ordinal))
        if stored is None or stored.content_hash != content_hash or stored.chunks != n or stored.chunk != ordinal:
            return "changed", 0  # e.g. half-written by an interrupted run
    return "unchanged", n


class CurrentKeys:
    """The keys current after this run (``vector_key(source, i)`` for i < the document's chunk count),
    kept as one count per document rather than one string per chunk: a load's memory must not grow with
    the corpus (~100 bytes a key, 10 MB per 100,000 chunks)."""

    def __init__(self) -> None:
        self._counts: dict[str, int] = {}
        self._hashed: set[str] = set()  # keys of long paths (a hash in the key): not reversible

    def add(self, source: str, count: int) -> None:
        self._counts[source] = max(count, self._counts.get(source, 0))
        if count and split_key(vector_key(source, 0)) != (source, 0):
            self._hashed.update(vector_key(source, i) for i in range(count))

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, str):
            return False
        split = split_key(key)
        if split is not None and split[1] < self._counts.get(split[0], 0):
            return True
        return key in self._hashed


def _relative(path: str, root: Path) -> str:
    candidate = Path(path)
    if candidate.is_absolute():
        try:
            candidate = candidate.resolve().relative_to(root.resolve())
        except ValueError:
            return normalize_source(path)
    return normalize_source(candidate.as_posix())


def _chunk_document(document: Document, embedder: Embedder, **options: Any) -> list[Chunk]:
    # Imported on the first document to chunk (the chunker brings numpy): a no-change run chunks none.
    from loader.chunking import chunk_document

    return chunk_document(document, embedder, **options)


def _default_readers() -> tuple[ReadDocuments, ChunkDocument]:
    from loader.documents import read_documents

    return read_documents, _chunk_document


class Listing:
    """What the source listed, for every shard alike, so that N shards decide as one run would.

    ``candidates``: entries that are documents to read (a supported type; in S3, not empty). None at all
    means a wrong path or a failed mount more likely than a corpus deleted on purpose: nothing is
    pruned then. ``protected``: paths skipped unread (an unreadable folder or file) in *other* shards'
    share; nothing under them is pruned, by any shard.
    """

    def __init__(self) -> None:
        self.listed = 0
        self.candidates = 0
        self.protected: set[str] = set()

    def saw(self, _source: str = "", candidate: bool = True) -> None:
        self.listed += 1
        self.candidates += bool(candidate)


def _owned(
    items: Iterable[Document | Skipped], shard: Shard, listing: Listing, source_of: Callable[[str], str]
) -> Iterator[Document | Skipped]:
    """A reader's documents, only ``shard``'s (for readers that do not shard by themselves)."""
    for item in items:
        listing.saw(candidate=isinstance(item, Document))
        source = normalize_source(item.source) if isinstance(item, Document) else source_of(item.path)
        if shard.owns(source):
            yield item
        elif isinstance(item, Skipped) and not item.reason.startswith(EMPTY):
            listing.protected.add(source)


def _hash_first(
    root: Path,
    *,
    strict: bool,
    unchanged: Callable[[str, str], bool],
    shard: Shard = ALL,
    listing: Listing | None = None,
) -> Iterable[Document | Skipped]:
    """``loader.documents.read_documents``, except that a file whose bytes hash to what the index holds
    is not parsed: its text is not needed (nothing of it is embedded or written), and extraction
    (HTML, PDF, and importing their parsers) is most of a no-change run's reading time.

    ``unchanged(source, sha256 of the bytes)`` decides. The same files, in the same order, with the
    same sources and hashes as ``read_documents``: the listing and the parsing are ``loader.documents``'
    own, and each file is read once. Files of other shards are listed (counted in ``listing``) but not read.
    """
    from loader import documents

    listing = listing if listing is not None else Listing()
    max_size = documents.DEFAULT_MAX_FILE_SIZE
    for entry in documents._list_tree(root):
        source, reason = entry.source, entry.reason
        listing.saw(candidate=reason is None)
        if not shard.owns(source):
            if reason is not None:  # e.g. an unreadable folder: its documents may be any shard's
                listing.protected.add(source)
            continue
        result: Document | Skipped
        if reason is None and entry.path is not None:
            try:
                with open(entry.path, "rb") as file:
                    data = file.read(max_size + 1)
            except OSError as error:
                result = Skipped(source, documents._unreadable(error))
            else:
                same = documents.unparsed_if_unchanged(source, data, max_size, unchanged)
                if same is not None:
                    yield same
                    continue
                result = documents.document_from_bytes(source, data, max_file_size=max_size)
        else:
            result = Skipped(source, reason or "unreadable")
        if strict and isinstance(result, Skipped):
            raise documents.DocumentError(result.path, result.reason)
        yield result


def load(
    root: Path | str,
    *,
    client: Any,
    target: Target,
    embedder: Embedder,
    settings: LoadSettings = LoadSettings(),
    progress: Progress | None = None,
    read_documents: ReadDocuments | None = None,
    chunk_document: ChunkDocument | None = None,
    limiter: RateLimiter | None = None,
    policy: RetryPolicy = DEFAULT_POLICY,
    times: StageTimes | None = None,
    shard: Shard = ALL,
    s3: Any = None,
) -> LoadReport:
    """Sync the documents under ``root`` (a folder, or ``s3://bucket/prefix/`` read with the boto3 S3
    client ``s3``) into the target index; with ``shard``, only that shard's documents. Return what
    was done.

    ``times``, if given, is filled with the seconds spent in each stage (``loader.pipeline.StageTimes``).
    """
    from loader.s3_source import is_s3_uri, parse_s3_uri

    started = time.monotonic()
    times = times if times is not None else StageTimes()
    location = parse_s3_uri(root) if isinstance(root, str) and is_s3_uri(root) else None
    if location is not None and s3 is None:
        raise LoaderError(f"{root}: an S3 source needs an S3 client")
    folder = Path(root) if location is None else Path()
    if location is None and not folder.is_dir():
        raise LoaderError(
            f"document folder {root} not found (pass a folder or s3://bucket/prefix/, e.g. `python -m loader data`)"
        )
    hash_first = read_documents is None  # the default reader: unchanged files need not be parsed
    if read_documents is None or chunk_document is None:
        default_read, default_chunk = _default_readers()
        read_documents = read_documents or default_read
        chunk_document = chunk_document or default_chunk
    progress = progress or Progress(enabled=False)
    stats = RetryStats()
    label = str(location) if location is not None else str(root)
    report = LoadReport(
        root=label,
        target=target,
        model=model_name(embedder),
        dry_run=settings.dry_run,
        shard=str(shard) if shard.count > 1 else None,
    )

    with times.timing("index"):
        info: IndexInfo = describe_index(client, target, policy=policy, stats=stats)
        check_index(info, dimension=embedder.dimension, model=model_name(embedder))
        report.index_metric = info.distance_metric
        progress.status("listing the index")
        state = scan_index(client, target, segments=settings.list_segments, policy=policy, stats=stats, shard=shard)
    report.vectors_before = state.vectors
    report.foreign_vectors = state.foreign
    report.other_shards_vectors = state.other_shards

    def source_of(path: str) -> str:  # a Skipped's path as a source
        return normalize_source(path) if location is not None else _relative(path, folder)

    fingerprint = settings_fingerprint(embedder, settings)
    chunk_budget = settings.chunk_tokens or embedder.max_tokens

    def decide(document: Document) -> tuple[str, str, str, int]:
        source = normalize_source(document.source)
        content_hash = stored_hash(document.content_hash, fingerprint)
        action, count = classify(source, content_hash, state)
        return source, content_hash, action, count

    def split(document: Document) -> tuple[list[Chunk], list[str]]:
        chunks = chunk_document(
            document, embedder, max_tokens=settings.chunk_tokens, overlap_tokens=settings.overlap_tokens
        )
        warnings = []
        for chunk in chunks:
            # Guard against silent truncation by the model: it would embed only the first tokens.
            tokens = chunk.tokens or embedder.count_tokens(chunk.text)
            if tokens > embedder.max_tokens:
                warnings.append(
                    f"chunk {chunk.ordinal} has more than the model's {embedder.max_tokens} tokens "
                    f"(chunk size {chunk_budget}); the model will ignore its end"
                )
        return chunks, warnings

    def is_unchanged(source: str, digest: str) -> bool:
        return classify(normalize_source(source), stored_hash(digest, fingerprint), state)[0] == "unchanged"

    listing = Listing()
    documents: Iterable[Document | Skipped]
    if location is not None:
        from loader.s3_source import read_s3_documents

        documents = read_s3_documents(
            location,
            s3,
            strict=settings.strict,
            shard=shard,
            on_listed=listing.saw,
            unchanged=is_unchanged if hash_first else None,
        )
        if not hash_first:
            raise LoaderError("an S3 source is read by loader.s3_source; a custom read_documents cannot be used")
    elif hash_first:
        documents = _hash_first(folder, strict=settings.strict, unchanged=is_unchanged, shard=shard, listing=listing)
    else:
        documents = _owned(read_documents(folder, strict=settings.strict), shard, listing, source_of)
    prefetch = getattr(embedder, "prefetch", None)
    reader = Reader(
        documents,
        decide=decide,
        split=split,
        times=times,
        prepare=prefetch if callable(prefetch) and not settings.dry_run else None,
    )
    kept = CurrentKeys()  # keys that are current after this run (never deleted)
    stale: list[str] = []  # keys of seen documents past their current chunk count
    seen: set[str] = set()
    claimed: set[str] = set()  # document ids (``loader.index.document_id``) of the documents seen
    skipped_sources: set[str] = set()

    writer = VectorWriter(
        client,
        target,
        max_in_flight=settings.max_in_flight,
        limiter=limiter,
        policy=policy,
        stats=stats,
        on_written=progress.advance,
    )
    batch_size = max(1, settings.batch_size)
    window = max(batch_size, settings.sort_window)
    # Wait for this many pending chunks before embedding (unless the reader is done), so that even the
    # first batch is the longest of two batches' worth: the reader is much faster than the embedder.
    fill = min(window, 2 * batch_size)
    pool: ChunkPool[tuple[DocWork, Chunk]] = ChunkPool(chunk_length)

    def accept(item: Any) -> None:
        if isinstance(item, BaseException):
            raise item
        if isinstance(item, Skipped):
            report.skipped.append((item.path, item.reason))
            source = source_of(item.path)
            if not item.reason.startswith(EMPTY):
                skipped_sources.add(source)  # unreadable now (maybe for a moment): its vectors stay
                return
            # Emptied on purpose: like a document left with no text, its vectors go (even with --no-prune).
            stored = state.keys_of(source)
            if stored and source not in seen:
                seen.add(source)
                claimed.add(document_id(source))
                stale.extend(stored)
                report.record("changed", source, 0)
                report.warn_all(source, ["empty now; its vectors are removed"])
            return
        work: DocWork = item
        if work.source in seen:
            reason = f"same source path as another document ({work.source})"
            report.skipped.append((work.document.source, reason))
            return
        seen.add(work.source)
        if work.action == "new" and work.chunk_count == 0:
            # Nothing stored and nothing to store (e.g. headings only): an empty document, as a skip, so
            # that it is not reported as "new" on every run.
            report.skipped.append((work.document.source, f"{EMPTY} (no text to embed)"))
            return
        report.documents_read += 1
        report.warn_all(work.source, work.warnings)
        expected = {vector_key(work.source, i) for i in range(work.chunk_count)}
        kept.add(work.source, work.chunk_count)
        claimed.add(document_id(work.source))
        stale.extend(k for k in state.keys_of(work.source) if k not in expected)
        report.record(work.action, work.source, work.chunk_count)
        if work.action == "unchanged" or settings.dry_run:
            return
        if not work.chunks:
            report.warn_all(work.source, ["no text to embed (0 chunks); its vectors are removed"])
        progress.add_total(len(work.chunks))
        pool.add((work, chunk) for chunk in work.chunks)
        work.chunks = []  # the pool holds them now; the document keeps only its count

    def embed_and_write(items: list[tuple[DocWork, Chunk]]) -> None:
        with times.timing("embed"):
            vectors = embedder.embed([chunk.text for _, chunk in items])
        report.chunks_embedded += len(items)
        with times.timing("build"):
            records = []
            for (work, chunk), vector in zip(items, vectors, strict=True):
                built = build_metadata(
                    work.document,
                    chunk,
                    chunk_count=work.chunk_count,
                    content_hash=work.content_hash,
                    source=work.source,
                    non_filterable=info.non_filterable_keys,
                )
                report.warn_all(work.source, built.warnings)
                records.append(VectorRecord(vector_key(work.source, chunk.ordinal), vector, built.metadata))
        with times.timing("write_wait"):
            writer.put(records)
            writer.send_if_idle()  # the network is free: send now rather than after the last batch

    progress.status("loading")
    reader.start()
    try:
        with writer:
            reader_done = False
            while True:
                # Take what the reader has ready; block only while the pool is short of a good batch.
                while not reader_done and len(pool) < window:
                    if len(pool) < fill:
                        with times.timing("starved"):
                            item = reader.out.get()
                    else:
                        try:
                            item = reader.out.get_nowait()
                        except queue.Empty:
                            break
                    if item is DONE:
                        reader_done = True
                    else:
                        accept(item)
                if not len(pool):
                    if reader_done:
                        break
                    continue
                embed_and_write(pool.take(batch_size))
            writer.flush()  # every write has succeeded before anything is deleted
            times.write = writer.busy_seconds
            if location is not None:
                _check_s3_listing(label, listing, report, settings)

            deletions = _deletions(
                state, claimed, skipped_sources | listing.protected, stale, kept, settings, report, listing.candidates
            )
            report.vectors_stale = len(deletions)
            if deletions and not settings.dry_run:
                progress.status("deleting stale vectors")
                with times.timing("delete"):
                    writer.delete(deletions)
                    writer.flush()
    finally:
        reader.stop.set()
        progress.close()
    report.vectors_written = writer.written
    report.vectors_deleted = writer.deleted
    report.requests = writer.requests
    report.retries = stats.retries
    report.throttled = stats.throttled
    report.seconds = time.monotonic() - started
    times.model_load = float(getattr(embedder, "load_seconds", 0.0) or 0.0)
    times.wall = report.seconds
    return report


def _check_s3_listing(label: str, listing: Listing, report: LoadReport, settings: LoadSettings) -> None:
    """An S3 prefix that lists nothing, or whose every object was denied, is a mistake to report (exit 1),
    not an empty corpus: a wrong prefix, a key given for a prefix, or missing s3:GetObject."""
    if not listing.listed and not settings.prune_explicit:
        raise LoaderError(
            f"{label} lists no object: check the bucket and the prefix (a prefix names a folder, e.g. "
            "s3://bucket/docs/, not a single object); pass --prune to empty the index on purpose"
        )
    denied = sum(1 for _, reason in report.skipped if "AccessDenied" in reason)
    if denied and not report.documents_read:
        raise LoaderError(
            f"every object read from {label} was denied ({denied} x AccessDenied): reading an s3:// source "
            "needs s3:GetObject on the prefix, with your own credentials (--assume-role applies to the index only)"
        )


def _deletions(
    state: IndexState,
    claimed: set[str],
    skipped: set[str],
    stale: list[str],
    kept: CurrentKeys,
    settings: LoadSettings,
    report: LoadReport,
    candidates: int,
) -> list[str]:
    """Stale keys of seen documents, plus (with prune) every key of documents that left the folder.

    ``claimed``: document ids seen; ``skipped``: paths skipped unread, files or folders, whose documents
    stay. The state holds only this shard's documents, so a shard prunes only what it owns."""
    keys = list(stale)
    skipped_ids = {document_id(path) for path in skipped}

    def protected(name: str) -> bool:
        parts = state.label(name).split("/")
        return name in skipped_ids or any("/".join(parts[:i]) in skipped for i in range(1, len(parts)))

    gone = sorted(s for s in state.by_source if s not in claimed and not protected(s))
    if gone and settings.prune:
        if not candidates and not settings.prune_explicit:
            report.warnings.append(
                f"no document was listed in {report.root}; not pruning the {len(gone)} document(s) in the index "
                "(pass --prune to empty it on purpose)"
            )
        else:
            for name in gone:
                keys.extend(state.by_source[name])
                report.record("deleted", state.label(name), len(state.by_source[name]))
    elif gone:
        report.warnings.append(
            f"{len(gone)} document(s) in the index are no longer in {report.root}; kept (--no-prune)"
        )
    return [k for k in dict.fromkeys(keys) if k not in kept]


def delete_source(
    client: Any,
    target: Target,
    source: str,
    *,
    max_in_flight: int = 8,
    policy: RetryPolicy = DEFAULT_POLICY,
    list_segments: int = 4,
) -> int:
    """Delete every vector of one document (by its ``source`` metadata or its key); return how many."""
    source = normalize_source(source.strip())
    source = source[2:] if source.startswith("./") else source
    state = scan_index(client, target, segments=list_segments, policy=policy)
    keys = list(state.keys_of(source))
    keys += [k for k in state.by_key if k not in keys and (split_key(k) or ("", 0))[0] == source]
    if not keys:
        import difflib

        close = difflib.get_close_matches(source, [state.label(name) for name in state.by_source], n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else " (sources are paths relative to the loaded folder)"
        raise LoaderError(f"no vectors with source {source!r} in index {target.index!r}{hint}")
    with VectorWriter(client, target, max_in_flight=max_in_flight, policy=policy) as writer:
        writer.delete(keys)
        writer.flush()
    return writer.deleted
