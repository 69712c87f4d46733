"""PutVectors, GetVectors, ListVectors, DeleteVectors and QueryVectors."""

from __future__ import annotations

import hashlib
import json
import math
import secrets
import sqlite3
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from s3vectors_local import limits, tokens
from s3vectors_local.core import ServiceBase
from s3vectors_local.errors import ValidationError
from s3vectors_local.filters import Filter
from s3vectors_local.store import Store, dumps


def _record_error(i: int, key: str, why: str) -> ValidationError:
    # The service's wording, as users report it: "Invalid record for key '<key>': <reason>" (limits.py).
    return ValidationError.at(f"/vectors/{i}", f"Invalid record for key '{key}': {why}")


def _to_float32(values: list[float], dimension: int, metric: str, fail: Any) -> npt.NDArray[np.float32]:
    """Validate one vector (PutInputVector.data documentation in the model) and return it as float32."""
    if len(values) != dimension:
        raise fail(f"vector dimension {len(values)} does not match the index dimension {dimension}")
    with np.errstate(over="ignore", invalid="ignore"):
        arr = np.asarray(values, dtype=np.float64).astype(np.float32)
    # NaN, Infinity, and doubles beyond float32's range (which become Infinity) are rejected.
    if not np.isfinite(arr).all():
        raise fail("vector data must contain only valid float32 values (no NaN or Infinity)")
    if metric == "cosine" and not arr.any():
        raise fail("zero vectors are not allowed for the cosine distance metric")
    return arr


def _check_metadata(md: Any, non_filterable: set[str], fail: Any) -> str | None:
    """Validate one vector's metadata against the limits in limits.py; return its stored JSON."""
    if md is None:
        return None
    if not isinstance(md, dict):
        raise fail("metadata must be a JSON object")
    if len(md) > limits.MAX_METADATA_KEYS:
        raise fail(f"metadata must have at most {limits.MAX_METADATA_KEYS} keys")
    for k, v in md.items():
        # Metadata types: string, number, boolean and list (s3-vectors-metadata-filtering.html).
        items = v if isinstance(v, list) else [v]
        for e in items:
            ok = isinstance(e, str | bool) or (isinstance(e, int | float) and math.isfinite(e))
            if not ok:
                raise fail(f"metadata value for {k!r} must be a string, number, boolean or a list of those")
    text = dumps(md)
    if len(text.encode("utf-8")) > limits.MAX_METADATA_BYTES:
        raise fail(f"Total metadata must have at most {limits.MAX_METADATA_BYTES} bytes")
    filterable = {k: v for k, v in md.items() if k not in non_filterable}
    if len(dumps(filterable).encode("utf-8")) > limits.MAX_FILTERABLE_METADATA_BYTES:
        raise fail(f"Filterable metadata must have at most {limits.MAX_FILTERABLE_METADATA_BYTES} bytes")
    return text


def _duplicates(keys: list[str], member: str) -> None:
    """Reject a key named twice in one request. Reported for PutVectors (spiceai #7031); for GetVectors
    and DeleteVectors AWS is silent and we apply the same rule, the stricter reading."""
    seen: set[str] = set()
    for i, k in enumerate(keys):
        if k in seen:
            raise ValidationError.at(f"/{member}/{i}", f"Duplicate key in request: '{k}'")
        seen.add(k)


def _vector_out(row: sqlite3.Row, data: bool, metadata: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"key": row["key"]}
    if data:
        out["data"] = {"float32": np.frombuffer(row["data"], dtype="<f4").tolist()}
    if metadata:
        out["metadata"] = json.loads(row["metadata"]) if row["metadata"] else {}
    return out


@dataclass
class _QuerySession:
    fingerprint: str
    results: list[dict[str, Any]]
    expires: float


