"""A deterministic stand-in for the sentence-transformers model, for fast unit tests.

Each word is hashed into one of ``dimension`` buckets (a bag-of-words "hashing trick"), so texts that
share words point in similar directions: retrieval in tests is meaningful, yet no model is loaded.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

_WORD = re.compile(r"\w+", re.UNICODE)


class FakeEmbedder:
    def __init__(self, *, dimension: int = 384, max_tokens: int = 256) -> None:
        self._dimension = dimension
        self._max_tokens = max_tokens
        self.embedded_texts: list[str] = []  # every text ever embedded, so tests can count work

    @property
    def dimension(self) -> int:
        return self._dimension

    @property
    def max_tokens(self) -> int:
        return self._max_tokens

    def count_tokens(self, text: str) -> int:
        return len(_WORD.findall(text))

    def token_offsets(self, text: str) -> list[tuple[int, int]]:
        return [match.span() for match in _WORD.finditer(text)]

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        self.embedded_texts.extend(texts)
        out = np.zeros((len(texts), self._dimension), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in _WORD.findall(text.lower()):
                digest = hashlib.blake2b(word.encode(), digest_size=8).digest()
                bucket = int.from_bytes(digest[:4], "little") % self._dimension
                sign = 1.0 if digest[4] & 1 else -1.0
                out[row, bucket] += sign
            if not out[row].any():  # a cosine index rejects all-zero vectors
                out[row, 0] = 1.0
            out[row] /= np.linalg.norm(out[row])
        return out
