"""Text out of a file's bytes: plain-text decoding, HTML to Markdown-ish text, PDF text.

Every function here takes bytes and returns text (or raises ``ExtractError`` with the reason the file
is skipped); walking the corpus, titles and front matter are ``loader.documents``' business.
"""

from __future__ import annotations

import codecs
import io
import logging
import math
import re
import unicodedata
from dataclasses import dataclass

# Control characters other than whitespace. Text files have none (or a stray one); binary files that
# happen to have no NUL byte still have many once decoded.
_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1f\x7f-\x9f]")
_MAX_CONTROL_RATIO = 0.01
_NEWLINES = re.compile(r"\r\n?")
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),  # before UTF-16 LE: its BOM starts with UTF-16 LE's
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)


class ExtractError(Exception):
    """The file cannot be turned into text; ``reason`` says why ("binary", "invalid PDF: ...")."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def normalize(text: str) -> str:
    """One form for all text: Unix newlines, NFC (the same word always has the same code points)."""
    return unicodedata.normalize("NFC", _NEWLINES.sub("\n", text))


def decode_text(data: bytes, *, declared: str | None = None) -> str:
    """Decode a text file: BOM, else ``declared`` (e.g. an HTML meta charset), else UTF-8, else cp1252.

    cp1252 is the usual encoding of text that is not UTF-8 (Windows editors, old web pages); where
    it has no character for a byte, Latin-1 takes over so decoding never fails. Raises
    ``ExtractError("binary")`` for data that is not text: a NUL byte outside UTF-16/32, or too many
    control characters.
    """
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            try:
                return _checked(data.decode(encoding))
            except UnicodeDecodeError:
                raise ExtractError("binary") from None
    if b"\x00" in data:
        raise ExtractError("binary")
    candidates = [declared] if declared else []
    for encoding in [*candidates, "utf-8", "cp1252", "latin-1"]:
        try:
            return _checked(data.decode(encoding))
        except (UnicodeDecodeError, LookupError):
            continue
    raise AssertionError("latin-1 decodes any bytes")  # pragma: no cover


def _checked(text: str) -> str:
    if text and len(_CONTROL.findall(text)) > _MAX_CONTROL_RATIO * len(text):
        raise ExtractError("binary")
    return normalize(text)


# --- Plain text ----------------------------------------------------------------------------------

_SENTENCE_END = (".", ",", ";", "!", "?")


def mark_plain_text_headings(text: str) -> str:
    """Turn the headings of a plain-text file into Markdown "## " headings, so sections survive.

    A heading is a short line in capitals with a blank line (or the start) before it and a blank line
    after it: ``WHAT COUNTS AS A GROUP``, ``1. WHO HAS ACCESS``, ``PART 2: MINOR CORRECTIONS``. Capitals
    are the only heading convention of plain text that is unambiguous; "Title\n=====" underlines are
    Markdown already.
    """
    lines = text.split("\n")
    for i, line in enumerate(lines):
        if (
            (i == 0 or not lines[i - 1].strip())
            and (i + 1 == len(lines) or not lines[i + 1].strip())
            and _shouted(line)
        ):
            lines[i] = "## " + line.strip()
    return "\n".join(lines)


def _shouted(line: str) -> bool:
    line = line.strip()
    if not 3 <= len(line) <= 100 or line.endswith(_SENTENCE_END) or line.startswith("#"):
        return False
    letters = [c for c in line if c.isalpha()]
    return len(letters) >= 3 and all(c.isupper() for c in letters)


# --- HTML ------------------------------------------------------------------------------------------

# Never text of the page: code, page furniture (navigation, footers, sidebars), forms, embedded media.
_DROPPED_TAGS = frozenset(
    {
        *("script", "style", "noscript", "template", "head"),
        *("nav", "footer", "aside", "form", "button", "select", "option"),
        *("svg", "canvas", "iframe", "object", "embed", "audio", "video", "map"),
    }
)
_HEADINGS = {f"h{n}": n for n in range(1, 7)}
_BLOCK_TAGS = frozenset(
    {
        *("html", "body", "main", "article", "section", "header", "div", "p", "br", "hr", "address"),
        *("blockquote", "center", "details", "summary", "dialog", "fieldset", "legend", "figure"),
        *("figcaption", "hgroup", "menu", "ul", "ol", "li", "dl", "dt", "dd"),
        *("table", "caption", "thead", "tbody", "tfoot", "tr", "td", "th"),
    }
)
# WHATWG: pages labelled Latin-1 or ASCII are decoded as windows-1252 by every browser.
_ENCODING_ALIASES = {"iso-8859-1": "cp1252", "latin-1": "cp1252", "latin1": "cp1252", "ascii": "cp1252",
                     "us-ascii": "cp1252"}
_HTML_SPACES = re.compile(r"[ \t\n\r\f\v]+")
_LINE_START_MARKUP = re.compile(r"^(#{1,6}(?:\s|$)|```|~~~)")


@dataclass(frozen=True)
class HtmlText:
    title: str | None  # the <h1> if <title> is that plus branding ("Pets | Northwind Air"), else <title>
    text: str  # the main text, with h1-h6 as Markdown "#" headings


def html_to_text(data: bytes) -> HtmlText:
    """The readable text of a web page, with its headings kept as Markdown headings.

    The main content is ``<main>`` (or ``role="main"``, else the first ``<article>``, else ``<body>``).
    Navigation, site headers/footers, scripts, styles, forms and hidden elements are dropped. Headings
    become ``#`` lines so the chunker finds sections exactly as in Markdown; ``<pre>`` becomes a fenced
    code block (so a "#" in it is not a heading); list items become "- " lines, table rows "a | b"
    lines.
    """
    from bs4 import BeautifulSoup
    from bs4.dammit import EncodingDetector

    declared = EncodingDetector.find_declared_encoding(data, is_html=True)
    if declared:
        declared = _ENCODING_ALIASES.get(declared.lower(), declared)
    soup = BeautifulSoup(decode_text(data, declared=declared), "html.parser")

    title = _collapse(soup.title.get_text(" ")) if soup.title is not None else ""
    h1 = soup.find("h1")
    heading = _collapse(h1.get_text(" ")) if h1 is not None else ""
    if heading and (not title or heading.casefold() in title.casefold()):
        title = heading
    root = soup.find("main") or soup.find(True, attrs={"role": "main"}) or soup.find("article") or soup.body or soup
    return HtmlText(title=title or None, text=normalize(_render(root)))


def _collapse(text: str) -> str:
    return _HTML_SPACES.sub(" ", text).strip()


class _Blocks:
    """Text blocks of a page: paragraphs are separated by blank lines, list items and table rows by one
    newline (so a list stays together when the chunker looks for paragraph breaks)."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.inline: list[str] = []
        self.item = False  # the pending inline text is a list item
        self.last_was_item = False

    def add(self, text: str, *, item: bool = False) -> None:
        if not text:
            return
        text = _escape_markup(text)
        if self.parts:
            self.parts.append("\n" if item and self.last_was_item else "\n\n")
        self.parts.append(text)
        self.last_was_item = item

    def start_item(self) -> None:
        self.flush()
        self.inline.append("- ")
        self.item = True

    def flush(self) -> None:
        text = _collapse("".join(self.inline))
        self.inline.clear()
        if self.item and text == "-":  # <li><p>..: the item's text is still to come
            self.inline.append("- ")
            return
        self.add(text, item=self.item)
        self.item = False

    def text(self) -> str:
        self.flush()
        return "".join(self.parts)


