"""Shared by the reliability tests: a seeded corpus in two versions, a small fast index, snapshots of an
index, a loader subprocess with the fake embedder, and a record of figures for docs/reliability.md.

Everything is small on purpose: 16-dimensional vectors from the fake embedder and 24-token chunks give a
few thousand vectors (several full PutVectors batches of 500) in about a second.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from loader.outputs import Target
from loader.report import LoadReport
from loader.retry import RetryPolicy
from loader.sharding import ALL, Shard
from loader.sync import LoadSettings, load
from tests.loader.fakes import FakeEmbedder
from tests.loader.support import create_index, loader_client

REPO = Path(__file__).resolve().parents[2]
FAKE_LOADER = REPO / "tests" / "reliability" / "fake_loader.py"
DIM = 16
MAX_TOKENS = 64
CHUNK_TOKENS = 24
OVERLAP_TOKENS = 4
FAST = RetryPolicy(max_attempts=10, base_delay=0.01, max_delay=0.2)
SETTINGS = {"chunk_tokens": CHUNK_TOKENS, "overlap_tokens": OVERLAP_TOKENS}
CLI_LOAD_FLAGS = ["--chunk-tokens", str(CHUNK_TOKENS), "--overlap-tokens", str(OVERLAP_TOKENS), "--quiet", "--json"]

_WORDS = [
    "baggage",
    "pets",
    "cabin",
    "refund",
    "fare",
    "seat",
    "meal",
    "lounge",
    "policy",
    "passenger",
    "flight",
    "crew",
    "ticket",
    "change",
    "cancel",
    "infant",
    "wheelchair",
    "upgrade",
    "miles",
    "delay",
    "connection",
    "visa",
    "boarding",
    "gate",
    "carry",
    "checked",
    "allowance",
]

Snapshot = dict[str, tuple[tuple[float, ...], str]]  # key -> (vector, metadata as canonical JSON)


def embedder() -> FakeEmbedder:
    return FakeEmbedder(dimension=DIM, max_tokens=MAX_TOKENS)


def _doc(rng: random.Random, title: str, paragraphs: int) -> str:
    paras = [" ".join(rng.choice(_WORDS) for _ in range(rng.randint(25, 45))) + "." for _ in range(paragraphs)]
    return f"# {title}\n\n" + "\n\n".join(paras) + "\n"


def write_corpus(root: Path, version: int, *, docs: int = 40, seed: int = 11) -> Path:
    """Version 1: ``docs`` Markdown files. Version 2: half of them edited (some grown, some shrunk), 8 deleted,
    8 added: a sync from 1 to 2 writes, overwrites and deletes (several requests of each)."""
    if root.exists():
        shutil.rmtree(root)
    rng = random.Random(seed)
    files: dict[str, str] = {}
    for d in range(docs):
        files[f"section{d % 5}/doc{d:02d}.md"] = _doc(rng, f"Document {d}", 30)
    if version >= 2:
        rng2 = random.Random(seed * 1000 + version)
        names = sorted(files)
        for i, name in enumerate(names[: docs // 2]):
            size = (10, 30, 45)[i % 3]  # shrunk, same length, grown
            files[name] = _doc(rng2, f"Document {name} v{version}", size)
        for name in names[docs // 2 : docs // 2 + 8]:
            del files[name]
        for d in range(8):
            files[f"added/new{d:02d}.md"] = _doc(rng2, f"New document {d}", 30)
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


def new_index(client: Any, bucket: str, index: str = "docs") -> Target:
    return create_index(client, dimension=DIM, bucket=bucket, index=index)


def run_load(root: Path, client: Any, target: Target, *, shard: Shard = ALL, **settings: Any) -> LoadReport:
    return load(
        root,
        client=client,
        target=target,
        embedder=embedder(),
        settings=LoadSettings(**{**SETTINGS, **settings}),
        policy=FAST,
        shard=shard,
    )


def snapshot(client: Any, target: Target) -> Snapshot:
    """Every vector of the index: key -> (data, metadata). Keys are unique by construction of the dict,
    and ListVectors is checked not to return a key twice."""
    out: Snapshot = {}
    seen = 0
    params: dict[str, Any] = {**target.index_ref(), "returnMetadata": True, "returnData": True, "maxResults": 1000}
    while True:
        page = client.list_vectors(**params)
        for v in page["vectors"]:
            seen += 1
            out[v["key"]] = (tuple(v["data"]["float32"]), json.dumps(v.get("metadata", {}), sort_keys=True))
        if not page.get("nextToken"):
            break
        params["nextToken"] = page["nextToken"]
    assert seen == len(out), f"ListVectors returned {seen - len(out)} duplicate key(s)"
    return out


def hashes(snap: Snapshot) -> dict[str, str]:
    return {k: json.loads(md).get("content_hash", "") for k, (_, md) in snap.items()}


def diff(a: Snapshot, b: Snapshot) -> int:
    """How many keys differ between two snapshots (missing, extra, or other content)."""
    return len(set(a) ^ set(b)) + sum(1 for k in set(a) & set(b) if a[k] != b[k])


def check_structure(snap: Snapshot) -> None:
    """Every document's keys are exactly 0..n-1 with n = its chunk count, all of one content hash."""
    by_source: dict[str, list[dict[str, Any]]] = {}
    for key, (_, md) in snap.items():
        meta = json.loads(md)
        by_source.setdefault(meta["source"], []).append({"key": key, **meta})
    for source, items in by_source.items():
        n = items[0]["chunks"]
        assert sorted(i["chunk"] for i in items) == list(range(n)), source
        assert {i["chunks"] for i in items} == {n} and len({i["content_hash"] for i in items}) == 1, source


