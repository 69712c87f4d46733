"""The emulated service: every operation of botocore's s3vectors model, by name."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from s3vectors_local.errors import InternalError
from s3vectors_local.resources import ResourceOps
from s3vectors_local.validation import service_model, validate_input
from s3vectors_local.vectors import VectorOps

Handler = Callable[[dict[str, Any]], dict[str, Any]]


class Service(ResourceOps, VectorOps):
    def __init__(self, data_dir: Path, **kwargs: Any) -> None:
        super().__init__(data_dir, **kwargs)
        self._init_vectors()
        missing = [op for op in service_model().operation_names if not callable(getattr(self, op, None))]
        if missing:  # every operation of the installed model must have a handler
            raise RuntimeError(f"s3vectors_local has no handler for {missing}")

    def call(self, operation: str, params: dict[str, Any]) -> dict[str, Any]:
        """Validate ``params`` against the model and run the operation; raises ServiceError."""
        handler: Handler | None = getattr(self, operation, None)
        if handler is None or operation not in service_model().operation_names:
            raise InternalError(f"Unknown operation {operation}")
        return handler(validate_input(operation, params))
