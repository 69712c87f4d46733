"""The synthesized template: index shape, roles, removal, encryption, cdk-nag, snapshot."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from aws_cdk.assertions import Template
from syrupy.extensions.json import JSONSnapshotExtension

from loader import contract
from tests.stacks.synth import synth, synth_warnings, validation_violations

KEY_ARN = "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"


@pytest.fixture(scope="module")
def default_synth(tmp_path_factory: pytest.TempPathFactory) -> tuple[Template, dict[str, Any], Path]:
    outdir = tmp_path_factory.mktemp("cdk.out")
    template, raw = synth(outdir)
    return template, raw, outdir


@pytest.fixture(scope="module")
def template(default_synth: tuple[Template, dict[str, Any], Path]) -> Template:
    return default_synth[0]


def _only(template: Template, resource_type: str) -> tuple[str, dict[str, Any]]:
    resources = template.find_resources(resource_type)
    assert len(resources) == 1, resources
    return next(iter(resources.items()))


def _policy_statements(template: Template, role_logical_id_prefix: str) -> list[dict[str, Any]]:
    policies = [
        resource
        for resource in template.find_resources("AWS::IAM::Policy").values()
        if any(role["Ref"].startswith(role_logical_id_prefix) for role in resource["Properties"]["Roles"])
    ]
    assert len(policies) == 1
    return list(policies[0]["Properties"]["PolicyDocument"]["Statement"])


def _actions(statement: dict[str, Any]) -> set[str]:
    actions = statement["Action"]
    return {actions} if isinstance(actions, str) else set(actions)


def test_template_matches_snapshot(default_synth: tuple[Template, dict[str, Any], Path], snapshot: Any) -> None:
    assert default_synth[1] == snapshot(extension_class=JSONSnapshotExtension)


def test_index_is_384_cosine_float32_with_text_non_filterable(template: Template) -> None:
    bucket_id, _ = _only(template, "AWS::S3Vectors::VectorBucket")
    template.has_resource_properties(
        "AWS::S3Vectors::Index",
        {
            "DataType": "float32",
            "Dimension": 384,
            "DistanceMetric": "cosine",
            "MetadataConfiguration": {"NonFilterableMetadataKeys": [contract.TEXT_METADATA_KEY]},
            # The ARN attribute (not a name string) is what orders create and delete.
            "VectorBucketArn": {"Fn::GetAtt": [bucket_id, "VectorBucketArn"]},
        },
    )


def test_no_physical_names_by_default(template: Template) -> None:
    _, bucket = _only(template, "AWS::S3Vectors::VectorBucket")
    _, index = _only(template, "AWS::S3Vectors::Index")
    assert "VectorBucketName" not in bucket["Properties"]
    assert "IndexName" not in index["Properties"]
    for role in template.find_resources("AWS::IAM::Role").values():
        assert "RoleName" not in role["Properties"]


def test_bucket_uses_sse_s3_by_default(template: Template) -> None:
    template.has_resource_properties("AWS::S3Vectors::VectorBucket", {"EncryptionConfiguration": {"SseType": "AES256"}})
    template.resource_count_is("AWS::KMS::Key", 0)


def test_writer_role_has_exactly_what_a_sync_needs(template: Template) -> None:
    bucket_id, _ = _only(template, "AWS::S3Vectors::VectorBucket")
    index_id, _ = _only(template, "AWS::S3Vectors::Index")
    statements = _policy_statements(template, "WriterRole")
    by_resource = {json.dumps(s["Resource"], sort_keys=True): _actions(s) for s in statements}
    assert by_resource == {
        json.dumps({"Fn::GetAtt": [index_id, "IndexArn"]}, sort_keys=True): {
            "s3vectors:GetIndex",
            "s3vectors:PutVectors",
            "s3vectors:GetVectors",
            "s3vectors:ListVectors",
            "s3vectors:DeleteVectors",
        },
        json.dumps({"Fn::GetAtt": [bucket_id, "VectorBucketArn"]}, sort_keys=True): {"s3vectors:GetVectorBucket"},
    }
    assert all(s["Effect"] == "Allow" for s in statements)


def test_reader_role_can_only_search(template: Template) -> None:
    index_id, _ = _only(template, "AWS::S3Vectors::Index")
    statements = _policy_statements(template, "ReaderRole")
    assert len(statements) == 1
    assert statements[0]["Resource"] == {"Fn::GetAtt": [index_id, "IndexArn"]}
    # GetVectors: AWS requires it for filtered queries and for returned metadata.
    assert _actions(statements[0]) == {"s3vectors:GetIndex", "s3vectors:QueryVectors", "s3vectors:GetVectors"}


def test_no_wildcard_actions_or_resources_anywhere(default_synth: tuple[Template, dict[str, Any], Path]) -> None:
    raw = default_synth[1]
    for resource in raw["Resources"].values():
        if resource["Type"] != "AWS::IAM::Policy":
            continue
        for statement in resource["Properties"]["PolicyDocument"]["Statement"]:
            assert not any("*" in action for action in _actions(statement)), statement
            assert "*" not in json.dumps(statement["Resource"]), statement


def test_roles_trust_the_deploying_account_by_default(template: Template) -> None:
    for role in template.find_resources("AWS::IAM::Role").values():
        (statement,) = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
        assert statement["Action"] == "sts:AssumeRole"
        assert "AWS::AccountId" in json.dumps(statement["Principal"])


def test_trusted_principal_from_context(tmp_path: Path) -> None:
    principal = "arn:aws:iam::111122223333:role/ci-runner"
    template, _ = synth(tmp_path, trustedPrincipal=principal)
    for role in template.find_resources("AWS::IAM::Role").values():
        (statement,) = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
        assert statement["Principal"] == {"AWS": principal}


def test_default_removal_deletes_index_and_bucket(template: Template) -> None:
    for resource_type in ("AWS::S3Vectors::VectorBucket", "AWS::S3Vectors::Index"):
        _, resource = _only(template, resource_type)
        assert resource["DeletionPolicy"] == "Delete"
        assert resource["UpdateReplacePolicy"] == "Delete"


def test_index_depends_on_bucket(template: Template) -> None:
    bucket_id, _ = _only(template, "AWS::S3Vectors::VectorBucket")
    _, index = _only(template, "AWS::S3Vectors::Index")
    # CloudFormation derives the dependency from the GetAtt: it creates the bucket first and, on
    # destroy, deletes the index before the bucket.
    assert bucket_id in json.dumps(index["Properties"]["VectorBucketArn"])


def test_retain_data_keeps_index_bucket_and_key(tmp_path: Path) -> None:
    template, _ = synth(tmp_path, retainData="true", encryption="kms")
    for resource_type in ("AWS::S3Vectors::VectorBucket", "AWS::S3Vectors::Index", "AWS::KMS::Key"):
        _, resource = _only(template, resource_type)
        assert resource["DeletionPolicy"] == "Retain", resource_type


def test_every_resource_is_tagged(default_synth: tuple[Template, dict[str, Any], Path]) -> None:
    for logical_id, resource in default_synth[1]["Resources"].items():
        if resource["Type"] in ("AWS::IAM::Policy", "AWS::CDK::Metadata"):
            continue  # these types take no tags
        tags = resource["Properties"].get("Tags", [])
        assert {"Key": "project", "Value": "s3vectors-docsearch"} in tags, logical_id


def test_created_kms_key_rotates_and_admits_s3vectors_indexing(tmp_path: Path) -> None:
    template, _ = synth(tmp_path, encryption="kms")
    key_id, key = _only(template, "AWS::KMS::Key")
    assert key["Properties"]["EnableKeyRotation"] is True
    assert key["DeletionPolicy"] == "Delete"  # cdk destroy schedules the key's deletion
    assert key["Properties"]["PendingWindowInDays"] == 30
    statements = key["Properties"]["KeyPolicy"]["Statement"]
    (service,) = [s for s in statements if s.get("Principal") == {"Service": "indexing.s3vectors.amazonaws.com"}]
    assert service["Action"] == "kms:Decrypt"
    assert set(service["Condition"]) == {"StringEquals", "ArnLike", "ForAnyValue:StringEquals"}
    assert service["Condition"]["ForAnyValue:StringEquals"] == {
        "kms:EncryptionContextKeys": ["aws:s3vectors:arn", "aws:s3vectors:resource-id"]
    }
    template.has_resource_properties(
        "AWS::S3Vectors::VectorBucket",
        {"EncryptionConfiguration": {"SseType": "aws:kms", "KmsKeyArn": {"Fn::GetAtt": [key_id, "Arn"]}}},
    )
    writer = _policy_statements(template, "WriterRole")
    assert {"kms:Decrypt", "kms:GenerateDataKey"} in [_actions(s) for s in writer]
    reader = _policy_statements(template, "ReaderRole")
    assert {"kms:Decrypt"} in [_actions(s) for s in reader]


def test_existing_kms_key_is_used_not_created(tmp_path: Path) -> None:
    template, _ = synth(tmp_path, kmsKeyArn=KEY_ARN)
    template.resource_count_is("AWS::KMS::Key", 0)
    warnings = synth_warnings(tmp_path / "warnings", kmsKeyArn=KEY_ARN)
    assert any("indexing.s3vectors.amazonaws.com" in warning for warning in warnings), warnings
    template.has_resource_properties(
        "AWS::S3Vectors::VectorBucket", {"EncryptionConfiguration": {"SseType": "aws:kms", "KmsKeyArn": KEY_ARN}}
    )
    writer = _policy_statements(template, "WriterRole")
    assert {"Resource": KEY_ARN, "Actions": {"kms:Decrypt", "kms:GenerateDataKey"}} in [
        {"Resource": s["Resource"], "Actions": _actions(s)} for s in writer
    ]
    reader = _policy_statements(template, "ReaderRole")
    assert {"Resource": KEY_ARN, "Actions": {"kms:Decrypt"}} in [
        {"Resource": s["Resource"], "Actions": _actions(s)} for s in reader
    ]


def test_names_and_shape_from_context(tmp_path: Path) -> None:
    template, _ = synth(
        tmp_path,
        bucketName="my-docs",
        indexName="policies.v1",
        dimension="768",
        distanceMetric="euclidean",
        nonFilterableMetadataKeys="html,raw",
    )
    template.has_resource_properties("AWS::S3Vectors::VectorBucket", {"VectorBucketName": "my-docs"})
    template.has_resource_properties(
        "AWS::S3Vectors::Index",
        {
            "IndexName": "policies.v1",
            "Dimension": 768,
            "DistanceMetric": "euclidean",
            "MetadataConfiguration": {"NonFilterableMetadataKeys": ["text", "html", "raw"]},
        },
    )
    outputs = template.to_json()["Outputs"]
    assert outputs[contract.Outputs.VECTOR_BUCKET_NAME]["Value"] == "my-docs"
    assert outputs[contract.Outputs.INDEX_NAME]["Value"] == "policies.v1"
    assert outputs[contract.Outputs.DIMENSION]["Value"] == "768"


@pytest.mark.parametrize(
    "context",
    [{}, {"encryption": "kms"}, {"kmsKeyArn": KEY_ARN}, {"retainData": "true"}],
    ids=["default", "kms-created", "kms-existing", "retain"],
)
def test_cdk_nag_aws_solutions_has_no_findings(tmp_path: Path, context: dict[str, str]) -> None:
    synth(tmp_path, **context)  # a finding would raise ValidationFailed
    assert validation_violations(tmp_path) == []