def client_for(endpoint_url: str, **kwargs: Any) -> Any:
    return loader_client(endpoint_url, **kwargs)


def loader_process(args: list[str], *, env: dict[str, str] | None = None, **popen: Any) -> subprocess.Popen[str]:
    """The real loader CLI in a child process, with the fake embedder (tests/reliability/fake_loader.py)."""
    full_env = {
        **os.environ,
        "FAKE_EMBEDDER_DIM": str(DIM),
        "FAKE_EMBEDDER_MAX_TOKENS": str(MAX_TOKENS),
        "PYTHONPATH": str(REPO),
        **(env or {}),
    }
    return subprocess.Popen(
        [sys.executable, str(FAKE_LOADER), *args],
        env=full_env,
        text=True,
        stdout=popen.pop("stdout", subprocess.PIPE),
        stderr=popen.pop("stderr", subprocess.PIPE),
        **popen,
    )


def target_args(endpoint_url: str, target: Target) -> list[str]:
    return ["--endpoint-url", endpoint_url, "--bucket", target.bucket, "--index", target.index, "--region", "us-east-1"]


class CallHook:
    """Wraps ``Service.call`` of a running LocalEndpoint: counts operations and runs ``action`` once, just
    before or just after the ``n``-th call of ``operation`` (e.g. to SIGKILL the client that sent it).

    With ``at_items``, it fires instead at the call of ``operation`` that brings the vectors (PutVectors)
    or keys (DeleteVectors) sent so far to ``at_items``: e.g. the last write of a sync whose total is
    known, however the writer happened to batch it (it sends a partial batch when the network is idle,
    so the number of requests depends on timing; the number of vectors does not)."""

    def __init__(
        self,
        service: Any,
        operation: str,
        n: int,
        when: str,
        action: Callable[[], None],
        *,
        at_items: int | None = None,
    ) -> None:
        assert when in ("before", "after")
        self.service, self.operation, self.n, self.when, self.action = service, operation, n, when, action
        self.at_items = at_items
        self.items: dict[str, int] = {}  # vectors or keys per operation, over all calls
        self.counts: dict[str, int] = {}
        self.fired = threading.Event()
        self._lock = threading.Lock()
        self._orig = service.call

    def __enter__(self) -> CallHook:
        self.service.call = self._call
        return self

    def __exit__(self, *exc: object) -> None:
        self.service.call = self._orig

    def _call(self, operation: str, params: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            self.counts[operation] = self.counts.get(operation, 0) + 1
            before = self.items.get(operation, 0)
            self.items[operation] = before + len(params.get("vectors") or params.get("keys") or [])
            if self.at_items is None:
                reached = self.counts[operation] == self.n
            else:
                reached = before < self.at_items <= self.items[operation]
            fire = operation == self.operation and reached and not self.fired.is_set()
            if fire:
                self.fired.set()
        if fire and self.when == "before":
            self.action()
            from s3vectors_local.errors import UnavailableError

            raise UnavailableError("test: the client was killed before this request ran")
        result = self._orig(operation, params)
        if fire:
            self.action()
        return result


# -- figures for docs/reliability.md ---------------------------------------------------------------------------------
def record(section: str, **figures: Any) -> None:
    """Append figures to the JSON-lines file named by RELIABILITY_FIGURES (nothing when unset)."""
    path = os.environ.get("RELIABILITY_FIGURES")
    if not path:
        return
    line = json.dumps({"section": section, "time": round(time.time(), 1), **figures}, default=str)
    with open(path, "a", encoding="utf-8") as f:
        f.write(line + "\n")
