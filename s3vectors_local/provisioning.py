"""Create (and tear down) the S3 Vectors resources a CDK-synthesized CloudFormation template declares.

``provision`` walks the template's active resources in dependency order: ``AWS::S3Vectors::VectorBucket``
and ``AWS::S3Vectors::Index`` are created on the endpoint with their properties (encryption, dimension,
metric, data type, non-filterable keys, tags), ``AWS::S3Vectors::VectorBucketPolicy`` is put on its
bucket, everything else gets a placeholder id (cfn.py). It then writes the outputs file in the shape
``cdk deploy --outputs-file`` writes, ``{"<StackName>": {"<OutputLogicalId>": "<value>"}}``.
Running it again reuses what exists. ``teardown`` deletes the indexes (and so their vectors), then the
buckets, then the outputs file.
"""

from __future__ import annotations

import contextlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from s3vectors_local.cfn import BUCKET_POLICY, INDEX, VECTOR_BUCKET, Template, generated_name
from s3vectors_local.endpoint import DEFAULT_ACCOUNT_ID, DEFAULT_REGION, make_client

DEFAULT_STACK = "S3VectorsDocSearch"


class ProvisionError(RuntimeError):
    pass


def _stack_name(template_path: Path, stack_name: str | None) -> str:
    if stack_name:
        return stack_name
    m = re.fullmatch(r"(.+)\.template\.json", template_path.name)
    return m.group(1) if m else DEFAULT_STACK


def _tags(props: dict[str, Any]) -> dict[str, str]:
    return {t["Key"]: str(t["Value"]) for t in props.get("Tags", [])}


def _encryption(props: dict[str, Any]) -> dict[str, str] | None:
    enc = props.get("EncryptionConfiguration")
    if not enc:
        return None
    out = {"sseType": enc.get("SseType", "AES256")}
    if enc.get("KmsKeyArn"):
        out["kmsKeyArn"] = enc["KmsKeyArn"]
    return out


def _bucket_of(tpl: Template, props: dict[str, Any]) -> str:
    if props.get("VectorBucketName"):
        return str(props["VectorBucketName"])
    arn = props.get("VectorBucketArn")
    if not arn:
        raise ProvisionError("an index or bucket policy names neither VectorBucketName nor VectorBucketArn")
    return str(arn).rsplit("bucket/", 1)[1]


