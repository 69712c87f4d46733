"""Just enough CloudFormation to read a CDK-synthesized template: intrinsics, conditions, names.

Physical names that the template leaves out are generated the way CloudFormation does it,
"<stack name>-<logical id>-<random suffix>", except that the suffix is derived from a hash of
(account, region, stack, logical id) so the same template provisions the same names every time;
for S3 Vectors resources the name is lowercased and cut to the 3-63 character naming rules.
Resources that are not emulated (IAM, KMS, Lambda, ...) get deterministic, plausible ARNs and ids so
that outputs and policies referring to them resolve.
"""

from __future__ import annotations

import base64
import hashlib
import re
import uuid
from collections.abc import Callable
from typing import Any

NO_VALUE = object()  # AWS::NoValue: the property is removed

VECTOR_BUCKET = "AWS::S3Vectors::VectorBucket"
INDEX = "AWS::S3Vectors::Index"
BUCKET_POLICY = "AWS::S3Vectors::VectorBucketPolicy"


def _suffix(*parts: str, n: int = 12, upper: bool = False) -> str:
    digest = hashlib.sha256("\x00".join(parts).encode()).digest()
    text = base64.b32encode(digest).decode().rstrip("=")[:n]
    return text if upper else text.lower()


def generated_name(stack: str, logical_id: str, account: str, region: str, *, lower: bool, max_len: int,
                   allowed: str = "a-z0-9-") -> str:
    suffix = _suffix(account, region, stack, logical_id, upper=not lower)
    base = f"{stack}-{logical_id}"
    if lower:
        base = base.lower()
    base = re.sub(f"[^{allowed}{'' if lower else 'A-Z'}]+", "-", base).strip("-.")
    base = base[: max_len - len(suffix) - 1].rstrip("-.")
    return f"{base}-{suffix}" if base else suffix


