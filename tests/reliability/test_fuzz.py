"""Issue #6, fuzzing the local endpoint: thousands of generated requests (tests/reliability/fuzzgen.py, a seeded
generator over botocore's model) and raw malformed HTTP; no answer may be a 5xx, every error must be
AWS-shaped (x-amzn-errortype header, JSON body with a message), and the server keeps serving.

Most requests go straight to the WSGI application (werkzeug's test client: the same parsing, routing,
validation and operations, without sockets, so thousands fit in seconds); a few hundred go over HTTP to a
server that verifies SigV4 and IAM; raw byte-level garbage goes over sockets.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import http.client
import json
import os
import socket
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from werkzeug.test import Client

from s3vectors_local import LocalEndpoint
from tests.reliability.fuzzgen import BUCKETS, DIM, INDEXES, KEYS, Generator
from tests.reliability.support import record

SIGNED = {
    "Authorization": "AWS4-HMAC-SHA256 Credential=fuzz/20260101/us-east-1/s3vectors/aws4_request, "
    "SignedHeaders=host, Signature=00",
    "Content-Type": "application/json",
}
# Longer campaigns: RELIABILITY_FUZZ_REQUESTS=50000 RELIABILITY_FUZZ_SEED=7 pytest tests/reliability/test_fuzz.py
IN_PROCESS_REQUESTS = int(os.environ.get("RELIABILITY_FUZZ_REQUESTS", "6000"))
FUZZ_SEED = int(os.environ.get("RELIABILITY_FUZZ_SEED", "20260601"))
HTTP_REQUESTS = 400


def _seed_resources(client: Any) -> None:
    """The buckets, indexes and vectors generated requests name (recreated when a request deleted or replaced
    them)."""
    for bucket in BUCKETS:
        with contextlib.suppress(client.exceptions.ConflictException):
            client.create_vector_bucket(vectorBucketName=bucket)
        for index, metric in zip(INDEXES, ("cosine", "euclidean"), strict=True):
            names = {"vectorBucketName": bucket, "indexName": index}
            try:
                info = client.get_index(**names)["index"]
                if (info["dimension"], info["distanceMetric"]) != (DIM, metric) or info.get(
                    "metadataConfiguration", {}
                ).get("nonFilterableMetadataKeys") != ["text"]:
                    client.delete_index(**names)
                    raise client.exceptions.NotFoundException({"Error": {}}, "GetIndex")
            except client.exceptions.NotFoundException:
                client.create_index(
                    **names,
                    dataType="float32",
                    dimension=DIM,
                    distanceMetric=metric,
                    metadataConfiguration={"nonFilterableMetadataKeys": ["text"]},
                )
            client.put_vectors(
                **names,
                vectors=[
                    {
                        "key": k,
                        "data": {"float32": [1.0 + i, 0.5, -0.25, 0.1]},
                        "metadata": {
                            "category": ["pets", "baggage"][i % 2],
                            "chunk": i,
                            "tags": ["a", "b"],
                            "text": "t",
                        },
                    }
                    for i, k in enumerate(KEYS)
                ],
            )


def _check_shape(status: int, headers: Any, body: bytes) -> str | None:
    """Why an error answer is not AWS-shaped (None if it is)."""
    if status < 400:
        return None
    if not headers.get("x-amzn-errortype"):
        return "no x-amzn-errortype header"
    try:
        data = json.loads(body)
    except ValueError:
        return "body is not JSON"
    if not isinstance(data, dict) or data.get("__type") != headers.get("x-amzn-errortype") or "message" not in data:
        return f"body lacks __type/message: {body[:200]!r}"
    return None


@pytest.fixture(scope="module")
def endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalEndpoint]:
    with LocalEndpoint(tmp_path_factory.mktemp("fuzz")) as ep:
        _seed_resources(ep.client(max_attempts=1))
        yield ep


def test_generated_requests_never_get_a_5xx(endpoint: LocalEndpoint) -> None:
    app = endpoint.server.app
    wsgi = Client(app)
    gen = Generator(seed=FUZZ_SEED)
    statuses: Counter[int] = Counter()
    operations: Counter[str] = Counter()
    problems: list[str] = []
    setup = endpoint.client(max_attempts=1)
    started = time.monotonic()
    for i in range(IN_PROCESS_REQUESTS):
        if i % 250 == 0:
            _seed_resources(setup)
        req = gen.request(SIGNED)
        resp = wsgi.open(req.path, method=req.method, data=req.body, headers=req.headers)
        body = resp.get_data()
        statuses[resp.status_code] += 1
        operations[req.operation] += 1
        if resp.status_code >= 500:
            problems.append(f"#{i} {resp.status_code} {body[:200]!r} <- {req.describe()}")
        elif req.method != "HEAD" and (why := _check_shape(resp.status_code, resp.headers, body)):
            problems.append(f"#{i} {why} <- {req.describe()}")
    seconds = time.monotonic() - started
    assert problems == [], "\n".join(problems[:20])
    # Every operation, and many requests that succeed (so the operations' own logic ran, not only validation).
    assert len(operations) == 22 and statuses[200] > IN_PROCESS_REQUESTS // 20
    endpoint.client(max_attempts=1).list_vector_buckets()  # still serving
    record(
        "fuzz",
        kind="model-driven, in-process (WSGI)",
        seed=FUZZ_SEED,
        requests=IN_PROCESS_REQUESTS,
        seconds=round(seconds, 1),
        statuses=dict(sorted(statuses.items())),
        operations=len(operations),
        five_xx=0,
    )


CREDENTIALS = {"FUZZKEY": "fuzz-secret-key", "READONLY": "read-only-secret"}


def _sign(
    method: str, url: str, body: bytes, headers: dict[str, str], key: str, secret: str, when: dt.datetime | None = None
) -> dict[str, str]:
    request = AWSRequest(
        method=method, url=url, data=body, headers={k: v for k, v in headers.items() if k != "Authorization"}
    )
    signer = SigV4Auth(Credentials(key, secret), "s3vectors", "us-east-1")
    if when is None:
        signer.add_auth(request)
    else:  # a skewed clock
        request.context["timestamp"] = when.strftime("%Y%m%dT%H%M%SZ")
        request.headers["X-Amz-Date"] = request.context["timestamp"]
        signer._inject_signature_to_request(
            request, signer.signature(signer.string_to_sign(request, signer.canonical_request(request)), request)
        )
    return dict(request.headers.items())


def test_signed_requests_over_http_with_sigv4_and_iam(tmp_path: Path) -> None:
    principals = {
        "FUZZKEY": [{"Statement": [{"Effect": "Allow", "Action": "s3vectors:*", "Resource": "*"}]}],
        "READONLY": [
            {
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Action": ["s3vectors:Get*", "s3vectors:List*", "s3vectors:QueryVectors"],
                        "Resource": "*",
                    }
                ]
            }
        ],
    }
    gen = Generator(seed=77)
    statuses: Counter[int] = Counter()
    codes: Counter[str] = Counter()
    problems: list[str] = []
    with LocalEndpoint(tmp_path / "ep", credentials=CREDENTIALS, principals=principals) as ep:
        _seed_resources(ep.client(max_attempts=1, access_key="FUZZKEY", secret_key="fuzz-secret-key"))
        host = ep.endpoint_url.removeprefix("http://")
        for i in range(HTTP_REQUESTS):
            req = gen.request({"Content-Type": "application/json"})
            url = f"{ep.endpoint_url}{req.path}"
            key, secret = gen.rng.choice(list(CREDENTIALS.items()))
            r = gen.rng.random()
            if r < 0.08:
                secret = "wrong"
            when = None
            if 0.08 <= r < 0.12:
                when = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=gen.rng.choice([-20, -6, 6, 20]))
            try:
                headers = _sign(req.method, url, req.body, {**req.headers, "Host": host}, key, secret, when)
            except Exception:  # a path botocore itself cannot sign: send it unsigned
                headers = dict(req.headers)
            if 0.12 <= r < 0.16:
                headers.pop("Authorization", None)
            elif 0.16 <= r < 0.2:
                headers["Authorization"] = gen.odd_string()[:300].encode("latin-1", "replace").decode("latin-1")
            conn = http.client.HTTPConnection(host, timeout=30)
            try:
                conn.putrequest(
                    req.method, req.path if req.path.isascii() else "/", skip_host=True, skip_accept_encoding=True
                )
                for name, value in headers.items():
                    if name.lower() != "content-length":
                        conn.putheader(name, value.encode("latin-1", "replace"))
                conn.putheader("Content-Length", str(len(req.body)))
                conn.endheaders(req.body)
                resp = conn.getresponse()
                body = resp.read()
            finally:
                conn.close()
            statuses[resp.status] += 1
            codes[resp.getheader("x-amzn-errortype") or "-"] += 1
            if resp.status >= 500:
                problems.append(f"#{i} {resp.status} {body[:200]!r} <- {req.describe()}")
            elif req.method != "HEAD" and (why := _check_shape(resp.status, resp.headers, body)):
                problems.append(f"#{i} {why} <- {req.describe()}")
        ep.client(max_attempts=1, access_key="FUZZKEY", secret_key="fuzz-secret-key").list_vector_buckets()
    assert problems == [], "\n".join(problems[:20])
    for expected in (
        "InvalidSignatureException",
        "MissingAuthenticationTokenException",
        "AccessDeniedException",
        "IncompleteSignatureException",
    ):
        assert codes[expected] > 0, codes
    assert statuses[200] > 20
    record(
        "fuzz",
        kind="model-driven over HTTP, SigV4 + IAM enforced",
        requests=HTTP_REQUESTS,
        statuses=dict(sorted(statuses.items())),
        error_codes=dict(codes.most_common()),
        five_xx=0,
    )


def _raw_cases() -> list[bytes]:
    ok_headers = (
        b"Host: x\r\nAuthorization: AWS4-HMAC-SHA256 Credential=k/20260101/us-east-1/s3vectors/"
        b"aws4_request, SignedHeaders=host, Signature=00\r\nContent-Type: application/json\r\n"
    )
    post = b"POST /ListVectorBuckets HTTP/1.1\r\n" + ok_headers
    cases = [
        b"",
        b"\r\n\r\n",
        b"GARBAGE\r\n\r\n",
        b"GET\r\n\r\n",
        b"POST /ListVectorBuckets\r\n\r\n",
        b"POST /ListVectorBuckets HTTP/9.9\r\n\r\n",
        b"POST /ListVectorBuckets HTTP/1.1\r\n" + b"X: y\r\n" * 200 + b"\r\n",
        b"POST /ListVectorBuckets HTTP/1.1\r\nX-Long: " + b"a" * 70_000 + b"\r\n\r\n",
        b"POST /" + b"A" * 70_000 + b" HTTP/1.1\r\n\r\n",
        post + b"Content-Length: abc\r\n\r\n{}",
        post + b"Content-Length: -5\r\n\r\n{}",
        post + b"Content-Length: 99999\r\n\r\n{}",  # then hang up
        post + b"Transfer-Encoding: chunked\r\n\r\nZZ\r\n{}\r\n0\r\n\r\n",
        post + b"Transfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
        post + b"Transfer-Encoding: chunked\r\n\r\n5\r\n{}",
        post + b"Content-Length: 2\r\nContent-Length: 9\r\n\r\n{}",
        b"POST /ListVectorBuckets HTTP/1.1\r\nHost: x\r\nAuthorization: \xff\xfe\r\n\r\n",
        post + b"Content-Length: 8\r\n\r\n\x00\x01\x02\x03\x04\x05\x06\x07",
        b"POST /tags/%ZZ HTTP/1.1\r\n" + ok_headers + b"\r\n",
        b"DELETE /tags/arn%3Aaws%3As3vectors%3Aus-east-1%3A123456789012%3Abucket%2Ffuzz-bucket?tagKeys=%ZZ&&=& "
        b"HTTP/1.1\r\n" + ok_headers + b"\r\n",
        b"POST /ListVectorBuckets?\xff\xfe=1 HTTP/1.1\r\n" + ok_headers + b"\r\n",
        b"POST http://evil.example/ListVectorBuckets HTTP/1.1\r\n" + ok_headers + b"\r\n",
        b"CONNECT 127.0.0.1:22 HTTP/1.1\r\n\r\n",
        b"POST /ListVectorBuckets HTTP/1.0\r\n" + ok_headers + b"Content-Length: 2\r\n\r\n{}",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 64,  # a TLS ClientHello on the plain port
    ]
    return cases


def _send_raw(host: str, port: int, data: bytes) -> int | None:
    """The status the server answers ``data`` with (None if it just closes)."""
    with socket.create_connection((host, port), timeout=5) as sock:
        with contextlib.suppress(OSError):
            sock.sendall(data)
            sock.shutdown(socket.SHUT_WR)
        chunks = []
        with contextlib.suppress(OSError):
            while chunk := sock.recv(65536):
                chunks.append(chunk)
    head = b"".join(chunks)[:100]
    if not head.startswith(b"HTTP/"):
        return None
    return int(head.split(b" ", 2)[1])


def test_raw_malformed_http_never_gets_a_5xx(endpoint: LocalEndpoint) -> None:
    host, port = endpoint.server.host, endpoint.server.port
    cases = _raw_cases()
    gen = Generator(seed=5)
    for _ in range(300):  # random bytes, and random mutations of a valid request
        valid = (
            b"POST /PutVectors HTTP/1.1\r\nHost: x\r\nAuthorization: AWS4-HMAC-SHA256 Credential=k/20260101/"
            b"us-east-1/s3vectors/aws4_request, SignedHeaders=host, Signature=00\r\nContent-Type: "
            b"application/json\r\nContent-Length: 60\r\n\r\n" + b'{"vectorBucketName":"fuzz-bucket","indexName":'
            b'"fuzz-index","vectors":[]}'
        )
        data = bytearray(valid)
        for _ in range(gen.rng.randint(1, 8)):
            pos = gen.rng.randrange(len(data))
            data[pos] = gen.rng.randrange(256)
        cases.append(bytes(data) if gen.rng.random() < 0.8 else bytes(gen.rng.randrange(256) for _ in range(100)))
    statuses: Counter[str] = Counter()
    bad = []
    for i, case in enumerate(cases):
        status = _send_raw(host, port, case)
        statuses[str(status)] += 1
        if status is not None and status >= 500:
            bad.append((i, status, case[:120]))
        if i % 25 == 0:
            endpoint.client(max_attempts=1).list_vector_buckets()  # still serving
    assert bad == []
    endpoint.client(max_attempts=1).list_vector_buckets()
    record("fuzz", kind="raw malformed HTTP over sockets", requests=len(cases), statuses=dict(statuses), five_xx=0)
