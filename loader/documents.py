"""Read a corpus directory into ``Document``s (or ``Skipped`` files, with the reason).

Decisions, so that every run over the same tree yields the same documents in the same order:

* Order: sorted by ``source``, the NFC-normalized POSIX path relative to the root, compared as
  strings; the whole tree is listed before the first file is read.
* Hidden files and directories (name starting with "."), e.g. ``.git``, ``.DS_Store``, ``.obsidian``,
  are ignored silently: they are tooling, not content, and reporting each would drown real problems.
* Symlinks to files are followed. A symlink to one of its own ancestor directories is
  ``Skipped(path, "symlink loop")``. Any other symlink to a directory inside the corpus is ignored
  silently: that directory is read at its real path already. A symlink to a directory outside the
  corpus is followed, once per directory however many links lead to it.
* Supported: .md/.markdown (front matter + Markdown), .txt, .html/.htm, .pdf (suffix, any case).
  Every other file is ``Skipped(path, "unsupported type")``.
* In strict mode the first file that would be skipped, for any reason, raises ``DocumentError``.
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import stat
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from loader import extract, frontmatter
from loader.markdown import find_headings
from loader.records import Document, Skipped

DEFAULT_MAX_FILE_SIZE = 50 * 1024 * 1024  # bytes; a larger "document" is almost surely a data dump
MAX_TITLE_LENGTH = 200  # characters; titles go into filterable metadata (2 KB per vector)


# Skip reasons (a reason may carry details after these words, e.g. "unreadable: Permission denied").
UNSUPPORTED = "unsupported type"
BINARY = "binary"
EMPTY = "empty"
UNREADABLE = "unreadable"
INVALID_PDF = "invalid PDF"
TOO_LARGE = "too large"
NOT_A_FILE = "not a regular file"
SYMLINK_LOOP = "symlink loop"
BAD_NAME = "file name is not valid UTF-8"
DUPLICATE = "duplicate path after Unicode normalization"


class DocumentError(Exception):
    """A file that cannot be loaded, raised in strict mode instead of yielding ``Skipped``."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


def read_documents(
    root: Path, *, strict: bool = False, max_file_size: int = DEFAULT_MAX_FILE_SIZE
) -> Iterator[Document | Skipped]:
    """Every file under ``root``, as a ``Document`` or as ``Skipped`` with the reason, in ``source`` order.

    Raises ``FileNotFoundError``/``NotADirectoryError`` if ``root`` is not a directory, and in strict mode
    ``DocumentError`` at the first file that would be skipped.
    """
    root = Path(root)
    if not root.exists():
        raise FileNotFoundError(errno.ENOENT, "corpus directory not found", str(root))
    if not root.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, "corpus root is not a directory", str(root))
    return _read_tree(root, strict, max_file_size)  # a generator, but the checks above run at once


def _read_tree(root: Path, strict: bool, max_file_size: int) -> Iterator[Document | Skipped]:
    for entry in _list_tree(root):
        if entry.reason is not None:
            result: Document | Skipped = Skipped(entry.source, entry.reason)
        else:
            assert entry.path is not None
            result = _read_file(entry.path, entry.source, max_file_size)
        if strict and isinstance(result, Skipped):
            raise DocumentError(result.path, result.reason)
        yield result


# --- Listing the tree ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Entry:
    source: str
    path: Path | None  # a supported file to read
    reason: str | None = None  # or why it is skipped without reading it


