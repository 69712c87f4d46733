"""Opt-in IAM: each request's principal may do exactly what its identity policies grant.

``LocalEndpoint(principals={access_key: policies})`` (``serve --iam-policies FILE``) maps access keys to
principals; every request is then authorized before it runs, the way IAM evaluates a same-account
request (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_evaluation-logic.html):
an explicit ``Deny`` in any applicable policy wins; otherwise an ``Allow`` in an identity-based policy
or in the vector bucket's policy (naming the principal) grants; otherwise the request is implicitly
denied. A denial is ``AccessDeniedException`` (403) with AWS's wording, "User: <arn> is not authorized
to perform: <action> on resource: <arn> because no identity-based policy allows the <action> action".

Which actions a request needs, and on which resource, comes from the botocore model's own
documentation of each operation ("You must have the s3vectors:X permission...", read by
:func:`modeled_permissions`) and from the Service Authorization Reference (resource types):

* index-level (``arn:...:bucket/B/index/I``): CreateIndex, DeleteIndex, GetIndex, PutVectors, GetVectors,
  ListVectors, QueryVectors, DeleteVectors, UpdateIndexMode, UpdateMetadataConfiguration;
* bucket-level (``arn:...:bucket/B``): Create/Get/DeleteVectorBucket, the bucket policy actions,
  ListIndexes, PutVectorBucketDefaultIndexMode; account-level (``*``): ListVectorBuckets;
* tagging: the ``resourceArn`` named. Creating a bucket or index with tags also needs TagResource;
* QueryVectors with a ``filter``, ``returnMetadata`` or ``queryTexts`` also needs GetVectors, and
  ListVectors with ``returnData`` or ``returnMetadata`` also needs GetVectors (model documentation:
  "If you use any of these options without the s3vectors:GetVectors permission, Amazon S3 Vectors
  returns an AccessDeniedException").

Policies: ``Effect``, ``Action``/``NotAction``, ``Resource``/``NotResource`` with ``*``/``?`` wildcards
(actions case-insensitive), and ``Condition`` with the String*, Arn*, Bool and Null operators (``IfExists``,
``ForAnyValue:``/``ForAllValues:``) over the keys aws:RequestedRegion, aws:PrincipalArn,
aws:PrincipalAccount, aws:SecureTransport (false: plain HTTP), aws:TagKeys, aws:RequestTag/<key>,
s3vectors:sseType and s3vectors:kmsKeyArn. A condition this module cannot evaluate (another operator)
never grants: an Allow carrying it does not apply, a Deny carrying it does.

:func:`template_principals` builds principals from the roles of a CDK-synthesized template, their
``Fn::GetAtt`` ARNs resolved to the buckets and indexes ``provision`` creates.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from s3vectors_local.core import parse_arn
from s3vectors_local.errors import AccessDeniedError

SERVICE = "s3vectors"
INDEX_ACTIONS = frozenset({
    "CreateIndex", "DeleteIndex", "GetIndex", "PutVectors", "GetVectors", "ListVectors", "QueryVectors",
    "DeleteVectors", "UpdateIndexMode", "UpdateMetadataConfiguration",
})
TAG_ACTIONS = frozenset({"TagResource", "UntagResource", "ListTagsForResource"})
ACCOUNT_ACTIONS = frozenset({"ListVectorBuckets"})

PolicyDocument = Mapping[str, Any]


# -- what a request needs ----------------------------------------------------------------------------------------
@functools.cache
def modeled_permissions(operation: str) -> tuple[str, ...]:
    """The actions the model's documentation says the operation always needs ("You must have the X permission
    to use this operation")."""
    from s3vectors_local.validation import service_model

    doc = re.sub(r"<[^>]+>", " ", service_model().operation_model(operation).documentation or "")
    found = re.findall(r"must have the (s3vectors:\w+) permission to use this operation", doc)
    return tuple(dict.fromkeys(found)) or (f"{SERVICE}:{operation}",)


@dataclass(frozen=True)
class Permission:
    action: str  # "s3vectors:PutVectors"
    resource: str  # an ARN or "*"


