"""Service errors, rendered so that botocore raises the modeled exception.

botocore's rest-json parser takes the error code from the ``x-amzn-errortype`` header, else from
``code``/``__type`` in the JSON body (botocore/parsers.py ``RestJSONParser._inject_error_code`` and
``BaseJSONParser._do_error_parse``); we send all three. Status codes come from each exception
shape's ``error.httpStatusCode`` in the service model (ValidationException has none: 400).
"""

from __future__ import annotations

from typing import Any


class ServiceError(Exception):
    """An error the service itself answers with (never a bug in the emulator)."""

    code = "InternalServerException"
    status = 500

    def __init__(self, message: str, *, field_list: list[dict[str, str]] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field_list = field_list

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {"__type": self.code, "code": self.code, "message": self.message}
        if self.field_list:
            out["fieldList"] = self.field_list
        return out


class ValidationError(ServiceError):
    code = "ValidationException"
    status = 400

    @classmethod
    def at(cls, path: str, message: str) -> ValidationError:
        """One failure at a JSON-pointer ``path`` (the fieldList shape of Smithy's ValidationException)."""
        return cls(message, field_list=[{"path": path, "message": message}])


class NotFoundError(ServiceError):
    code = "NotFoundException"
    status = 404


class ConflictError(ServiceError):
    code = "ConflictException"
    status = 409


class AccessDeniedError(ServiceError):
    code = "AccessDeniedException"
    status = 403


class QuotaExceededError(ServiceError):
    code = "ServiceQuotaExceededException"
    status = 402


class ThrottledError(ServiceError):
    code = "TooManyRequestsException"
    status = 429


class UnavailableError(ServiceError):
    code = "ServiceUnavailableException"
    status = 503


class InternalError(ServiceError):
    code = "InternalServerException"
    status = 500


# -- authentication and authorization (only with LocalEndpoint(credentials=...) / principals=...) --------------
# Not in the s3vectors model: AWS's front end answers them for every JSON service, botocore raises a
# plain ClientError with the code. Codes, statuses and wording as AWS sends them (see sigv4.py).
class MissingAuthenticationTokenError(ServiceError):
    code = "MissingAuthenticationTokenException"
    status = 403


class IncompleteSignatureError(ServiceError):
    code = "IncompleteSignatureException"
    status = 400


class UnrecognizedClientError(ServiceError):
    code = "UnrecognizedClientException"
    status = 403


class InvalidSignatureError(ServiceError):
    code = "InvalidSignatureException"
    status = 403


class UnsupportedMediaTypeError(ServiceError):
    """Smithy restJson1: a request with a body must say ``Content-Type: application/json``."""

    code = "UnsupportedMediaTypeException"
    status = 415
