"""An embedder that loads its model only when something must be embedded (or chunked).

A sync decides per document from the index's state and the document's hash; it needs the model's
*identity* — name, dimension, token limit, which go into every stored ``content_hash`` — but not the
model. Loading all-MiniLM-L6-v2 takes ~5 s on a laptop (torch import, weights), far longer than a
no-change run's actual work (list the index, hash the files). ``LazyEmbedder`` answers ``model_name``,
``dimension`` and ``max_tokens`` from a small per-machine cache written the first time the model was
really loaded, and loads the model on the first ``count_tokens``/``token_offsets``/``embed`` call, or
in the background as soon as ``prefetch()`` is called (``loader.sync`` calls it at the first new or
changed document, so the load overlaps with the rest of the reading).

Safety: the cache is keyed by everything that picks the model (the arguments the caller passes, e.g.
model, backend, device) and by the size and modification time of every file in the model's
directory, so a different or updated model misses the cache. When the model is loaded, its real
identity is compared with the cached one; if they differ, the cache is corrected and the run stops
with an error before anything was embedded or written (the documents were classified with the wrong
identity). A missing or unwritable cache only means the model is loaded eagerly, as before.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loader.errors import LoaderError
from loader.records import Embedder

if TYPE_CHECKING:  # numpy costs ~0.1 s to import: a no-change re-run never needs it
    import numpy as np
    import numpy.typing as npt

CACHE_ENV = "LOADER_CACHE_DIR"
CACHE_FILE = "embedders.json"


def cache_dir() -> Path:
    explicit = os.environ.get(CACHE_ENV)
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "s3vectors-docsearch"


def model_files_signature(path: str | os.PathLike[str] | None) -> str:
    """A digest of the names, sizes and modification times of the files under a model directory."""
    if path is None or not Path(path).is_dir():
        return ""
    entries = []
    for file in sorted(Path(path).rglob("*")):
        with contextlib.suppress(OSError):
            if file.is_file():
                info = file.stat()
                entries.append(f"{file.relative_to(path).as_posix()}:{info.st_size}:{info.st_mtime_ns}")
    return hashlib.sha256("\n".join(entries).encode()).hexdigest()[:32]


class LazyEmbedder:
    """``loader.records.Embedder`` over ``factory()``, called once, only when the model is needed."""

    def __init__(
        self,
        factory: Callable[[], Embedder],
        *,
        key: Mapping[str, Any],
        model_dir: str | os.PathLike[str] | None = None,
        cache: Path | None = None,
    ) -> None:
        self._factory = factory
        self._key = hashlib.sha256(
            json.dumps(
                {"key": dict(key), "files": model_files_signature(model_dir)}, sort_keys=True, default=str
            ).encode()
        ).hexdigest()[:32]
        self._cache = cache if cache is not None else cache_dir() / CACHE_FILE
        self._identity: dict[str, Any] | None = self._read_cache()
        self._embedder: Embedder | None = None
        self._error: BaseException | None = None
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.load_seconds = 0.0  # time the model took to load in this process (0: never loaded)

    # --- identity (no model needed when cached) -----------------------------------------------
    @property
    def model_name(self) -> str:
        return str(self._identity_value("model_name"))

    @property
    def dimension(self) -> int:
        return int(self._identity_value("dimension"))

    @property
    def max_tokens(self) -> int:
        return int(self._identity_value("max_tokens"))

    @property
    def loaded(self) -> bool:
        return self._embedder is not None

    def _identity_value(self, name: str) -> Any:
        if self._identity is None:
            self._load()
        assert self._identity is not None
        return self._identity[name]

    # --- the model ----------------------------------------------------------------------------
    def prefetch(self) -> None:
        """Start loading the model in a background thread (no-op if loaded or loading)."""
        with self._lock:
            if self._embedder is not None or self._thread is not None:
                return
            self._thread = threading.Thread(target=self._load_quietly, name="model-load", daemon=True)
            self._thread.start()

    def count_tokens(self, text: str) -> int:
        return self._load().count_tokens(text)

    def token_offsets(self, text: str) -> Sequence[tuple[int, int]]:
        return self._load().token_offsets(text)

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        return self._load().embed(texts)

    def __getattr__(self, name: str) -> Any:
        # Anything else (batch_size, device, ...) is the real embedder's.
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self._load(), name)

    def __repr__(self) -> str:
        if self._embedder is not None:
            return f"LazyEmbedder({self._embedder!r})"
        return f"LazyEmbedder(not loaded, {self._identity or 'identity not cached'})"

    def _load_quietly(self) -> None:
        with contextlib.suppress(BaseException):  # kept in self._error and raised by the next _load()
            self._load()

    def _load(self) -> Embedder:
        if self._embedder is not None:
            return self._embedder
        with self._lock:
            if self._embedder is None and self._error is None:
                started = time.perf_counter()
                try:
                    embedder = self._factory()
                    identity = _identity_of(embedder)
                    self._check(identity)
                except BaseException as exc:
                    self._error = exc
                    raise
                self.load_seconds = time.perf_counter() - started
                self._embedder = embedder
        if self._error is not None:
            raise self._error
        assert self._embedder is not None
        return self._embedder

    def _check(self, identity: dict[str, Any]) -> None:
        cached, self._identity = self._identity, identity
        if cached != identity:
            self._write_cache(identity)
        if cached is not None and cached != identity:
            raise LoaderError(
                f"the model's cached identity {cached} differs from the loaded model's {identity}; the cache "
                f"({self._cache}) is corrected now: run the command again"
            )

    # --- the cache ----------------------------------------------------------------------------
    def _read_cache(self) -> dict[str, Any] | None:
        try:
            entry = json.loads(self._cache.read_text()).get(self._key)
        except (OSError, ValueError, AttributeError):
            return None
        if isinstance(entry, dict) and {"model_name", "dimension", "max_tokens"} <= entry.keys():
            return {k: entry[k] for k in ("model_name", "dimension", "max_tokens")}
        return None

    def _write_cache(self, identity: dict[str, Any]) -> None:
        with contextlib.suppress(OSError, ValueError):
            self._cache.parent.mkdir(parents=True, exist_ok=True)
            try:
                entries = json.loads(self._cache.read_text())
                entries = entries if isinstance(entries, dict) else {}
            except (OSError, ValueError):
                entries = {}
            entries[self._key] = identity
            tmp = self._cache.with_name(f".{self._cache.name}.{os.getpid()}.tmp")
            tmp.write_text(json.dumps(entries, indent=1, sort_keys=True))
            os.replace(tmp, self._cache)  # atomic: concurrent runs see the old or the new file


def _identity_of(embedder: Embedder) -> dict[str, Any]:
    return {
        "model_name": str(getattr(embedder, "model_name", None) or type(embedder).__name__),
        "dimension": int(embedder.dimension),
        "max_tokens": int(embedder.max_tokens),
    }


def lazy_embedder(
    model: str | None = None, *, device: str | None = None, batch_size: int = 64, **options: Any
) -> LazyEmbedder:
    """``loader.embedding.load_embedder(model, device=..., batch_size=..., **options)``, loaded lazily."""
    from loader import embedding

    model_dir: str | None = None
    with contextlib.suppress(Exception):  # the bundled model's package missing: no file signature
        source, _ = embedding.resolve_model(model)
        model_dir = source if Path(source).is_dir() else None

    def factory() -> Embedder:
        return embedding.load_embedder(model, device=device, batch_size=batch_size, **options)

    return LazyEmbedder(factory, key={"model": model, "device": device, **options}, model_dir=model_dir)