class ArnBuilder:
    def __init__(self, partition: str, region: str, account: str) -> None:
        self.partition, self.region, self.account = partition, region, account

    def bucket(self, name: str) -> str:
        return f"arn:{self.partition}:{SERVICE}:{self.region}:{self.account}:bucket/{name}"

    def bucket_of(self, params: Mapping[str, Any]) -> str | None:
        arn, name = params.get("vectorBucketArn"), params.get("vectorBucketName")
        if isinstance(arn, str) and arn:
            return arn
        if isinstance(name, str) and name:
            return self.bucket(name)
        return None

    def index_of(self, params: Mapping[str, Any]) -> str | None:
        arn, name = params.get("indexArn"), params.get("indexName")
        if isinstance(arn, str) and arn:
            return arn
        bucket = self.bucket_of(params)
        if bucket and isinstance(name, str) and name:
            return f"{bucket}/index/{name}"
        return None


def required_permissions(operation: str, params: Mapping[str, Any], arns: ArnBuilder) -> list[Permission] | None:
    """Every (action, resource) the request needs, in the order AWS would report them; None when the request
    does not name its resource well enough to say (validation then answers 400 without touching data)."""
    if operation in ACCOUNT_ACTIONS:
        resource: str | None = "*"
    elif operation in TAG_ACTIONS:
        arn = params.get("resourceArn")
        resource = arn if isinstance(arn, str) and arn else None
    elif operation in INDEX_ACTIONS:
        resource = arns.index_of(params)
    else:
        resource = arns.bucket_of(params)
    if resource is None:
        return None
    needed = [Permission(action, resource) for action in modeled_permissions(operation)]
    extra: list[str] = []
    if operation in ("CreateVectorBucket", "CreateIndex") and params.get("tags"):
        extra.append(f"{SERVICE}:TagResource")
    if operation == "QueryVectors" and (
        params.get("filter") is not None or params.get("returnMetadata") or params.get("queryTexts")
    ):
        extra.append(f"{SERVICE}:GetVectors")
    if operation == "ListVectors" and (params.get("returnData") or params.get("returnMetadata")):
        extra.append(f"{SERVICE}:GetVectors")
    have = {p.action for p in needed}
    needed += [Permission(action, resource) for action in extra if action not in have]
    return needed


def request_context(
    operation: str, params: Mapping[str, Any], principal: Principal, arns: ArnBuilder
) -> dict[str, Any]:
    """The condition keys this emulator knows for one request."""
    ctx: dict[str, Any] = {
        "aws:RequestedRegion": arns.region,
        "aws:PrincipalArn": principal.arn,
        "aws:PrincipalAccount": arns.account,
        "aws:SecureTransport": "false",
    }
    tags = params.get("tags")
    if isinstance(tags, Mapping) and operation in ("CreateVectorBucket", "CreateIndex", "TagResource"):
        ctx["aws:TagKeys"] = [str(k) for k in tags]
        for k, v in tags.items():
            ctx[f"aws:RequestTag/{k}"] = str(v)
    if operation == "UntagResource" and isinstance(params.get("tagKeys"), list):
        ctx["aws:TagKeys"] = [str(k) for k in params["tagKeys"]]
    enc = params.get("encryptionConfiguration")
    if isinstance(enc, Mapping) and operation in ("CreateVectorBucket", "CreateIndex"):
        ctx["s3vectors:sseType"] = str(enc.get("sseType", "AES256"))
        if enc.get("kmsKeyArn"):
            ctx["s3vectors:kmsKeyArn"] = str(enc["kmsKeyArn"])
    return ctx


# -- policies ------------------------------------------------------------------------------------------------------
def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list | tuple) else [value]


@functools.lru_cache(maxsize=4096)
def _wildcard(pattern: str, ignore_case: bool) -> re.Pattern[str]:
    body = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.compile(f"^{body}$", re.DOTALL | (re.IGNORECASE if ignore_case else 0))


def _like(pattern: Any, value: str, *, ignore_case: bool = False) -> bool:
    return isinstance(pattern, str) and bool(_wildcard(pattern, ignore_case).match(value))


