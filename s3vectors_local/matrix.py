"""In-memory vector matrix of one index: exact nearest-neighbour search without rescanning SQLite.

Rows are kept in a preallocated float32 array that grows by doubling; a put overwrites a row in
place or appends one, a delete moves the last row into the hole, so every write costs O(changed
rows) and a query costs one matrix-vector product over the live rows (one pass over memory).

Distances (https://docs.aws.amazon.com/AmazonS3/latest/userguide/s3-vectors-indexes.html: "Cosine"
measures the angle, "Euclidean" the straight-line distance between two points):
  cosine:    1 - (v . q) / (|v| |q|)
  euclidean: |v - q|_2 (the square root of the summed squared differences, not its square)
The product is float32 (fast); the best candidates, widened by a bound on float32 rounding, are then
recomputed in float64 from the stored float32 values and sorted by (distance, key). So results are
exact and ties break by key, deterministically.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

F32 = np.float32
_INITIAL_CAPACITY = 1024


class IndexMatrix:
    def __init__(self, dimension: int, metric: str) -> None:
        self.dimension = dimension
        self.metric = metric
        self.lock = threading.Lock()  # guards lazy metadata loading only; writers hold the service lock
        self._vecs = np.empty((_INITIAL_CAPACITY, dimension), dtype=F32)
        self._norm2 = np.empty(_INITIAL_CAPACITY, dtype=np.float64)  # squared L2 norm of each row
        # float32 per-row factor for the fast pass: -1/|v| (cosine) or |v|^2 (euclidean), so that one
        # multiply or add on the product gives a score to minimise without float64 temporaries.
        self._aux = np.empty(_INITIAL_CAPACITY, dtype=F32)
        self.keys: list[str] = []
        self.pos: dict[str, int] = {}
        # Parsed metadata per row, loaded only when a filtered query first needs it.
        self.meta: list[dict[str, Any]] | None = None

    def __len__(self) -> int:
        return len(self.keys)

    @property
    def nbytes(self) -> int:
        return int(self._vecs.nbytes + self._norm2.nbytes + self._aux.nbytes)

    def rows(self) -> npt.NDArray[np.float32]:
        return self._vecs[: len(self.keys)]

    def _reserve(self, n: int) -> None:
        cap = self._vecs.shape[0]
        if n <= cap:
            return
        while cap < n:
            cap *= 2
        vecs = np.empty((cap, self.dimension), dtype=F32)
        vecs[: len(self.keys)] = self._vecs[: len(self.keys)]
        norm2 = np.empty(cap, dtype=np.float64)
        norm2[: len(self.keys)] = self._norm2[: len(self.keys)]
        aux = np.empty(cap, dtype=F32)
        aux[: len(self.keys)] = self._aux[: len(self.keys)]
        self._vecs, self._norm2, self._aux = vecs, norm2, aux

    def upsert(
        self,
        keys: Sequence[str],
        vectors: npt.NDArray[np.float32],
        metadata: Sequence[dict[str, Any]] | None = None,
    ) -> None:
        """Insert or overwrite rows. ``keys`` must be unique (the service checks it)."""
        new = sum(1 for k in keys if k not in self.pos)
        self._reserve(len(self.keys) + new)
        rows = np.empty(len(keys), dtype=np.intp)
        for i, key in enumerate(keys):
            row = self.pos.get(key)
            if row is None:
                row = len(self.keys)
                self.pos[key] = row
                self.keys.append(key)
                if self.meta is not None:
                    self.meta.append({})
            rows[i] = row
            if self.meta is not None:
                self.meta[row] = metadata[i] if metadata is not None else {}
        v64 = vectors.astype(np.float64)
        norm2 = np.einsum("ij,ij->i", v64, v64)
        self._vecs[rows] = vectors
        self._norm2[rows] = norm2
        if self.metric == "cosine":
            self._aux[rows] = -1.0 / np.sqrt(norm2)  # cosine indexes hold no zero vectors
        else:
            self._aux[rows] = norm2

    def delete(self, keys: Iterable[str]) -> None:
        for key in keys:
            row = self.pos.pop(key, None)
            if row is None:
                continue
            last = len(self.keys) - 1
            if row != last:
                moved = self.keys[last]
                self._vecs[row] = self._vecs[last]
                self._norm2[row] = self._norm2[last]
                self._aux[row] = self._aux[last]
                self.keys[row] = moved
                self.pos[moved] = row
                if self.meta is not None:
                    self.meta[row] = self.meta[last]
            self.keys.pop()
            if self.meta is not None:
                self.meta.pop()

    def search(
        self, query: npt.NDArray[np.float32], k: int, mask: npt.NDArray[np.bool_] | None = None
    ) -> list[tuple[str, float]]:
        """The ``k`` nearest rows (restricted to ``mask`` when given) as (key, distance), best first."""
        n = len(self.keys)
        if n == 0 or k <= 0:
            return []
        q = query.astype(F32)
        q2 = float(np.dot(q.astype(np.float64), q.astype(np.float64)))
        if mask is not None:
            rows = np.flatnonzero(mask[:n])
            if rows.size == 0:
                return []
            # Gather the rows when few match; otherwise one pass over all rows is cheaper.
            dots = self._vecs[rows] @ q if rows.size * 2 < n else (self._vecs[:n] @ q)[rows]
            aux = self._aux[rows]
        else:
            rows = None
            dots = self._vecs[:n] @ q
            aux = self._aux[:n]
        approx, tol = self._approx(dots, aux, q2)
        m = approx.shape[0]
        kk = min(k, m)
        if kk < m:
            kth = np.partition(approx, kk - 1)[kk - 1]
            cand = np.flatnonzero(approx <= kth + tol)
        else:
            cand = np.arange(m)
        cand_rows = cand if rows is None else rows[cand]
        exact = self._exact(cand_rows, q, q2)
        order = sorted(range(cand_rows.size), key=lambda i: (exact[i], self.keys[cand_rows[i]]))
        return [(self.keys[cand_rows[i]], float(exact[i])) for i in order[:kk]]

    def _approx(
        self, dots: npt.NDArray[np.float32], aux: npt.NDArray[np.float32], q2: float
    ) -> tuple[npt.NDArray[np.float32], float]:
        """A float32 score that orders rows like the distance, and a bound on its rounding error.

        cosine: -cos(v, q) * |q|; euclidean: |v - q|^2 - |q|^2. A float32 dot product of length d errs
        by at most ~d * 2^-24 * |v||q| (in practice ~sqrt(d) * 2^-24), the float32 factors and the one
        multiply or add by a few 2^-24 more; 4x the worst case keeps every true top-k row a candidate.
        """
        rel = 4.0 * (self.dimension + 4) * 2.0**-24
        if self.metric == "cosine":
            np.multiply(dots, aux, out=dots)
            return dots, rel * float(np.sqrt(q2)) + 1e-30
        np.multiply(dots, F32(-2.0), out=dots)
        np.add(dots, aux, out=dots)
        scale = float(aux.max()) + q2 if aux.size else q2
        return dots, rel * scale * 4.0 + 1e-30

    def _exact(self, rows: npt.NDArray[np.intp], q: npt.NDArray[np.float32], q2: float) -> npt.NDArray[np.float64]:
        v = self._vecs[rows].astype(np.float64)
        q64 = q.astype(np.float64)
        if self.metric == "cosine":
            cos = (v @ q64) / (np.sqrt(self._norm2[rows]) * np.sqrt(q2))
            return np.clip(1.0 - cos, 0.0, 2.0)
        diff = v - q64
        return np.sqrt(np.einsum("ij,ij->i", diff, diff))
