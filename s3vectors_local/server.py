"""HTTP layer: botocore's restJson1 wire format for s3vectors, served by werkzeug.

Routes come from the model's ``http`` traits: ``POST /<Operation>`` with a JSON body for all but
tagging, which is ``GET|POST|DELETE /tags/{resourceArn}`` (``tagKeys`` in the query string for DELETE).
Errors carry the modeled status and the code in ``x-amzn-errortype`` and the body (see errors.py).
"""

from __future__ import annotations

import json
import logging
import threading
import uuid
from collections.abc import Iterable
from typing import Any

from werkzeug.routing import Map, Rule
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

from s3vectors_local import limits
from s3vectors_local.core import index_ref
from s3vectors_local.errors import AccessDeniedError, InternalError, ServiceError, ValidationError
from s3vectors_local.faults import FaultInjector, WriteThrottle
from s3vectors_local.service import Service
from s3vectors_local.validation import service_model

log = logging.getLogger("s3vectors_local")


def _routes() -> Map:
    rules = []
    for name in service_model().operation_names:
        http = service_model().operation_model(name).http
        uri = http["requestUri"].replace("{resourceArn}", "<path:resourceArn>")
        rules.append(Rule(uri, methods=[http["method"]], endpoint=name))
    return Map(rules, strict_slashes=False)


class App:
    def __init__(
        self,
        service: Service,
        *,
        throttle: WriteThrottle | None = None,
        faults: FaultInjector | None = None,
    ) -> None:
        self.service = service
        self.throttle = throttle
        self.faults = faults
        self.url_map = _routes()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        request = Request(environ)
        response = self.handle(request)
        return response(environ, start_response)

    def handle(self, request: Request) -> Response:
        request_id = str(uuid.uuid4())
        try:
            operation, params = self._parse(request)
            if self.faults is not None:
                self.faults.before()
            if self.throttle is not None and operation in ("PutVectors", "DeleteVectors"):
                ref = index_ref(params)
                items = params.get("vectors") if operation == "PutVectors" else params.get("keys")
                if ref is not None and isinstance(items, list):
                    self.throttle.take(ref, len(items))
            result = self.service.call(operation, params)
            body = json.dumps(result, separators=(",", ":"), allow_nan=False)
            return Response(body, 200, {"Content-Type": "application/json", "x-amzn-requestid": request_id})
        except ServiceError as e:
            return self._error(e, request_id)
        except Exception:  # a bug here must still look like a service fault, not a dropped connection
            log.exception("unhandled error")
            return self._error(InternalError("Internal server error"), request_id)

    def _parse(self, request: Request) -> tuple[str, dict[str, Any]]:
        adapter = self.url_map.bind_to_environ(request.environ)
        try:
            operation, path_args = adapter.match()
        except Exception as e:
            raise ValidationError(f"Unknown operation: {request.method} {request.path}") from e
        auth = request.headers.get("Authorization", "")
        if not auth.startswith("AWS4-HMAC-SHA256 ") or "/s3vectors/aws4_request" not in auth:
            # Signatures are not verified (there are no real credentials), but AWS refuses unsigned calls.
            raise AccessDeniedError("Missing or malformed SigV4 Authorization header for service s3vectors")
        length = request.content_length or 0
        if length > limits.MAX_PAYLOAD_BYTES:
            raise ValidationError(
                f"Request payload of {length} bytes exceeds the maximum of {limits.MAX_PAYLOAD_BYTES} bytes (20 MiB)"
            )
        raw = request.get_data(cache=False)
        if len(raw) > limits.MAX_PAYLOAD_BYTES:
            raise ValidationError("Request payload exceeds the maximum of 20 MiB")
        params: dict[str, Any] = {}
        if raw.strip():
            try:
                params = json.loads(raw)
            except ValueError as e:
                raise ValidationError(f"The request body is not valid JSON: {e}") from e
            if not isinstance(params, dict):
                raise ValidationError("The request body must be a JSON object")
        params.update(path_args)
        if operation == "UntagResource":
            params["tagKeys"] = request.args.getlist("tagKeys")
        return str(operation), params

    @staticmethod
    def _error(e: ServiceError, request_id: str) -> Response:
        return Response(
            json.dumps(e.body()),
            e.status,
            {
                "Content-Type": "application/json",
                "x-amzn-errortype": e.code,
                "x-amzn-requestid": request_id,
            },
        )


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        log.debug("%s %s %s", self.command, self.path, code)


class Server:
    """A threaded werkzeug server around an App, started and stopped from Python."""

    def __init__(self, app: App, host: str = "127.0.0.1", port: int = 0) -> None:
        self.app = app
        self._server: BaseWSGIServer = make_server(
            host, port, app, threaded=True, request_handler=_QuietHandler
        )
        self._server.daemon_threads = True  # type: ignore[attr-defined]
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._server.server_port)

    @property
    def host(self) -> str:
        return str(self._server.server_address[0])

    @property
    def url(self) -> str:
        host = self.host if ":" not in self.host else f"[{self.host}]"
        return f"http://{host}:{self.port}"

    def serve_forever(self) -> None:
        self._server.serve_forever(poll_interval=0.05)

    def start(self) -> None:
        self._thread = threading.Thread(target=self.serve_forever, name="s3vectors-local", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)
