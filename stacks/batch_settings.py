"""Validated settings of the optional AWS Batch stack (context ``batch=true``), built from CDK context.

Like :mod:`stacks.settings`, ``app.py`` hands the raw context values to :func:`batch_settings_from_context`
and every construct takes typed values. Each error names the context key to change, so a bad value fails
``cdk synth`` instead of ``cdk deploy`` half-way. With ``batch`` unset or false nothing here is required
and the app synthesizes the main stack alone, byte for byte as before.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# Parsers and patterns shared with the main stack (index names and KMS key ARNs are checked the same way).
from stacks.settings import _INDEX_NAME, _KMS_KEY_ARN, SettingsError, _optional_str
from stacks.settings import _bool as _strict_bool

# Every context key the Batch stack reads (the README's context table lists them).
BATCH_CONTEXT_KEYS = (
    "batch",
    "batchCompute",
    "batchSpot",
    "batchInstanceTypes",
    "batchMaxVcpus",
    "batchVpcId",
    "batchSubnetIds",
    "batchAssignPublicIp",
    "batchJobTimeoutHours",
    "batchExtraIndexes",
    "sourceBucket",
    "sourcePrefix",
    "sourceKmsKeyArn",
)

COMPUTE_TYPES = ("gpu", "fargate")
DEFAULT_GPU_INSTANCE_TYPES = ("g6.xlarge", "g5.xlarge")
# x86_64 NVIDIA families: the image is built for linux/amd64 and the compute environment uses the
# ECS_AL2023_NVIDIA AMI. Graviton GPU types (g5g) would need an arm64 image; Inferentia/Trainium
# (inf*, trn*) need Neuron, not CUDA.
_GPU_INSTANCE_TYPE = re.compile(r"(g4dn|g5|g6|g6e|gr6|p3|p3dn|p4d|p4de|p5|p5e|p5en)\.[0-9]*[a-z]+")
# S3 general purpose bucket names: 3-63 characters of lowercase letters, digits, dots and hyphens,
# beginning and ending with a letter or digit
# (https://docs.aws.amazon.com/AmazonS3/latest/userguide/bucketnamingrules.html).
_S3_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_VPC_ID = re.compile(r"vpc-[0-9a-f]{8}([0-9a-f]{9})?")
_SUBNET_ID = re.compile(r"subnet-[0-9a-f]{8}([0-9a-f]{9})?")
# A prefix goes into IAM resource ARNs and conditions: characters with a meaning there ("*", "?" match
# anything, "${...}" is a policy variable) would widen the grant, so they are refused.
_PREFIX_FORBIDDEN = re.compile(r"[*?$]")
MAX_PREFIX_BYTES = 1024 - 1  # an object key is at most 1,024 bytes; the prefix leaves room for one character

MIN_MAX_VCPUS, MAX_MAX_VCPUS = 4, 10_000
DEFAULT_MAX_VCPUS = 64  # 16 g6.xlarge/g5.xlarge GPU instances, or 16 Fargate jobs of 4 vCPUs
MAX_JOB_TIMEOUT_HOURS = 14 * 24
DEFAULT_JOB_TIMEOUT_HOURS = 24


@dataclass(frozen=True)
class SourceLocation:
    """Where the documents are: ``s3://bucket/prefix`` (prefix "" = the whole bucket, else ends in "/")."""

    bucket: str
    prefix: str = ""
    kms_key_arn: str | None = None  # an SSE-KMS key the objects are encrypted with

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"


@dataclass(frozen=True)
class NetworkSettings:
    """A new minimal VPC (``vpc_id`` None) or existing subnets of an existing VPC."""

    vpc_id: str | None = None
    subnet_ids: tuple[str, ...] = ()
    assign_public_ip: bool = True  # Fargate only; EC2 instances follow their subnet's setting


