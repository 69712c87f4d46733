"""Issue #6, access control with the stack's own roles: the local endpoint verifies SigV4 and enforces the IAM
policies of the synthesized template's writer and reader roles (their Fn::GetAtt ARNs resolved to what was
provisioned), so a missing permission shows up offline. And no secret ever appears in any output or log.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest

from loader.client import s3vectors_client
from loader.errors import LoaderError, WriteError
from loader.outputs import Target, read_outputs_file, target_from_outputs
from loader.query import search
from loader.retry import RetryPolicy
from loader.sync import LoadSettings, load
from s3vectors_local import LocalEndpoint, provision
from s3vectors_local.iam import Principal, template_principals
from tests.loader.fakes import FakeEmbedder
from tests.reliability.support import REPO, loader_process, record, write_corpus
from tests.s3vectors_local.support import wait_for_endpoint

STACK = "S3VectorsDocSearch"
KEYS = {  # access key -> secret; each secret recognizable, to grep for
    "AKIAWRITER0000000001": f"writer-SECRET-{uuid.uuid4().hex}",
    "AKIAREADER0000000002": f"reader-SECRET-{uuid.uuid4().hex}",
    "AKIANOGETVECTORS0003": f"nogv-SECRET-{uuid.uuid4().hex}",
    "AKIAADMIN00000000004": f"admin-SECRET-{uuid.uuid4().hex}",
}
WRITER, READER, NO_GET, ADMIN = KEYS
DIM = 384  # the stack's index
POLICY = RetryPolicy(max_attempts=3, base_delay=0.01, max_delay=0.05)


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The stack synthesized now, in-process, exactly as `cdk synth` does (tests/stacks/synth.py)."""
    from tests.stacks.synth import synth

    out = tmp_path_factory.mktemp("synth")
    _, raw = synth(out / "cdk.out")
    path = out / f"{STACK}.template.json"
    path.write_text(json.dumps(raw))
    return path


def _without_get_vectors(principal: Principal) -> Principal:
    """The reader role's policies with s3vectors:GetVectors taken out (the mistake of issue #1305 elsewhere)."""
    docs = []
    for doc in principal.policies:
        statements = []
        for s in doc["Statement"]:
            actions = [
                a
                for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])
                if a != "s3vectors:GetVectors"
            ]
            statements.append({**s, "Action": actions})
        docs.append({**doc, "Statement": statements})
    return Principal(principal.arn.replace("Reader", "NoGetVectors"), tuple(docs))


def principals_for(template: Path) -> dict[str, Any]:
    roles = template_principals(template, {"WriterRoleArn": WRITER, "ReaderRoleArn": READER})
    return {
        **roles,
        NO_GET: _without_get_vectors(roles[READER]),
        ADMIN: [{"Statement": [{"Effect": "Allow", "Action": "s3vectors:*", "Resource": "*"}]}],
    }


@dataclass
class Stack:
    ep: LocalEndpoint
    target: Target
    outputs_file: Path

    def client(self, key: str, secret: str | None = None) -> Any:
        session = boto3.Session(
            aws_access_key_id=key, aws_secret_access_key=secret or KEYS[key], region_name="us-east-1"
        )
        return s3vectors_client(session, endpoint_url=self.ep.endpoint_url)


