"""The summary (human and JSON) and the progress bar's on/off rules."""

from __future__ import annotations

import io
import json

from loader.outputs import Target
from loader.report import LoadReport, Progress


class FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bar_only_on_a_terminal_and_not_with_quiet() -> None:
    tty = FakeTTY()
    bar = Progress.for_terminal(quiet=False, stream=tty)
    bar.status("loading")
    bar.add_total(10)
    bar.advance(5)
    bar.close()
    assert "loading" in tty.getvalue() and "/10 " in tty.getvalue()

    quiet_tty = FakeTTY()
    bar = Progress.for_terminal(quiet=True, stream=quiet_tty)
    bar.add_total(10)
    bar.advance(5)
    bar.close()
    pipe = io.StringIO()
    bar = Progress.for_terminal(quiet=False, stream=pipe)
    bar.add_total(10)
    bar.advance(5)
    bar.close()
    assert quiet_tty.getvalue() == "" and pipe.getvalue() == ""


def test_summary_counts_and_one_warning_per_document() -> None:
    report = LoadReport(root="data", target=Target("b-1", "i-1", origin="cdk-outputs.json"), model="m")
    report.record("new", "a.md", 3)
    report.record("unchanged", "b.md", 2)
    report.skipped.append(("c.bin", "binary"))
    report.documents_read = 2
    report.chunks_embedded = report.vectors_written = 3
    report.seconds = 1.5
    report.warn_all("a.md", ["title cut", "title cut"])
    report.warn_all("a.md", ["title cut"])
    assert report.warnings == ["a.md: title cut"]
    data = json.loads(json.dumps(report.to_dict()))
    assert data["documents"] == {"read": 2, "skipped": 1, "new": 1, "changed": 0, "unchanged": 1, "deleted": 0}
    assert data["chunks_per_second"] == 2.0 and data["plan"]["new"] == [{"source": "a.md", "chunks": 3}]
    human = report.human()
    assert "Loaded data into b-1/i-1 (cdk-outputs.json)." in human
    assert "2 read, 1 skipped; 1 new, 0 changed, 1 unchanged, 0 deleted" in human
    assert "skipped  c.bin: binary" in human and "2.0 chunks/s" in human