_FLUSH = object()  # a marker on the walk's stack: the block element whose children were just walked ends


def _render(root: object) -> str:
    """Walk the tree iteratively (deeply nested pages would overflow recursion) into text blocks."""
    from bs4 import Comment, Declaration, Doctype, NavigableString, ProcessingInstruction, Tag

    out = _Blocks()
    stack: list[object] = [root]
    while stack:
        node = stack.pop()
        if node is _FLUSH:
            out.flush()
        elif isinstance(node, NavigableString):
            if not isinstance(node, Comment | Declaration | Doctype | ProcessingInstruction):
                out.inline.append(str(node))
        elif isinstance(node, Tag):
            name = node.name.lower()
            if name in _DROPPED_TAGS or _hidden(node) or (name == "header" and _is_page_header(node)):
                continue
            if name in _HEADINGS:
                out.flush()
                text = _collapse(node.get_text(" "))
                if text:
                    out.parts.append("\n\n" if out.parts else "")
                    out.parts.append("#" * _HEADINGS[name] + " " + text)
                    out.last_was_item = False
            elif name == "pre":
                out.flush()
                code = node.get_text().strip("\n")
                if code.strip():
                    fence = "~~~~" if "```" in code or "~~~" in code else "```"
                    out.parts.append("\n\n" if out.parts else "")
                    out.parts.append(f"{fence}\n{code}\n{fence}")
                    out.last_was_item = False
            elif name == "tr":
                out.flush()
                cells = [_collapse(c.get_text(" ")) for c in node.find_all(("td", "th"), recursive=False)]
                if any(cells):
                    out.add(" | ".join(cells), item=True)
            elif name == "img":
                alt = node.get("alt")
                if isinstance(alt, str) and alt.strip():
                    out.inline.append(f" {alt.strip()} ")
            else:
                if name == "li":
                    out.start_item()
                    stack.append(_FLUSH)
                elif name in _BLOCK_TAGS:
                    out.flush()
                    stack.append(_FLUSH)
                stack.extend(reversed(node.contents))
    return out.text()