def _list_tree(root: Path) -> list[_Entry]:
    root_real = Path(os.path.realpath(root))
    entries: list[_Entry] = []
    # Directories being walked (real identity), each with the identities of its ancestors, so a
    # symlink back to one of them is a loop and a second link to the same directory is not re-read.
    root_stat = os.stat(root)
    visited = {(root_stat.st_dev, root_stat.st_ino)}
    pending: list[tuple[Path, tuple[str, ...], frozenset[tuple[int, int]]]] = [
        (root, (), frozenset(visited))
    ]
    while pending:
        directory, parts, ancestors = pending.pop()
        try:
            with os.scandir(directory) as scan:
                children = sorted(scan, key=lambda e: e.name)
        except OSError as error:
            entries.append(_Entry(_source(parts) or ".", None, _unreadable(error)))
            continue
        for child in children:
            if child.name.startswith("."):
                continue
            child_parts = (*parts, child.name)
            source = _source(child_parts)
            if not _valid_name(source):
                entries.append(_Entry(source.encode("utf-8", "surrogateescape").decode("utf-8", "replace"),
                                      None, BAD_NAME))
                continue
            path = Path(child.path)
            try:
                info = os.stat(path)  # follows symlinks
            except OSError as error:
                broken = child.is_symlink() and error.errno == errno.ENOENT
                entries.append(_Entry(source, None, f"{UNREADABLE}: broken symlink" if broken else _unreadable(error)))
                continue
            if stat.S_ISDIR(info.st_mode):
                identity = (info.st_dev, info.st_ino)
                if identity in ancestors:
                    entries.append(_Entry(source, None, SYMLINK_LOOP))
                elif child.is_symlink() and (_inside(Path(os.path.realpath(path)), root_real) or identity in visited):
                    continue  # read at its real path inside the corpus, or already read through another link
                else:
                    visited.add(identity)
                    pending.append((path, child_parts, ancestors | {identity}))
                continue
            if not stat.S_ISREG(info.st_mode):
                entries.append(_Entry(source, None, NOT_A_FILE))
            elif path.suffix.lower() not in _READERS:
                entries.append(_Entry(source, None, UNSUPPORTED))
            else:
                entries.append(_Entry(source, path))
    entries.sort(key=lambda e: e.source)
    return _without_duplicates(entries)


def _source(parts: tuple[str, ...]) -> str:
    return unicodedata.normalize("NFC", "/".join(parts))


def _valid_name(source: str) -> bool:
    try:
        source.encode("utf-8")  # undecodable bytes in a file name arrive as lone surrogates
    except UnicodeEncodeError:
        return False
    return True


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def _without_duplicates(entries: list[_Entry]) -> list[_Entry]:
    """Two names that differ only in Unicode normalization (NFC "é" and NFD "e" + accent, possible on
    Linux) would have the same ``source``: keep the first, skip the other rather than mix them up."""
    result: list[_Entry] = []
    for entry in entries:
        if result and result[-1].source == entry.source:
            result.append(_Entry(entry.source, None, DUPLICATE))
        else:
            result.append(entry)
    return result


def _unreadable(error: OSError) -> str:
    return f"{UNREADABLE}: {error.strerror or error}"


# --- Reading a file --------------------------------------------------------------------------------


def _read_file(path: Path, source: str, max_file_size: int) -> Document | Skipped:
    try:
        # Read at most one byte over the limit from the open file, so a file that grows between
        # listing and reading can't make us read gigabytes.
        with open(path, "rb") as file:
            data = file.read(max_file_size + 1)
    except OSError as error:
        return Skipped(source, _unreadable(error))
    return document_from_bytes(source, data, max_file_size=max_file_size)


def unparsed_if_unchanged(
    source: str, data: bytes, max_file_size: int, unchanged: Callable[[str, str], bool]
) -> Document | None:
    """A Document with ``data``'s hash and no text if ``unchanged(source, sha256 of data)`` says the index
    already holds it (nothing of it is embedded or written, so it need not be parsed); else None.
    Data that would be skipped (empty, too large) is never reported unchanged."""
    if data.strip() and len(data) <= max_file_size:
        digest = hashlib.sha256(data).hexdigest()
        if unchanged(source, digest):
            return Document(source=source, title="", text="", content_hash=digest)
    return None


