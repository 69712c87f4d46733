"""Opt-in SigV4 verification: recompute each request's signature with botocore and compare.

With ``LocalEndpoint(credentials={access_key: secret})`` (``serve --verify-sigv4 --credentials FILE``) a
request is accepted only if it is signed, for this Region and the ``s3vectors`` service, with one of
the configured key pairs, within 5 minutes of the server's clock. No crypto is reimplemented: the
received method, raw path, query string, signed headers and body are handed to
``botocore.auth.SigV4Auth``, the very signer boto3 used, and its signature is compared in constant time.

Refusals, as AWS's front end answers them for JSON services (the codes are not in the s3vectors
model, so botocore raises a plain ``ClientError`` carrying the code):

====================================  ======  =====================================================
situation                             status  code
====================================  ======  =====================================================
no Authorization header               403     MissingAuthenticationTokenException
header lacks Credential/SignedHeaders/ 400     IncompleteSignatureException
Signature, or no X-Amz-Date/Date
access key not configured, or a       403     UnrecognizedClientException ("The security token
session token that does not match             included in the request is invalid.")
wrong scope (date, Region, service),  403     InvalidSignatureException
host not signed, wrong signature
timestamp more than 5 minutes off     403     InvalidSignatureException ("Signature expired: ... is
                                              now earlier than ... (... - 5 min.)" / "Signature not
                                              yet current: ...")
====================================  ======  =====================================================

Wording from AWS answers that users report (aws-sdk-js #254, aws-sdk-java #1764, iamlive #58,
chalice #828). Messages never contain the secret key, the signature or the session token, and the
access key id is not echoed either.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import hashlib
import hmac
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from botocore.auth import SIGV4_TIMESTAMP, SigV4Auth
from botocore.awsrequest import AWSRequest, HTTPHeaders
from botocore.credentials import Credentials

from s3vectors_local.errors import (
    IncompleteSignatureError,
    InvalidSignatureError,
    MissingAuthenticationTokenError,
    UnrecognizedClientError,
)

ALGORITHM = "AWS4-HMAC-SHA256"
MAX_SKEW_S = 300  # "(... - 5 min.)": the window AWS's JSON services allow either side of their clock
_AMZ_DATE = re.compile(r"^\d{8}T\d{6}Z$")
_INVALID_TOKEN = "The security token included in the request is invalid."
_MISMATCH = (
    "The request signature we calculated does not match the signature you provided. Check your AWS Secret "
    "Access Key and signing method. Consult the service documentation for details."
)


@dataclass(frozen=True)
class Credential:
    access_key: str
    secret_key: str = field(repr=False)
    session_token: str | None = field(default=None, repr=False)


CredentialSpec = str | Mapping[str, Any] | Credential


def credential_table(credentials: Mapping[str, CredentialSpec]) -> dict[str, Credential]:
    """``{access_key: secret}``, ``{access_key: {"secret_key": ..., "session_token": ...}}`` or Credentials."""
    out: dict[str, Credential] = {}
    for access_key, spec in credentials.items():
        if isinstance(spec, Credential):
            out[access_key] = spec
        elif isinstance(spec, str):
            out[access_key] = Credential(access_key, spec)
        elif isinstance(spec, Mapping):
            secret = spec.get("secret_key", spec.get("secret"))
            if not isinstance(secret, str) or not secret:
                raise ValueError(f"credentials for access key #{len(out) + 1}: no secret_key")
            token = spec.get("session_token")
            out[access_key] = Credential(access_key, secret, str(token) if token else None)
        else:
            raise ValueError(f"credentials for access key #{len(out) + 1}: expected a secret string or an object")
    return out


@dataclass(frozen=True)
class SignedRequest:
    """What the verifier needs of an HTTP request, as received (raw path, undecoded query)."""

    method: str
    raw_path: str  # percent-encoded, exactly as on the request line
    query: str  # the raw query string, without "?"
    headers: Mapping[str, str] | Any  # case-insensitive (werkzeug Headers); getlist() used when present
    body: bytes


class _Recompute(SigV4Auth):
    """botocore's signer, told exactly which headers the client signed (no blacklist, no additions)."""

    def __init__(self, credentials: Credentials, service: str, region: str, signed: HTTPHeaders) -> None:
        super().__init__(credentials, service, region)
        self._signed = signed

    def headers_to_sign(self, request: AWSRequest) -> HTTPHeaders:
        return self._signed


def _header_values(headers: Any, name: str) -> list[str]:
    if hasattr(headers, "getlist"):
        return [str(v) for v in headers.getlist(name)]
    value = headers.get(name)
    return [] if value is None else [str(value)]


def _parse_authorization(value: str) -> dict[str, str]:
    algorithm, _, rest = value.strip().partition(" ")
    parts: dict[str, str] = {}
    for item in rest.split(","):
        key, eq, val = item.strip().partition("=")
        if eq and key:
            parts[key.strip()] = val.strip()
    problems = [
        f"Authorization header requires '{name}' parameter."
        for name in ("Credential", "Signature", "SignedHeaders")
        if not parts.get(name)
    ]
    if algorithm != ALGORITHM:
        problems.insert(0, f"Unsupported authorization type: only {ALGORITHM} is accepted.")
    if problems:
        raise IncompleteSignatureError(" ".join(problems))
    return parts


