"""Small records passed between the loader's stages (read -> chunk -> embed -> write)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:  # numpy (~0.1 s to import) only names the type of ``Embedder.embed``'s result here
    import numpy as np
    import numpy.typing as npt

# Part of the content hash of stored chunks (``loader.chunking`` re-exports it): change it whenever the
# same document and settings would produce different chunks, so that a sync re-embeds everything.
CHUNKING_VERSION = "1"


@dataclass(frozen=True)
class Document:
    """A readable document of the corpus."""

    source: str  # POSIX path relative to the corpus root, e.g. "baggage/checked.md"
    title: str
    text: str  # plain text (Markdown kept as Markdown so headings can be found)
    content_hash: str  # hex digest of the document's bytes; identifies its version
    fields: Mapping[str, str | int | float | bool] = field(default_factory=dict)  # front matter


@dataclass(frozen=True)
class Skipped:
    """A file that was not loaded, and why (binary, empty, unreadable, ...)."""

    path: str
    reason: str


@dataclass(frozen=True)
class Chunk:
    """A piece of a document small enough for the model to embed without truncation."""

    source: str
    ordinal: int  # 0-based position within the document
    section: str  # heading path the chunk falls under ("" if none)
    text: str
    # Added by the read side (defaults keep older constructors working): where the chunk's body lies in
    # Document.text (``text`` may start with a "Title — Section" context line that is not in the
    # document), and how many model tokens ``text`` has, special tokens excluded (0 = not counted).
    start: int = 0
    end: int = 0
    tokens: int = 0


class Embedder(Protocol):
    """Turns texts into unit-length float32 vectors."""

    @property
    def dimension(self) -> int: ...

    @property
    def max_tokens(self) -> int:
        """Longest input, in the model's own tokens, that is embedded without truncation."""
        ...

    def count_tokens(self, text: str) -> int:
        """Number of model tokens of ``text`` (special tokens excluded)."""
        ...

    def token_offsets(self, text: str) -> Sequence[tuple[int, int]]:
        """Character (start, end) of each model token of ``text``, in order, special tokens excluded.

        Lets the chunker tokenize a document once and cut it at token boundaries.
        """
        ...

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """Return an array of shape (len(texts), dimension), each row L2-normalized."""
        ...