def _hidden(node: object) -> bool:
    from bs4 import Tag

    if not isinstance(node, Tag):
        return False
    return (
        node.has_attr("hidden")
        or node.get("aria-hidden") == "true"
        or node.get("role") in ("navigation", "banner", "contentinfo", "search")
    )


def _is_page_header(node: object) -> bool:
    """A site header (logo, menu), as opposed to the header of an <article> or <main> holding its h1."""
    from bs4 import Tag

    return isinstance(node, Tag) and node.find_parent(("article", "main", "section")) is None


# --- PDF -------------------------------------------------------------------------------------------

_JUNK_PDF_TITLE = re.compile(r"^(untitled|microsoft (word|powerpoint) - .*|.*\.(docx?|pptx?|pdf|tex))$", re.I)
_HEADING_SIZE_RATIO = 1.03  # a run this much larger than the body text is a heading (bold 11pt on 10.5pt)
_MAX_HEADING_SHARE = 0.3  # if more of the text than this looks like headings, there is no body font to go by
_DIGITS = re.compile(r"\d+")
_RUNS_OF_SPACES = re.compile(r"[ \t]{2,}")


@dataclass(frozen=True)
class PdfText:
    title: str | None  # the document information's title, if it is a real one
    text: str  # page texts, headings marked as Markdown "#" lines