class VectorOps(ServiceBase):
    _sessions: dict[str, _QuerySession]
    _sessions_lock: threading.Lock

    def _init_vectors(self) -> None:
        self._sessions = {}
        self._sessions_lock = threading.Lock()

    # -- writes -----------------------------------------------------------------------------------------
    def PutVectors(self, p: dict[str, Any]) -> dict[str, Any]:
        vectors = p["vectors"]
        # One request may not name the same key twice (users report the service rejects it:
        # spiceai issue #7031); a key already in the index is overwritten whole (model PutInputVector).
        _duplicates([v["key"] for v in vectors], "vectors")
        with self.lock.write():
            with self.store.write() as conn:
                index = self.get_index(conn, p)
                non_filterable = set(json.loads(index["non_filterable"]))
                keys: list[str] = []
                arrays: list[npt.NDArray[np.float32]] = []
                rows: list[tuple[str, bytes, str | None]] = []
                metas: list[dict[str, Any]] = []
                for i, v in enumerate(vectors):
                    def fail(why: str, i: int = i, key: str = v["key"]) -> ValidationError:
                        return _record_error(i, key, why)

                    data = v["data"].get("float32")
                    if data is None:
                        raise fail("data must be given as float32")
                    arr = _to_float32(data, index["dimension"], index["metric"], fail)
                    text = _check_metadata(v.get("metadata"), non_filterable, fail)
                    keys.append(v["key"])
                    arrays.append(arr)
                    rows.append((v["key"], arr.astype("<f4").tobytes(), text))
                    md = v.get("metadata") or {}
                    metas.append({k: x for k, x in md.items() if k not in non_filterable})
                Store.put_vectors(conn, index["id"], rows)
            m = self.loaded_matrix(index["id"])
            if m is not None:
                m.upsert(keys, np.stack(arrays), metas)
        return {}

    def DeleteVectors(self, p: dict[str, Any]) -> dict[str, Any]:
        keys = p["keys"]
        _duplicates(keys, "keys")
        with self.lock.write():
            with self.store.write() as conn:
                index = self.get_index(conn, p)
                Store.delete_vectors(conn, index["id"], keys)  # deleting a missing key is not an error
            m = self.loaded_matrix(index["id"])
            if m is not None:
                m.delete(keys)
        return {}

    # -- reads ----------------------------------------------------------------------------------------------
    def GetVectors(self, p: dict[str, Any]) -> dict[str, Any]:
        keys = p["keys"]
        _duplicates(keys, "keys")
        data, metadata = bool(p.get("returnData")), bool(p.get("returnMetadata"))
        with self.lock.read(), self.store.read() as conn:
            index = self.get_index(conn, p)
            found = Store.get_vectors(conn, index["id"], keys)
        # Keys that do not exist are left out of the answer; found ones come back in request order.
        return {"vectors": [_vector_out(found[k], data, metadata) for k in keys if k in found]}

    def ListVectors(self, p: dict[str, Any]) -> dict[str, Any]:
        count, which = p.get("segmentCount"), p.get("segmentIndex")
        if (count is None) != (which is None):
            raise ValidationError.at("/segmentCount", "segmentCount and segmentIndex must be given together")
        if count is not None and which >= count:
            raise ValidationError.at("/segmentIndex", "segmentIndex must be less than segmentCount")
        segments = (int(count), int(which)) if count is not None and which is not None else None
        limit = p.get("maxResults", limits.LIST_VECTORS_DEFAULT_PAGE)
        data, metadata = bool(p.get("returnData")), bool(p.get("returnMetadata"))
        with self.lock.read(), self.store.read() as conn:
            index = self.get_index(conn, p)
            after = 0
            if p.get("nextToken"):
                tok = tokens.decode(p["nextToken"], "vectors", after=int)
                if tok.get("index") != index["id"] or tok.get("seg") != (list(segments) if segments else None):
                    raise ValidationError.at("/nextToken", "The pagination token does not match the request")
                after = int(tok["after"])
            out: list[dict[str, Any]] = []
            processed = 0
            last_id = None
            more = False
            for row in Store.scan_vectors(conn, index["id"], after, segments):
                if len(out) == limit or processed >= limits.LIST_VECTORS_PAGE_BYTES:
                    more = True
                    break
                processed += len(row["key"].encode()) + len(row["data"]) + len((row["metadata"] or "").encode())
                out.append(_vector_out(row, data, metadata))
                last_id = row["id"]
        result: dict[str, Any] = {"vectors": out}
        if more and last_id is not None:
            result["nextToken"] = tokens.encode(
                "vectors", index=index["id"], after=last_id, seg=list(segments) if segments else None
            )
        return result

    # -- query ---------------------------------------------------------------------------------------------
    def QueryVectors(self, p: dict[str, Any]) -> dict[str, Any]:
        if p.get("queryTexts"):
            # Full-text and hybrid search (BM25, RRF) are not emulated: refuse rather than answer wrongly.
            raise ValidationError.at(
                "/queryTexts",
                "NotImplemented: s3vectors_local does not emulate full-text or hybrid search (queryTexts); "
                "only vector search (queryVector) is supported",
            )
        top_k = p["topK"]
        if top_k > limits.MAX_TOP_K:
            raise ValidationError.at("/topK", f"topK must be between 1 and {limits.MAX_TOP_K}")
        qv = (p.get("queryVector") or {}).get("float32")
        if qv is None:
            raise ValidationError.at("/queryVector", "A request must include queryVector (float32)")
        with self.lock.read():
            with self.store.read() as conn:
                index = self.get_index(conn, p)
            fingerprint = self._fingerprint(index, p)
            if p.get("nextToken"):
                return self._next_page(index, p, fingerprint)

            def fail(why: str) -> ValidationError:
                return ValidationError.at("/queryVector", f"Invalid query vector: {why}")

            q = _to_float32(qv, index["dimension"], index["metric"], fail)
            mode = p.get("queryMode") or index["index_mode"]
            if mode == "CLASSIC" and index["index_mode"] == "ENHANCED":
                raise ValidationError.at("/queryMode", "You can't specify CLASSIC for an ENHANCED index")
            m = self.matrix(index)
            mask = None
            if p.get("filter") is not None:
                f = Filter(p["filter"], json.loads(index["non_filterable"]), allow_starts_with=mode == "ENHANCED")
                if mode == "ENHANCED" and f.constraints > limits.MAX_ENHANCED_FILTER_CONSTRAINTS:
                    raise ValidationError.at(
                        "/filter",
                        f"Invalid query filter: at most {limits.MAX_ENHANCED_FILTER_CONSTRAINTS} "
                        "filter constraints are allowed on an ENHANCED index",
                    )
                meta = self.ensure_metadata(index, m)
                mask = np.fromiter((f.matches(md) for md in meta), dtype=bool, count=len(meta))
            hits = m.search(q, top_k, mask)
            results = [{"key": k, "distance": d} for k, d in hits]
            first = results[: limits.QUERY_PAGE_SIZE]
            if p.get("returnMetadata"):
                self._attach_metadata(index, results if len(results) > len(first) else first)
            out = self._render(index, p, first)
            if len(results) > len(first):
                out["nextToken"] = self._open_session(fingerprint, results, limits.QUERY_PAGE_SIZE)
            return out

    def _fingerprint(self, index: sqlite3.Row, p: dict[str, Any]) -> str:
        # Pages must repeat queryVector, topK, filter and queryMode (s3-vectors-query.html); we also pin
        # returnMetadata and returnDistance, which a paginator repeats anyway.
        fields = [index["id"], p.get("queryVector"), p["topK"], p.get("filter"), p.get("queryMode"),
                  bool(p.get("returnMetadata")), bool(p.get("returnDistance"))]
        return hashlib.sha256(json.dumps(fields, sort_keys=True, default=str).encode()).hexdigest()

    def _attach_metadata(self, index: sqlite3.Row, results: list[dict[str, Any]]) -> None:
        with self.store.read() as conn:
            rows = Store.get_vectors(conn, index["id"], [r["key"] for r in results])
        for r in results:
            row = rows.get(r["key"])
            r["metadata"] = json.loads(row["metadata"]) if row is not None and row["metadata"] else {}

    @staticmethod
    def _render(index: sqlite3.Row, p: dict[str, Any], page: list[dict[str, Any]]) -> dict[str, Any]:
        vectors = []
        for r in page:
            v: dict[str, Any] = {"key": r["key"]}
            if p.get("returnDistance"):
                v["distance"] = r["distance"]
            if p.get("returnMetadata"):
                v["metadata"] = r.get("metadata", {})
            vectors.append(v)
        return {"vectors": vectors, "distanceMetric": index["metric"]}

    def _open_session(self, fingerprint: str, results: list[dict[str, Any]], offset: int) -> str:
        now = self.clock()
        sid = secrets.token_urlsafe(16)
        with self._sessions_lock:
            for k in [k for k, s in self._sessions.items() if s.expires < now]:
                del self._sessions[k]
            self._sessions[sid] = _QuerySession(fingerprint, results, now + limits.QUERY_TOKEN_TTL_S)
        return tokens.encode("query", session=sid, offset=offset)

    def _next_page(self, index: sqlite3.Row, p: dict[str, Any], fingerprint: str) -> dict[str, Any]:
        tok = tokens.decode(p["nextToken"], "query", session=str, offset=int)
        with self._sessions_lock:
            session = self._sessions.get(str(tok.get("session")))
        if session is None or session.expires < self.clock():
            raise ValidationError.at(
                "/nextToken", "The pagination token has expired or is invalid; re-issue the original query"
            )
        if session.fingerprint != fingerprint:
            raise ValidationError.at(
                "/nextToken", "queryVector, topK, filter and queryMode must be the same on every page"
            )
        # Pages come from the result set computed by the first request (a snapshot of that moment).
        offset = int(tok["offset"])
        page = session.results[offset : offset + limits.QUERY_PAGE_SIZE]
        out = self._render(index, p, page)
        if offset + limits.QUERY_PAGE_SIZE < len(session.results):
            out["nextToken"] = tokens.encode("query", session=tok["session"], offset=offset + len(page))
        return out
