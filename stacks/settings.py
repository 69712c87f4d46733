"""Validated settings of the stack, built from CDK context values.

``app.py`` reads the context and hands the raw values to :func:`settings_from_context`; every
construct then takes typed keyword arguments. Each rule below cites the documentation it enforces,
and each error names the context key to change, so a bad value fails ``cdk synth`` with a message
that says what to do instead of failing ``cdk deploy`` half-way.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from loader import contract

# S3 Vectors naming rules. Vector bucket: 3-63 characters, lowercase letters, digits and hyphens,
# beginning and ending with a letter or digit
# (https://docs.aws.amazon.com/AmazonS3/latest/userguide/s3-vectors-buckets-naming.html).
# Index: the same, plus dots (https://docs.aws.amazon.com/AmazonS3/latest/userguide/s3-vectors-indexes.html;
# botocore model: IndexName length 3-63).
_BUCKET_NAME = re.compile(r"[a-z0-9][a-z0-9-]{1,61}[a-z0-9]")
_INDEX_NAME = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
# Key ARN pattern from the EncryptionConfiguration API reference:
# https://docs.aws.amazon.com/AmazonS3/latest/API/API_S3VectorBuckets_EncryptionConfiguration.html
_KMS_KEY_ARN = re.compile(r"arn:aws[-a-z0-9]*:kms:[-a-z0-9]+:[0-9]{12}:key/[-a-zA-Z0-9]+")
_IAM_PRINCIPAL_ARN = re.compile(r"arn:aws[-a-z0-9]*:iam::[0-9]{12}:(root|role/[\w+=,.@/-]+|user/[\w+=,.@/-]+)")
_ACCOUNT_ID = re.compile(r"[0-9]{12}")

MIN_DIMENSION, MAX_DIMENSION = 1, 4096  # CreateIndex: dimension 1-4096 (botocore model, limits page)
MAX_NON_FILTERABLE_KEYS = 10  # "up to 10 non-filterable metadata keys per index" (limits page)
MAX_METADATA_KEY_LENGTH = 63  # botocore model: MetadataKey length 1-63

ENCRYPTION_MODES = ("sse-s3", "kms")

# Every context key the stack reads (documented in the README's table).
CONTEXT_KEYS = (
    "bucketName",
    "indexName",
    "dimension",
    "distanceMetric",
    "nonFilterableMetadataKeys",
    "encryption",
    "kmsKeyArn",
    "retainData",
    "trustedPrincipal",
)


class SettingsError(ValueError):
    """A context value that would produce a stack AWS rejects, with what to change."""

    def __init__(self, key: str, value: object, rule: str) -> None:
        super().__init__(f"Invalid CDK context '{key}'={value!r}: {rule}. Set it with `-c {key}=...` or in cdk.json.")
        self.key = key


@dataclass(frozen=True)
class Encryption:
    """``sse-s3`` (AES256, the default), or ``kms`` with a key this stack creates or an existing one."""

    mode: str = "sse-s3"
    kms_key_arn: str | None = None  # existing key; None with mode "kms" means "create one"


@dataclass(frozen=True)
class StackSettings:
    bucket_name: str | None = None
    index_name: str | None = None
    dimension: int = contract.DEFAULT_DIMENSION
    distance_metric: str = contract.DEFAULT_DISTANCE_METRIC
    non_filterable_metadata_keys: tuple[str, ...] = contract.NON_FILTERABLE_METADATA_KEYS
    encryption: Encryption = Encryption()
    retain_data: bool = False
    trusted_principal: str | None = None  # account id or IAM ARN; None = the deploying account
    tags: tuple[tuple[str, str], ...] = (("project", "s3vectors-docsearch"),)


def settings_from_context(context: Mapping[str, Any]) -> StackSettings:
    """Validate raw context values (strings from ``-c`` or JSON values from cdk.json)."""
    bucket_name = _optional_str(context, "bucketName")
    if bucket_name is not None and not _BUCKET_NAME.fullmatch(bucket_name):
        raise SettingsError(
            "bucketName",
            bucket_name,
            "a vector bucket name must be 3-63 characters of lowercase letters, digits and hyphens, "
            "beginning and ending with a letter or digit",
        )
    index_name = _optional_str(context, "indexName")
    if index_name is not None and not _INDEX_NAME.fullmatch(index_name):
        raise SettingsError(
            "indexName",
            index_name,
            "an index name must be 3-63 characters of lowercase letters, digits, hyphens and dots, "
            "beginning and ending with a letter or digit",
        )
    return StackSettings(
        bucket_name=bucket_name,
        index_name=index_name,
        dimension=_dimension(context),
        distance_metric=_distance_metric(context),
        non_filterable_metadata_keys=_non_filterable_keys(context),
        encryption=_encryption(context),
        retain_data=_bool(context, "retainData", default=False),
        trusted_principal=_trusted_principal(context),
    )


def _optional_str(context: Mapping[str, Any], key: str) -> str | None:
    value = context.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise SettingsError(key, value, "expected a string")
    return value


def _bool(context: Mapping[str, Any], key: str, *, default: bool) -> bool:
    value = context.get(key)
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise SettingsError(key, value, "expected true or false")


def _dimension(context: Mapping[str, Any]) -> int:
    value = context.get("dimension", contract.DEFAULT_DIMENSION)
    try:
        dimension = int(value)
    except (TypeError, ValueError):
        dimension = 0
    if (
        isinstance(value, bool)
        or str(dimension) != str(value).strip()
        or not (MIN_DIMENSION <= dimension <= MAX_DIMENSION)
    ):
        raise SettingsError(
            "dimension",
            value,
            f"the dimension must be a whole number from {MIN_DIMENSION} to {MAX_DIMENSION} "
            f"(all-MiniLM-L6-v2, the loader's default model, needs {contract.DEFAULT_DIMENSION})",
        )
    return dimension


def _distance_metric(context: Mapping[str, Any]) -> str:
    value = context.get("distanceMetric", contract.DEFAULT_DISTANCE_METRIC)
    if value not in contract.DISTANCE_METRICS:
        raise SettingsError(
            "distanceMetric", value, f"the metric must be one of {', '.join(contract.DISTANCE_METRICS)}"
        )
    return str(value)


def _non_filterable_keys(context: Mapping[str, Any]) -> tuple[str, ...]:
    """The loader's text key is always non-filterable; context may add more keys, never remove it."""
    value = context.get("nonFilterableMetadataKeys")
    if value is None or value == "":
        extra: list[str] = []
    elif isinstance(value, str):
        extra = [key.strip() for key in value.split(",") if key.strip()]
    elif isinstance(value, list) and all(isinstance(key, str) for key in value):
        extra = list(value)
    else:
        raise SettingsError("nonFilterableMetadataKeys", value, "expected a comma-separated string or a list of keys")
    keys = tuple(dict.fromkeys([*contract.NON_FILTERABLE_METADATA_KEYS, *extra]))
    if len(keys) > MAX_NON_FILTERABLE_KEYS:
        raise SettingsError(
            "nonFilterableMetadataKeys",
            value,
            f"an index allows at most {MAX_NON_FILTERABLE_KEYS} non-filterable metadata keys "
            f"(including the loader's '{contract.TEXT_METADATA_KEY}'); {len(keys)} were given",
        )
    for key in keys:
        if not 1 <= len(key) <= MAX_METADATA_KEY_LENGTH:
            raise SettingsError(
                "nonFilterableMetadataKeys", value, f"each key must be 1-{MAX_METADATA_KEY_LENGTH} characters"
            )
    return keys


def _encryption(context: Mapping[str, Any]) -> Encryption:
    mode = context.get("encryption", "sse-s3")
    if mode not in ENCRYPTION_MODES:
        raise SettingsError("encryption", mode, f"expected one of {', '.join(ENCRYPTION_MODES)}")
    key_arn = _optional_str(context, "kmsKeyArn")
    if key_arn is not None:
        if not _KMS_KEY_ARN.fullmatch(key_arn):
            raise SettingsError(
                "kmsKeyArn",
                key_arn,
                "expected a full KMS key ARN such as arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-"
                "56ef-1234567890ab (S3 Vectors accepts key ARNs only, not aliases or key ids)",
            )
        return Encryption(mode="kms", kms_key_arn=key_arn)
    return Encryption(mode=str(mode))


def _trusted_principal(context: Mapping[str, Any]) -> str | None:
    value = _optional_str(context, "trustedPrincipal")
    if value is not None and not (_ACCOUNT_ID.fullmatch(value) or _IAM_PRINCIPAL_ARN.fullmatch(value)):
        raise SettingsError(
            "trustedPrincipal",
            value,
            "expected a 12-digit account id or an IAM role/user ARN (arn:aws:iam::111122223333:role/Name)",
        )
    return value
