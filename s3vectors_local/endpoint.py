"""Running the endpoint: in-process (``LocalEndpoint``) or as ``serve`` (see ``__main__``)."""

from __future__ import annotations

import fcntl
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from s3vectors_local.faults import FaultInjector, WriteThrottle
from s3vectors_local.iam import Authorizer
from s3vectors_local.server import App, Server
from s3vectors_local.service import Service
from s3vectors_local.sigv4 import SigV4Verifier

DEFAULT_ACCOUNT_ID = "123456789012"
DEFAULT_REGION = "us-east-1"
ENDPOINT_FILE = "endpoint.json"


class DataDirLock:
    """One server per data dir: two would each keep their own in-memory matrices and disagree."""

    def __init__(self, data_dir: Path) -> None:
        data_dir.mkdir(parents=True, exist_ok=True)
        self._file: IO[str] | None = open(data_dir / ".lock", "a+")  # noqa: SIM115 - held while serving
        try:
            fcntl.flock(self._file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._file.close()
            self._file = None
            raise RuntimeError(f"another s3vectors_local server is already using {data_dir}") from None

    def release(self) -> None:
        if self._file is not None:
            fcntl.flock(self._file.fileno(), fcntl.LOCK_UN)
            self._file.close()
            self._file = None


class LocalEndpoint:
    """A local S3 Vectors endpoint on a free loopback port, served from a background thread.

    ``with LocalEndpoint(data_dir=path) as ep: ep.client().list_vector_buckets()``
    """

    def __init__(
        self,
        data_dir: Path | str,
        *,
        throttle: bool = False,
        fault_rate: float = 0.0,
        latency_ms: float = 0,
        host: str = "127.0.0.1",
        port: int = 0,
        account_id: str = DEFAULT_ACCOUNT_ID,
        region: str = DEFAULT_REGION,
        fault_seed: int | None = None,
        service_options: dict[str, Any] | None = None,
        faults: FaultInjector | None = None,
        credentials: Mapping[str, Any] | None = None,
        principals: Mapping[str, Any] | None = None,
    ) -> None:
        """``faults``: a prepared FaultInjector (codes, lost responses, latency spikes), instead of
        ``fault_rate``/``latency_ms``. ``credentials``: ``{access_key: secret}``; when given, every request
        must carry a valid SigV4 signature by one of them (sigv4.py). ``principals``: ``{access_key: policy
        documents}`` or ``{access_key: {"arn": ..., "policies": [...]}}`` (see iam.py, and
        ``iam.template_principals`` for the roles of a synthesized template); when given, each request must
        be allowed by its principal's policies."""
        self.data_dir = Path(data_dir)
        self.region = region
        self.throttle, self.fault_rate, self.latency_ms = throttle, fault_rate, latency_ms
        self.host, self.port, self.account_id, self.fault_seed = host, port, account_id, fault_seed
        self.service_options = service_options or {}
        self.faults = faults
        self.credentials = dict(credentials) if credentials is not None else None
        self.principals = dict(principals) if principals is not None else None
        self._lock: DataDirLock | None = None
        self.service: Service | None = None
        self.server: Server | None = None

    @property
    def endpoint_url(self) -> str:
        if self.server is None:
            raise RuntimeError("the endpoint is not running")
        return self.server.url

    def start(self) -> LocalEndpoint:
        self._lock = DataDirLock(self.data_dir)
        try:
            self.service = Service(
                self.data_dir, account_id=self.account_id, region=self.region, **self.service_options
            )
            faults = self.faults
            if faults is None and (self.fault_rate or self.latency_ms):
                faults = FaultInjector(self.fault_rate, self.latency_ms, self.fault_seed)
            self.faults = faults
            verifier = None
            if self.credentials is not None:
                verifier = SigV4Verifier(self.credentials, region=self.region)
            authorizer = None
            if self.principals is not None:
                authorizer = Authorizer(self.principals, account_id=self.account_id, region=self.region,
                                        bucket_policy=self.service.bucket_policy)
            app = App(self.service, throttle=WriteThrottle() if self.throttle else None, faults=faults,
                      verifier=verifier, authorizer=authorizer)
            self.server = Server(app, self.host, self.port)
        except BaseException:
            self.stop()
            raise
        self.server.start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None
        if self.service is not None:
            self.service.close()
            self.service = None
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def __enter__(self) -> LocalEndpoint:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def client(self, *, max_attempts: int = 5, access_key: str = "testing", secret_key: str = "testing",
               **config: Any) -> Any:
        """A boto3 ``s3vectors`` client for this endpoint, with dummy credentials unless given.

        Standard retry mode, ``max_attempts`` attempts in all (1: no retries, to see raw 429/5xx).
        """
        return make_client(self.endpoint_url, region=self.region, max_attempts=max_attempts,
                           access_key=access_key, secret_key=secret_key, **config)


def make_client(endpoint_url: str, *, region: str = DEFAULT_REGION, max_attempts: int = 5,
                access_key: str = "testing", secret_key: str = "testing", **config: Any) -> Any:
    import boto3
    from botocore.config import Config

    cfg = Config(
        retries={"mode": "standard", "total_max_attempts": max_attempts},
        connect_timeout=config.pop("connect_timeout", 5),
        read_timeout=config.pop("read_timeout", 60),
        **config,
    )
    return boto3.client(
        "s3vectors",
        endpoint_url=endpoint_url,
        region_name=region,
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        config=cfg,
    )
