"""``python -m loader`` with a fast fake embedder, for the suite's own tests: ``python -m bench.lazy_cli ARGS``.

With ``BENCH_EMBEDDER=fake`` (what ``bench.bench_rerun --fake`` sets), ``loader.cli.make_embedder``
returns ``bench.common.FastFakeEmbedder`` behind a ``loader.lazy.LazyEmbedder``, as the loader wraps
its model: a re-run that embeds nothing never builds it. Without it, this is ``python -m loader``
itself (whose embedder is lazy already).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv: list[str] | None = None) -> int:
    from loader import cli

    if os.environ.get("BENCH_EMBEDDER") == "fake":

        def make_embedder(model: str | None, *, device: str | None, batch_size: int, **options: Any) -> Any:
            from bench.common import FastFakeEmbedder
            from loader.lazy import LazyEmbedder

            return LazyEmbedder(FastFakeEmbedder, key={"fake": True})

        cli.make_embedder = make_embedder
    return cli.main(argv)


if __name__ == "__main__":
    sys.exit(main())
