"""Split a document into chunks that the embedding model reads whole: token-aware, section-aware.

How a document is cut:

1. Sections. Markdown headings (HTML, PDF and plain-text headings arrive as Markdown headings too)
   split the text first; ``Chunk.section`` is the heading path ("Pets in the cabin > Carriers"). The
   document's own title heading (the first heading, if it is the title or the only level-1 heading)
   is left out of the path: it would be the same on every chunk.
2. Tokens. The document is tokenized once with the model's own tokenizer, with character offsets
   (``Embedder.token_offsets``); every later decision is arithmetic on those offsets.
3. Packing. Within a section, a chunk runs from a start token up to the budget, and ends at the best
   break in its second half: a paragraph break, else a sentence end or list item, else a line
   break, else a space between words; only a word too long for a chunk is cut inside. When what is
   left of a section fits in two chunks, the cut aims at the middle rather than leaving a tiny tail.
   The next chunk starts ``overlap_tokens`` earlier, at a sentence start if the overlap holds one,
   else at a word start.
4. Context. Every chunk's text starts with a "Title — Section" line, then a blank line, then the
   body. all-MiniLM-L6-v2 sees each chunk alone; "the fee is €55" embeds far closer to "pet fees"
   when it says it is in "Travelling with Pets — Fees". The line counts against the token budget
   (and is kept to a quarter of it), and the stored text shows the reader where the passage is from.
5. Guarantee. Each chunk's final text is counted once more with the tokenizer; if it is over the
   budget (a tokenizer whose counts are not additive across a cut, e.g. a word cut into pieces), the
   chunk is shortened and counted again, down to a single piece of a word cut by characters if need
   be. So no chunk is ever longer than ``max_tokens``, which itself is at most the model's max
   sequence length minus its special tokens: nothing is ever truncated. For BERT-style tokenizers the
   count of a chunk cut at spaces is exactly what the offsets predicted; the recount costs about as
   much as the first tokenization, which is cheap next to embedding.

A chunk is also at most ``max_chars`` characters: a 100-character word is a single "[UNK]" token to
BERT, so a token budget alone would let a chunk of a few such "words" run to kilobytes.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from loader.markdown import Heading, find_headings
from loader.records import Chunk, Document, Embedder

DEFAULT_OVERLAP_TOKENS = 32
DEFAULT_MAX_CHARS = 4_000  # normal 256-token chunks are ~1,000-1,500 characters
MIN_MAX_TOKENS = 16
MIN_MAX_CHARS = 500  # the context line alone may take 300
CONTEXT_SEPARATOR = "\n\n"
_MAX_CONTEXT_SHARE = 4  # the context line takes at most 1/4 of the token budget...
_MAX_CONTEXT_CHARS = 300  # ...and at most this many characters

# How good a place to cut is, before a given token.
_NONE, _WORD, _LINE, _SENTENCE, _PARAGRAPH = 0, 1, 2, 3, 4
_BREAKS = re.compile(
    r"(?P<paragraph>\n[ \t]*\n)"
    r"|(?P<item>\n(?=[ \t]*(?:[-*+•>|]|\d{1,3}[.)])[ \t]))"  # a list item, quote or table row starts
    r"|(?P<line>\n)"
    # Sentence ends: . ! ? … and closing quotes/brackets before a space; CJK full stops need no space.
    r"|(?P<sentence>[.!?\u2026][\"'\u201d\u2019)\]]*(?=\s)|[\u3002\uff01\uff1f])"
)
_TOUCHING_START = re.compile(r"\S*")
_TOUCHING_END = re.compile(r"\S*\Z")
_MAX_SKIPPED_CHARS = 16
_MAX_TOKEN_CHARS = 64  # longer tokens ([UNK] for a long "word") are cut into pieces of this many characters
_BREAK_SCORES = {"paragraph": _PARAGRAPH, "item": _SENTENCE, "line": _LINE, "sentence": _SENTENCE}


def chunk_document(
    document: Document,
    embedder: Embedder,
    *,
    max_tokens: int | None = None,
    overlap_tokens: int = DEFAULT_OVERLAP_TOKENS,
    max_chars: int = DEFAULT_MAX_CHARS,
    context: bool = True,
) -> list[Chunk]:
    """The chunks of ``document``, ordinals 0..n-1; none for a document without text.

    ``max_tokens`` (default and upper bound: ``embedder.max_tokens``) bounds every chunk's text,
    context line included, in the model's tokens without its special tokens. ``overlap_tokens`` is
    the overlap between consecutive chunks of a section (capped just under half a chunk, so that
    every chunk moves on). ``max_chars`` bounds each chunk's text in characters. ``context`` puts the
    "Title — Section" line in front of each chunk's text.
    """
    budget = _budget(embedder, max_tokens)
    if overlap_tokens < 0:
        raise ValueError(f"overlap_tokens must be 0 or more, not {overlap_tokens}")
    if max_chars < MIN_MAX_CHARS:
        raise ValueError(f"max_chars must be at least {MIN_MAX_CHARS}, not {max_chars}")
    text = document.text
    if not text.strip():
        return []
    tokens = _TokenMap(text, embedder.token_offsets(text))
    chunks: list[Chunk] = []
    for section in _sections(text, document.title):
        first, stop = tokens.range(section.start, section.end)
        if first == stop:
            continue
        prefix, prefix_tokens = _context_line(document.title, section.path, embedder, budget) if context else ("", 0)
        packer = _Packer(text, tokens, embedder, (prefix, prefix_tokens), budget, overlap_tokens, max_chars)
        for body_start, body_end, count in packer.pack(first, stop, section.start, section.end):
            body = text[body_start:body_end]
            chunks.append(
                Chunk(
                    source=document.source,
                    ordinal=len(chunks),
                    section=section.path,
                    text=prefix + CONTEXT_SEPARATOR + body if prefix else body,
                    start=body_start,
                    end=body_end,
                    tokens=count,
                )
            )
    return chunks


def _budget(embedder: Embedder, max_tokens: int | None) -> int:
    limit = embedder.max_tokens
    if max_tokens is None:
        return limit
    if max_tokens > limit:
        raise ValueError(
            f"max_tokens {max_tokens} is over the model's limit of {limit} tokens "
            "(its max sequence length without special tokens); longer chunks would be truncated"
        )
    if max_tokens < MIN_MAX_TOKENS:
        raise ValueError(f"max_tokens must be at least {MIN_MAX_TOKENS}, not {max_tokens}")
    return max_tokens


# --- Sections --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Section:
    path: str  # "Heading > Subheading", "" before the first heading
    start: int  # the section's body in the text: after its heading line, up to the next heading
    end: int


def _sections(text: str, title: str) -> list[_Section]:
    headings = find_headings(text)
    sections: list[_Section] = []
    stack: list[tuple[int, str]] = []  # (level, title) of the headings the current one is nested in
    position = 0
    for index, heading in enumerate(headings):
        if heading.start > position:
            sections.append(_Section(_path(stack), position, heading.start))
        while stack and stack[-1][0] >= heading.level:
            stack.pop()
        if not (index == 0 and _is_title_heading(heading.title, heading.level, title, headings)):
            stack.append((heading.level, heading.title))
        position = heading.end
    sections.append(_Section(_path(stack), position, len(text)))
    return sections


def _path(stack: list[tuple[int, str]]) -> str:
    return " > ".join(title for _, title in stack)


def _is_title_heading(text: str, level: int, title: str, headings: Sequence[Heading]) -> bool:
    if " ".join(text.split()).casefold() == " ".join(title.split()).casefold():
        return True
    return level == 1 and sum(1 for h in headings if h.level == 1) == 1


def _context_line(title: str, path: str, embedder: Embedder, budget: int) -> tuple[str, int]:
    """ "Title — Section" and its token count, cut to a quarter of the budget (at a token boundary)."""
    line = " — ".join(part for part in (" ".join(title.split()), path) if part)
    if len(line) > _MAX_CONTEXT_CHARS:
        line = line[: _MAX_CONTEXT_CHARS - 1].rstrip() + "…"
    room = budget // _MAX_CONTEXT_SHARE
    offsets = embedder.token_offsets(line)
    if len(offsets) <= room:
        return line, len(offsets)
    line = line[: offsets[room - 2][1]].rstrip() + "…"  # room - 1 tokens and the ellipsis
    return line, embedder.count_tokens(line)


# --- Tokens ----------------------------------------------------------------------------------------


class _TokenMap:
    """Token offsets of one text as arrays, with how good a cut before each token is."""

    def __init__(self, text: str, offsets: Sequence[tuple[int, int]]) -> None:
        spans = np.asarray(offsets, dtype=np.int64).reshape(-1, 2)
        # Offsets must not go backwards for slicing to make sense (some tokenizers overlap tokens).
        starts = np.maximum.accumulate(spans[:, 0]) if len(spans) else spans[:, 0]
        ends = np.maximum(np.maximum.accumulate(spans[:, 1]), starts) if len(spans) else spans[:, 1]
        self.starts, self.ends = _split_long_tokens(starts, ends, _MAX_TOKEN_CHARS)
        self.breaks = _break_scores(text, self.starts, self.ends)

    def split(self, index: int, position: int) -> None:
        """Make token ``index`` two tokens, cut at character ``position`` (a last resort, see _Packer)."""
        self.starts = np.insert(self.starts, index + 1, position)
        self.ends = np.insert(self.ends, index, position)
        self.breaks = np.insert(self.breaks, index + 1, _NONE)

    def range(self, start: int, end: int) -> tuple[int, int]:
        """Indices [first, stop) of the tokens that start within text[start:end]."""
        first, stop = np.searchsorted(self.starts, (start, end), side="left")
        return int(first), int(stop)


def _split_long_tokens(
    starts: npt.NDArray[np.int64], ends: npt.NDArray[np.int64], limit: int
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Cut tokens longer than ``limit`` characters into pieces of ``limit``.

    BERT reads any word over 100 characters (a hash, a base64 blob, a 1 MB line without spaces) as one
    "[UNK]" token; as one token it would make one gigantic chunk. Pieces are cut points for the
    packer; the final count of each chunk catches what the pieces really tokenize to.
    """
    lengths = ends - starts
    if not len(lengths) or lengths.max() <= limit:
        return starts, ends
    pieces = np.maximum(1, -(-lengths // limit))  # ceil; an empty token stays one piece
    owner = np.repeat(np.arange(len(starts)), pieces)
    first_piece = np.repeat(np.cumsum(pieces) - pieces, pieces)
    new_starts = starts[owner] + (np.arange(len(owner)) - first_piece) * limit
    new_ends = np.minimum(new_starts + limit, ends[owner])
    return new_starts, new_ends


def _break_scores(text: str, starts: npt.NDArray[np.int64], ends: npt.NDArray[np.int64]) -> npt.NDArray[np.int8]:
    """``scores[i]``: how good a cut between token i-1 and token i is (0 = inside a word)."""
    n = len(starts)
    scores = np.zeros(n + 1, dtype=np.int8)
    scores[0] = scores[n] = _PARAGRAPH
    if n > 1:
        scores[1:n] = np.where(starts[1:] > ends[:-1], _WORD, _NONE)  # characters between: a space
    positions: list[int] = []
    kinds: list[int] = []
    for match in _BREAKS.finditer(text):
        positions.append(match.end())
        kinds.append(_BREAK_SCORES[match.lastgroup or "line"])
    if positions:
        index = np.searchsorted(starts, np.asarray(positions, dtype=np.int64), side="left")
        keep = (index > 0) & (index < n)
        # A break only counts where the next token starts after it, not inside a token spanning it.
        keep[keep] &= ends[index[keep] - 1] <= np.asarray(positions, dtype=np.int64)[keep]
        np.maximum.at(scores, index[keep], np.asarray(kinds, dtype=np.int8)[keep])
    return scores


# --- Packing ---------------------------------------------------------------------------------------


class _Packer:
    """Cuts the tokens of one section into chunks (see the module docstring, step 3 and 5)."""

    def __init__(
        self,
        text: str,
        tokens: _TokenMap,
        embedder: Embedder,
        prefix: tuple[str, int],
        budget: int,
        overlap: int,
        max_chars: int,
    ) -> None:
        self.text, self.tokens, self.embedder, self.budget = text, tokens, embedder, budget
        self.prefix, prefix_tokens = prefix
        self.room = budget - prefix_tokens  # tokens left for the body
        self.overlap = min(overlap, max(0, (self.room - 1) // 2))
        self.char_room = max_chars - (len(self.prefix) + len(CONTEXT_SEPARATOR) if self.prefix else 0)

    def pack(self, first: int, stop: int, low: int, high: int) -> list[tuple[int, int, int]]:
        """(body start, body end, token count of the chunk text) of each chunk of tokens [first, stop),
        which lie in text[low:high]."""
        out: list[tuple[int, int, int]] = []
        start = first
        while start < stop:
            cap = self.room
            while True:
                end = self._end(start, stop, cap)
                body_start, body_end = self._body(start, end, low, high)
                count = self._count(self.text[body_start:body_end])
                if count <= self.budget:
                    break
                if end - start == 1:
                    # One piece of a long word that tokenizes to more than the budget (tiny budgets, or
                    # a tokenizer that spends several tokens per character): cut it by characters.
                    self.tokens.split(start, self._fit(start))
                    stop += 1
                    cap = 1
                    continue
                # Over budget (counts differ when a word is cut): shrink in proportion and retry.
                cap = max(1, min(end - start - 1, (end - start) * self.room // count))
            out.append((body_start, body_end, count))
            if end >= stop:
                break
            start = self._next_start(start, end)
        return out

    def _count(self, body: str) -> int:
        """Tokens of the chunk text with this body: the text that will be embedded, counted as is."""
        return self.embedder.count_tokens(self.prefix + CONTEXT_SEPARATOR + body if self.prefix else body)

    def _fit(self, index: int) -> int:
        """The last character position within token ``index`` up to which it fits the budget alone."""
        first, last = int(self.tokens.starts[index]), int(self.tokens.ends[index])
        good, bad = first, last  # binary search: text[first:good] fits, text[first:bad] does not
        while bad - good > 1:
            middle = (good + bad) // 2
            if self._count(self.text[first:middle]) <= self.budget:
                good = middle
            else:
                bad = middle
        if good == first:
            raise RuntimeError(f"not even one character of {self.text[first:last][:40]!r} fits in {self.budget} tokens")
        return good

    def _body(self, start: int, end: int, low: int, high: int) -> tuple[int, int]:
        """The characters of tokens [start, end), with what the tokenizer skipped next to them.

        The tokenizer may skip characters (a control character; punctuation, for a word-level
        tokenizer). Those touching the chunk's first or last token belong to it, so that "word." keeps
        its full stop; at the edges of the section (``text[low:high]``), all of them do, so that a
        closing code fence is not lost. They cost no tokens; the extension is bounded so it can't
        swallow a long run.
        """
        starts, ends = self.tokens.starts, self.tokens.ends
        first, last = int(starts[start]), int(ends[end - 1])
        before = max(low, int(ends[start - 1]) if start > 0 else 0, first - _MAX_SKIPPED_CHARS)
        after = min(high, int(starts[end]) if end < len(starts) else len(self.text), last + _MAX_SKIPPED_CHARS)
        if before == low:
            body_start = first - len(self.text[low:first].lstrip())
        else:
            head = _TOUCHING_END.search(self.text, before, first)
            assert head is not None  # the pattern matches the empty string
            body_start = head.start()
        if after == high:
            body_end = last + len(self.text[last:high].rstrip())
        else:
            tail = _TOUCHING_START.match(self.text, last, after)
            assert tail is not None
            body_end = tail.end()
        return body_start, body_end

    def _end(self, start: int, stop: int, cap: int) -> int:
        """Where the chunk starting at token ``start`` ends (exclusive), at most ``cap`` tokens on."""
        starts, ends, breaks = self.tokens.starts, self.tokens.ends, self.tokens.breaks
        # The most tokens that fit both budgets: cap tokens, char_room characters (at least one token).
        by_chars = int(np.searchsorted(ends, starts[start] + self.char_room, side="right"))
        limit = max(start + 1, min(stop, start + cap, by_chars))
        if limit == stop:
            return stop
        # The best break in the second half of the window: a chunk is at least half full.
        low = start + max(1, (limit - start) // 2)
        window = breaks[low : limit + 1]
        candidates = low + np.flatnonzero(window == window.max())
        remaining = stop - start
        if limit == start + cap and remaining < 2 * cap - self.overlap:
            # Two chunks will do: of the equally good breaks, take the one nearest the middle, so the
            # second chunk is not a scrap.
            target = start + (remaining + self.overlap) // 2
            return int(candidates[np.argmin(np.abs(candidates - target))])
        return int(candidates[-1])

    def _next_start(self, start: int, end: int) -> int:
        """The next chunk's first token: ``overlap`` tokens back from ``end``, at a sentence or word start."""
        if self.overlap == 0:
            return end
        low = max(start + 1, end - self.overlap)
        window = self.tokens.breaks[low:end]
        for quality in (_SENTENCE, _WORD):
            found = np.flatnonzero(window >= quality)
            if found.size:
                return low + int(found[0])
        return low
