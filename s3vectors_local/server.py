"""HTTP layer: botocore's restJson1 wire format for s3vectors, served by werkzeug.

Routes come from the model's ``http`` traits: ``POST /<Operation>`` with a JSON body for all but
tagging, which is ``GET|POST|DELETE /tags/{resourceArn}`` (``tagKeys`` in the query string for DELETE).
Errors carry the modeled status and the code in ``x-amzn-errortype`` and the body (see errors.py).
"""

from __future__ import annotations

import json
import logging
import re
import threading
import uuid
from collections.abc import Iterable
from typing import Any

from werkzeug.exceptions import HTTPException
from werkzeug.routing import Map, Rule
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

from s3vectors_local import limits
from s3vectors_local.core import index_ref
from s3vectors_local.errors import (
    AccessDeniedError,
    InternalError,
    ServiceError,
    UnsupportedMediaTypeError,
    ValidationError,
)
from s3vectors_local.faults import FaultInjector, WriteThrottle
from s3vectors_local.iam import Authorizer
from s3vectors_local.service import Service
from s3vectors_local.sigv4 import SignedRequest, SigV4Verifier
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
    """The WSGI application: route, (optionally) authenticate and authorize, validate, run.

    ``verifier`` (sigv4.SigV4Verifier): every request must be signed with a configured key pair; without
    it any well-formed SigV4 Authorization header is accepted, unverified (the default: there are no real
    credentials). ``authorizer`` (iam.Authorizer): each request's principal, named by its access key,
    must be allowed the request's actions on its resource.
    """

    def __init__(
        self,
        service: Service,
        *,
        throttle: WriteThrottle | None = None,
        faults: FaultInjector | None = None,
        verifier: SigV4Verifier | None = None,
        authorizer: Authorizer | None = None,
    ) -> None:
        self.service = service
        self.throttle = throttle
        self.faults = faults
        self.verifier = verifier
        self.authorizer = authorizer
        self.url_map = _routes()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        request = Request(environ)
        response = self.handle(request)
        return response(environ, start_response)

    def handle(self, request: Request) -> Response:
        request_id = str(uuid.uuid4())
        try:
            access_key: str | None = None
            if self.verifier is not None:
                # AWS authenticates before anything else: an unsigned call to any path is refused.
                body = self._body(request)
                access_key = self.verifier.verify(_signed_request(request, body))
                operation, path_args = self._route(request)
            else:
                operation, path_args = self._route(request)
                self._require_sigv4_header(request)
                body = self._body(request)
            params = self._params(request, operation, path_args, body)
            if self.authorizer is not None:
                self.authorizer.authorize(access_key or _claimed_access_key(request), operation, params)
            if self.faults is not None:
                self.faults.before(operation)
            if self.throttle is not None and operation in ("PutVectors", "DeleteVectors"):
                ref = index_ref(params)
                items = params.get("vectors") if operation == "PutVectors" else params.get("keys")
                if ref is not None and isinstance(items, list):
                    self.throttle.take(ref, len(items))
            result = self.service.call(operation, params)
            if self.faults is not None:
                self.faults.after(operation)
            body_out = json.dumps(result, separators=(",", ":"), allow_nan=False)
            return Response(body_out, 200, {"Content-Type": "application/json", "x-amzn-requestid": request_id})
        except ServiceError as e:
            return self._error(e, request_id)
        except HTTPException as e:  # werkzeug's own: a client that hung up mid-body, a malformed stream
            return self._error(ValidationError(f"Malformed HTTP request: {e.description or e.name}"), request_id)
        except Exception:  # a bug here must still look like a service fault, not a dropped connection
            log.exception("unhandled error")
            return self._error(InternalError("Internal server error"), request_id)

    def _route(self, request: Request) -> tuple[str, dict[str, Any]]:
        adapter = self.url_map.bind_to_environ(request.environ)
        try:
            operation, path_args = adapter.match()
        except Exception as e:
            raise ValidationError(f"Unknown operation: {request.method} {request.path[:200]}") from e
        return str(operation), dict(path_args)

    @staticmethod
    def _require_sigv4_header(request: Request) -> None:
        auth = request.headers.get("Authorization", "")
        if not auth.startswith("AWS4-HMAC-SHA256 ") or "/s3vectors/aws4_request" not in auth:
            # Signatures are not verified (there are no real credentials), but AWS refuses unsigned calls.
            raise AccessDeniedError("Missing or malformed SigV4 Authorization header for service s3vectors")

    @staticmethod
    def _body(request: Request) -> bytes:
        """The request body, at most 20 MiB (a longer one is refused; werkzeug drains it so the client
        reads the answer rather than a reset connection)."""
        length = request.content_length
        if length is not None and length > limits.MAX_PAYLOAD_BYTES:
            raise ValidationError(
                f"Request payload of {length} bytes exceeds the maximum of {limits.MAX_PAYLOAD_BYTES} bytes (20 MiB)"
            )
        try:
            raw = request.stream.read(limits.MAX_PAYLOAD_BYTES + 1)
        except OSError as e:  # werkzeug's chunked decoding ("Invalid chunk header"), a client gone mid-body
            raise ValidationError(f"Malformed request body: {str(e)[:200]}") from None
        if len(raw) > limits.MAX_PAYLOAD_BYTES:
            raise ValidationError("Request payload exceeds the maximum of 20 MiB")
        if length is not None and len(raw) < length:
            raise ValidationError("The request body is shorter than its Content-Length")
        return bytes(raw)

    @staticmethod
    def _params(request: Request, operation: str, path_args: dict[str, Any], raw: bytes) -> dict[str, Any]:
        params: dict[str, Any] = {}
        if raw.strip():
            # Smithy restJson1: a request with a body must be application/json (415 otherwise).
            if request.mimetype != "application/json":
                raise UnsupportedMediaTypeError(
                    f"Unsupported Content-Type {request.mimetype[:100] or '(none)'!r}: expected application/json"
                )
            try:
                params = json.loads(raw, parse_constant=_reject_constant)
            except (ValueError, RecursionError) as e:
                raise ValidationError(f"The request body is not valid JSON: {str(e)[:200]}") from None
            if not isinstance(params, dict):
                raise ValidationError("The request body must be a JSON object")
            if _SURROGATE_ESCAPE.search(raw):
                try:  # an escaped lone surrogate (backslash-u D800) becomes a str that no UTF-8 store can hold
                    json.dumps(params, ensure_ascii=False).encode("utf-8")
                except UnicodeEncodeError:
                    raise ValidationError("The request body is not valid JSON: unpaired UTF-16 surrogate") from None
        params.update(path_args)
        if operation == "UntagResource":
            params["tagKeys"] = request.args.getlist("tagKeys")
        return params

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


_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")  # Python's json would read NaN/Infinity; JSON has none


def _signed_request(request: Request, body: bytes) -> SignedRequest:
    raw_uri = str(request.environ.get("RAW_URI") or request.environ.get("REQUEST_URI") or request.full_path)
    path, _, query = raw_uri.partition("?")
    return SignedRequest(request.method, path, query, request.headers, body)


def _claimed_access_key(request: Request) -> str | None:
    """The access key an (unverified) Authorization header names."""
    m = re.search(r"Credential=([^/,\s]+)/", request.headers.get("Authorization", ""))
    return m.group(1) if m else None


class _QuietHandler(WSGIRequestHandler):
    # A client that stalls mid-request (a Content-Length it never sends) frees its thread after this long.
    timeout = 120

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
