"""Provisioning from CloudFormation templates: a hand-written CDK-shaped one and our real stack's."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from s3vectors_local import provision, teardown
from s3vectors_local.__main__ import main as cli
from s3vectors_local.cfn import generated_name

ACCOUNT = "123456789012"

HAND_WRITTEN: dict[str, Any] = {
    "Parameters": {
        "Dim": {"Type": "Number", "Default": 8},
        "BootstrapVersion": {"Type": "AWS::SSM::Parameter::Value<String>",
                             "Default": "/cdk-bootstrap/hnb659fds/version"},
    },
    "Conditions": {
        "IsChina": {"Fn::Equals": [{"Ref": "AWS::Partition"}, "aws-cn"]},
        "NotChina": {"Fn::Not": [{"Condition": "IsChina"}]},
    },
    "Resources": {
        "Key1": {"Type": "AWS::KMS::Key", "Properties": {"KeyPolicy": {}}},
        "Bucket1": {
            "Type": "AWS::S3Vectors::VectorBucket",
            "Properties": {
                "EncryptionConfiguration": {"SseType": "aws:kms", "KmsKeyArn": {"Fn::GetAtt": ["Key1", "Arn"]}},
                "Tags": [{"Key": "project", "Value": "demo"}],
            },
        },
        "Index1": {
            "Type": "AWS::S3Vectors::Index",
            "Properties": {
                "IndexName": {"Fn::Join": ["-", ["docs", {"Ref": "AWS::Region"}]]},
                "VectorBucketArn": {"Fn::GetAtt": ["Bucket1", "VectorBucketArn"]},
                "DataType": "float32",
                "Dimension": {"Ref": "Dim"},
                "DistanceMetric": "euclidean",
                "MetadataConfiguration": {"NonFilterableMetadataKeys": ["text", "source"]},
            },
        },
        "Role1": {"Type": "AWS::IAM::Role", "Properties": {"AssumeRolePolicyDocument": {}}},
        "Policy1": {
            "Type": "AWS::S3Vectors::VectorBucketPolicy",
            "Properties": {
                "VectorBucketArn": {"Fn::GetAtt": ["Bucket1", "VectorBucketArn"]},
                "Policy": {"Version": "2012-10-17", "Statement": [{
                    "Effect": "Allow", "Principal": {"AWS": {"Fn::GetAtt": ["Role1", "Arn"]}},
                    "Action": "s3vectors:QueryVectors", "Resource": {"Fn::Sub": "${Index1.IndexArn}"}}]},
            },
        },
        "OnlyInChina": {"Type": "AWS::S3Vectors::VectorBucket", "Condition": "IsChina",
                        "Properties": {"VectorBucketName": "never-made"}},
        "Meta": {"Type": "AWS::CDK::Metadata", "Condition": "NotChina", "Properties": {"Analytics": "v2"}},
    },
    "Outputs": {
        "BucketName": {
            "Value": {"Fn::Select": [1, {"Fn::Split": ["/", {"Fn::GetAtt": ["Bucket1", "VectorBucketArn"]}]}]}
        },
        "IndexName": {"Value": {"Fn::Select": [3, {"Fn::Split": ["/", {"Fn::GetAtt": ["Index1", "IndexArn"]}]}]}},
        "IndexArn": {"Value": {"Fn::GetAtt": ["Index1", "IndexArn"]}},
        "BucketRef": {"Value": {"Ref": "Bucket1"}},
        "KeyArn": {"Value": {"Fn::GetAtt": ["Key1", "Arn"]}},
        "RoleArn": {"Value": {"Fn::GetAtt": ["Role1", "Arn"]}},
        "Stack": {"Value": {"Fn::Sub": "${AWS::StackName} in ${AWS::Region} (${AWS::URLSuffix})"}},
        "ChinaOnly": {"Condition": "IsChina", "Value": "x"},
    },
}


def test_hand_written_template(ep: Any, client: Any, tmp_path: Path) -> None:
    path = tmp_path / "Demo.template.json"
    path.write_text(json.dumps(HAND_WRITTEN))
    out_file = tmp_path / "outputs.json"
    result = provision(path, endpoint_url=ep.endpoint_url, outputs_file=out_file)
    assert json.loads(out_file.read_text()) == result
    (stack, outputs), = result.items()
    assert stack == "Demo"
    bucket = generated_name("Demo", "Bucket1", ACCOUNT, "us-east-1", lower=True, max_len=63)
    assert outputs["BucketName"] == bucket == "demo-bucket1-" + bucket.rsplit("-", 1)[1]
    assert outputs["IndexName"] == "docs-us-east-1"
    assert outputs["BucketRef"] == f"arn:aws:s3vectors:us-east-1:{ACCOUNT}:bucket/{bucket}"
    assert outputs["IndexArn"] == f"{outputs['BucketRef']}/index/docs-us-east-1"
    assert outputs["KeyArn"].startswith(f"arn:aws:kms:us-east-1:{ACCOUNT}:key/")
    assert outputs["RoleArn"].startswith(f"arn:aws:iam::{ACCOUNT}:role/Demo-Role1-")
    assert outputs["Stack"] == "Demo in us-east-1 (amazonaws.com)"
    assert "ChinaOnly" not in outputs
    b = client.get_vector_bucket(vectorBucketName=bucket)["vectorBucket"]
    assert b["encryptionConfiguration"] == {"sseType": "aws:kms", "kmsKeyArn": outputs["KeyArn"]}
    assert client.list_tags_for_resource(resourceArn=b["vectorBucketArn"])["tags"] == {"project": "demo"}
    idx = client.get_index(indexArn=outputs["IndexArn"])["index"]
    assert (idx["dimension"], idx["distanceMetric"]) == (8, "euclidean")  # from the parameter's default
    assert idx["metadataConfiguration"]["nonFilterableMetadataKeys"] == ["text", "source"]
    policy = json.loads(client.get_vector_bucket_policy(vectorBucketName=bucket)["policy"])
    assert policy["Statement"][0]["Principal"]["AWS"] == outputs["RoleArn"]
    assert policy["Statement"][0]["Resource"] == outputs["IndexArn"]
    assert [x["vectorBucketName"] for x in client.list_vector_buckets()["vectorBuckets"]] == [bucket]
    # Again: the same names, nothing new, same outputs.
    client.put_vectors(indexArn=outputs["IndexArn"], vectors=[{"key": "k", "data": {"float32": [1.0] * 8}}])
    assert provision(path, endpoint_url=ep.endpoint_url, outputs_file=out_file) == result
    assert client.list_vectors(indexArn=outputs["IndexArn"])["vectors"] == [{"key": "k"}]
    teardown(path, endpoint_url=ep.endpoint_url, outputs_file=out_file)
    assert client.list_vector_buckets()["vectorBuckets"] == []
    assert not out_file.exists()
    teardown(path, endpoint_url=ep.endpoint_url, outputs_file=out_file)  # nothing left: still fine


def test_conflicting_existing_index_is_reported(ep: Any, client: Any, tmp_path: Path) -> None:
    path = tmp_path / "Demo.template.json"
    path.write_text(json.dumps(HAND_WRITTEN))
    provision(path, endpoint_url=ep.endpoint_url)
    changed = json.loads(json.dumps(HAND_WRITTEN))
    changed["Parameters"]["Dim"]["Default"] = 16
    path.write_text(json.dumps(changed))
    with pytest.raises(RuntimeError, match="fixed at creation"):
        provision(path, endpoint_url=ep.endpoint_url)


def test_generated_names_follow_the_naming_rules() -> None:
    long = generated_name("S3VectorsDocSearch" * 4, "VectorStoreBucket77D2369F", ACCOUNT, "us-east-1",
                          lower=True, max_len=63)
    assert len(long) <= 63 and long == long.lower()
    from s3vectors_local import limits

    assert limits.BUCKET_NAME_RE.fullmatch(long)
    assert generated_name("S", "L", ACCOUNT, "us-east-1", lower=True, max_len=63) == \
        generated_name("S", "L", ACCOUNT, "us-east-1", lower=True, max_len=63)


@pytest.fixture(scope="module")
def synthesized(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Our stack's real templates, synthesized in-process the way `cdk synth` does (tests/stacks/synth.py)."""
    pytest.importorskip("aws_cdk")
    from tests.stacks.synth import synth

    out: dict[str, Path] = {}
    for label, context in (("default", {}), ("kms-named", {"encryption": "kms", "bucketName": "my-docs",
                                                           "indexName": "chunks.v1"})):
        outdir = tmp_path_factory.mktemp(f"cdk-{label}")
        _, raw = synth(outdir, **context)
        path = outdir / "S3VectorsDocSearch.template.json"
        path.write_text(json.dumps(raw))
        out[label] = path
    return out