def load_policy(document: str | PolicyDocument) -> dict[str, Any]:
    """A policy document from JSON text or a mapping; checks its shape (ValueError otherwise)."""
    doc = json.loads(document) if isinstance(document, str) else dict(document)
    if not isinstance(doc, dict):
        raise ValueError("a policy document must be a JSON object")
    statements = doc.get("Statement")
    if isinstance(statements, Mapping):
        statements = [statements]
    if not isinstance(statements, list) or not all(isinstance(s, Mapping) for s in statements):
        raise ValueError("a policy document needs a Statement (an object or a list of objects)")
    for s in statements:
        if s.get("Effect") not in ("Allow", "Deny"):
            raise ValueError(f"a policy statement's Effect must be Allow or Deny, got {s.get('Effect')!r}")
        if ("Action" in s) == ("NotAction" in s):
            raise ValueError("a policy statement needs exactly one of Action or NotAction")
    return {**doc, "Statement": [dict(s) for s in statements]}


_UNKNOWN = object()


def _single_test(op: str, expected: list[Any], actual: str) -> bool:
    if op == "StringEquals":
        return any(isinstance(e, str) and e == actual for e in expected)
    if op == "StringEqualsIgnoreCase":
        return any(isinstance(e, str) and e.lower() == actual.lower() for e in expected)
    if op in ("StringLike", "ArnEquals", "ArnLike"):  # the Arn operators take wildcards too
        return any(_like(e, actual) for e in expected)
    if op == "Bool":
        return any(str(e).lower() == actual.lower() for e in expected)
    raise KeyError(op)


_NEGATED = {
    "StringNotEquals": "StringEquals",
    "StringNotEqualsIgnoreCase": "StringEqualsIgnoreCase",
    "StringNotLike": "StringLike",
    "ArnNotEquals": "ArnEquals",
    "ArnNotLike": "ArnLike",
}
_POSITIVE = {"StringEquals", "StringEqualsIgnoreCase", "StringLike", "ArnEquals", "ArnLike", "Bool"}


def _condition_test(operator: str, key: str, expected_raw: Any, ctx: Mapping[str, Any]) -> Any:
    """True/False, or _UNKNOWN for an operator this module does not evaluate."""
    qualifier, _, op = operator.rpartition(":")
    if_exists = op.endswith("IfExists")
    op = op[: -len("IfExists")] if if_exists else op
    expected = _as_list(expected_raw)
    value = ctx.get(key)
    if op == "Null":
        want_missing = any(str(e).lower() == "true" for e in expected)
        return (value is None) == want_missing
    negated = op in _NEGATED
    base = _NEGATED.get(op, op)
    if base not in _POSITIVE or qualifier not in ("", "ForAnyValue", "ForAllValues"):
        return _UNKNOWN
    if value is None:
        if qualifier == "ForAllValues":
            return True
        return if_exists or negated
    values = [str(v) for v in _as_list(value)]
    results = [_single_test(base, expected, v) for v in values]
    if qualifier == "ForAllValues":
        return all((not r) if negated else r for r in results)
    if qualifier == "ForAnyValue":
        return any((not r) if negated else r for r in results)
    hit = any(results)
    return (not hit) if negated else hit


def _conditions(block: Any, ctx: Mapping[str, Any]) -> Any:
    """True when every condition holds, False when one fails, _UNKNOWN when one cannot be evaluated."""
    if not block:
        return True
    if not isinstance(block, Mapping):
        return _UNKNOWN
    unknown = False
    for operator, tests in block.items():
        if not isinstance(tests, Mapping):
            return _UNKNOWN
        for key, expected in tests.items():
            result = _condition_test(str(operator), str(key), expected, ctx)
            if result is _UNKNOWN:
                unknown = True
            elif not result:
                return False
    return _UNKNOWN if unknown else True


def _matches(statement: Mapping[str, Any], action: str, resource: str) -> bool:
    if "Action" in statement:
        if not any(_like(a, action, ignore_case=True) for a in _as_list(statement["Action"])):
            return False
    elif any(_like(a, action, ignore_case=True) for a in _as_list(statement.get("NotAction"))):
        return False
    if "NotResource" in statement:
        return not any(_like(r, resource) for r in _as_list(statement["NotResource"]))
    return any(_like(r, resource) for r in _as_list(statement.get("Resource")))