@dataclass(frozen=True)
class BatchSettings:
    source: SourceLocation
    compute: str = "gpu"
    spot: bool = False
    instance_types: tuple[str, ...] = DEFAULT_GPU_INSTANCE_TYPES
    max_vcpus: int = DEFAULT_MAX_VCPUS
    network: NetworkSettings = NetworkSettings()
    job_timeout_hours: int = DEFAULT_JOB_TIMEOUT_HOURS
    # More indexes of the main stack's vector bucket the jobs may write (a load faster than one index's
    # 2,500 vectors/s, or over 2 billion vectors); created outside CDK with the main index's settings.
    extra_indexes: tuple[str, ...] = ()

    @property
    def gpu(self) -> bool:
        return self.compute == "gpu"


def batch_settings_from_context(context: Mapping[str, Any]) -> BatchSettings | None:
    """None unless ``batch`` is true; then every Batch key validated (``sourceBucket`` required)."""
    if not _bool(context, "batch", default=False):
        return None
    compute = context.get("batchCompute", "gpu")
    if compute not in COMPUTE_TYPES:
        raise SettingsError(
            "batchCompute",
            compute,
            f"expected one of {', '.join(COMPUTE_TYPES)} (gpu: EC2 GPU instances, fargate: CPU-only Fargate tasks)",
        )
    return BatchSettings(
        source=_source(context),
        compute=str(compute),
        spot=_bool(context, "batchSpot", default=False),
        instance_types=_instance_types(context, compute=str(compute)),
        max_vcpus=_int(context, "batchMaxVcpus", DEFAULT_MAX_VCPUS, MIN_MAX_VCPUS, MAX_MAX_VCPUS),
        network=_network(context),
        job_timeout_hours=_int(context, "batchJobTimeoutHours", DEFAULT_JOB_TIMEOUT_HOURS, 1, MAX_JOB_TIMEOUT_HOURS),
        extra_indexes=_extra_indexes(context),
    )


def _bool(context: Mapping[str, Any], key: str, *, default: bool) -> bool:
    """As :func:`stacks.settings._bool`, except that an empty value (``-c batchSpot=``) also means unset."""
    if context.get(key) == "":
        return default
    return _strict_bool(context, key, default=default)


def _int(context: Mapping[str, Any], key: str, default: int, low: int, high: int) -> int:
    value = context.get(key)
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except (TypeError, ValueError):
        number = None
    if isinstance(value, bool) or number is None or str(number) != str(value).strip() or not low <= number <= high:
        raise SettingsError(key, value, f"expected a whole number from {low} to {high}")
    return number


def _list(context: Mapping[str, Any], key: str) -> tuple[str, ...]:
    value = context.get(key)
    if value is None or value == "":
        return ()
    if isinstance(value, str):
        items = [item.strip() for item in value.split(",")]
    elif isinstance(value, list) and all(isinstance(item, str) for item in value):
        items = [item.strip() for item in value]
    else:
        raise SettingsError(key, value, "expected a comma-separated string or a list of strings")
    return tuple(dict.fromkeys(item for item in items if item))


def _source(context: Mapping[str, Any]) -> SourceLocation:
    bucket = _optional_str(context, "sourceBucket")
    if bucket is None:
        raise SettingsError(
            "sourceBucket",
            context.get("sourceBucket"),
            "the Batch stack (batch=true) loads documents from S3: name the bucket that holds them "
            "(and the folder with sourcePrefix); the job role may read only there",
        )
    if bucket.startswith("s3://"):
        raise SettingsError("sourceBucket", bucket, "give the bucket name only (put the folder in sourcePrefix)")
    if not _S3_BUCKET.fullmatch(bucket) or ".." in bucket:
        raise SettingsError(
            "sourceBucket",
            bucket,
            "an S3 bucket name is 3-63 characters of lowercase letters, digits, dots and hyphens, beginning "
            "and ending with a letter or digit",
        )
    prefix = _optional_str(context, "sourcePrefix") or ""
    prefix = prefix.lstrip("/")
    if prefix and not prefix.endswith("/"):
        prefix += "/"  # a folder: "docs" must not also grant "docs-private/"
    if _PREFIX_FORBIDDEN.search(prefix) or "//" in prefix or len(prefix.encode("utf-8")) > MAX_PREFIX_BYTES:
        raise SettingsError(
            "sourcePrefix",
            context.get("sourcePrefix"),
            "expected a folder such as docs/2026/ (no '*', '?' or '$', which IAM would read as wildcards or "
            "variables, no empty path segment, under 1,024 bytes)",
        )
    key_arn = _optional_str(context, "sourceKmsKeyArn")
    if key_arn is not None and not _KMS_KEY_ARN.fullmatch(key_arn):
        raise SettingsError(
            "sourceKmsKeyArn",
            key_arn,
            "expected the full ARN of the KMS key the documents are encrypted with (arn:aws:kms:REGION:ACCOUNT:key/ID)",
        )
    return SourceLocation(bucket=bucket, prefix=prefix, kms_key_arn=key_arn)