class _Provisioner:
    def __init__(self, template_path: Path, endpoint_url: str, stack_name: str | None, account_id: str,
                 region: str, client: Any = None) -> None:
        self.stack = _stack_name(Path(template_path), stack_name)
        self.tpl = Template(json.loads(Path(template_path).read_text()), stack=self.stack, account=account_id,
                            region=region)
        self.client = client or make_client(endpoint_url, region=region)
        self.account, self.region = account_id, region
        self.names: dict[str, dict[str, str]] = {}  # logical id -> the names a delete call takes
        self.lookup = False

    def _name(self, lid: str, props: dict[str, Any], key: str) -> str:
        if props.get(key):
            return str(props[key])
        return generated_name(self.stack, lid, self.account, self.region, lower=True, max_len=63,
                              allowed="a-z0-9-" if key == "VectorBucketName" else "a-z0-9.-")

    def walk(self, create: bool, lookup: bool = False) -> list[tuple[str, str, dict[str, Any]]]:
        """Resolve every active resource (creating S3 Vectors ones when ``create``, reading their ARNs from the
        endpoint when ``lookup``, else computing them) in dependency order."""
        self.lookup = lookup
        done = []
        for lid in self.tpl.order():
            res = self.tpl.resources[lid]
            props = self.tpl.resolve(res.get("Properties", {}))
            rtype = res["Type"]
            if rtype == VECTOR_BUCKET:
                self._bucket(lid, props, create)
            elif rtype == INDEX:
                self._index(lid, props, create)
            elif rtype == BUCKET_POLICY:
                bucket = _bucket_of(self.tpl, props)
                if create:
                    policy = props["Policy"]
                    self.client.put_vector_bucket_policy(
                        vectorBucketName=bucket, policy=policy if isinstance(policy, str) else json.dumps(policy)
                    )
                self.tpl.refs[lid] = bucket
                self.tpl.attrs[lid] = {}
            else:
                self.tpl.refs[lid], self.tpl.attrs[lid] = self.tpl.placeholder(lid)
            done.append((lid, rtype, props))
        return done

    def _bucket(self, lid: str, props: dict[str, Any], create: bool) -> None:
        name = self._name(lid, props, "VectorBucketName")
        c = self.client
        if create:
            try:
                b = c.get_vector_bucket(vectorBucketName=name)["vectorBucket"]
            except c.exceptions.NotFoundException:
                kwargs: dict[str, Any] = {"vectorBucketName": name}
                if _encryption(props):
                    kwargs["encryptionConfiguration"] = _encryption(props)
                if _tags(props):
                    kwargs["tags"] = _tags(props)
                c.create_vector_bucket(**kwargs)
                b = c.get_vector_bucket(vectorBucketName=name)["vectorBucket"]
            arn, created = b["vectorBucketArn"], b["creationTime"].isoformat()
        elif self.lookup:
            try:
                b = c.get_vector_bucket(vectorBucketName=name)["vectorBucket"]
            except c.exceptions.NotFoundException:
                raise ProvisionError(f"vector bucket {name} ({lid}) is not provisioned: run provision first") from None
            arn, created = b["vectorBucketArn"], b["creationTime"].isoformat()
        else:
            arn, created = f"arn:aws:s3vectors:{self.region}:{self.account}:bucket/{name}", ""
        self.names[lid] = {"vectorBucketName": name}
        # Ref of an AWS::S3Vectors::VectorBucket is its ARN (shared reference, CloudFormation section).
        self.tpl.refs[lid] = arn
        self.tpl.attrs[lid] = {"VectorBucketArn": arn, "CreationTime": created}

    def _index(self, lid: str, props: dict[str, Any], create: bool) -> None:
        bucket = _bucket_of(self.tpl, props)
        name = self._name(lid, props, "IndexName")
        c = self.client
        want = {"dataType": props["DataType"], "dimension": int(props["Dimension"]),
                "distanceMetric": props["DistanceMetric"]}
        non_filterable = (props.get("MetadataConfiguration") or {}).get("NonFilterableMetadataKeys") or []
        if create:
            try:
                idx = c.get_index(vectorBucketName=bucket, indexName=name)["index"]
                have = {k: idx[k] for k in want}
                have_nf = (idx.get("metadataConfiguration") or {}).get("nonFilterableMetadataKeys") or []
                if have != want or sorted(have_nf) != sorted(non_filterable):
                    raise ProvisionError(
                        f"index {bucket}/{name} exists with {have} and non-filterable keys {have_nf}; the template "
                        f"wants {want} and {non_filterable}. These are fixed at creation: run teardown first."
                    )
            except c.exceptions.NotFoundException:
                kwargs: dict[str, Any] = {"vectorBucketName": bucket, "indexName": name, **want}
                if non_filterable:
                    kwargs["metadataConfiguration"] = {"nonFilterableMetadataKeys": list(non_filterable)}
                if _encryption(props):
                    kwargs["encryptionConfiguration"] = _encryption(props)
                if _tags(props):
                    kwargs["tags"] = _tags(props)
                c.create_index(**kwargs)
                idx = c.get_index(vectorBucketName=bucket, indexName=name)["index"]
            arn, created = idx["indexArn"], idx["creationTime"].isoformat()
        elif self.lookup:
            try:
                idx = c.get_index(vectorBucketName=bucket, indexName=name)["index"]
            except c.exceptions.NotFoundException:
                raise ProvisionError(f"index {bucket}/{name} ({lid}) is not provisioned: run provision first") from None
            arn, created = idx["indexArn"], idx["creationTime"].isoformat()
        else:
            arn, created = f"arn:aws:s3vectors:{self.region}:{self.account}:bucket/{bucket}/index/{name}", ""
        self.names[lid] = {"vectorBucketName": bucket, "indexName": name}
        self.tpl.refs[lid] = arn
        self.tpl.attrs[lid] = {"IndexArn": arn, "CreationTime": created}

    def outputs(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for oid, spec in self.tpl.t.get("Outputs", {}).items():
            if spec.get("Condition") and not self.tpl.condition(spec["Condition"]):
                continue
            value = self.tpl.resolve(spec["Value"])
            out[oid] = ",".join(map(str, value)) if isinstance(value, list) else str(value)
        return out


class _NoClient:
    """Stands in for the endpoint client when ARNs are computed, not looked up: never called."""

    def __getattr__(self, name: str) -> Any:
        raise RuntimeError(f"resolve_template without endpoint_url cannot call {name}")


@dataclass
class ResolvedTemplate:
    stack: str
    template: Template  # refs and attrs filled in for every active resource
    resources: list[tuple[str, str, dict[str, Any]]]  # (logical id, type, resolved properties), in order
    outputs: dict[str, str]


def resolve_template(
    template: Path | str,
    *,
    stack_name: str | None = None,
    account_id: str | None = None,
    region: str | None = None,
    endpoint_url: str | None = None,
    client: Any = None,
) -> ResolvedTemplate:
    """Resolve a template's intrinsics without creating anything (IAM policies, outputs).

    Bucket and index ARNs are those ``provision`` creates: read from ``endpoint_url`` when given (they must
    exist; ``client``: a client for it with the right credentials), else computed from the same deterministic names.
    """
    p = _Provisioner(Path(template), endpoint_url or "", stack_name, account_id or DEFAULT_ACCOUNT_ID,
                     region or DEFAULT_REGION, client=client if endpoint_url else _NoClient())
    resources = p.walk(create=False, lookup=endpoint_url is not None)
    return ResolvedTemplate(p.stack, p.tpl, resources, p.outputs())


def provision(
    template: Path | str,
    *,
    endpoint_url: str,
    outputs_file: Path | str | None = None,
    stack_name: str | None = None,
    account_id: str = DEFAULT_ACCOUNT_ID,
    region: str = DEFAULT_REGION,
    client: Any = None,
) -> dict[str, dict[str, str]]:
    """Create the template's S3 Vectors resources; return (and write) ``{stack: {output: value}}``."""
    p = _Provisioner(Path(template), endpoint_url, stack_name, account_id, region, client)
    p.walk(create=True)
    result = {p.stack: p.outputs()}
    if outputs_file is not None:
        Path(outputs_file).write_text(json.dumps(result, indent=2) + "\n")
    return result


def teardown(
    template: Path | str,
    *,
    endpoint_url: str,
    outputs_file: Path | str | None = None,
    stack_name: str | None = None,
    account_id: str = DEFAULT_ACCOUNT_ID,
    region: str = DEFAULT_REGION,
    client: Any = None,
) -> None:
    """Delete the template's indexes (with their vectors), then its buckets, then the outputs file."""
    p = _Provisioner(Path(template), endpoint_url, stack_name, account_id, region, client)
    resources = p.walk(create=False)
    c = p.client
    # Indexes first: a bucket can only be deleted once it is empty (shared reference, CFN section).
    for lid, rtype, _props in reversed(resources):
        if rtype == INDEX:
            with contextlib.suppress(c.exceptions.NotFoundException):
                c.delete_index(**p.names[lid])
    for lid, rtype, _props in reversed(resources):
        if rtype == VECTOR_BUCKET:
            with contextlib.suppress(c.exceptions.NotFoundException):
                c.delete_vector_bucket(**p.names[lid])
    if outputs_file is not None:
        with contextlib.suppress(FileNotFoundError):
            Path(outputs_file).unlink()
