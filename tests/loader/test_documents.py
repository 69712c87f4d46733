"""Reading a corpus: every format, front matter, encodings, every skip reason, symlinks, order."""

from __future__ import annotations

import builtins
import hashlib
import os
import unicodedata
from pathlib import Path

import pytest

from loader import documents
from loader.documents import DocumentError, read_documents
from loader.frontmatter import parse_front_matter, split_front_matter
from loader.records import Document, Skipped

FIXTURES = Path(__file__).parent / "docs_fixtures"
DATA = Path(__file__).resolve().parents[2] / "data"


def make_pdf(pages: list[list[tuple[int, str]]], *, title: str | None = None) -> bytes:
    """A small valid PDF: each page a list of (font size, line of text), top to bottom, in Helvetica."""
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>", b"", b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"]
    kids = []
    for lines in pages:
        ops, y = [b"BT"], 780
        for size, text in lines:
            escaped = text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)").encode("latin-1")
            ops.append(b"/F1 %d Tf 1 0 0 1 72 %d Tm (%s) Tj" % (size, y, escaped))
            y -= int(size * 1.6)
        stream = b"\n".join([*ops, b"ET"])
        objects.append(b"<< /Length %d >>\nstream\n%s\nendstream" % (len(stream), stream))
        objects.append(
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 842] /Contents %d 0 R "
            b"/Resources << /Font << /F1 3 0 R >> >> >>" % len(objects)
        )
        kids.append(b"%d 0 R" % len(objects))
    objects[1] = b"<< /Type /Pages /Kids [%s] /Count %d >>" % (b" ".join(kids), len(kids))
    info = b""
    if title is not None:
        objects.append(b"<< /Title (%s) >>" % title.encode("latin-1"))
        info = b" /Info %d 0 R" % len(objects)
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R%s >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, info, xref)
    return bytes(out)


def read_all(root: Path, **kwargs: object) -> dict[str, Document | Skipped]:
    results = list(read_documents(root, **kwargs))  # type: ignore[arg-type]
    return {r.source if isinstance(r, Document) else r.path: r for r in results}


def read_one(tmp_path: Path, name: str, content: bytes | str) -> Document | Skipped:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    (result,) = [r for r in read_documents(tmp_path) if (r.source if isinstance(r, Document) else r.path) == name]
    return result


def document(result: Document | Skipped) -> Document:
    assert isinstance(result, Document), result
    return result


def skipped(result: Document | Skipped) -> str:
    assert isinstance(result, Skipped), result
    return result.reason


# --- Markdown and front matter ---------------------------------------------------------------------


def test_markdown_front_matter_title_fields_and_body(tmp_path: Path) -> None:
    raw = (
        "---\n"
        "title: \"Pets: in the cabin\"\n"
        "category: pets   # a comment\n"
        "updated: 2026-05-01\n"
        "draft: false\n"
        "order: 3\n"
        "weight: 1.5\n"
        "zip: 01234\n"
        "tags: [a, b]\n"
        "authors:\n  - Ann\n  - Bob\n"
        "empty:\n"
        "---\n"
        "# Pets\n\nBody text.\n"
    )
    doc = document(read_one(tmp_path, "travel/pets.md", raw))
    assert doc.source == "travel/pets.md"
    assert doc.title == "Pets: in the cabin"
    assert doc.fields == {
        "category": "pets",
        "updated": "2026-05-01",  # stays the string it was written as, not a date
        "draft": False,
        "order": 3,
        "weight": 1.5,
        "zip": "01234",  # a leading zero is not a number
    }
    assert doc.text == "# Pets\n\nBody text.\n"
    assert doc.content_hash == hashlib.sha256(raw.encode()).hexdigest()


