"""Shared pieces of the benchmarks: a local endpoint in its own process, clients, indexes, corpora, JSON.

Every benchmark reports ratios against a reference measured in the same run on the same machine:
absolute times on a shared 2-core machine move by 2x from one minute to the next, ratios much less.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `python bench/bench_x.py` as well as `python -m bench.bench_x`
    sys.path.insert(0, str(ROOT))

RESULTS = ROOT / "bench" / "results"
DATA = ROOT / "data"
BUCKET = "bench-bucket"
INDEX = "bench-index"
CLK_TCK = os.sysconf("SC_CLK_TCK")


# --- machine, JSON ------------------------------------------------------------------------------
def machine() -> dict[str, Any]:
    info: dict[str, Any] = {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    with contextlib.suppress(OSError):
        info["load_average_1m"] = round(os.getloadavg()[0], 2)  # other jobs on the machine
    with contextlib.suppress(OSError, StopIteration), open("/proc/cpuinfo") as f:
        info["cpu_model"] = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    return info


def write_result(name: str, data: dict[str, Any], out: Path | None = None) -> Path:
    """Write ``bench/results/<name>.json`` (or ``out``) with the machine and time added."""
    path = out or RESULTS / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    body = {"benchmark": name, "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "machine": machine(), **data}
    path.write_text(json.dumps(body, indent=2, default=_json_default) + "\n")
    print(f"wrote {path}", flush=True)
    return path


def _json_default(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def ratio(numerator: float, denominator: float, digits: int = 3) -> float | None:
    return round(numerator / denominator, digits) if denominator else None


# --- process CPU and memory ---------------------------------------------------------------------
def cpu_seconds(pid: int | None = None) -> float:
    """User + system CPU seconds of a process (all its threads) from /proc."""
    with open(f"/proc/{pid or os.getpid()}/stat") as f:
        fields = f.read().rsplit(") ", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def rss_mb(pid: int | None = None, field: str = "VmRSS") -> float:
    with open(f"/proc/{pid or os.getpid()}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


class RssSampler(threading.Thread):
    """Samples a process's RSS every ``interval`` seconds: (seconds since start, MiB)."""

    def __init__(self, pid: int, interval: float = 0.2) -> None:
        super().__init__(daemon=True, name="rss-sampler")
        self.pid, self.interval = pid, interval
        self.samples: list[tuple[float, float]] = []
        self._stop_event = threading.Event()
        self._start_time = time.monotonic()

    def run(self) -> None:
        while not self._stop_event.is_set():
            with contextlib.suppress(OSError, ValueError):
                self.samples.append((round(time.monotonic() - self._start_time, 2), round(rss_mb(self.pid), 1)))
            self._stop_event.wait(self.interval)

    def stop(self) -> list[tuple[float, float]]:
        self._stop_event.set()
        self.join()
        return self.samples


# --- the local endpoint in its own process ------------------------------------------------------
@dataclass
class Server:
    url: str
    pid: int
    proc: subprocess.Popen[bytes]
    data_dir: Path

    def cpu(self) -> float:
        return cpu_seconds(self.pid)

    def rss(self) -> float:
        return rss_mb(self.pid)


@contextlib.contextmanager
def local_server(
    data_dir: Path | None = None, *, throttle: bool = False, latency_ms: float = 0.0, fault_rate: float = 0.0
) -> Iterator[Server]:
    """``python -m s3vectors_local serve --port 0`` as a child process (its own GIL), stopped on exit."""
    with contextlib.ExitStack() as stack:
        if data_dir is None:
            data_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-ep-")))
        data_dir.mkdir(parents=True, exist_ok=True)
        endpoint_file = data_dir / "endpoint.json"
        with contextlib.suppress(FileNotFoundError):
            endpoint_file.unlink()
        args = [sys.executable, "-m", "s3vectors_local", "serve", "--port", "0", "--data-dir", str(data_dir)]
        if throttle:
            args.append("--throttle")
        if latency_ms:
            args += ["--latency-ms", str(latency_ms)]
        if fault_rate:
            args += ["--fault-rate", str(fault_rate), "--fault-seed", "7"]
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
        log = open(data_dir / "server.log", "ab")  # noqa: SIM115 - handed to the child
        proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env)
        log.close()
        try:
            deadline = time.monotonic() + 60
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"s3vectors_local exited with {proc.returncode}: {data_dir / 'server.log'}")
                with contextlib.suppress(OSError, ValueError):
                    info = json.loads(endpoint_file.read_text())
                    if info.get("pid") == proc.pid:
                        break
                if time.monotonic() > deadline:
                    raise TimeoutError("s3vectors_local did not start within 60 s")
                time.sleep(0.05)
            yield Server(url=info["endpoint_url"], pid=proc.pid, proc=proc, data_dir=data_dir)
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


def loader_client(url: str, *, max_in_flight: int = 16) -> Any:
    """The client the loader builds (botocore retries off; ``loader.retry`` retries and counts)."""
    os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")
    from loader.client import make_session, s3vectors_client

    session = make_session(region="us-east-1", local=True)
    return s3vectors_client(session, endpoint_url=url, max_pool_connections=max_in_flight + 4)


