"""Resolve the target (bucket, index, region, roles) from the stack's outputs or from flags.

Sources, first match wins:

1. ``--bucket`` and ``--index`` (or LOADER_BUCKET/LOADER_INDEX): no outputs needed;
2. the outputs file written by ``npx cdk deploy --outputs-file cdk-outputs.json``, shaped
   ``{stack: {OutputName: value}}`` (the stack ``--stack-name``, or the only stack in the file);
3. CloudFormation ``DescribeStacks`` for ``--stack-name``, when a stack name was given explicitly and no
   outputs file names it.

Single flags (``--bucket``, ``--index``, ``--region``) override the matching output, so one can point
the loader at another index of the same stack.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from loader.contract import DEFAULT_STACK_NAME, Outputs
from loader.errors import TargetError

DEPLOY_HINT = (
    "run `npx cdk deploy --outputs-file cdk-outputs.json` to deploy the stack and write it, "
    "pass --bucket and --index, or use --local for the local endpoint"
)


@dataclass(frozen=True)
class Target:
    bucket: str
    index: str
    region: str | None = None
    index_arn: str | None = None
    writer_role_arn: str | None = None
    reader_role_arn: str | None = None
    dimension: int | None = None  # as declared by the stack (GetIndex is the authority)
    distance_metric: str | None = None
    stack_name: str | None = None
    endpoint_url: str | None = None
    origin: str = ""  # where the values came from, shown by `status` and in the summary
    outputs: Mapping[str, str] = field(default_factory=dict)

    def index_ref(self) -> dict[str, Any]:
        """The request parameters naming the index (bucket name + index name)."""
        return {"vectorBucketName": self.bucket, "indexName": self.index}


def read_outputs_file(path: Path, stack_name: str | None) -> tuple[str, dict[str, str]]:
    """Return (stack name, outputs) from a ``cdk deploy --outputs-file`` file.

    ``stack_name`` None means "the default stack, or the only stack in the file".
    """
    try:
        raw = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise TargetError(f"outputs file {path} not found: {DEPLOY_HINT}") from None
    except OSError as exc:
        raise TargetError(f"cannot read outputs file {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise TargetError(
            f"outputs file {path} is not UTF-8 text; re-run `npx cdk deploy --outputs-file {path}`"
        ) from None
    if not raw.strip():
        raise TargetError(
            f"outputs file {path} is empty (was `cdk deploy` interrupted?); "
            f"re-run `npx cdk deploy --outputs-file {path}`"
        )
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise TargetError(
            f"outputs file {path} is not valid JSON (truncated?): {exc.msg} (line {exc.lineno}, column {exc.colno}); "
            f"re-run `npx cdk deploy --outputs-file {path}`"
        ) from None
    if not isinstance(data, dict) or not data or not all(isinstance(v, dict) for v in data.values()):
        raise TargetError(
            f"outputs file {path} is not shaped like `cdk deploy --outputs-file` output "
            '({"StackName": {"OutputName": "value"}}); re-run `npx cdk deploy --outputs-file ' + f"{path}`"
        )
    wanted = stack_name or DEFAULT_STACK_NAME
    if wanted in data:
        chosen = wanted
    elif stack_name is None and len(data) == 1:
        chosen = next(iter(data))
    else:
        raise TargetError(
            f"outputs file {path} has no stack {wanted!r} (it has: {', '.join(sorted(data))}); pass --stack-name"
        )
    return chosen, {str(k): str(v) for k, v in data[chosen].items()}


def describe_stack(cloudformation: Any, stack_name: str) -> dict[str, str]:
    """The outputs of a deployed stack, from CloudFormation ``DescribeStacks``."""
    from botocore.exceptions import ClientError

    try:
        response = cloudformation.describe_stacks(StackName=stack_name)
    except ClientError as exc:
        message = exc.response.get("Error", {}).get("Message", str(exc))
        raise TargetError(f"CloudFormation stack {stack_name!r}: {message}; {DEPLOY_HINT}") from None
    stacks = response.get("Stacks") or []
    if not stacks:
        raise TargetError(f"CloudFormation stack {stack_name!r} not found; {DEPLOY_HINT}")
    return {o["OutputKey"]: o["OutputValue"] for o in stacks[0].get("Outputs", []) if "OutputKey" in o}


def target_from_outputs(outputs: Mapping[str, str], *, stack_name: str, origin: str) -> Target:
    missing = [name for name in (Outputs.VECTOR_BUCKET_NAME, Outputs.INDEX_NAME) if not outputs.get(name)]
    if missing:
        raise TargetError(
            f"{origin} lacks the output(s) {', '.join(missing)}; was it written by this project's stack? "
            "Redeploy with `npx cdk deploy --outputs-file cdk-outputs.json`"
        )
    dimension = outputs.get(Outputs.DIMENSION)
    return Target(
        bucket=outputs[Outputs.VECTOR_BUCKET_NAME],
        index=outputs[Outputs.INDEX_NAME],
        region=outputs.get(Outputs.REGION) or None,
        index_arn=outputs.get(Outputs.INDEX_ARN) or None,
        writer_role_arn=outputs.get(Outputs.WRITER_ROLE_ARN) or None,
        reader_role_arn=outputs.get(Outputs.READER_ROLE_ARN) or None,
        dimension=int(dimension) if dimension and dimension.isdigit() else None,
        distance_metric=outputs.get(Outputs.DISTANCE_METRIC) or None,
        stack_name=stack_name,
        origin=origin,
        outputs=dict(outputs),
    )


def resolve_target(
    *,
    outputs_file: Path,
    outputs_file_explicit: bool,
    stack_name: str | None,
    bucket: str | None = None,
    index: str | None = None,
    region: str | None = None,
    fallback_region: str | None = None,
    endpoint_url: str | None = None,
    cloudformation: Callable[[str | None], Any] | None = None,
) -> Target:
    """Find the target; ``stack_name`` None means "not given" (the default stack name applies).

    ``region`` is an explicit override; ``fallback_region`` (AWS_REGION...) only fills a gap.
    ``cloudformation(region)`` returns a CloudFormation client, used only for DescribeStacks.
    """
    target: Target | None = None
    if bucket and index:
        target = Target(bucket=bucket, index=index, origin="--bucket/--index")
    elif outputs_file_explicit or outputs_file.exists():
        try:
            chosen, outputs = read_outputs_file(outputs_file, stack_name)
        except TargetError:
            # A stack named explicitly that the default file does not list: ask CloudFormation.
            if outputs_file_explicit or stack_name is None or cloudformation is None:
                raise
        else:
            target = target_from_outputs(outputs, stack_name=chosen, origin=f"{outputs_file} (stack {chosen})")
    if target is None and stack_name is not None and cloudformation is not None:
        outputs = describe_stack(cloudformation(region or fallback_region), stack_name)
        target = target_from_outputs(outputs, stack_name=stack_name, origin=f"CloudFormation stack {stack_name}")
    if target is None:
        raise TargetError(f"no target index: {outputs_file} not found; {DEPLOY_HINT}")
    overrides: dict[str, Any] = {}
    if bucket:
        overrides["bucket"] = bucket
    if index:
        overrides["index"] = index
    if bucket or index:
        overrides["index_arn"] = None  # the ARN would name the other index
    overrides["region"] = region or target.region or fallback_region
    overrides["endpoint_url"] = endpoint_url
    return replace(target, **overrides)