def _principal_matches(statement: Mapping[str, Any], principal: Principal, account: str) -> bool:
    spec = statement.get("Principal")
    if spec == "*":
        return True
    if "NotPrincipal" in statement:
        return False  # not evaluated: such a statement never grants here
    names = _as_list(spec.get("AWS")) if isinstance(spec, Mapping) else []
    ours = {principal.arn, principal.session_arn, f"arn:aws:iam::{account}:root", account}
    return any(n == "*" or n in ours for n in names)


def _applies(statement: Mapping[str, Any], action: str, resource: str, ctx: Mapping[str, Any]) -> bool:
    if not _matches(statement, action, resource):
        return False
    result = _conditions(statement.get("Condition"), ctx)
    if result is _UNKNOWN:
        return statement.get("Effect") == "Deny"  # never grant on a condition we cannot check
    return bool(result)


# -- principals and the decision --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Principal:
    arn: str  # e.g. arn:aws:iam::123456789012:role/WriterRole
    policies: tuple[dict[str, Any], ...] = field(default=(), repr=False)

    @property
    def session_arn(self) -> str:
        """How AWS names the caller in errors: the assumed-role session for a role, else the ARN itself."""
        m = re.match(r"^arn:([^:]+):iam::(\d{12}):role/(?:.*/)?([^/]+)$", self.arn)
        if m:
            return f"arn:{m.group(1)}:sts::{m.group(2)}:assumed-role/{m.group(3)}/s3vectors-local"
        return self.arn


def make_principal(access_key_index: int, spec: Any, account: str) -> Principal:
    """A Principal from a list of policy documents, ``{"arn": ..., "policies": [...]}`` or a Principal."""
    if isinstance(spec, Principal):
        return spec
    if isinstance(spec, Mapping) and "policies" in spec:
        arn = str(spec.get("arn") or f"arn:aws:iam::{account}:user/principal-{access_key_index}")
        docs = spec["policies"]
    elif isinstance(spec, Mapping) and "Statement" in spec:
        arn, docs = f"arn:aws:iam::{account}:user/principal-{access_key_index}", [spec]
    else:
        arn, docs = f"arn:aws:iam::{account}:user/principal-{access_key_index}", spec
    return Principal(arn, tuple(load_policy(d) for d in _as_list(docs)))


class Authorizer:
    """Authorizes (access key, operation, params); raises AccessDeniedError like IAM."""

    def __init__(
        self,
        principals: Mapping[str, Any],
        *,
        account_id: str,
        region: str,
        partition: str = "aws",
        bucket_policy: Callable[[str], str | None] | None = None,
    ) -> None:
        self.principals = {key: make_principal(i, spec, account_id) for i, (key, spec) in enumerate(principals.items())}
        self.arns = ArnBuilder(partition, region, account_id)
        self.bucket_policy = bucket_policy

    def __repr__(self) -> str:
        return f"Authorizer({len(self.principals)} principal(s))"

    def authorize(self, access_key: str | None, operation: str, params: Mapping[str, Any]) -> None:
        principal = self.principals.get(access_key or "")
        needed = required_permissions(operation, params, self.arns)
        if needed is None:
            return  # the request names no resource: validation refuses it before anything is read
        if principal is None:
            principal = Principal(f"arn:aws:iam::{self.arns.account}:user/unknown")  # no policies: denied
        ctx = request_context(operation, params, principal, self.arns)
        resource_policy = self._resource_policy(needed[0].resource)
        for permission in needed:
            self._check(principal, permission, ctx, resource_policy)

    def _resource_policy(self, resource: str) -> list[dict[str, Any]]:
        if self.bucket_policy is None or resource == "*":
            return []
        parts = parse_arn(resource)
        if not parts or not parts.get("bucket"):
            return []
        try:
            text = self.bucket_policy(str(parts["bucket"]))
            return load_policy(text)["Statement"] if text else []
        except (ValueError, TypeError):
            return []

    def _check(self, principal: Principal, permission: Permission, ctx: Mapping[str, Any],
               resource_policy: list[dict[str, Any]]) -> None:
        action, resource = permission.action, permission.resource
        identity = [s for doc in principal.policies for s in doc["Statement"]]
        by_resource = [s for s in resource_policy if _principal_matches(s, principal, self.arns.account)]
        denied_by = None
        if any(s["Effect"] == "Deny" and _applies(s, action, resource, ctx) for s in identity):
            denied_by = "with an explicit deny in an identity-based policy"
        elif any(s.get("Effect") == "Deny" and _applies(s, action, resource, ctx) for s in by_resource):
            denied_by = "with an explicit deny in a resource-based policy"
        elif any(s["Effect"] == "Allow" and _applies(s, action, resource, ctx) for s in identity) or any(
            s.get("Effect") == "Allow" and "Action" in s and _applies(s, action, resource, ctx) for s in by_resource
        ):
            return
        raise AccessDeniedError(
            f"User: {principal.session_arn} is not authorized to perform: {action} on resource: {resource} "
            + (denied_by or f"because no identity-based policy allows the {action} action")
        )


