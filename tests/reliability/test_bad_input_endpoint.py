"""Issue #6, bad input to the local endpoint: malformed JSON, wrong content type, a body over 20 MiB, an unknown
operation, names with path separators, forged pagination tokens, filters nested too deep. Each is answered
with an AWS-shaped 4xx (the code in x-amzn-errortype and in a JSON body with a message), the server keeps
serving, and what is stored does not change."""

from __future__ import annotations

import base64
import http.client
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from s3vectors_local import LocalEndpoint
from s3vectors_local.limits import MAX_PAYLOAD_BYTES
from tests.reliability.support import record

AUTH = "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/s3vectors/aws4_request, SignedHeaders=host, Signature=00"
NAMES = {"vectorBucketName": "bad-input", "indexName": "idx"}


@pytest.fixture
def ep(tmp_path: Path) -> Iterator[LocalEndpoint]:
    with LocalEndpoint(tmp_path / "data") as endpoint:
        c = endpoint.client(max_attempts=1)
        c.create_vector_bucket(vectorBucketName=NAMES["vectorBucketName"])
        c.create_index(**NAMES, dataType="float32", dimension=3, distanceMetric="cosine")
        c.put_vectors(
            **NAMES,
            vectors=[
                {"key": f"k{i}", "data": {"float32": [1.0, float(i), 0.5]}, "metadata": {"n": i}} for i in range(10)
            ],
        )
        yield endpoint


def _stored(ep: LocalEndpoint) -> Any:
    return ep.client(max_attempts=1).list_vectors(**NAMES, returnData=True, returnMetadata=True)["vectors"]