def test_markdown_title_falls_back_to_first_h1_then_any_heading_then_stem(tmp_path: Path) -> None:
    assert document(read_one(tmp_path, "a.md", "## Sub\n\n# Main\n\ntext\n")).title == "Main"
    assert document(read_one(tmp_path, "b.markdown", "intro\n\n### Only *this*\n")).title == "Only this"
    assert document(read_one(tmp_path, "c-file.MD", "```\n# not a heading\n```\n")).title == "c-file"


@pytest.mark.parametrize(
    ("block", "expected"),
    [
        ("title: Pets: the rules\n", {"title": "Pets: the rules"}),  # YAML would reject this line
        ("title: 'It''s here'\n", {"title": "It's here"}),
        ('title: "Tab\\there \\u00e9"\n', {"title": "Tab\there é"}),
        ("note: |\n  line one\n  line two\n", {"note": "line one\nline two"}),
        ("note: >\n  folded\n  text\n", {"note": "folded text"}),
        ("summary: a long\n  plain value\n", {"summary": "a long plain value"}),
        ("time: 12:30\ncountry: NO\n", {"time": "12:30", "country": "NO"}),  # no YAML 1.1 surprises
        ("flag: True\nn: -7\nx: 1e3\n", {"flag": True, "n": -7, "x": 1000.0}),
        ("nested:\n  key: value\nafter: 1\n", {"after": 1}),
        ('"quoted key": v\n', {"quoted key": "v"}),
        ("a: 1\na: ~\n", {}),
    ],
)
def test_front_matter_values(block: str, expected: dict[str, object]) -> None:
    assert parse_front_matter(block) == expected


def test_thematic_breaks_are_not_front_matter() -> None:
    text = "---\nJust a paragraph between rules.\n---\nMore.\n"
    assert split_front_matter(text) == ({}, text)
    assert split_front_matter("---\nno closing line\n") == ({}, "---\nno closing line\n")
    assert split_front_matter("---\n---\nbody\n") == ({}, "---\n---\nbody\n")  # no key: nothing to strip


def test_front_matter_only_is_empty(tmp_path: Path) -> None:
    assert skipped(read_one(tmp_path, "x.md", "---\ntitle: Nothing\n---\n\n")).startswith("empty")


# --- Plain text, HTML, PDF ---------------------------------------------------------------------------


def test_text_title_line_and_capitalized_headings(tmp_path: Path) -> None:
    raw = (
        "Lounge Access Policy\n\nIntro text.\n\n1. WHO HAS ACCESS\n\nEveryone.\n\n"
        "NOT A HEADING\nbecause text follows.\n"
    )
    doc = document(read_one(tmp_path, "lounge.txt", raw))
    assert doc.title == "Lounge Access Policy"
    assert "\n## 1. WHO HAS ACCESS\n" in doc.text
    assert "\nNOT A HEADING\nbecause" in doc.text
    # A first line that reads like a sentence is no title: the file name is.
    assert document(read_one(tmp_path, "notes.txt", "This is a sentence.\n")).title == "notes"


def test_html_main_text_headings_and_title(tmp_path: Path) -> None:
    raw = (FIXTURES / "page.html").read_bytes()
    doc = document(read_one(tmp_path, "page.html", raw))
    assert doc.title == "Overbooking and Denied Boarding"  # the h1, not "<h1> | Northwind Air"
    text = doc.text
    assert text.startswith("# Overbooking and Denied Boarding\n\nLast updated 1 May 2026.")
    assert "\n\n## Volunteers are asked first\n\n" in text
    assert "- A seat on a later flight;\n- A travel voucher." in text  # items: one line each
    assert "Route | Delay | Compensation\nShort | 3 hours | €250" in text
    assert "```\n# a shell comment, not a heading\nls -l\n```" in text
    assert "\\# 1 rule" in text  # a paragraph starting with "#" is escaped, so it is not a heading
    for dropped in ("Manage my booking", "window.nwConfig", "color: red", "Cookie settings", "Hidden promo",
                    "Related pages", "Subscribe"):
        assert dropped not in text