class Template:
    def __init__(self, template: dict[str, Any], *, stack: str, account: str, region: str,
                 partition: str = "aws") -> None:
        self.t = template
        self.stack, self.account, self.region, self.partition = stack, account, region, partition
        self.resources: dict[str, dict[str, Any]] = template.get("Resources", {})
        self.params = {
            name: spec.get("Default") for name, spec in template.get("Parameters", {}).items()
        }
        self.pseudo = {
            "AWS::Region": region,
            "AWS::AccountId": account,
            "AWS::StackName": stack,
            "AWS::Partition": partition,
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::StackId": f"arn:{partition}:cloudformation:{region}:{account}:stack/{stack}/"
            f"{uuid.UUID(hashlib.md5(f'{account}{region}{stack}'.encode()).hexdigest())}",
            "AWS::NotificationARNs": [],
        }
        # Physical ids and attributes of resources that exist; filled in by the provisioner.
        self.refs: dict[str, Any] = {}
        self.attrs: dict[str, dict[str, Any]] = {}
        self._conditions: dict[str, bool] = {}

    # -- conditions ----------------------------------------------------------------------------------
    def condition(self, name: str) -> bool:
        if name not in self._conditions:
            self._conditions[name] = bool(self.resolve(self.t.get("Conditions", {})[name]))
        return self._conditions[name]

    def active(self, logical_id: str) -> bool:
        cond = self.resources[logical_id].get("Condition")
        return cond is None or self.condition(cond)

    # -- dependencies ----------------------------------------------------------------------------------
    def dependencies(self, logical_id: str) -> set[str]:
        res = self.resources[logical_id]
        deps = set(res.get("DependsOn", []) if isinstance(res.get("DependsOn"), list)
                   else [res["DependsOn"]] if res.get("DependsOn") else [])

        def walk(node: Any) -> None:
            if isinstance(node, dict):
                if "Ref" in node and node["Ref"] in self.resources:
                    deps.add(node["Ref"])
                if "Fn::GetAtt" in node:
                    target = node["Fn::GetAtt"]
                    target = target.split(".")[0] if isinstance(target, str) else target[0]
                    if target in self.resources:
                        deps.add(target)
                if "Fn::Sub" in node:
                    text = node["Fn::Sub"] if isinstance(node["Fn::Sub"], str) else node["Fn::Sub"][0]
                    for var in re.findall(r"\$\{([^}!]+)\}", text):
                        if var.split(".")[0] in self.resources:
                            deps.add(var.split(".")[0])
                for v in node.values():
                    walk(v)
            elif isinstance(node, list):
                for v in node:
                    walk(v)

        walk(res.get("Properties", {}))
        return deps

    def order(self) -> list[str]:
        """Active resources, each after the resources it refers to."""
        done: list[str] = []
        seen: set[str] = set()

        def visit(lid: str, path: tuple[str, ...]) -> None:
            if lid in seen:
                return
            if lid in path:
                raise ValueError(f"circular dependency through {lid}")
            for dep in sorted(self.dependencies(lid)):
                visit(dep, (*path, lid))
            seen.add(lid)
            if self.active(lid):
                done.append(lid)

        for lid in self.resources:
            visit(lid, ())
        return done

    # -- intrinsic functions -----------------------------------------------------------------------------
    def resolve(self, node: Any) -> Any:
        if isinstance(node, list):
            return [v for v in (self.resolve(x) for x in node) if v is not NO_VALUE]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            ((key, arg),) = node.items()
            fn: Callable[[Any], Any] | None = self._functions().get(key)
            if fn is not None:
                return fn(arg)
        out = {}
        for k, v in node.items():
            r = self.resolve(v)
            if r is not NO_VALUE:
                out[k] = r
        return out

    def _functions(self) -> dict[str, Callable[[Any], Any]]:
        return {
            "Ref": self._ref,
            "Fn::GetAtt": self._get_att,
            "Fn::Join": lambda a: str(self.resolve(a[0])).join(str(x) for x in self.resolve(a[1])),
            "Fn::Select": lambda a: self.resolve(a[1])[int(self.resolve(a[0]))],
            "Fn::Split": lambda a: str(self.resolve(a[1])).split(str(self.resolve(a[0]))),
            "Fn::Sub": self._sub,
            "Fn::If": lambda a: self.resolve(a[1] if self.condition(a[0]) else a[2]),
            "Fn::Equals": lambda a: self.resolve(a[0]) == self.resolve(a[1]),
            "Fn::Not": lambda a: not self.resolve(a[0]),
            "Fn::And": lambda a: all(self.resolve(x) for x in a),
            "Fn::Or": lambda a: any(self.resolve(x) for x in a),
            "Condition": self.condition,
            "Fn::Base64": lambda a: base64.b64encode(str(self.resolve(a)).encode()).decode(),
            "Fn::GetAZs": lambda a: [f"{self.region}{z}" for z in "abc"],
        }

    def _ref(self, name: str) -> Any:
        if name == "AWS::NoValue":
            return NO_VALUE
        if name in self.pseudo:
            return self.pseudo[name]
        if name in self.params:
            return self.params[name]
        if name in self.refs:
            return self.refs[name]
        raise KeyError(f"Ref to {name!r}, which is neither a parameter nor a provisioned resource")

    def _get_att(self, arg: Any) -> Any:
        lid, attr = arg.split(".", 1) if isinstance(arg, str) else (arg[0], self.resolve(arg[1]))
        try:
            return self.attrs[lid][attr]
        except KeyError:
            raise KeyError(f"Fn::GetAtt {lid}.{attr} is not available") from None

    def _sub(self, arg: Any) -> str:
        text, variables = (arg, {}) if isinstance(arg, str) else (arg[0], self.resolve(arg[1]))

        def one(m: re.Match[str]) -> str:
            name = m.group(1)
            if name.startswith("!"):
                return "${" + name[1:] + "}"
            if name in variables:
                return str(variables[name])
            if "." in name and name.split(".")[0] in self.resources:
                return str(self._get_att(name))
            return str(self._ref(name))

        return re.sub(r"\$\{([^}]+)\}", one, text)

    # -- resources that are not emulated ---------------------------------------------------------------------
    def placeholder(self, logical_id: str) -> tuple[Any, dict[str, Any]]:
        """(Ref value, attributes) for a resource type the endpoint does not emulate."""
        rtype: str = self.resources[logical_id]["Type"]
        props = self.resources[logical_id].get("Properties", {})
        acct, region, part = self.account, self.region, self.partition
        name = generated_name(self.stack, logical_id, acct, region, lower=False, max_len=64, allowed="a-zA-Z0-9-")
        service = rtype.split("::")[1].lower() if rtype.count("::") == 2 else "custom"
        if rtype == "AWS::IAM::Role":
            name = props.get("RoleName", name)
            arn = f"arn:{part}:iam::{acct}:role{props.get('Path', '/')}{name}"
            return name, {"Arn": arn, "RoleId": "AROA" + _suffix(acct, logical_id, n=17, upper=True)}
        if rtype in ("AWS::IAM::ManagedPolicy",):
            arn = f"arn:{part}:iam::{acct}:policy/{props.get('ManagedPolicyName', name)}"
            return arn, {"PolicyArn": arn}
        if rtype == "AWS::KMS::Key":
            key_id = str(uuid.UUID(hashlib.md5(f"{acct}{region}{self.stack}{logical_id}".encode()).hexdigest()))
            return key_id, {"Arn": f"arn:{part}:kms:{region}:{acct}:key/{key_id}", "KeyId": key_id}
        if rtype == "AWS::KMS::Alias":
            return props.get("AliasName", f"alias/{name}"), {}
        if rtype == "AWS::S3::Bucket":
            bucket = props.get("BucketName") or generated_name(self.stack, logical_id, acct, region, lower=True,
                                                               max_len=63)
            return bucket, {"Arn": f"arn:{part}:s3:::{bucket}", "DomainName": f"{bucket}.s3.amazonaws.com",
                            "RegionalDomainName": f"{bucket}.s3.{region}.amazonaws.com"}
        if rtype == "AWS::Lambda::Function":
            fn = props.get("FunctionName", name)
            return fn, {"Arn": f"arn:{part}:lambda:{region}:{acct}:function:{fn}"}
        arn = f"arn:{part}:{service}:{region}:{acct}:{rtype.split('::')[-1].lower()}/{name}"
        return name, _AnyAttr(arn, name)


class _AnyAttr(dict[str, Any]):
    """Attributes of an unknown resource type: ``Arn`` is an ARN, anything else its physical id."""

    def __init__(self, arn: str, physical_id: str) -> None:
        super().__init__(Arn=arn)
        self._id = physical_id

    def __missing__(self, key: str) -> str:
        return f"{self._id}.{key}"
