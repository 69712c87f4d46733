"""Front matter of Markdown files: the ``---`` block of ``key: value`` lines at the very top.

A small parser of its own rather than PyYAML: front matter in a document corpus is flat ``key: value``
lines, and full YAML 1.1 does surprising things to such values (``updated: 2026-05-01`` becomes a
date, ``time: 12:30`` the integer 750, ``country: NO`` false, a title with an unquoted ": " is a syntax
error that would lose the whole block). Here values stay what they look like: quoted or plain
strings, ``true``/``false``, decimal integers and floats. Lists, nested mappings and nulls are
skipped (they are not scalars), never an error.
"""

from __future__ import annotations

import json
import re

Scalar = str | int | float | bool

# The opening line must be exactly "---" (a Markdown thematic break elsewhere is the same characters,
# which is why the block must also parse as a mapping to count as front matter).
_BLOCK = re.compile(r"\A---[ \t]*\n(?P<body>(?:.*?\n)??)(?:---|\.\.\.)[ \t]*(?:\n|\Z)", re.DOTALL)
_KEY = re.compile(r"""^(?P<key>"[^"]+"|'[^']+'|[^\s:#"'][^:]*?)[ \t]*:(?:[ \t]+(?P<value>.*)|[ \t]*)$""")
_INT = re.compile(r"[-+]?(?:0|[1-9][0-9_]*)")
_FLOAT = re.compile(r"[-+]?(?:[0-9][0-9_]*\.[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?|[-+]?[0-9]+[eE][-+]?[0-9]+")
_BLOCK_SCALAR = re.compile(r"^(?P<style>[|>])[-+]?[1-9]?[ \t]*(?:#.*)?$")
_NULLS = frozenset({"", "~", "null", "Null", "NULL"})


def split_front_matter(text: str) -> tuple[dict[str, Scalar], str]:
    """Return (scalar fields, body). Without a front-matter block the fields are empty and the body is ``text``."""
    match = _BLOCK.match(text)
    if match is None:
        return {}, text
    fields = parse_front_matter(match.group("body"))
    if fields is None:  # "---" then prose then "---": two thematic breaks, not front matter
        return {}, text
    return fields, text[match.end() :]


def parse_front_matter(block: str) -> dict[str, Scalar] | None:
    """Scalar fields of a front-matter block, or None if the block holds no ``key: value`` line at all."""
    fields: dict[str, Scalar] = {}
    found_key = False
    lines = block.split("\n")
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        if not line.strip() or line.lstrip().startswith("#") or line[0] in " \t":
            continue  # blank, comment, or a continuation of a value that was skipped
        match = _KEY.match(line)
        if match is None:
            continue  # e.g. a top-level "- item": not a mapping entry
        found_key = True
        key = match.group("key")
        if key[0] in "\"'":
            key = key[1:-1]
        # The value's continuation lines: indented (or blank) lines that follow the key.
        continuation: list[str] = []
        while i < len(lines) and (not lines[i].strip() or lines[i][0] in " \t"):
            continuation.append(lines[i])
            i += 1
        value = _scalar((match.group("value") or "").strip(), continuation)
        if value is None:
            fields.pop(key, None)  # a later null/list/mapping overrides an earlier value, as in YAML
        else:
            fields[key] = value
    return fields if found_key else None


def _scalar(raw: str, continuation: list[str]) -> Scalar | None:
    more = [line.strip() for line in continuation]
    block = _BLOCK_SCALAR.match(raw)
    if block:
        return _block_scalar(block.group("style"), continuation)
    if raw[:1] in ("[", "{") or (not raw and any(m.startswith("- ") or m == "-" or ":" in m for m in more)):
        return None  # a list or a mapping
    if raw[:1] in ("'", '"'):
        return _quoted(" ".join([raw, *(m for m in more if m)]))
    raw = re.sub(r"[ \t]+#.*$", "", raw)  # a trailing comment
    text = " ".join([raw, *(m for m in more if m)]).strip()  # plain scalars fold onto one line
    if text in _NULLS:
        return None
    if text in ("true", "True", "TRUE"):
        return True
    if text in ("false", "False", "FALSE"):
        return False
    if _INT.fullmatch(text):
        return int(text.replace("_", ""))
    if _FLOAT.fullmatch(text):
        return float(text.replace("_", ""))
    return text


def _quoted(text: str) -> str | None:
    quote = text[0]
    if quote == '"':
        end = _closing_double_quote(text)
        if end is None:
            return text  # unterminated: keep what was written rather than lose the field
        try:
            value = json.loads(text[: end + 1])
        except json.JSONDecodeError:  # a YAML escape JSON lacks (e.g. "\x41"): keep the raw content
            value = text[1:end]
        return str(value)
    end = text.find("'", 1)
    while end != -1 and text[end + 1 : end + 2] == "'":  # '' is an escaped quote
        end = text.find("'", end + 2)
    if end == -1:
        return text
    return text[1:end].replace("''", "'")


def _closing_double_quote(text: str) -> int | None:
    i = 1
    while i < len(text):
        if text[i] == "\\":
            i += 2
            continue
        if text[i] == '"':
            return i
        i += 1
    return None


def _block_scalar(style: str, continuation: list[str]) -> str:
    while continuation and not continuation[-1].strip():
        continuation = continuation[:-1]
    indents = [len(line) - len(line.lstrip()) for line in continuation if line.strip()]
    indent = min(indents, default=0)
    lines = [line[indent:] for line in continuation]
    if style == "|":
        return "\n".join(lines)
    # Folded (>): lines of a paragraph join with spaces, blank lines separate paragraphs.
    paragraphs = "\n".join(lines).split("\n\n")
    return "\n".join(" ".join(p.split("\n")).strip() for p in paragraphs)
