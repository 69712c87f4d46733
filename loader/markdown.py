"""Markdown headings, found the way a CommonMark renderer would see them.

Both the title of a document (its first heading) and the chunker's sections come from here. A line
starting with "#" inside a fenced code block (a shell comment, a Python comment) is not a heading,
nor is "#hashtag" (no space) or a line indented by four spaces (indented code).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_ATX = re.compile(r"^ {0,3}(?P<marks>#{1,6})(?:[ \t]+(?P<title>.*?))?(?:[ \t]+#+)?[ \t]*$")
_FENCE = re.compile(r"^ {0,3}(?P<fence>`{3,}|~{3,})(?P<info>.*)$")
_SETEXT = re.compile(r"^ {0,3}(?P<under>=+|-{2,})[ \t]*$")
# Lines that cannot be the text of a setext heading: list items, quotes, tables, HTML, indented code.
_NOT_PARAGRAPH = re.compile(r"^(?: {4}|\t| {0,3}(?:[-*+>|<]|\d{1,9}[.)])(?:[ \t]|$))")
_LINK = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")
_EMPHASIS = re.compile(r"(\*\*|__|\*|_|~~|`)(?=\S)(.+?)(?<=\S)\1")
_SPACES = re.compile(r"\s+")


@dataclass(frozen=True)
class Heading:
    level: int  # 1-6
    title: str  # plain text: inline Markdown (links, emphasis, code) removed
    start: int  # offset of the heading's first line in the text
    end: int  # offset just after the heading's last line (and its newline)


def find_headings(text: str) -> list[Heading]:
    """All ATX (``## Title``) and setext (``Title`` over ``===``/``---``) headings, outside code fences."""
    headings: list[Heading] = []
    fence: str | None = None  # the opening fence while inside a fenced code block
    previous: tuple[str, int] | None = None  # the previous line, if it could be a setext heading's text
    after_break = True  # the previous line ended a block (blank line, heading, fence) or there was none
    offset = 0
    for line in text.splitlines(keepends=True):
        start, offset = offset, offset + len(line)
        content = line.rstrip("\r\n")
        if fence is not None:
            closing = _FENCE.match(content)
            if (
                closing
                and closing.group("fence")[0] == fence[0]
                and len(closing.group("fence")) >= len(fence)
                and not closing.group("info").strip()
            ):
                fence, after_break = None, True
            continue
        opening = _FENCE.match(content)
        if opening and not (opening.group("fence")[0] == "`" and "`" in opening.group("info")):
            fence, previous = opening.group("fence"), None
            continue
        atx = _ATX.match(content)
        setext = _SETEXT.match(content)
        if atx:
            title = plain_text(atx.group("title") or "")
            if title:
                headings.append(Heading(len(atx.group("marks")), title, start, offset))
            previous, after_break = None, True
        elif setext and previous is not None:
            level = 1 if setext.group("under")[0] == "=" else 2
            headings.append(Heading(level, plain_text(previous[0]), previous[1], offset))
            previous, after_break = None, True
        elif not content.strip():
            previous, after_break = None, True
        else:
            # Only a one-line paragraph (after a blank line or a heading) becomes a setext heading
            # here; CommonMark would take a whole multi-line paragraph, which is rarely meant.
            paragraph = not _NOT_PARAGRAPH.match(content)
            previous = (content, start) if paragraph and after_break else None
            after_break = False
    return headings


def plain_text(markdown: str) -> str:
    """A heading's text without inline Markdown: ``[Fees](fees.md) for **pets**`` -> ``Fees for pets``."""
    text = _LINK.sub(r"\1", markdown)
    previous = None
    while previous != text:  # nested emphasis: ***a*** -> **a** -> a
        previous, text = text, _EMPHASIS.sub(r"\2", text)
    return _SPACES.sub(" ", text).strip()