def test_html_encoding_from_meta_charset_and_title_tag(tmp_path: Path) -> None:
    raw = (
        '<html><head><meta charset="windows-1252"><title>Café menu</title></head>'
        "<body><p>Crème brûlée € 5</p></body></html>"
    )
    doc = document(read_one(tmp_path, "menu.htm", raw.encode("cp1252")))
    assert doc.title == "Café menu"
    assert doc.text == "Crème brûlée € 5"


def test_html_without_text_is_empty(tmp_path: Path) -> None:
    raw = "<html><body><nav>Menu</nav><script>x()</script></body></html>"
    assert skipped(read_one(tmp_path, "blank.html", raw)).startswith("empty")


def test_deeply_nested_html_does_not_overflow_the_stack(tmp_path: Path) -> None:
    raw = "<div>" * 5000 + "deep text" + "</div>" * 5000
    assert document(read_one(tmp_path, "deep.html", raw)).text == "deep text"


def _pdf_pages() -> list[list[tuple[int, str]]]:
    body = "This line is ordinary body text of the policy, set in ten point type."
    return [
        [(8, "ACME Air | Customer policy"), (18, "Firearms Policy"), (10, body), (10, body),
         (13, "1. General conditions"), (10, body), (10, body), (8, "Page 1 of 2")],
        [(8, "ACME Air | Customer policy"), (10, body), (13, "2. Fees"), (10, body), (10, "Fees (in EUR)."),
         (8, "Page 2 of 2")],
    ]


def test_pdf_text_headings_by_font_size_and_metadata_title(tmp_path: Path) -> None:
    doc = document(read_one(tmp_path, "firearms.pdf", make_pdf(_pdf_pages(), title="Firearms and Ammunition")))
    assert doc.title == "Firearms and Ammunition"
    lines = doc.text.split("\n")
    assert [line for line in lines if line.startswith("#")] == [
        "# Firearms Policy",
        "## 1. General conditions",
        "## 2. Fees",
    ]
    assert "ACME Air | Customer policy" not in doc.text  # the running header of every page
    assert "Page 1 of 2" not in doc.text and "Page 2 of 2" not in doc.text  # the running footer
    assert lines[-1] == "Fees (in EUR)."


def test_pdf_title_from_first_line_without_metadata(tmp_path: Path) -> None:
    pdf = make_pdf([[(12, "Travel Documents"), (10, "Bring your passport.")]], title="untitled")
    assert document(read_one(tmp_path, "docs.pdf", pdf)).title == "Travel Documents"


def test_pdf_invalid_and_without_text(tmp_path: Path) -> None:
    assert skipped(read_one(tmp_path, "broken.pdf", b"%PDF-1.4\nthis is not a pdf at all")).startswith(
        "invalid PDF"
    )
    assert skipped(read_one(tmp_path, "scan.pdf", make_pdf([[]]))) == "empty (no text layer: a scanned PDF?)"


# --- Encodings -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Café\r\nnext\rline".encode("utf-8-sig"), "Café\nnext\nline"),
        ("Café — ok".encode("utf-16"), "Café — ok"),
        (b"Caf\xe9 \x93quoted\x94", "Café \u201cquoted\u201d"),  # cp1252 bytes
        (b"undefined in cp1252: \x81 once in a long enough line of text......................................."
         b"...............", "undefined in cp1252: \x81 once"),
        ("Cafe\u0301".encode(), "Café"),  # NFD input comes out NFC
    ],
)
def test_text_encodings(tmp_path: Path, raw: bytes, expected: str) -> None:
    assert document(read_one(tmp_path, "t.txt", raw)).text.startswith(expected)


# --- Skip reasons and strict mode ------------------------------------------------------------------


def test_binary_files(tmp_path: Path) -> None:
    assert skipped(read_one(tmp_path, "nul.md", b"text\x00more")) == "binary"
    assert skipped(read_one(tmp_path, "noise.txt", bytes(range(1, 32)) * 20)) == "binary"


