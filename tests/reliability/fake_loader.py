"""Run the loader's real CLI (``loader.cli.main``) in a subprocess with the deterministic fake embedder.

    python tests/reliability/fake_loader.py [loader CLI arguments...]

Used where a test needs a separate loader process: to SIGKILL it, to run two at once, or to capture
everything it prints. ``loader.cli.make_embedder`` is the documented seam ("tests monkeypatch this");
this script replaces it in its own process only. Environment: ``FAKE_EMBEDDER_DIM`` (default 384) and
``FAKE_EMBEDDER_MAX_TOKENS`` (default 256).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from loader import cli  # noqa: E402
from tests.loader.fakes import FakeEmbedder  # noqa: E402


def _fake_embedder(
    model: str | None, *, device: str | None, batch_size: int, backend: str | None = None
) -> FakeEmbedder:
    return FakeEmbedder(
        dimension=int(os.environ.get("FAKE_EMBEDDER_DIM", "384")),
        max_tokens=int(os.environ.get("FAKE_EMBEDDER_MAX_TOKENS", "256")),
    )


if __name__ == "__main__":
    cli.make_embedder = _fake_embedder
    sys.exit(cli.main(sys.argv[1:]))