@pytest.fixture(scope="module")
def stack(template: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    work = tmp_path_factory.mktemp("iam")
    with LocalEndpoint(work / "data", credentials=KEYS, principals=principals_for(template)) as ep:
        admin = ep.client(max_attempts=1, access_key=ADMIN, secret_key=KEYS[ADMIN])
        outputs_file = work / "cdk-outputs.json"
        provision(template, endpoint_url=ep.endpoint_url, outputs_file=outputs_file, client=admin)
        stack_name, outputs = read_outputs_file(outputs_file, None)
        yield Stack(ep, target_from_outputs(outputs, stack_name=stack_name, origin="test"), outputs_file)


def _denied(call: Any, action: str) -> str:
    from botocore.exceptions import ClientError

    with pytest.raises(ClientError) as e:
        call()
    error = e.value.response["Error"]
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert error["Code"] == "AccessDeniedException", error
    assert f"is not authorized to perform: {action} on resource: " in error["Message"], error
    return str(error["Message"])


def test_policies_come_from_the_synthesized_roles(stack: Stack, template: Path) -> None:
    admin = stack.client(ADMIN)
    roles = template_principals(
        template, {"WriterRoleArn": WRITER, "ReaderRoleArn": READER}, endpoint_url=stack.ep.endpoint_url, client=admin
    )  # ARNs as provisioned
    resources = {
        r
        for p in roles.values()
        for d in p.policies
        for s in d["Statement"]
        for r in ([s["Resource"]] if isinstance(s["Resource"], str) else s["Resource"])
    }
    assert resources == {stack.target.index_arn, stack.target.outputs["VectorBucketArn"]}
    assert roles[WRITER].arn == stack.target.writer_role_arn and roles[READER].arn == stack.target.reader_role_arn


def test_the_writer_role_can_run_a_full_sync(stack: Stack, tmp_path: Path) -> None:
    corpus = Path(shutil.copytree(REPO / "data", tmp_path / "data"))
    client = stack.client(WRITER)

    def sync() -> Any:
        return load(
            corpus,
            client=client,
            target=stack.target,
            embedder=FakeEmbedder(dimension=DIM),
            settings=LoadSettings(),
            policy=POLICY,
        )

    first = sync()
    assert first.vectors_written > 0 and first.retries == 0
    assert sync().vectors_written == 0  # the re-run lists with metadata: ListVectors + GetVectors
    pets = corpus / "travel" / "pets.md"
    pets.write_text(pets.read_text()[:800])  # shrink: surplus chunks deleted
    (corpus / "baggage" / "fees.md").unlink(missing_ok=True)
    shutil.rmtree(corpus / "loyalty", ignore_errors=True)  # pruned
    changed = sync()
    assert changed.vectors_deleted > 0
    reader = stack.client(READER)
    hits = search(
        reader,
        stack.target,
        FakeEmbedder(dimension=DIM),
        "Can I bring my cat?",
        top_k=3,
        metadata_filter={"source": "travel/pets.md"},
        policy=POLICY,
    )
    assert hits and {h.source for h in hits} == {"travel/pets.md"}
    # Exactly what a sync needs, nothing more: the writer cannot search, create or delete indexes.
    w = stack.client(WRITER)
    ref = stack.target.index_ref()
    _denied(lambda: w.query_vectors(**ref, topK=1, queryVector={"float32": [0.1] * DIM}), "s3vectors:QueryVectors")
    _denied(lambda: w.delete_index(**ref), "s3vectors:DeleteIndex")
    _denied(lambda: w.list_vector_buckets(), "s3vectors:ListVectorBuckets")
    _denied(
        lambda: w.create_index(
            vectorBucketName=stack.target.bucket,
            indexName="other",
            dataType="float32",
            dimension=3,
            distanceMetric="cosine",
        ),
        "s3vectors:CreateIndex",
    )
    _denied(
        lambda: w.put_vectors(
            vectorBucketName=stack.target.bucket,
            indexName="other",
            vectors=[{"key": "k", "data": {"float32": [1.0, 2.0, 3.0]}}],
        ),
        "s3vectors:PutVectors",
    )
    record(
        "access-control",
        trial="writer role: full sync (new, re-run, shrink + prune), then 5 actions outside its policy",
        written=first.vectors_written,
        deleted=changed.vectors_deleted,
        denied=5,
    )


def test_the_reader_role_cannot_write(stack: Stack) -> None:
    r = stack.client(READER)
    ref = stack.target.index_ref()
    v = [0.1] * DIM
    denied = [
        _denied(lambda: r.put_vectors(**ref, vectors=[{"key": "x", "data": {"float32": v}}]), "s3vectors:PutVectors"),
        _denied(lambda: r.delete_vectors(**ref, keys=["x"]), "s3vectors:DeleteVectors"),
        _denied(lambda: r.list_vectors(**ref), "s3vectors:ListVectors"),
        _denied(lambda: r.delete_index(**ref), "s3vectors:DeleteIndex"),
        _denied(lambda: r.delete_vector_bucket(vectorBucketName=stack.target.bucket), "s3vectors:DeleteVectorBucket"),
        _denied(
            lambda: r.put_vector_bucket_policy(vectorBucketName=stack.target.bucket, policy="{}"),
            "s3vectors:PutVectorBucketPolicy",
        ),
        _denied(lambda: r.tag_resource(resourceArn=stack.target.index_arn, tags={"a": "b"}), "s3vectors:TagResource"),
    ]
    assert all("assumed-role/" in m for m in denied)
    # What it is for works: GetIndex, and a filtered query returning metadata (QueryVectors + GetVectors).
    assert r.get_index(**ref)["index"]["dimension"] == DIM
    r.query_vectors(**ref, topK=2, queryVector={"float32": v}, filter={"chunk": {"$gte": 0}}, returnMetadata=True)
    record("access-control", trial="reader role: 7 write/admin actions", denied=len(denied))


def test_a_role_without_get_vectors_fails_a_filtered_query(stack: Stack) -> None:
    c = stack.client(NO_GET)
    ref = stack.target.index_ref()
    q = {"float32": [0.1] * DIM}
    c.query_vectors(**ref, topK=2, queryVector=q)  # keys and distances only: QueryVectors suffices
    c.query_vectors(**ref, topK=2, queryVector=q, returnDistance=True)
    _denied(lambda: c.query_vectors(**ref, topK=2, queryVector=q, filter={"category": "pets"}), "s3vectors:GetVectors")
    _denied(lambda: c.query_vectors(**ref, topK=2, queryVector=q, returnMetadata=True), "s3vectors:GetVectors")
    with pytest.raises(Exception) as e:  # and the loader's own search, which always wants metadata
        search(c, stack.target, FakeEmbedder(dimension=DIM), "pets", top_k=2, policy=POLICY)
    assert "AccessDeniedException" in str(e.value) and "s3vectors:GetVectors" in str(e.value)
    record("access-control", trial="reader role minus GetVectors: filtered / returnMetadata query", denied=3)


def test_a_sync_with_a_role_missing_permissions_fails_clearly_before_writing(stack: Stack, tmp_path: Path) -> None:
    """The reader's keys used to load: refused at the first call that needs more (the scan), nothing written."""
    corpus = write_corpus(tmp_path / "c", 1, docs=2)
    with pytest.raises((LoaderError, WriteError, Exception)) as e:
        load(
            corpus,
            client=stack.client(READER),
            target=stack.target,
            embedder=FakeEmbedder(dimension=DIM),
            settings=LoadSettings(),
            policy=POLICY,
        )
    assert "AccessDeniedException" in str(e.value) or "not authorized" in str(e.value)


def test_signatures_are_verified(stack: Stack) -> None:
    from botocore.exceptions import ClientError

    for key, secret, code in (
        (WRITER, "not-the-secret", "InvalidSignatureException"),
        ("AKIAUNKNOWN000000000", "whatever", "UnrecognizedClientException"),
    ):
        with pytest.raises(ClientError) as e:
            stack.client(key, secret).get_index(**stack.target.index_ref())
        assert e.value.response["Error"]["Code"] == code
        assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403


# -- no secret in any output ---------------------------------------------------------------------------------------
def test_no_secret_appears_in_any_output_or_log(template: Path, tmp_path: Path) -> None:
    """The endpoint as a `serve` process (verbose log) and the loader CLI as child processes, run with the
    keys above: a good load, a query, a wrong secret, a denied command. Then every byte they printed or wrote
    is searched for every secret and every access key id."""
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    credentials = tmp_path / "credentials.json"
    credentials.write_text(json.dumps(KEYS))
    policies = tmp_path / "iam-policies.json"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    subprocess.run(
        [
            sys.executable,
            "-m",
            "s3vectors_local",
            "iam-policies",
            "--template",
            str(template),
            "--role",
            f"WriterRoleArn={WRITER}",
            "--role",
            f"ReaderRoleArn={READER}",
            "--out",
            str(policies),
        ],
        check=True,
        env=env,
        capture_output=True,
    )
    data = json.loads(policies.read_text())
    data[ADMIN] = [{"Statement": [{"Effect": "Allow", "Action": "s3vectors:*", "Resource": "*"}]}]
    policies.write_text(json.dumps(data))
    log = tmp_path / "server.log"
    with open(log, "wb") as log_file:
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "s3vectors_local",
                "serve",
                "--port",
                "0",
                "--data-dir",
                str(data_dir),
                "--verbose",
                "--verify-sigv4",
                "--credentials",
                str(credentials),
                "--iam-policies",
                str(policies),
            ],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env=env,
        )
    outputs: list[str] = []
    try:
        url = str(wait_for_endpoint(data_dir, server)["endpoint_url"])
        outputs_file = tmp_path / "cdk-outputs.json"
        provision_args = [
            sys.executable,
            "-m",
            "s3vectors_local",
            "provision",
            "--template",
            str(template),
            "--endpoint-url",
            url,
            "--outputs-file",
            str(outputs_file),
        ]
        refused = subprocess.run(provision_args, env=env, capture_output=True, text=True)  # dummy credentials
        outputs += [refused.stdout, refused.stderr]
        assert refused.returncode == 1 and "UnrecognizedClientException" in refused.stderr, refused.stderr
        assert "Traceback" not in refused.stderr
        prov = subprocess.run(
            [*provision_args, "--access-key-id", ADMIN, "--credentials", str(credentials)],
            env=env,
            capture_output=True,
            text=True,
        )
        outputs += [prov.stdout, prov.stderr]
        assert prov.returncode == 0, prov.stderr
        corpus = write_corpus(tmp_path / "corpus", 1, docs=3)
        where = ["--outputs-file", str(outputs_file), "--endpoint-url", url]
        runs = [
            (WRITER, KEYS[WRITER], ["load", str(corpus), "--json", "--quiet"], 0),
            (WRITER, KEYS[WRITER], ["load", str(corpus), "--quiet"], 0),
            (READER, KEYS[READER], ["query", "baggage policy", "--json"], 0),
            (READER, KEYS[READER], ["status", "--json"], 0),
            (WRITER, "a-wrong-secret-" + KEYS[WRITER], ["status"], 1),
            (READER, KEYS[READER], ["load", str(corpus), "--quiet"], 1),
            (WRITER, KEYS[WRITER], ["query", "baggage"], 1),
            (WRITER, KEYS[WRITER], ["delete", "--source", "nope.md"], 1),
        ]
        for key, secret, args, expected in runs:
            proc = loader_process(
                [*where, *args],
                env={"AWS_ACCESS_KEY_ID": key, "AWS_SECRET_ACCESS_KEY": secret, "FAKE_EMBEDDER_DIM": str(DIM)},
            )
            out, err = proc.communicate(timeout=120)
            outputs += [out, err]
            assert proc.returncode == expected, (args, out, err)
    finally:
        server.terminate()
        server.wait(timeout=30)
    texts = [*outputs, log.read_text(errors="replace")]
    for path in [*tmp_path.rglob("*")]:
        if path.is_file() and path not in (credentials,):
            texts.append(path.read_bytes().decode("utf-8", "replace"))
    everything = "\n".join(texts)
    assert "POST /PutVectors" in everything  # the verbose log did log the requests
    leaks = [
        name
        for name, value in [*((f"secret of {k}", s) for k, s in KEYS.items()), *((k, k) for k in KEYS)]
        if value in everything.replace(str(policies.read_text()), "")
    ]
    assert leaks == []
    record(
        "secrets",
        processes=len(runs) + 4,
        bytes_searched=len(everything),
        secrets=len(KEYS),
        access_key_ids=len(KEYS),
        found=0,
    )
