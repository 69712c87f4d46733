"""Resolving the target index from the outputs file, CloudFormation, or flags."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from loader.contract import DEFAULT_STACK_NAME, Outputs
from loader.errors import TargetError
from loader.outputs import read_outputs_file, resolve_target

OUTPUTS = {
    Outputs.VECTOR_BUCKET_NAME: "docs-bucket",
    Outputs.INDEX_NAME: "docs-index",
    Outputs.INDEX_ARN: "arn:aws:s3vectors:eu-west-1:111122223333:bucket/docs-bucket/index/docs-index",
    Outputs.DIMENSION: "384",
    Outputs.DISTANCE_METRIC: "cosine",
    Outputs.WRITER_ROLE_ARN: "arn:aws:iam::111122223333:role/Writer",
    Outputs.READER_ROLE_ARN: "arn:aws:iam::111122223333:role/Reader",
    Outputs.REGION: "eu-west-1",
}


def _write(path: Path, data: object) -> Path:
    if isinstance(data, bytes):
        path.write_bytes(data)
    else:
        path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


def test_reads_the_default_stack(tmp_path: Path) -> None:
    path = _write(tmp_path / "o.json", {"Other": {}, DEFAULT_STACK_NAME: OUTPUTS})
    assert read_outputs_file(path, None) == (DEFAULT_STACK_NAME, OUTPUTS)


def test_a_file_with_one_stack_is_used_whatever_its_name(tmp_path: Path) -> None:
    path = _write(tmp_path / "o.json", {"MyRenamedStack": OUTPUTS})
    assert read_outputs_file(path, None)[0] == "MyRenamedStack"


def test_an_explicit_stack_name_must_be_in_the_file(tmp_path: Path) -> None:
    path = _write(tmp_path / "o.json", {"A": OUTPUTS, "B": OUTPUTS})
    with pytest.raises(TargetError, match=r"no stack 'C' \(it has: A, B\)"):
        read_outputs_file(path, "C")
    with pytest.raises(TargetError, match="no stack 'S3VectorsDocSearch'"):
        read_outputs_file(path, None)


def test_missing_file_says_how_to_create_it(tmp_path: Path) -> None:
    with pytest.raises(TargetError) as info:
        read_outputs_file(tmp_path / "cdk-outputs.json", None)
    assert "npx cdk deploy --outputs-file cdk-outputs.json" in str(info.value)
    assert "--local" in str(info.value)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "is empty"),
        ('{"S3VectorsDocSearch": {"VectorBucketName": "b', r"not valid JSON \(truncated\?\).*line 1, column 45"),
        ("[1, 2]", "not shaped like"),
        ('{"S3VectorsDocSearch": "x"}', "not shaped like"),
        (b"\xff\xfe{}", "not UTF-8"),
    ],
)
def test_malformed_files_are_clear_errors(tmp_path: Path, content: str | bytes, message: str) -> None:
    path = _write(tmp_path / "o.json", content)
    with pytest.raises(TargetError, match=message):
        read_outputs_file(path, None)


def test_outputs_without_bucket_or_index_are_refused(tmp_path: Path) -> None:
    path = _write(tmp_path / "o.json", {DEFAULT_STACK_NAME: {Outputs.REGION: "eu-west-1"}})
    with pytest.raises(TargetError, match=r"lacks the output.*VectorBucketName, IndexName"):
        resolve_target(outputs_file=path, outputs_file_explicit=False, stack_name=None)


def test_target_from_the_outputs_file(tmp_path: Path) -> None:
    path = _write(tmp_path / "o.json", {DEFAULT_STACK_NAME: OUTPUTS})
    target = resolve_target(
        outputs_file=path, outputs_file_explicit=False, stack_name=None, fallback_region="us-east-1"
    )
    assert (target.bucket, target.index, target.region) == ("docs-bucket", "docs-index", "eu-west-1")
    assert target.writer_role_arn == OUTPUTS[Outputs.WRITER_ROLE_ARN]
    assert target.reader_role_arn == OUTPUTS[Outputs.READER_ROLE_ARN]
    assert target.dimension == 384 and target.stack_name == DEFAULT_STACK_NAME
    assert str(path) in target.origin


def test_region_flag_beats_the_outputs_which_beat_aws_region(tmp_path: Path) -> None:
    path = _write(tmp_path / "o.json", {DEFAULT_STACK_NAME: OUTPUTS})
    common = {"outputs_file": path, "outputs_file_explicit": True, "stack_name": None, "fallback_region": "us-east-1"}
    assert resolve_target(**common).region == "eu-west-1"  # type: ignore[arg-type]
    assert resolve_target(**common, region="ap-south-1").region == "ap-south-1"  # type: ignore[arg-type]
    no_region = _write(tmp_path / "n.json", {DEFAULT_STACK_NAME: {k: v for k, v in OUTPUTS.items() if k != "Region"}})
    assert resolve_target(**{**common, "outputs_file": no_region}).region == "us-east-1"  # type: ignore[arg-type]


def test_bucket_and_index_flags_need_no_outputs_file(tmp_path: Path) -> None:
    target = resolve_target(
        outputs_file=tmp_path / "absent.json", outputs_file_explicit=False, stack_name=None,
        bucket="b-1", index="i-1", region="us-west-2",
    )
    assert (target.bucket, target.index, target.region) == ("b-1", "i-1", "us-west-2")
    assert target.origin == "--bucket/--index"


def test_an_index_flag_overrides_one_output_and_drops_the_index_arn(tmp_path: Path) -> None:
    path = _write(tmp_path / "o.json", {DEFAULT_STACK_NAME: OUTPUTS})
    target = resolve_target(outputs_file=path, outputs_file_explicit=False, stack_name=None, index="other-index")
    assert (target.bucket, target.index, target.index_arn) == ("docs-bucket", "other-index", None)


def test_no_source_at_all_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(TargetError, match=r"npx cdk deploy --outputs-file cdk-outputs\.json"):
        resolve_target(outputs_file=tmp_path / "cdk-outputs.json", outputs_file_explicit=False, stack_name=None)


def _cloudformation(responses: list[tuple[Any, ...]]) -> object:
    client = boto3.client("cloudformation", region_name="eu-west-1")
    stubber = Stubber(client)
    for response in responses:
        if len(response) == 2:
            stubber.add_response("describe_stacks", response[1], {"StackName": "Docs"})
        else:
            stubber.add_client_error("describe_stacks", service_error_code=response[1], service_message=response[2])
    stubber.activate()
    return client


def test_describe_stacks_when_a_stack_is_named_and_no_outputs_file_exists(tmp_path: Path) -> None:
    outputs = [{"OutputKey": k, "OutputValue": v} for k, v in OUTPUTS.items()]
    stack = {"StackName": "Docs", "CreationTime": "2026-01-01T00:00:00Z", "StackStatus": "CREATE_COMPLETE",
             "Outputs": outputs}
    client = _cloudformation([("describe_stacks", {"Stacks": [stack]})])
    regions: list[str | None] = []

    def factory(region: str | None) -> object:
        regions.append(region)
        return client

    target = resolve_target(
        outputs_file=tmp_path / "cdk-outputs.json", outputs_file_explicit=False, stack_name="Docs",
        fallback_region="eu-west-1", cloudformation=factory,
    )
    assert (target.bucket, target.index, target.origin) == ("docs-bucket", "docs-index", "CloudFormation stack Docs")
    assert regions == ["eu-west-1"]


def test_describe_stacks_of_a_missing_stack_is_a_clear_error(tmp_path: Path) -> None:
    client = _cloudformation([("describe_stacks", "ValidationError", "Stack with id Docs does not exist")])
    with pytest.raises(TargetError, match=r"Stack with id Docs does not exist.*npx cdk deploy"):
        resolve_target(
            outputs_file=tmp_path / "cdk-outputs.json", outputs_file_explicit=False, stack_name="Docs",
            cloudformation=lambda region: client,
        )


def test_a_named_stack_missing_from_the_default_file_is_looked_up_in_cloudformation(tmp_path: Path) -> None:
    path = _write(tmp_path / "cdk-outputs.json", {DEFAULT_STACK_NAME: OUTPUTS})
    outputs = [{"OutputKey": k, "OutputValue": v.replace("docs-", "prod-")} for k, v in OUTPUTS.items()]
    stack = {"StackName": "Docs", "CreationTime": "2026-01-01T00:00:00Z", "StackStatus": "CREATE_COMPLETE",
             "Outputs": outputs}
    client = _cloudformation([("describe_stacks", {"Stacks": [stack]})])
    target = resolve_target(
        outputs_file=path, outputs_file_explicit=False, stack_name="Docs", cloudformation=lambda region: client
    )
    assert target.bucket == "prod-bucket"
