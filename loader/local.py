"""``--local``: start (or reuse) the local S3 Vectors endpoint and provision the stack's index in it.

The bucket and index come from the synthesized CDK template (``npx cdk synth``), so the local index
has exactly the dimension, metric and non-filterable keys that ``cdk deploy`` would create. The
outputs are written to ``<local dir>/cdk-outputs.json``, never to the user's ``cdk-outputs.json``
(which describes the real deployment).
"""

from __future__ import annotations

from pathlib import Path

from loader.errors import LoaderError, TargetError
from loader.outputs import read_outputs_file, target_from_outputs

OUTPUTS_FILE_NAME = "cdk-outputs.json"


def _index_exists(endpoint_url: str, outputs_file: Path, stack_name: str) -> bool:
    from botocore.exceptions import ClientError

    from loader.client import make_session, s3vectors_client

    try:
        chosen, outputs = read_outputs_file(outputs_file, stack_name)
        target = target_from_outputs(outputs, stack_name=chosen, origin=str(outputs_file))
    except TargetError:
        return False
    client = s3vectors_client(make_session(region=target.region, local=True), endpoint_url=endpoint_url)
    try:
        client.get_index(**target.index_ref())
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "NotFoundException":
            return False
        raise
    return True


def prepare_local(local_dir: Path, *, template: Path, stack_name: str) -> tuple[str, Path]:
    """(endpoint URL, outputs file) of a running local endpoint whose index exists."""
    from s3vectors_local import ensure_running, provision  # the package's public API

    outputs_file = local_dir / OUTPUTS_FILE_NAME
    if not outputs_file.exists() and not template.is_file():
        raise LoaderError(_no_template(template))
    try:
        endpoint_url = ensure_running(local_dir)
    except (OSError, RuntimeError, TimeoutError) as exc:
        raise LoaderError(f"could not start the local S3 Vectors endpoint in {local_dir}: {exc}") from None
    if not _index_exists(endpoint_url, outputs_file, stack_name):
        if not template.is_file():
            raise LoaderError(_no_template(template))
        try:
            provision(
                template, endpoint_url=endpoint_url, outputs_file=outputs_file, stack_name=stack_name
            )
        except (ValueError, KeyError, OSError, RuntimeError) as exc:  # RuntimeError: ProvisionError
            raise LoaderError(f"could not provision {template} on the local endpoint: {exc}") from None
    return endpoint_url, outputs_file


def _no_template(template: Path) -> str:
    return (
        f"{template} not found: run `npx cdk synth` first (--local creates the bucket and index declared in "
        "the synthesized template)"
    )