def test_real_stack_template(ep: Any, client: Any, synthesized: dict[str, Path], tmp_path: Path) -> None:
    from loader import contract

    template = synthesized["default"]
    raw = json.loads(template.read_text())
    out_file = tmp_path / "cdk-outputs.json"
    assert cli(["provision", "--template", str(template), "--endpoint-url", ep.endpoint_url,
                "--outputs-file", str(out_file)]) == 0
    outputs = json.loads(out_file.read_text())
    assert list(outputs) == [contract.DEFAULT_STACK_NAME]
    o = outputs[contract.DEFAULT_STACK_NAME]
    assert set(o) == set(raw["Outputs"])
    idx = client.get_index(vectorBucketName=o["VectorBucketName"], indexName=o["IndexName"])["index"]
    assert idx["indexArn"] == o["IndexArn"] and o["VectorBucketArn"] == o["IndexArn"].split("/index/")[0]
    assert str(idx["dimension"]) == o["Dimension"] and idx["distanceMetric"] == o["DistanceMetric"]
    assert ",".join(idx["metadataConfiguration"]["nonFilterableMetadataKeys"]) == o["NonFilterableMetadataKeys"]
    index_props = next(r["Properties"] for r in raw["Resources"].values() if r["Type"] == "AWS::S3Vectors::Index")
    want_tags = {t["Key"]: t["Value"] for t in index_props.get("Tags", [])}
    assert client.list_tags_for_resource(resourceArn=o["IndexArn"])["tags"] == want_tags
    assert o["WriterRoleArn"].startswith(f"arn:aws:iam::{ACCOUNT}:role/") and o["Region"] == "us-east-1"
    # Idempotent, and the loader-facing outputs stay the same.
    assert cli(["provision", "--template", str(template), "--endpoint-url", ep.endpoint_url,
                "--outputs-file", str(out_file)]) == 0
    assert json.loads(out_file.read_text()) == outputs
    assert cli(["teardown", "--template", str(template), "--endpoint-url", ep.endpoint_url,
                "--outputs-file", str(out_file)]) == 0
    assert client.list_vector_buckets()["vectorBuckets"] == [] and not out_file.exists()


def test_real_stack_template_with_kms_and_names(ep: Any, client: Any, synthesized: dict[str, Path]) -> None:
    template = synthesized["kms-named"]
    o = provision(template, endpoint_url=ep.endpoint_url)["S3VectorsDocSearch"]
    assert (o["VectorBucketName"], o["IndexName"]) == ("my-docs", "chunks.v1")
    enc = client.get_vector_bucket(vectorBucketName="my-docs")["vectorBucket"]["encryptionConfiguration"]
    assert enc["sseType"] == "aws:kms" and enc["kmsKeyArn"].startswith(f"arn:aws:kms:us-east-1:{ACCOUNT}:key/")
    teardown(template, endpoint_url=ep.endpoint_url)
    assert client.list_vector_buckets()["vectorBuckets"] == []
