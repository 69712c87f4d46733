"""The wire contract: every model operation is routed and handled; errors reach botocore as modeled."""

from __future__ import annotations

import json
import urllib.request
from typing import Any

import botocore.session
import pytest

from s3vectors_local.service import Service
from s3vectors_local.validation import service_model


def test_every_model_operation_has_a_handler_and_route(ep: Any) -> None:
    ops = botocore.session.get_session().get_service_model("s3vectors").operation_names
    assert len(ops) == 22
    app = ep.server.app
    for op in ops:
        assert callable(getattr(Service, op))
        http = service_model().operation_model(op).http
        path = http["requestUri"].replace("{resourceArn}", "arn%3Aaws%3As3vectors%3Ax")
        adapter = app.url_map.bind("localhost")
        assert adapter.match(path.replace("%3A", ":"), method=http["method"])[0] == op


def _post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, str], dict[str, Any]]:
    req = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(req) as r:
            return r.status, dict(r.headers), json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), json.loads(e.read())


SIGNED = {"Authorization": "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/s3vectors/aws4_request, "
          "SignedHeaders=host, Signature=00", "Content-Type": "application/json"}


def test_unsigned_requests_are_refused(ep: Any) -> None:
    status, headers, body = _post(f"{ep.endpoint_url}/ListVectorBuckets", b"{}", {})
    assert status == 403
    assert headers["x-amzn-errortype"] == "AccessDeniedException" == body["__type"] == body["code"]


def test_error_wire_format(ep: Any) -> None:
    status, headers, body = _post(f"{ep.endpoint_url}/GetVectorBucket", b'{"vectorBucketName":"nope"}', SIGNED)
    assert status == 404 and headers["x-amzn-errortype"] == "NotFoundException"
    assert body["message"] and headers["x-amzn-requestid"]
    status, _, body = _post(f"{ep.endpoint_url}/GetVectorBucket", b"{not json", SIGNED)
    assert status == 400 and body["code"] == "ValidationException"
    status, _, body = _post(f"{ep.endpoint_url}/NoSuchOperation", b"{}", SIGNED)
    assert status == 400 and body["code"] == "ValidationException"
    status, _, body = _post(f"{ep.endpoint_url}/CreateVectorBucket", b'{"vectorBucketName": 5}', SIGNED)
    assert status == 400 and body["fieldList"] == [
        {"path": "/vectorBucketName", "message": "Value at '/vectorBucketName' failed to satisfy constraint: "
         "Member must be a string"}]


def test_validation_lists_every_failure(raw: Any) -> None:
    with pytest.raises(raw.exceptions.ValidationException) as e:
        raw.create_index(vectorBucketName="b" * 64, indexName="x", dataType="float32", dimension=5000,
                         distanceMetric="cosine")
    err = e.value.response
    assert {f["path"] for f in err["fieldList"]} == {"/vectorBucketName", "/indexName", "/dimension"}
    assert err["Error"]["Message"].startswith("3 validation errors detected")


def test_pytest_plugin_fixture(s3vectors_endpoint: Any) -> None:
    c = s3vectors_endpoint.client()
    c.create_vector_bucket(vectorBucketName="from-plugin")
    assert [b["vectorBucketName"] for b in c.list_vector_buckets()["vectorBuckets"]] == ["from-plugin"]