def test_empty_files(tmp_path: Path) -> None:
    assert skipped(read_one(tmp_path, "zero.md", b"")) == "empty"
    assert skipped(read_one(tmp_path, "blank.txt", b" \n\t\n")) == "empty"


def test_unsupported_type(tmp_path: Path) -> None:
    assert skipped(read_one(tmp_path, "logo.png", b"\x89PNG")) == "unsupported type"
    assert skipped(read_one(tmp_path, "notes.md~", b"backup")) == "unsupported type"


def test_too_large(tmp_path: Path) -> None:
    (tmp_path / "big.md").write_text("x" * 2048)
    (tmp_path / "ok.md").write_text("x" * 1024)
    results = read_all(tmp_path, max_file_size=1024)
    assert skipped(results["big.md"]) == "too large (> 1 KB)"
    assert document(results["ok.md"])
    assert documents.DEFAULT_MAX_FILE_SIZE == 50 * 1024 * 1024


def test_unreadable_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Tests run as root, for whom chmod 000 does not block reading: make open() fail instead.
    (tmp_path / "locked.md").write_text("secret")
    (tmp_path / "open.md").write_text("public")
    real_open = builtins.open

    def fake_open(file: object, *args: object, **kwargs: object) -> object:
        if str(file).endswith("locked.md"):
            raise PermissionError(13, "Permission denied", str(file))
        return real_open(file, *args, **kwargs)  # type: ignore[call-overload]

    monkeypatch.setattr(documents, "open", fake_open, raising=False)
    results = read_all(tmp_path)
    assert skipped(results["locked.md"]) == "unreadable: Permission denied"
    assert document(results["open.md"]).text == "public"


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_unreadable_by_mode(tmp_path: Path) -> None:
    path = tmp_path / "locked.md"
    path.write_text("secret")
    path.chmod(0)
    try:
        assert skipped(read_all(tmp_path)["locked.md"]).startswith("unreadable")
    finally:
        path.chmod(0o644)