def pdf_to_text(data: bytes) -> PdfText:
    """The text of every page (pypdf), with its headings found by font size.

    A PDF has no headings, only larger type: lines set in a font larger than the body text become
    Markdown headings (the largest size level 1, the next level 2...), so sections survive as in
    Markdown. A header or footer repeated on every page ("Company | Policy", "Page 2 of 5") is dropped.
    Text is NFKC-normalized: PDFs spell "fi" as the ligature "ﬁ" and so on.
    """
    from pypdf import PdfReader

    # pypdf logs a warning for every quirk of a sloppy but readable PDF; the loader reports real
    # failures itself, so only errors get through.
    logging.getLogger("pypdf").setLevel(logging.ERROR)
    runs: list[tuple[str, float]] = []  # (text, font size) of every text run of the document
    pages: list[list[str]] = []
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise ExtractError("invalid PDF: encrypted")

        def visit(text: str, cm: list[float], tm: list[float], _font: object, size: float) -> None:
            runs.append((text, size * _scale(cm, tm)))

        for page in reader.pages:
            text = page.extract_text(visitor_text=visit) or ""
            pages.append([line for line in _NEWLINES.sub("\n", text).split("\n") if line.strip()])
        metadata = reader.metadata
        raw_title = metadata.title if metadata is not None else None
    except ExtractError:
        raise
    except Exception as error:  # pypdf raises many types (PdfReadError, ValueError, KeyError...) on bad files
        message = str(error).strip()
        detail = message.splitlines()[0] if message else type(error).__name__
        raise ExtractError(f"invalid PDF: {detail[:200]}") from error
    _drop_running_lines(pages)
    levels = _heading_levels(runs)
    lines = [_escape_markup(_RUNS_OF_SPACES.sub(" ", line.strip())) for page in pages for line in page]
    marked = [_mark_heading(line, levels) for line in lines]
    heading_chars = sum(len(line) for m, line in zip(marked, lines, strict=True) if m is not line)
    if heading_chars <= _MAX_HEADING_SHARE * sum(len(line) for line in lines):
        lines = marked
    text = unicodedata.normalize("NFKC", "\n".join(lines))
    title = _collapse(raw_title) if isinstance(raw_title, str) else ""
    return PdfText(title=title if title and not _JUNK_PDF_TITLE.match(title) else None, text=text)


def _scale(cm: list[float], tm: list[float]) -> float:
    """Vertical scale of the text matrix times the transformation matrix (font size is in text space)."""
    c = tm[2] * cm[0] + tm[3] * cm[2]
    d = tm[2] * cm[1] + tm[3] * cm[3]
    return math.hypot(c, d) or 1.0


def _drop_running_lines(pages: list[list[str]]) -> None:
    """Remove the first/last line of every page when it is the same on all pages (digits aside)."""
    if len(pages) < 2 or not all(pages):
        return
    for index in (0, -1):
        keys = {_DIGITS.sub("#", _collapse(page[index])) for page in pages}
        if len(keys) == 1:
            for page in pages:
                del page[index]
            if not all(pages):
                return


def _heading_levels(runs: list[tuple[str, float]]) -> dict[str, int]:
    """Heading texts (without whitespace) -> level, from the runs set larger than the body font."""
    chars_by_size: dict[float, int] = {}
    for text, size in runs:
        if text.strip():  # empty runs (spacing, positioning) have a size but set no text
            key = round(size * 2) / 2
            chars_by_size[key] = chars_by_size.get(key, 0) + len(text.strip())
    if not chars_by_size:
        return {}
    body = max(chars_by_size, key=lambda size: chars_by_size[size])
    sizes = sorted((size for size in chars_by_size if size > body * _HEADING_SIZE_RATIO), reverse=True)
    level_of = {size: min(i + 1, 6) for i, size in enumerate(sizes)}
    levels: dict[str, int] = {}
    merged, merged_size = "", 0.0  # consecutive runs of one heading size: a heading set in several runs
    for text, size in runs:
        if not text.strip():
            continue
        key = round(size * 2) / 2
        if key not in level_of:
            merged, merged_size = "", 0.0
            continue
        merged = merged + text if key == merged_size else text
        merged_size = key
        levels.setdefault(_squash(text), level_of[key])
        levels.setdefault(_squash(merged), level_of[key])
    return levels


def _squash(text: str) -> str:
    return _HTML_SPACES.sub("", text)


def _escape_markup(line: str) -> str:
    """A line of text that starts with "#" or a fence would read as Markdown structure: escape it."""
    return "\\" + line if _LINE_START_MARKUP.match(line) else line


def _mark_heading(line: str, levels: dict[str, int]) -> str:
    level = levels.get(_squash(line.lstrip("\\"))) if len(line) <= 200 else None
    return "#" * level + " " + line if level else line
