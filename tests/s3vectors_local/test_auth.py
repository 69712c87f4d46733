"""Opt-in access control of the local endpoint: SigV4 verification (sigv4.py) and IAM policies (iam.py); the
default (no credentials configured) accepts any SigV4-shaped request, as before; the server binds 127.0.0.1."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from s3vectors_local import LocalEndpoint
from s3vectors_local.endpoint import make_client
from s3vectors_local.errors import AccessDeniedError
from s3vectors_local.iam import ArnBuilder, Authorizer, modeled_permissions, required_permissions
from s3vectors_local.sigv4 import SignedRequest, SigV4Verifier
from s3vectors_local.validation import service_model
from tests.s3vectors_local.support import wait_for_endpoint

KEY, SECRET = "AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
ACCOUNT = "123456789012"
BUCKET_ARN = f"arn:aws:s3vectors:us-east-1:{ACCOUNT}:bucket/bkt"
INDEX_ARN = f"{BUCKET_ARN}/index/idx"
ALLOW_ALL = [{"Statement": [{"Effect": "Allow", "Action": "s3vectors:*", "Resource": "*"}]}]


# -- SigV4 ---------------------------------------------------------------------------------------------------------
def _signed(
    method: str = "POST",
    path: str = "/ListVectorBuckets",
    body: bytes = b"{}",
    *,
    key: str = KEY,
    secret: str = SECRET,
    region: str = "us-east-1",
    service: str = "s3vectors",
    token: str | None = None,
    when: dt.datetime | None = None,
    query: str = "",
) -> SignedRequest:
    url = f"http://127.0.0.1:9000{path}" + (f"?{query}" if query else "")
    request = AWSRequest(method=method, url=url, data=body, headers={"Content-Type": "application/json"})
    signer = SigV4Auth(Credentials(key, secret, token), service, region)
    if when is None:
        signer.add_auth(request)
    else:
        request.context["timestamp"] = when.strftime("%Y%m%dT%H%M%SZ")
        signer._modify_request_before_signing(request)
        request.headers.replace_header("X-Amz-Date", request.context["timestamp"])
        signature = signer.signature(signer.string_to_sign(request, signer.canonical_request(request)), request)
        signer._inject_signature_to_request(request, signature)
    headers = {k: v.decode() if isinstance(v, bytes) else v for k, v in request.headers.items()}
    headers["Host"] = "127.0.0.1:9000"
    return SignedRequest(method, path, query, _CaseInsensitive(headers), body)


class _CaseInsensitive(dict[str, str]):
    def get(self, name: str, default: Any = None) -> Any:
        for k, v in self.items():
            if k.lower() == name.lower():
                return v
        return default


def _code(verifier: SigV4Verifier, request: SignedRequest) -> str:
    try:
        verifier.verify(request)
    except Exception as e:
        return f"{e.status} {e.code}"  # type: ignore[attr-defined]
    return "ok"


def test_a_correct_signature_is_accepted() -> None:
    v = SigV4Verifier({KEY: SECRET}, region="us-east-1")
    assert v.verify(_signed()) == KEY
    assert v.verify(_signed("GET", "/tags/arn%3Aaws%3As3vectors%3Aus-east-1%3A123456789012%3Abucket%2Fbkt", b"")) == KEY
    assert (
        v.verify(
            _signed(
                "DELETE",
                "/tags/arn%3Aaws%3As3vectors%3Aus-east-1%3A123456789012%3Abucket%2Fbkt",
                b"",
                query="tagKeys=a%20b&tagKeys=c",
            )
        )
        == KEY
    )


def test_each_refusal_has_the_aws_code() -> None:
    v = SigV4Verifier({KEY: SECRET, "TEMP": {"secret_key": "s2", "session_token": "tok"}}, region="us-east-1")
    good = _signed()
    no_auth = SignedRequest(
        good.method,
        good.raw_path,
        "",
        _CaseInsensitive({k: v for k, v in good.headers.items() if k != "Authorization"}),
        good.body,
    )
    tampered = SignedRequest(good.method, good.raw_path, "", good.headers, b'{"prefix":"x"}')
    no_date = SignedRequest(
        good.method,
        good.raw_path,
        "",
        _CaseInsensitive({k: v for k, v in good.headers.items() if k != "X-Amz-Date"}),
        good.body,
    )
    bad_sha = SignedRequest(
        good.method,
        good.raw_path,
        "",
        _CaseInsensitive({**good.headers, "X-Amz-Content-SHA256": "UNSIGNED-PAYLOAD"}),
        good.body,
    )
    now = dt.datetime.now(dt.UTC)
    cases = {
        "unsigned": (no_auth, "403 MissingAuthenticationTokenException"),
        "presigned": (
            SignedRequest("POST", "/x", "X-Amz-Signature=1", _CaseInsensitive({}), b""),
            "400 IncompleteSignatureException",
        ),
        "bearer": (
            SignedRequest("POST", "/x", "", _CaseInsensitive({"Authorization": "Bearer abc"}), b""),
            "400 IncompleteSignatureException",
        ),
        "no date": (no_date, "400 IncompleteSignatureException"),
        "unknown key": (_signed(key="AKIDUNKNOWN"), "403 UnrecognizedClientException"),
        "wrong secret": (_signed(secret="nope"), "403 InvalidSignatureException"),
        "body changed": (tampered, "403 InvalidSignatureException"),
        "content sha lies": (bad_sha, "403 InvalidSignatureException"),
        "other region": (_signed(region="eu-west-1"), "403 InvalidSignatureException"),
        "other service": (_signed(service="s3"), "403 InvalidSignatureException"),
        "6 min slow": (_signed(when=now - dt.timedelta(minutes=6)), "403 InvalidSignatureException"),
        "6 min fast": (_signed(when=now + dt.timedelta(minutes=6)), "403 InvalidSignatureException"),
        "4 min slow": (_signed(when=now - dt.timedelta(minutes=4)), "ok"),
        "4 min fast": (_signed(when=now + dt.timedelta(minutes=4)), "ok"),
        "token not expected": (_signed(token="x"), "403 UnrecognizedClientException"),
        "token missing": (_signed(key="TEMP", secret="s2"), "403 UnrecognizedClientException"),
        "token wrong": (_signed(key="TEMP", secret="s2", token="other"), "403 UnrecognizedClientException"),
        "token right": (_signed(key="TEMP", secret="s2", token="tok"), "ok"),
    }
    got = {name: _code(v, request) for name, (request, _) in cases.items()}
    assert got == {name: want for name, (_, want) in cases.items()}


def test_the_clock_skew_message_is_the_one_aws_sends() -> None:
    v = SigV4Verifier({KEY: SECRET}, region="us-east-1", clock=lambda: 1_800_000_000.0)
    late = _signed(when=dt.datetime.fromtimestamp(1_800_000_000 - 600, dt.UTC))
    with pytest.raises(Exception) as e:
        v.verify(late)
    assert str(e.value) == (
        "Signature expired: 20270115T075000Z is now earlier than 20270115T075500Z (20270115T080000Z - 5 min.)"
    )
    early = _signed(when=dt.datetime.fromtimestamp(1_800_000_000 + 600, dt.UTC))
    with pytest.raises(Exception) as e:
        v.verify(early)
    assert str(e.value) == (
        "Signature not yet current: 20270115T081000Z is still later than 20270115T080500Z (20270115T080000Z + 5 min.)"
    )


def test_errors_never_contain_the_secret_or_the_signature() -> None:
    v = SigV4Verifier({KEY: SECRET}, region="us-east-1")
    for request in (_signed(secret="nope"), _signed(key="OTHER"), _signed(region="xx-1")):
        with pytest.raises(Exception) as e:
            v.verify(request)
        signature = str(request.headers.get("Authorization")).rsplit("Signature=", 1)[1]
        assert SECRET not in str(e.value) and signature not in str(e.value) and KEY not in str(e.value)
    assert SECRET not in repr(v)


@pytest.fixture
def verified(tmp_path: Path) -> Iterator[LocalEndpoint]:
    with LocalEndpoint(tmp_path, credentials={KEY: SECRET}) as ep:
        yield ep


def test_boto3_with_the_right_keys_works_end_to_end(verified: LocalEndpoint) -> None:
    c = verified.client(max_attempts=1, access_key=KEY, secret_key=SECRET)
    c.create_vector_bucket(vectorBucketName="bkt", tags={"a b": "c"})
    arn = c.get_vector_bucket(vectorBucketName="bkt")["vectorBucket"]["vectorBucketArn"]
    c.tag_resource(resourceArn=arn, tags={"d": "e"})
    c.untag_resource(resourceArn=arn, tagKeys=["a b"])  # DELETE with a query string
    assert c.list_tags_for_resource(resourceArn=arn)["tags"] == {"d": "e"}  # GET, ARN in the path


@pytest.mark.parametrize(
    ("key", "secret", "code"),
    [
        ("testing", "testing", "UnrecognizedClientException"),
        (KEY, "wrong", "InvalidSignatureException"),
    ],
)
def test_boto3_with_wrong_keys_is_refused(verified: LocalEndpoint, key: str, secret: str, code: str) -> None:
    c = verified.client(max_attempts=1, access_key=key, secret_key=secret)
    with pytest.raises(ClientError) as e:
        c.list_vector_buckets()
    assert e.value.response["Error"]["Code"] == code
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403


def test_unsigned_requests_to_any_path_are_refused_before_routing(verified: LocalEndpoint) -> None:
    import urllib.request

    for path in ("/ListVectorBuckets", "/NoSuchOperation"):
        req = urllib.request.Request(
            verified.endpoint_url + path, data=b"{}", method="POST", headers={"Content-Type": "application/json"}
        )
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(req)
        assert e.value.code == 403
        assert e.value.headers["x-amzn-errortype"] == "MissingAuthenticationTokenException"


def test_default_accepts_any_sigv4_shaped_request(tmp_path: Path) -> None:
    with LocalEndpoint(tmp_path) as ep:
        ep.client(max_attempts=1, access_key="anything", secret_key="at all").list_vector_buckets()


# -- IAM -------------------------------------------------------------------------------------------------------------
ARNS = ArnBuilder("aws", "us-east-1", ACCOUNT)


def test_every_operation_needs_a_modeled_permission_on_a_resource() -> None:
    params = {"vectorBucketName": "bkt", "indexName": "idx", "resourceArn": INDEX_ARN}
    for op in service_model().operation_names:
        needed = required_permissions(op, params, ARNS)
        assert needed is not None and needed[0].action == f"s3vectors:{op}", op
        assert modeled_permissions(op) == (f"s3vectors:{op}",)
        expected = {
            "ListVectorBuckets": "*",
            "TagResource": INDEX_ARN,
            "UntagResource": INDEX_ARN,
            "ListTagsForResource": INDEX_ARN,
        }.get(op)
        if expected is None:
            expected = (
                INDEX_ARN
                if op
                in (
                    "CreateIndex",
                    "DeleteIndex",
                    "GetIndex",
                    "PutVectors",
                    "GetVectors",
                    "ListVectors",
                    "QueryVectors",
                    "DeleteVectors",
                    "UpdateIndexMode",
                    "UpdateMetadataConfiguration",
                )
                else BUCKET_ARN
            )
        assert needed[0].resource == expected, op


@pytest.mark.parametrize(
    ("op", "extra", "needs_get"),
    [
        ("QueryVectors", {}, False),
        ("QueryVectors", {"returnDistance": True}, False),
        ("QueryVectors", {"filter": {"a": 1}}, True),
        ("QueryVectors", {"returnMetadata": True}, True),
        ("QueryVectors", {"queryTexts": ["x"]}, True),
        ("ListVectors", {}, False),
        ("ListVectors", {"returnData": True}, True),
        ("ListVectors", {"returnMetadata": True}, True),
    ],
)
def test_conditional_get_vectors(op: str, extra: dict[str, Any], needs_get: bool) -> None:
    needed = required_permissions(op, {"indexArn": INDEX_ARN, **extra}, ARNS)
    assert needed is not None
    assert ("s3vectors:GetVectors" in {p.action for p in needed}) == needs_get


def test_creating_with_tags_needs_tag_resource() -> None:
    needed = required_permissions(
        "CreateIndex", {"vectorBucketName": "bkt", "indexName": "idx", "tags": {"a": "b"}}, ARNS
    )
    assert [p.action for p in needed or []] == ["s3vectors:CreateIndex", "s3vectors:TagResource"]


def _authorize(
    policies: list[dict[str, Any]], op: str, params: dict[str, Any], *, bucket_policy: str | None = None
) -> str:
    auth = Authorizer(
        {"K": {"arn": f"arn:aws:iam::{ACCOUNT}:role/R", "policies": policies}},
        account_id=ACCOUNT,
        region="us-east-1",
        bucket_policy=lambda _: bucket_policy,
    )
    try:
        auth.authorize("K", op, params)
    except AccessDeniedError as e:
        return e.message
    return "allowed"


def _stmt(effect: str = "Allow", action: Any = "s3vectors:*", resource: Any = "*", **more: Any) -> dict[str, Any]:
    return {"Effect": effect, "Action": action, "Resource": resource, **more}


Q = {"indexArn": INDEX_ARN, "topK": 1}


def test_policy_evaluation() -> None:
    allowed = "allowed"
    assert _authorize([{"Statement": [_stmt()]}], "QueryVectors", Q) == allowed
    assert _authorize([{"Statement": [_stmt(action="S3VECTORS:query*")]}], "QueryVectors", Q) == allowed
    assert _authorize([{"Statement": [_stmt(resource=f"{BUCKET_ARN}/index/*")]}], "QueryVectors", Q) == allowed
    assert _authorize([{"Statement": [_stmt(resource=f"{BUCKET_ARN}/index/id?")]}], "QueryVectors", Q) == allowed
    assert "no identity-based policy" in _authorize([{"Statement": [_stmt(resource=BUCKET_ARN)]}], "QueryVectors", Q)
    assert "no identity-based policy" in _authorize([], "QueryVectors", Q)
    assert "explicit deny in an identity-based policy" in _authorize(
        [{"Statement": [_stmt(), _stmt("Deny", "s3vectors:QueryVectors")]}], "QueryVectors", Q
    )
    assert (
        _authorize(
            [{"Statement": [{"Effect": "Allow", "NotAction": "s3vectors:Delete*", "Resource": "*"}]}], "QueryVectors", Q
        )
        == allowed
    )
    assert "no identity" in _authorize(
        [{"Statement": [{"Effect": "Allow", "NotAction": "s3vectors:Query*", "Resource": "*"}]}], "QueryVectors", Q
    )
    assert "no identity" in _authorize(
        [{"Statement": [{"Effect": "Allow", "Action": "*", "NotResource": INDEX_ARN}]}], "QueryVectors", Q
    )
    assert (
        "User: arn:aws:sts::123456789012:assumed-role/R/s3vectors-local is not authorized to perform: "
        "s3vectors:QueryVectors on resource: " + INDEX_ARN in _authorize([], "QueryVectors", Q)
    )


@pytest.mark.parametrize(
    ("condition", "allowed"),
    [
        ({"StringEquals": {"aws:RequestedRegion": "us-east-1"}}, True),
        ({"StringEquals": {"aws:RequestedRegion": ["eu-west-1", "us-east-1"]}}, True),
        ({"StringNotEquals": {"aws:RequestedRegion": "us-east-1"}}, False),
        ({"StringLike": {"aws:PrincipalArn": "arn:aws:iam::*:role/R"}}, True),
        ({"ArnLike": {"aws:PrincipalArn": "arn:aws:iam::123456789012:role/*"}}, True),
        ({"Bool": {"aws:SecureTransport": "true"}}, False),  # plain HTTP
        ({"StringEquals": {"aws:SourceVpce": "vpce-1"}}, False),  # a key the request lacks
        ({"StringEqualsIfExists": {"aws:SourceVpce": "vpce-1"}}, True),
        ({"StringNotEquals": {"aws:SourceVpce": "vpce-1"}}, True),  # negated, key missing: true
        ({"Null": {"aws:SourceVpce": "true"}}, True),
        ({"NumericLessThan": {"aws:MultiFactorAuthAge": "3600"}}, False),  # not evaluated: never grants
    ],
)
def test_conditions(condition: dict[str, Any], allowed: bool) -> None:
    result = _authorize([{"Statement": [_stmt(Condition=condition)]}], "QueryVectors", Q)
    assert (result == "allowed") == allowed, result


def test_an_unevaluable_condition_on_a_deny_still_denies() -> None:
    policies = [{"Statement": [_stmt(), _stmt("Deny", Condition={"NumericLessThan": {"aws:MultiFactorAuthAge": "1"}})]}]
    assert "explicit deny" in _authorize(policies, "QueryVectors", Q)


def test_tag_conditions() -> None:
    policy = [{"Statement": [_stmt(Condition={"ForAllValues:StringEquals": {"aws:TagKeys": ["team", "env"]}})]}]
    ok = {"vectorBucketName": "bkt", "tags": {"team": "x"}}
    assert _authorize(policy, "CreateVectorBucket", ok) == "allowed"
    other = {"vectorBucketName": "bkt", "tags": {"owner": "y"}}
    assert "no identity" in _authorize(policy, "CreateVectorBucket", other)


def test_bucket_policy_can_grant_and_deny() -> None:
    role = f"arn:aws:iam::{ACCOUNT}:role/R"
    grant = json.dumps(
        {
            "Statement": [
                {"Effect": "Allow", "Principal": {"AWS": role}, "Action": "s3vectors:Query*", "Resource": INDEX_ARN}
            ]
        }
    )
    deny = json.dumps(
        {"Statement": [{"Effect": "Deny", "Principal": "*", "Action": "s3vectors:*", "Resource": f"{BUCKET_ARN}/*"}]}
    )
    other = json.dumps(
        {
            "Statement": [
                {"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::1:role/X"}, "Action": "*", "Resource": "*"}
            ]
        }
    )
    assert _authorize([], "QueryVectors", Q, bucket_policy=grant) == "allowed"
    assert "no identity" in _authorize([], "QueryVectors", Q, bucket_policy=other)
    assert "explicit deny in a resource-based policy" in _authorize(ALLOW_ALL, "QueryVectors", Q, bucket_policy=deny)
    assert _authorize(ALLOW_ALL, "QueryVectors", Q, bucket_policy="not json") == "allowed"


def test_iam_over_http(tmp_path: Path) -> None:
    reader = [{"Statement": [_stmt(action=["s3vectors:GetIndex", "s3vectors:QueryVectors"], resource=INDEX_ARN)]}]
    with LocalEndpoint(tmp_path, principals={"ADMIN": ALLOW_ALL, "READER": reader}) as ep:
        admin = ep.client(max_attempts=1, access_key="ADMIN")
        admin.create_vector_bucket(vectorBucketName="bkt")
        admin.create_index(
            vectorBucketName="bkt", indexName="idx", dataType="float32", dimension=2, distanceMetric="cosine"
        )
        admin.put_vectors(vectorBucketName="bkt", indexName="idx", vectors=[{"key": "a", "data": {"float32": [1, 0]}}])
        r = ep.client(max_attempts=1, access_key="READER")
        assert r.query_vectors(indexArn=INDEX_ARN, topK=1, queryVector={"float32": [1, 0]})["vectors"]
        with pytest.raises(ClientError) as e:
            r.query_vectors(indexArn=INDEX_ARN, topK=1, queryVector={"float32": [1, 0]}, filter={"x": 1})
        assert e.value.response["Error"]["Code"] == "AccessDeniedException"
        assert "s3vectors:GetVectors" in e.value.response["Error"]["Message"]
        with pytest.raises(ClientError) as e:
            ep.client(max_attempts=1, access_key="STRANGER").get_index(indexArn=INDEX_ARN)  # no policies at all
        assert e.value.response["Error"]["Code"] == "AccessDeniedException"


# -- binding and the serve flags -------------------------------------------------------------------------------------
def test_binds_loopback_by_default(tmp_path: Path) -> None:
    with LocalEndpoint(tmp_path) as ep:
        assert ep.server._server.socket.getsockname()[0] == "127.0.0.1"
        assert ep.endpoint_url.startswith("http://127.0.0.1:")


def _listening_addresses(port: int) -> set[str]:
    """Local addresses listening on ``port`` (from /proc/net/tcp; hex, little-endian)."""
    out = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        address, hex_port = local.split(":")
        if int(hex_port, 16) == port and state == "0A":  # LISTEN
            out.add(".".join(str(b) for b in reversed(bytes.fromhex(address))))
    return out


def test_serve_binds_loopback_and_verifies_signatures(tmp_path: Path) -> None:
    credentials = tmp_path / "credentials.json"
    credentials.write_text(json.dumps({KEY: SECRET}))
    policies = tmp_path / "policies.json"
    policies.write_text(json.dumps({KEY: ALLOW_ALL}))
    data_dir = tmp_path / "data"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "s3vectors_local",
            "serve",
            "--port",
            "0",
            "--data-dir",
            str(data_dir),
            "--verify-sigv4",
            "--credentials",
            str(credentials),
            "--iam-policies",
            str(policies),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        url = str(wait_for_endpoint(data_dir, proc)["endpoint_url"])
        port = int(url.rsplit(":", 1)[1])
        if Path("/proc/net/tcp").exists():
            assert _listening_addresses(port) == {"127.0.0.1"}
        make_client(url, max_attempts=1, access_key=KEY, secret_key=SECRET).list_vector_buckets()
        with pytest.raises(ClientError) as e:
            make_client(url, max_attempts=1).list_vector_buckets()
        assert e.value.response["Error"]["Code"] == "UnrecognizedClientException"
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=30)
    assert SECRET not in out


def test_serve_refuses_verification_without_credentials(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    bad = tmp_path / "bad.json"
    bad.write_text('{"AKID": "secret-in-a-broken-file"')
    for args, message in ((["--verify-sigv4"], "needs --credentials"), (["--credentials", str(bad)], "cannot read")):
        result = subprocess.run(
            [sys.executable, "-m", "s3vectors_local", "serve", "--port", "0", "--data-dir", str(tmp_path / "d"), *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 2 and message in result.stderr
        assert "secret-in-a-broken-file" not in result.stderr + result.stdout