def _instance_types(context: Mapping[str, Any], *, compute: str) -> tuple[str, ...]:
    types = _list(context, "batchInstanceTypes")
    if compute != "gpu":
        if types:
            raise SettingsError(
                "batchInstanceTypes", context.get("batchInstanceTypes"), "applies to batchCompute=gpu only"
            )
        return ()
    if not types:
        return DEFAULT_GPU_INSTANCE_TYPES
    for instance_type in types:
        if not _GPU_INSTANCE_TYPE.fullmatch(instance_type):
            raise SettingsError(
                "batchInstanceTypes",
                context.get("batchInstanceTypes"),
                f"{instance_type!r} is not an x86_64 NVIDIA GPU instance type; expected types such as "
                f"{', '.join(DEFAULT_GPU_INSTANCE_TYPES)}, g6e.xlarge, g4dn.xlarge, p4d.24xlarge",
            )
    return types


def _extra_indexes(context: Mapping[str, Any]) -> tuple[str, ...]:
    names = _list(context, "batchExtraIndexes")
    for name in names:
        if not _INDEX_NAME.fullmatch(name):
            raise SettingsError(
                "batchExtraIndexes",
                context.get("batchExtraIndexes"),
                f"{name!r} is not an index name (3-63 lowercase letters, digits, hyphens and dots, beginning and "
                "ending with a letter or digit)",
            )
    return names


def _network(context: Mapping[str, Any]) -> NetworkSettings:
    vpc_id = _optional_str(context, "batchVpcId")
    subnet_ids = _list(context, "batchSubnetIds")
    if vpc_id is None and subnet_ids:
        raise SettingsError("batchVpcId", None, "batchSubnetIds needs the VPC they belong to: set batchVpcId too")
    if vpc_id is not None:
        if not _VPC_ID.fullmatch(vpc_id):
            raise SettingsError("batchVpcId", vpc_id, "expected a VPC id such as vpc-0123456789abcdef0")
        if not subnet_ids:
            raise SettingsError(
                "batchSubnetIds",
                context.get("batchSubnetIds"),
                "with batchVpcId, list the subnets the jobs run in (comma-separated subnet ids); they need a "
                "route to ECR, S3, S3 Vectors, CloudWatch Logs and STS (NAT gateway or VPC endpoints)",
            )
        for subnet_id in subnet_ids:
            if not _SUBNET_ID.fullmatch(subnet_id):
                raise SettingsError(
                    "batchSubnetIds", context.get("batchSubnetIds"), f"{subnet_id!r} is not a subnet id"
                )
    # The VPC this stack creates has public subnets only (no NAT gateway to pay for), so its Fargate
    # tasks need a public IP to reach AWS APIs; in existing subnets the default is no public IP.
    assign_public_ip = _bool(context, "batchAssignPublicIp", default=vpc_id is None)
    if vpc_id is None and not assign_public_ip:
        raise SettingsError(
            "batchAssignPublicIp",
            context.get("batchAssignPublicIp"),
            "the VPC this stack creates has public subnets only (no NAT gateway), so jobs need a public IP to "
            "reach AWS; to run without one, give private subnets with a NAT gateway or VPC endpoints "
            "(batchVpcId and batchSubnetIds)",
        )
    return NetworkSettings(vpc_id=vpc_id, subnet_ids=subnet_ids, assign_public_ip=assign_public_ip)