def plain_client(url: str, **config: Any) -> Any:
    """A boto3 s3vectors client with botocore defaults except what ``config`` sets."""
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3vectors", endpoint_url=url, region_name="us-east-1", aws_access_key_id="local",
        aws_secret_access_key="local", config=Config(**config),
    )


def create_index(client: Any, *, dimension: int = 384, bucket: str = BUCKET, index: str = INDEX,
                 non_filterable: Sequence[str] = ("text",)) -> Any:
    """A bucket and an index shaped like the stack's (cosine, float32, ``text`` non-filterable)."""
    from loader.outputs import Target

    with contextlib.suppress(Exception):
        client.create_vector_bucket(vectorBucketName=bucket)
    params: dict[str, Any] = {"vectorBucketName": bucket, "indexName": index, "dataType": "float32",
                              "dimension": dimension, "distanceMetric": "cosine"}
    if non_filterable:
        params["metadataConfiguration"] = {"nonFilterableMetadataKeys": list(non_filterable)}
    client.create_index(**params)
    return Target(bucket=bucket, index=index, region="us-east-1", origin="bench")


def list_keys(client: Any, target: Any) -> list[str]:
    """Every key in the index (ListVectors, strongly consistent with writes)."""
    keys: list[str] = []
    params: dict[str, Any] = {**target.index_ref(), "maxResults": 1000}
    while True:
        page = client.list_vectors(**params)
        keys.extend(v["key"] for v in page.get("vectors", []))
        if not page.get("nextToken"):
            return keys
        params["nextToken"] = page["nextToken"]


# --- corpus and embedders -----------------------------------------------------------------------
def corpus_chunks(root: Path, embedder: Any) -> list[Any]:
    """(document, chunk) pairs of ``root`` as the loader makes them (real reader and chunker)."""
    from loader.chunking import chunk_document
    from loader.documents import read_documents
    from loader.records import Document

    out: list[Any] = []
    for doc in read_documents(root):
        if isinstance(doc, Document):
            out.extend((doc, chunk) for chunk in chunk_document(doc, embedder))
    return out


def load_real_embedder(batch_size: int = 64) -> Any:
    """The loader's default embedder, as ``python -m loader`` builds it."""
    from loader.cli import make_embedder

    return make_embedder(None, device="cpu", batch_size=batch_size)


class FastFakeEmbedder:
    """Deterministic unit vectors from a hash of the text, ~free to compute: for runs where the model's
    cost is not what is measured (memory, write path). Tokens are words, as in tests/loader/fakes.py."""

    model_name = "fast-fake"

    def __init__(self, dimension: int = 384, max_tokens: int = 256) -> None:
        import re

        self._dimension, self._max_tokens = dimension, max_tokens
        self._word = re.compile(r"\w+")
        self.embedded = 0

    @property
    def dimension(self) -> int:
        return self._dimension

    @property
    def max_tokens(self) -> int:
        return self._max_tokens

    def count_tokens(self, text: str) -> int:
        return len(self._word.findall(text))

    def token_offsets(self, text: str) -> list[tuple[int, int]]:
        return [m.span() for m in self._word.finditer(text)]

    def embed(self, texts: Sequence[str]) -> Any:
        import zlib

        import numpy as np

        self.embedded += len(texts)
        seeds = [zlib.crc32(t.encode()) for t in texts]
        out = np.empty((len(texts), self._dimension), dtype=np.float32)
        for row, seed in enumerate(seeds):
            out[row] = np.random.default_rng(seed).standard_normal(self._dimension, dtype=np.float32)
        out /= np.linalg.norm(out, axis=1, keepdims=True)
        return out


def random_vectors(n: int, dimension: int = 384, seed: int = 0) -> Any:
    import numpy as np

    v = np.random.default_rng(seed).standard_normal((n, dimension), dtype=np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    return v


def chunk_metadata(i: int, text: str = "") -> dict[str, Any]:
    """Metadata shaped like the loader's (source, title, section, chunk, chunks, content_hash, text)."""
    return {"source": f"docs/doc-{i // 12:05d}.md", "title": f"Document {i // 12}", "section": "Section",
            "chunk": i % 12, "chunks": 12, "content_hash": f"{i // 12:032x}", "text": text or _TEXT}


_TEXT = ("Northwind Air policy text of a typical chunk: baggage allowances, fees, exceptions and the steps "
         "to follow, about a hundred and twenty model tokens long in the sample corpus. ") * 4


def summary_row(
    part: int | str, benchmark: str, *, value: float | None, measured: str, reference: str, target: str,
    met: bool | None, higher_is_better: bool = True, goal: float | None = None,
) -> dict[str, Any]:
    """One line of the README table (``bench.report`` collects the ``summary`` list of every result file).

    ``value``: the ratio against the same-run reference; ``goal``: the target for that ratio.
    """
    return {"part": part, "benchmark": benchmark, "value": value, "measured": measured, "reference": reference,
            "target": target, "met": met, "higher_is_better": higher_is_better, "goal": goal}