def document_from_bytes(
    source: str, data: bytes, *, max_file_size: int = DEFAULT_MAX_FILE_SIZE
) -> Document | Skipped:
    """A document from its bytes, its type told by ``source``'s extension (files and S3 objects alike)."""
    suffix = PurePosixPath(source).suffix.lower()
    if suffix not in _READERS:
        return Skipped(source, UNSUPPORTED)
    if len(data) > max_file_size:
        return Skipped(source, f"{TOO_LARGE} (> {_size(max_file_size)})")
    if not data.strip():
        return Skipped(source, EMPTY)
    try:
        title, text, fields = _READERS[suffix](data)
    except extract.ExtractError as error:
        return Skipped(source, error.reason)
    except Exception as error:  # a parser choking on one odd file must not stop a load of thousands
        return Skipped(source, f"{UNREADABLE}: {type(error).__name__}: {str(error)[:200]}")
    if not text.strip():
        return Skipped(source, f"{EMPTY} (no text{' layer: a scanned PDF?' if suffix == '.pdf' else ''})")
    if "/" in source and not any(key.lower() == "category" for key in fields):
        # Text, HTML and PDF files carry no front matter: their top folder is their category, so
        # `--where category=baggage` finds every baggage document whatever its format.
        fields = {**fields, "category": source.split("/", 1)[0]}
    return Document(
        source=source,
        title=_clean_title(title) or _clean_title(PurePosixPath(source).stem) or source,
        text=text,
        content_hash=hashlib.sha256(data).hexdigest(),
        fields=fields,
    )


_Read = tuple[str | None, str, dict[str, frontmatter.Scalar]]


def _read_markdown(data: bytes) -> _Read:
    fields, body = frontmatter.split_front_matter(extract.decode_text(data))
    title = next((v for k, v in fields.items() if k.lower() == "title"), None)
    fields = {k: v for k, v in fields.items() if k.lower() != "title"}
    return (str(title) if title is not None else _first_heading(body)), body, fields


def _read_text(data: bytes) -> _Read:
    text = extract.decode_text(data)
    # Plain text conventionally starts with its title line ("Northwind Air Lounge Access Policy").
    return _title_line(text) or _first_heading(text), extract.mark_plain_text_headings(text), {}


def _read_html(data: bytes) -> _Read:
    page = extract.html_to_text(data)
    return page.title, page.text, {}


def _read_pdf(data: bytes) -> _Read:
    pdf = extract.pdf_to_text(data)
    return pdf.title or _title_line(pdf.text), pdf.text, {}


_READERS: dict[str, Callable[[bytes], _Read]] = {
    ".md": _read_markdown,
    ".markdown": _read_markdown,
    ".txt": _read_text,
    ".html": _read_html,
    ".htm": _read_html,
    ".pdf": _read_pdf,
}
SUPPORTED_SUFFIXES = frozenset(_READERS)


def _first_heading(text: str) -> str | None:
    """The first level-1 heading, else the first heading of any level."""
    headings = find_headings(text)
    return next((h.title for h in headings if h.level == 1), headings[0].title if headings else None)


def _title_line(text: str) -> str | None:
    """The first non-blank line, if it looks like a title: short, not the end of a sentence."""
    line = next((line.strip() for line in text.split("\n") if line.strip()), "").lstrip("#").strip()
    return line if 0 < len(line) <= 120 and not line.endswith((".", ",", ";", ":")) else None


_SPACES = re.compile(r"\s+")


def _clean_title(title: str | None) -> str:
    title = _SPACES.sub(" ", title or "").strip()
    if len(title) > MAX_TITLE_LENGTH:
        cut = title[: MAX_TITLE_LENGTH - 1]
        title = (cut.rsplit(" ", 1)[0] if " " in cut[MAX_TITLE_LENGTH // 2 :] else cut) + "…"
    return title


def _size(n: int) -> str:
    for unit, scale in (("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10)):
        if n >= scale:
            return f"{n / scale:g} {unit}"
    return f"{n} bytes"