def _timestamp(headers: Any) -> tuple[str, dt.datetime]:
    """(SigV4 timestamp string, as a UTC datetime) from X-Amz-Date, else Date."""
    amz = headers.get("X-Amz-Date")
    if amz:
        if not _AMZ_DATE.match(amz):
            raise IncompleteSignatureError(
                f"Date must be in ISO-8601 'basic format'. Got '{amz[:32]}'. See http://en.wikipedia.org/wiki/ISO_8601"
            )
        try:
            when = dt.datetime.strptime(amz, SIGV4_TIMESTAMP).replace(tzinfo=dt.UTC)
        except ValueError:
            raise IncompleteSignatureError(
                f"Date is not a valid ISO-8601 'basic format' timestamp: '{amz[:32]}'"
            ) from None
        return amz, when
    date = headers.get("Date")
    if date:
        try:
            parsed: dt.datetime | None = email.utils.parsedate_to_datetime(date)
        except (TypeError, ValueError):
            parsed = None
        if parsed is not None:
            parsed = parsed.astimezone(dt.UTC) if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)
            return parsed.strftime(SIGV4_TIMESTAMP), parsed
    raise IncompleteSignatureError(
        "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header."
    )


def _fmt(when: dt.datetime) -> str:
    return when.strftime(SIGV4_TIMESTAMP)


class SigV4Verifier:
    def __init__(
        self,
        credentials: Mapping[str, CredentialSpec],
        *,
        region: str,
        service: str = "s3vectors",
        clock: Callable[[], float] = time.time,
        max_skew_s: float = MAX_SKEW_S,
    ) -> None:
        self.credentials = credential_table(credentials)
        self.region, self.service, self.clock, self.max_skew_s = region, service, clock, max_skew_s

    def __repr__(self) -> str:  # never the secrets
        return f"SigV4Verifier({len(self.credentials)} credential(s), region={self.region!r})"

    def verify(self, request: SignedRequest) -> str:
        """The access key that signed ``request``; raises the error AWS would answer otherwise."""
        headers = request.headers
        authorization = headers.get("Authorization")
        if not authorization:
            if "X-Amz-Signature=" in request.query:
                raise IncompleteSignatureError(
                    "Query-string (presigned) authentication is not supported by s3vectors_local; "
                    "sign the Authorization header"
                )
            raise MissingAuthenticationTokenError("Missing Authentication Token")
        parts = _parse_authorization(authorization)
        stamp, when = _timestamp(headers)
        scope = parts["Credential"].split("/")
        if len(scope) != 5:
            raise IncompleteSignatureError(
                "Credential must have exactly 5 slash-delimited elements, e.g. keyid/date/region/service/term"
            )
        access_key, day, region, service, terminator = scope
        credential = self.credentials.get(access_key)
        if credential is None:
            raise UnrecognizedClientError(_INVALID_TOKEN)
        if day != stamp[:8]:
            raise InvalidSignatureError(
                "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: "
                f"'{day[:8]}' != '{stamp[:8]}', from '{stamp}'."
            )
        if region != self.region:
            raise InvalidSignatureError(f"Credential should be scoped to a valid region, not '{region[:32]}'.")
        if service != self.service:
            raise InvalidSignatureError(f"Credential should be scoped to correct service: '{self.service}'.")
        if terminator != "aws4_request":
            raise InvalidSignatureError("Credential should be scoped with a valid terminator: 'aws4_request'.")
        signed_names = [n.strip().lower() for n in parts["SignedHeaders"].split(";") if n.strip()]
        if "host" not in signed_names:
            raise InvalidSignatureError("'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.")
        now = dt.datetime.fromtimestamp(self.clock(), dt.UTC)
        window = dt.timedelta(seconds=self.max_skew_s)
        minutes = f"{self.max_skew_s / 60:g} min."
        if when < now - window:
            raise InvalidSignatureError(
                f"Signature expired: {stamp} is now earlier than {_fmt(now - window)} ({_fmt(now)} - {minutes})"
            )
        if when > now + window:
            raise InvalidSignatureError(
                f"Signature not yet current: {stamp} is still later than {_fmt(now + window)} ({_fmt(now)} + {minutes})"
            )
        token = headers.get("X-Amz-Security-Token") or None
        if credential.session_token is None:
            if token is not None:  # long-term keys take no token; temporary ones need theirs
                raise UnrecognizedClientError(_INVALID_TOKEN)
        elif token is None or not hmac.compare_digest(
            token.encode("utf-8", "replace"), credential.session_token.encode()
        ):
            raise UnrecognizedClientError(_INVALID_TOKEN)
        body_hash = hashlib.sha256(request.body).hexdigest()
        claimed = headers.get("X-Amz-Content-SHA256")
        if claimed is not None and claimed != body_hash:
            raise InvalidSignatureError("The provided 'x-amz-content-sha256' header does not match what was computed.")

        signed = HTTPHeaders()
        for name in signed_names:
            for value in _header_values(headers, name):
                signed[name] = value
        host = headers.get("Host", "")
        url = f"http://{host}{request.raw_path}" + (f"?{request.query}" if request.query else "")
        aws_request = AWSRequest(method=request.method.upper(), url=url, data=request.body)
        for name in signed_names:
            for value in _header_values(headers, name):
                aws_request.headers[name] = value
        aws_request.context["timestamp"] = stamp
        signer = _Recompute(
            Credentials(credential.access_key, credential.secret_key, credential.session_token),
            self.service,
            self.region,
            signed,
        )
        canonical = signer.canonical_request(aws_request)
        expected = signer.signature(signer.string_to_sign(aws_request, canonical), aws_request)
        if not hmac.compare_digest(expected.encode(), parts["Signature"].encode("utf-8", "replace")):
            raise InvalidSignatureError(_MISMATCH)
        return access_key