def _send(
    ep: LocalEndpoint,
    method: str,
    path: str,
    body: bytes | None,
    headers: dict[str, str],
    *,
    chunks: list[bytes] | None = None,
) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection(ep.server.host, ep.server.port, timeout=60)
    try:
        if chunks is not None:
            conn.putrequest(method, path)
            for k, v in headers.items():
                conn.putheader(k, v)
            conn.putheader("Transfer-Encoding", "chunked")
            conn.endheaders()
            for chunk in chunks:
                conn.send(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            conn.send(b"0\r\n\r\n")
        else:
            conn.request(method, path, body=body, headers=headers)
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def _aws_4xx(status: int, headers: dict[str, str], body: bytes, code: str | None = None) -> str:
    assert 400 <= status < 500, (status, body[:300])
    data = json.loads(body)
    assert headers["x-amzn-errortype"] == data["__type"] == data["code"], (headers, data)
    assert data["message"] and headers.get("x-amzn-requestid")
    if code is not None:
        assert data["__type"] == code, data
    return str(data["__type"])


def test_endpoint_bad_requests_get_aws_shaped_4xx_and_the_server_keeps_serving(ep: LocalEndpoint) -> None:
    before = _stored(ep)
    json_headers = {"Authorization": AUTH, "Content-Type": "application/json"}
    put = json.dumps({**NAMES, "vectors": [{"key": "new", "data": {"float32": [1, 2, 3]}}]}).encode()
    cases: list[tuple[str, str, str, bytes | None, dict[str, str], str]] = [
        (
            "malformed JSON",
            "POST",
            "/PutVectors",
            b'{"vectorBucketName": "bad-input", "vectors": [',
            json_headers,
            "ValidationException",
        ),
        ("JSON that is not an object", "POST", "/PutVectors", b'[{"key": "x"}]', json_headers, "ValidationException"),
        ("NaN literal", "POST", "/PutVectors", put.replace(b"1, 2", b"NaN, 2"), json_headers, "ValidationException"),
        ("nesting deeper than the parser", "POST", "/PutVectors", b"[" * 100_000, json_headers, "ValidationException"),
        (
            "invalid UTF-8",
            "POST",
            "/PutVectors",
            b'{"vectorBucketName": "\xff\xfe"}',
            json_headers,
            "ValidationException",
        ),
        (
            "unpaired surrogate",
            "POST",
            "/PutVectors",
            put.replace(b'"new"', b'"\\ud800"'),
            json_headers,
            "ValidationException",
        ),
        (
            "wrong content type: text/plain",
            "POST",
            "/PutVectors",
            put,
            {"Authorization": AUTH, "Content-Type": "text/plain"},
            "UnsupportedMediaTypeException",
        ),
        (
            "wrong content type: form",
            "POST",
            "/PutVectors",
            put,
            {"Authorization": AUTH, "Content-Type": "application/x-www-form-urlencoded"},
            "UnsupportedMediaTypeException",
        ),
        ("no content type", "POST", "/PutVectors", put, {"Authorization": AUTH}, "UnsupportedMediaTypeException"),
        ("unknown operation", "POST", "/DropEverything", b"{}", json_headers, "ValidationException"),
        ("wrong method", "GET", "/PutVectors", None, {"Authorization": AUTH}, "ValidationException"),
        ("path below an operation", "POST", "/PutVectors/../DeleteIndex", put, json_headers, "ValidationException"),
        (
            "bucket name with a slash",
            "POST",
            "/CreateVectorBucket",
            b'{"vectorBucketName": "a/b"}',
            json_headers,
            "ValidationException",
        ),
        (
            "bucket name ../",
            "POST",
            "/GetVectorBucket",
            b'{"vectorBucketName": "../../etc"}',
            json_headers,
            "NotFoundException",
        ),
        (
            "index name with slashes",
            "POST",
            "/PutVectors",
            put.replace(b'"idx"', b'"idx/../../x"'),
            json_headers,
            "NotFoundException",
        ),
        (
            "index ARN with extra segments",
            "POST",
            "/GetIndex",
            json.dumps(
                {"indexArn": "arn:aws:s3vectors:us-east-1:123456789012:bucket/bad-input/index/idx/../../x"}
            ).encode(),
            json_headers,
            "ValidationException",
        ),
        (
            "tag ARN with an encoded ../",
            "GET",
            "/tags/arn%3Aaws%3As3vectors%3Aus-east-1%3A123456789012%3Abucket%2Fbad-input%2F..%2F..%2Fx",
            None,
            {"Authorization": AUTH},
            "ValidationException",
        ),
        (
            "forged ListVectors token",
            "POST",
            "/ListVectors",
            json.dumps(
                {
                    **NAMES,
                    "nextToken": base64.urlsafe_b64encode(
                        b'{"t":"vectors","index":1,"seg":null,"after":"DROP TABLE"}'
                    ).decode(),
                }
            ).encode(),
            json_headers,
            "ValidationException",
        ),
        (
            "forged ListVectorBuckets token",
            "POST",
            "/ListVectorBuckets",
            json.dumps({"nextToken": base64.urlsafe_b64encode(b'{"t":"buckets","prefix":""}').decode()}).encode(),
            json_headers,
            "ValidationException",
        ),
        (
            "filter nested 400 levels",
            "POST",
            "/QueryVectors",
            json.dumps({**NAMES, "topK": 3, "queryVector": {"float32": [1, 0, 0]}}).encode()[:-1]
            + b', "filter": '
            + b'{"$and": [' * 400
            + b'{"n": 1}'
            + b"]}" * 400
            + b"}",
            json_headers,
            "ValidationException",
        ),
        ("unsigned", "POST", "/PutVectors", put, {"Content-Type": "application/json"}, "AccessDeniedException"),
    ]
    seen = []
    for name, method, path, body, headers, code in cases:
        status, h, data = _send(ep, method, path, body, headers)
        seen.append(f"{name}: {status} {_aws_4xx(status, h, data, code)}")
        assert _stored(ep) == before, name
    # A body over 20 MiB, declared (Content-Length) and undeclared (chunked): refused, and the client reads
    # the answer instead of a reset connection.
    big = b'{"vectorBucketName": "bad-input", "indexName": "idx", "vectors": [' + b" " * MAX_PAYLOAD_BYTES + b"]}"
    status, h, data = _send(ep, "POST", "/PutVectors", big, json_headers)
    seen.append(f"body over 20 MiB: {status} {_aws_4xx(status, h, data, 'ValidationException')}")
    status, h, data = _send(
        ep,
        "POST",
        "/PutVectors",
        None,
        json_headers,
        chunks=[big[i : i + (1 << 20)] for i in range(0, len(big), 1 << 20)],
    )
    seen.append(f"chunked body over 20 MiB: {status} {_aws_4xx(status, h, data, 'ValidationException')}")
    assert _stored(ep) == before
    ep.client(max_attempts=1).put_vectors(**NAMES, vectors=[{"key": "after", "data": {"float32": [1, 1, 1]}}])
    assert len(_stored(ep)) == len(before) + 1  # still serving, still writing
    assert sorted(os.listdir(ep.data_dir)) == sorted(
        n for n in os.listdir(ep.data_dir) if n.startswith((".lock", "s3vectors.sqlite3"))
    )  # no stray files
    record("endpoint-bad-input", cases=len(seen), answers=seen)


def test_boto3_gets_the_20_mib_refusal_not_a_reset(ep: LocalEndpoint) -> None:
    """Through botocore too: a PutVectors over 20 MiB is answered 400 (the server drains the body)."""
    c = ep.client(max_attempts=1, parameter_validation=False)
    vectors = [
        {"key": f"big{i}", "data": {"float32": [0.1234567890123456] * 3}, "metadata": {"pad": "x" * 42_000}}
        for i in range(500)
    ]
    with pytest.raises(c.exceptions.ValidationException) as e:
        c.put_vectors(**NAMES, vectors=vectors)
    assert "20 MiB" in str(e.value)
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
