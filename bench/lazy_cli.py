"""``python -m loader`` with the model loaded lazily (``loader.lazy``): ``python -m bench.lazy_cli ARGS``.

Exactly the loader's command line, except that ``loader.cli.make_embedder`` returns a
``loader.lazy.LazyEmbedder``: the proposed default (a one-line change in ``loader/cli.py``). Used by
``bench.bench_rerun`` to measure a no-change run that never loads the model.

For the suite's own tests: ``BENCH_EMBEDDER=fake`` uses ``bench.common.FastFakeEmbedder`` instead of
the model, and ``BENCH_EAGER=1`` builds it eagerly (the stand-in for ``python -m loader`` as is).
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
    from loader.lazy import lazy_embedder

    fake = os.environ.get("BENCH_EMBEDDER") == "fake"
    eager = os.environ.get("BENCH_EAGER") == "1"

    def make_embedder(model: str | None, *, device: str | None, batch_size: int, **options: Any) -> Any:
        if fake:
            from bench.common import FastFakeEmbedder
            from loader.lazy import LazyEmbedder

            return FastFakeEmbedder() if eager else LazyEmbedder(FastFakeEmbedder, key={"fake": True})
        return lazy_embedder(model, device=device, batch_size=batch_size, **options)

    cli.make_embedder = make_embedder
    return cli.main(argv)


if __name__ == "__main__":
    sys.exit(main())
