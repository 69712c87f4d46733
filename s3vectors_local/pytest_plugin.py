"""pytest plugin: ``pytest_plugins = ["s3vectors_local.pytest_plugin"]`` gives the fixture below."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from s3vectors_local.endpoint import LocalEndpoint


@pytest.fixture
def s3vectors_endpoint(tmp_path: Path) -> Iterator[LocalEndpoint]:
    """A fresh local S3 Vectors endpoint on a free loopback port, data kept under ``tmp_path``."""
    from s3vectors_local.endpoint import LocalEndpoint

    with LocalEndpoint(data_dir=tmp_path / "s3vectors-data") as ep:
        yield ep
