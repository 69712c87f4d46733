"""boto3 sessions and clients: region, endpoint, retries, and STS AssumeRole for the stack's roles.

Retries: botocore's own retries are turned off for the S3 Vectors client (``total_max_attempts=1``)
because the loader retries itself (``loader.retry``): it must count retries for the summary, slow the
whole writer down when the index throttles, and back off with jitter across all threads at once.
"""

from __future__ import annotations

from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, NoRegionError

from loader.errors import LoaderError

USER_AGENT = "s3vectors-docsearch-loader/0.1"
LOCAL_DUMMY_CREDENTIALS = {"aws_access_key_id": "local", "aws_secret_access_key": "local"}
# STS and CloudFormation are called once per run: botocore's standard retry mode is enough there.
_CONTROL_PLANE = Config(retries={"mode": "standard", "max_attempts": 5}, user_agent_extra=USER_AGENT)


def make_session(*, region: str | None, profile: str | None = None, local: bool = False) -> boto3.Session:
    """A session for ``region``; with ``local`` and no credentials anywhere, dummy ones (SigV4 needs some)."""
    try:
        session = boto3.Session(region_name=region, profile_name=profile)
    except BotoCoreError as exc:  # e.g. ProfileNotFound
        raise LoaderError(str(exc)) from None
    if local and session.get_credentials() is None:
        session = boto3.Session(region_name=region or "us-east-1", **LOCAL_DUMMY_CREDENTIALS)
    return session


def is_loopback(endpoint_url: str | None) -> bool:
    """True for an endpoint on this machine (the local S3 Vectors endpoint), which needs no real credentials."""
    if not endpoint_url:
        return False
    from ipaddress import ip_address
    from urllib.parse import urlsplit

    host = urlsplit(endpoint_url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ip_address(host).is_loopback
    except ValueError:
        return False


def assume_role(session: boto3.Session, role_arn: str, *, purpose: str) -> boto3.Session:
    """A session with the temporary credentials of ``role_arn`` (STS AssumeRole), same region."""
    sts = session.client("sts", config=_CONTROL_PLANE)
    try:
        response = sts.assume_role(RoleArn=role_arn, RoleSessionName=f"s3vectors-loader-{purpose}"[:64])
    except NoCredentialsError:
        raise LoaderError(
            f"cannot assume {role_arn}: no AWS credentials found (configure a profile or environment variables)"
        ) from None
    except ClientError as exc:
        error = exc.response.get("Error", {})
        raise LoaderError(
            f"cannot assume {role_arn}: {error.get('Code')}: {error.get('Message')} "
            "(the stack trusts the deploying account by default; see the stack's trustedPrincipal setting)"
        ) from None
    credentials = response["Credentials"]
    return boto3.Session(
        aws_access_key_id=credentials["AccessKeyId"],
        aws_secret_access_key=credentials["SecretAccessKey"],
        aws_session_token=credentials["SessionToken"],
        region_name=session.region_name,
    )


def s3vectors_client(session: boto3.Session, *, endpoint_url: str | None, max_pool_connections: int = 10) -> Any:
    config = Config(
        retries={"total_max_attempts": 1, "mode": "standard"},  # loader.retry does the retrying
        max_pool_connections=max(10, max_pool_connections),
        connect_timeout=10,
        read_timeout=120,
        user_agent_extra=USER_AGENT,
    )
    try:
        return session.client("s3vectors", endpoint_url=endpoint_url, config=config)
    except NoRegionError:
        raise LoaderError(
            "no AWS region: pass --region or set AWS_REGION (or use an outputs file with a Region output)"
        ) from None


def s3_client(session: boto3.Session, *, endpoint_url: str | None = None) -> Any:
    """The client that reads an ``s3://`` document source (botocore retries these reads itself)."""
    config = Config(retries={"mode": "standard", "max_attempts": 5}, user_agent_extra=USER_AGENT)
    try:
        return session.client("s3", endpoint_url=endpoint_url, config=config)
    except NoRegionError:
        raise LoaderError("no AWS region for S3: pass --region or set AWS_REGION") from None


def cloudformation_client(session: boto3.Session) -> Any:
    try:
        return session.client("cloudformation", config=_CONTROL_PLANE)
    except NoRegionError:
        raise LoaderError("no AWS region for CloudFormation: pass --region or set AWS_REGION") from None