# -- principals from a synthesized template ------------------------------------------------------------------------
def template_roles(
    template: Path | str,
    *,
    stack_name: str | None = None,
    account_id: str | None = None,
    region: str | None = None,
    endpoint_url: str | None = None,
    client: Any = None,
) -> dict[str, Principal]:
    """Every IAM role of the template with its identity policies, ARNs resolved.

    Keys: the role's logical id, and the name of every output whose value is the role's ARN (e.g.
    ``WriterRoleArn``). With ``endpoint_url`` the bucket and index ARNs are looked up on that endpoint
    (they must have been provisioned; ``client``: one with credentials it accepts); without it they are computed
    as ``provision`` names them.
    """
    from s3vectors_local import provisioning

    resolved = provisioning.resolve_template(
        template, stack_name=stack_name, account_id=account_id, region=region, endpoint_url=endpoint_url,
        client=client,
    )
    tpl = resolved.template
    roles = {lid: tpl.attrs[lid]["Arn"] for lid, rtype, _ in resolved.resources if rtype == "AWS::IAM::Role"}
    names = {tpl.refs[lid]: lid for lid in roles}
    documents: dict[str, list[dict[str, Any]]] = {lid: [] for lid in roles}
    managed: dict[str, dict[str, Any]] = {}
    for lid, rtype, props in resolved.resources:
        if rtype == "AWS::IAM::ManagedPolicy" and props.get("PolicyDocument"):
            managed[tpl.refs[lid]] = props["PolicyDocument"]
    for lid, rtype, props in resolved.resources:
        if rtype == "AWS::IAM::Role":
            documents[lid] += [p["PolicyDocument"] for p in props.get("Policies", []) if p.get("PolicyDocument")]
            documents[lid] += [managed[a] for a in props.get("ManagedPolicyArns", []) if a in managed]
        elif rtype in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy") and props.get("PolicyDocument"):
            for role_name in props.get("Roles", []):
                if role_name in names:
                    documents[names[role_name]].append(props["PolicyDocument"])
    principals = {lid: Principal(arn, tuple(load_policy(d) for d in documents[lid])) for lid, arn in roles.items()}
    for output, value in resolved.outputs.items():
        for lid, arn in roles.items():
            if value == arn:
                principals[output] = principals[lid]
    return principals


def template_principals(
    template: Path | str,
    roles: Mapping[str, str],
    *,
    stack_name: str | None = None,
    account_id: str | None = None,
    region: str | None = None,
    endpoint_url: str | None = None,
    client: Any = None,
) -> dict[str, Principal]:
    """``{access_key: Principal}`` for ``roles`` = ``{role logical id or output name: access_key}``."""
    found = template_roles(template, stack_name=stack_name, account_id=account_id, region=region,
                           endpoint_url=endpoint_url, client=client)
    missing = [r for r in roles if r not in found]
    if missing:
        raise KeyError(f"no IAM role {missing} in {template}; roles: {sorted(found)}")
    return {access_key: found[role] for role, access_key in roles.items()}


def principals_file_data(principals: Mapping[str, Principal]) -> dict[str, Any]:
    """The JSON that ``serve --iam-policies FILE`` reads back."""
    return {key: {"arn": p.arn, "policies": list(p.policies)} for key, p in principals.items()}


def read_principals_file(path: Path | str) -> dict[str, Any]:
    data = json.loads(Path(path).read_text())
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected an object mapping access keys to policies")
    return data
