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
    # Provision whenever a template is at hand, not only when the index is missing: provisioning is
    # idempotent, and a re-synthesized template (a renamed index, another dimension) must take effect,
    # as `cdk deploy` would make it.
    if template.is_file() or not _index_exists(endpoint_url, outputs_file, stack_name):
        if not template.is_file():
            raise LoaderError(_no_template(template))
        try:
            provision(
                template, endpoint_url=endpoint_url, outputs_file=outputs_file, stack_name=stack_name
            )
        except (ValueError, KeyError, OSError, RuntimeError) as exc:  # RuntimeError: ProvisionError
            raise LoaderError(f"could not provision {template} on the local endpoint: {exc}") from None
    return endpoint_url, outputs_file


def project_path(path: str | Path, *, explicit: bool) -> Path:
    """``path`` as given when the user chose it, else relative to the nearest folder holding cdk.json."""
    path = Path(path)
    if explicit or path.is_absolute():
        return path
    for folder in (Path.cwd(), *Path.cwd().parents):
        if (folder / "cdk.json").is_file():
            return folder / path
    return path


def _no_template(template: Path) -> str:
    return (
        f"{template.resolve()} not found: run `npx cdk synth` in the project folder first "
        "(--local creates the bucket and index declared in the synthesized template)"
    )
