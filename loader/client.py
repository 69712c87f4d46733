"""AWS sessions and clients: region, endpoint, retries, and STS AssumeRole for the stack's roles.

Sessions are botocore sessions behind the few methods of ``boto3.Session`` the loader uses
(``client``, ``region_name``, ``profile_name``, ``get_credentials``), so a ``boto3.Session`` works
wherever a session is taken. boto3 itself is not imported: it adds ~0.1 s (s3transfer, resources) to
every command, and a re-run of an unchanged corpus is mostly start-up time. Profiles, regions, the
credential chain (environment, shared files, SSO, instance metadata...) and ``AWS_PROFILE`` come
from botocore, exactly as through boto3. The JSON data botocore reads to build a client (the service
model, endpoint rules, the 1.2 MB ``endpoints.json``) is parsed once per process, shared by every
session, and parsed into plain dicts rather than ``OrderedDict`` (ordered all the same, ~4x faster).

Retries: botocore's own retries are turned off for the S3 Vectors client (``total_max_attempts=1``)
because the loader retries itself (``loader.retry``): it must count retries for the summary, slow the
whole writer down when the index throttles, and back off with jitter across all threads at once.
"""

from __future__ import annotations

import json
import os
from typing import Any, Protocol

import botocore.loaders
import botocore.session
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, NoRegionError

from loader.errors import LoaderError

USER_AGENT = "s3vectors-docsearch-loader/0.1"
LOCAL_DUMMY_CREDENTIALS = {"aws_access_key_id": "local", "aws_secret_access_key": "local"}
# STS and CloudFormation are called once per run: botocore's standard retry mode is enough there.
_CONTROL_PLANE = Config(retries={"mode": "standard", "max_attempts": 5}, user_agent_extra=USER_AGENT)

# botocore data loaders by search path (AWS_DATA_PATH / a profile's data_path): each caches the JSON
# it has parsed (service models, endpoints, partitions), so the second session of a run (--local's
# index check, --assume-role, the s3:// source client) does not parse them again.
_LOADERS: dict[str | None, botocore.loaders.Loader] = {}


class _JSONFileLoader(botocore.loaders.JSONFileLoader):
    """botocore's model file loader, minus ``object_pairs_hook=OrderedDict``: a plain dict keeps the order
    too, and json's C parser builds it ~4x faster (endpoints.json: ~35 ms -> ~9 ms, in every process)."""

    def _load_file(self, full_path: str, open_method: Any) -> Any:
        if not os.path.isfile(full_path):
            return None
        with open_method(full_path, "rb") as fp:
            return json.loads(fp.read().decode("utf-8"))


class SessionLike(Protocol):
    """What the loader needs of a session: ``Session`` below, or a ``boto3.Session``."""

    @property
    def region_name(self) -> str | None: ...

    def client(self, service_name: str, **kwargs: Any) -> Any: ...

    def get_credentials(self) -> Any: ...


class Session:
    """A botocore session with boto3.Session's constructor and the methods the loader calls."""

    def __init__(
        self,
        *,
        region_name: str | None = None,
        profile_name: str | None = None,
        aws_access_key_id: str | None = None,
        aws_secret_access_key: str | None = None,
        aws_session_token: str | None = None,
    ) -> None:
        session = botocore.session.Session()
        if profile_name is not None:
            session.set_config_variable("profile", profile_name)
        if aws_access_key_id or aws_secret_access_key or aws_session_token:
            session.set_credentials(aws_access_key_id, aws_secret_access_key, aws_session_token)
        if region_name is not None:
            session.set_config_variable("region", region_name)
        # Reads the config files now, as boto3.Session does: an unknown profile fails here (ProfileNotFound).
        data_path = session.get_config_variable("data_path")
        loader = _LOADERS.get(data_path)
        if loader is None:
            loader = _LOADERS[data_path] = session.get_component("data_loader")
            if type(loader.file_loader) is botocore.loaders.JSONFileLoader:
                loader.file_loader = _JSONFileLoader()
        else:
            session.register_component("data_loader", loader)
        self._session = session

    @property
    def botocore_session(self) -> botocore.session.Session:
        return self._session

    @property
    def region_name(self) -> str | None:
        region = self._session.get_config_variable("region")
        return str(region) if region is not None else None

    @property
    def profile_name(self) -> str:
        return str(self._session.profile or "default")

    def get_credentials(self) -> Any:
        return self._session.get_credentials()

    def client(self, service_name: str, **kwargs: Any) -> Any:
        return self._session.create_client(service_name, **kwargs)

    def __repr__(self) -> str:
        return f"Session(region_name={self.region_name!r})"


def make_session(*, region: str | None, profile: str | None = None, local: bool = False) -> Session:
    """A session for ``region``; with ``local`` and no credentials anywhere, dummy ones (SigV4 needs some)."""
    try:
        session = Session(region_name=region, profile_name=profile)
    except BotoCoreError as exc:  # e.g. ProfileNotFound
        raise LoaderError(str(exc)) from None
    if local and session.get_credentials() is None:
        session = Session(region_name=region or "us-east-1", **LOCAL_DUMMY_CREDENTIALS)
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


def assume_role(session: SessionLike, role_arn: str, *, purpose: str) -> Session:
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
    return Session(
        aws_access_key_id=credentials["AccessKeyId"],
        aws_secret_access_key=credentials["SecretAccessKey"],
        aws_session_token=credentials["SessionToken"],
        region_name=session.region_name,
    )


def s3vectors_client(session: SessionLike, *, endpoint_url: str | None, max_pool_connections: int = 10) -> Any:
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


def s3_client(session: SessionLike, *, endpoint_url: str | None = None) -> Any:
    """The client that reads an ``s3://`` document source (botocore retries these reads itself)."""
    config = Config(retries={"mode": "standard", "max_attempts": 5}, user_agent_extra=USER_AGENT)
    try:
        return session.client("s3", endpoint_url=endpoint_url, config=config)
    except NoRegionError:
        raise LoaderError("no AWS region for S3: pass --region or set AWS_REGION") from None


def cloudformation_client(session: SessionLike) -> Any:
    try:
        return session.client("cloudformation", config=_CONTROL_PLANE)
    except NoRegionError:
        raise LoaderError("no AWS region for CloudFormation: pass --region or set AWS_REGION") from None