def test_fifo_is_not_read(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe.md")  # opening it would block forever
    assert skipped(read_all(tmp_path)["pipe.md"]) == "not a regular file"


def test_strict_mode_raises_at_first_bad_file(tmp_path: Path) -> None:
    (tmp_path / "a.md").write_text("fine")
    (tmp_path / "b.md").write_bytes(b"\x00\x01")
    (tmp_path / "c.md").write_bytes(b"")
    with pytest.raises(DocumentError) as caught:
        list(read_documents(tmp_path, strict=True))
    assert (caught.value.path, caught.value.reason) == ("b.md", "binary")
    assert str(caught.value) == "b.md: binary"
    (tmp_path / "b.md").unlink()
    (tmp_path / "c.md").unlink()
    assert [d.source for d in read_documents(tmp_path, strict=True) if isinstance(d, Document)] == ["a.md"]


def test_root_must_be_a_directory(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        list(read_documents(tmp_path / "missing"))
    (tmp_path / "file.md").write_text("x")
    with pytest.raises(NotADirectoryError):
        list(read_documents(tmp_path / "file.md"))


# --- Tree: hidden files, symlinks, names, order ----------------------------------------------------


def test_hidden_files_and_directories_are_ignored(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "HEAD.md").write_text("ref")
    (tmp_path / ".hidden.md").write_text("hidden")
    (tmp_path / "visible.md").write_text("shown")
    assert list(read_all(tmp_path)) == ["visible.md"]


def test_symlinks(tmp_path: Path) -> None:
    root, outside = tmp_path / "corpus", tmp_path / "outside"
    (root / "sub").mkdir(parents=True)
    outside.mkdir()
    (root / "sub" / "a.md").write_text("a")
    (outside / "b.md").write_text("b")
    (root / "sub" / "loop").symlink_to("..")  # an ancestor: a loop, reported
    (root / "alias").symlink_to("sub")  # a directory inside the corpus: read once, at its real path
    (root / "linked").symlink_to(outside)  # outside the corpus: followed
    (outside / "back").symlink_to(outside)  # a loop outside the corpus: reported
    (root / "file-link.md").symlink_to(root / "sub" / "a.md")  # a link to a file: read
    (root / "dangling.md").symlink_to(root / "missing.md")
    results = read_all(root)
    assert sorted(results) == ["dangling.md", "file-link.md", "linked/b.md", "linked/back", "sub/a.md", "sub/loop"]
    assert skipped(results["linked/back"]) == "symlink loop"
    assert skipped(results["sub/loop"]) == "symlink loop"
    assert skipped(results["dangling.md"]) == "unreadable: broken symlink"
    assert document(results["file-link.md"]).text == "a"


def test_unicode_file_names(tmp_path: Path) -> None:
    (tmp_path / unicodedata.normalize("NFD", "café.md")).write_text("NFD name")
    (tmp_path / "東京.txt").write_text("Tokyo")
    results = read_all(tmp_path)
    assert sorted(results) == ["café.md", "東京.txt"]
    assert unicodedata.is_normalized("NFC", document(results["café.md"]).source)


def test_names_equal_after_normalization_and_undecodable_names(tmp_path: Path) -> None:
    (tmp_path / unicodedata.normalize("NFD", "é.md")).write_text("first")
    (tmp_path / unicodedata.normalize("NFC", "é.md")).write_text("second")
    os.close(os.open(os.path.join(os.fsencode(tmp_path), b"bad-\xff.md"), os.O_CREAT | os.O_WRONLY))
    results = list(read_documents(tmp_path))
    reasons = [r.reason for r in results if isinstance(r, Skipped)]
    assert sorted(reasons) == sorted(["duplicate path after Unicode normalization", "file name is not valid UTF-8"])
    assert [r.source for r in results if isinstance(r, Document)] == ["é.md"]
    bad = next(r for r in results if isinstance(r, Skipped) and r.reason.startswith("file name"))
    assert bad.path == "bad-\ufffd.md"  # printable, encodable in a report


def test_order_is_sorted_by_source_and_deterministic(tmp_path: Path) -> None:
    for name in ("b/z.md", "a/x.md", "a-b/y.md", "A.md", "a.md", "b.md", "b/a/deep.txt", "c.png"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(name)
    sources = [r.source if isinstance(r, Document) else r.path for r in read_documents(tmp_path)]
    assert sources == sorted(sources)
    assert sources == ["A.md", "a-b/y.md", "a.md", "a/x.md", "b.md", "b/a/deep.txt", "b/z.md", "c.png"]
    assert [r for r in read_documents(tmp_path)] == [r for r in read_documents(tmp_path)]


def test_sample_corpus_reads_cleanly() -> None:
    if not DATA.is_dir():
        pytest.skip("no sample corpus")
    results = list(read_documents(DATA))
    docs = [r for r in results if isinstance(r, Document)]
    assert docs, "data/ holds no readable document"
    for doc in docs:
        assert doc.title and doc.text.strip(), doc.source
        assert not doc.text.startswith("---"), doc.source  # front matter stripped


def test_category_defaults_to_the_top_folder(tmp_path: Path) -> None:
    (tmp_path / "baggage").mkdir()
    (tmp_path / "baggage" / "instruments.txt").write_text("Musical instruments\n\nA violin may travel in the cabin.\n")
    (tmp_path / "baggage" / "pets.md").write_text("---\ncategory: pets\n---\n# Pets\n\nCats.\n")
    (tmp_path / "top.md").write_text("# Top\n\nNo folder, no category.\n")
    docs = {d.source: d for d in read_documents(tmp_path) if isinstance(d, Document)}
    assert docs["baggage/instruments.txt"].fields["category"] == "baggage"
    assert docs["baggage/pets.md"].fields["category"] == "pets"  # front matter wins
    assert "category" not in docs["top.md"].fields
