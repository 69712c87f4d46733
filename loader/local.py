"""``--local``: start (or reuse) the local S3 Vectors endpoint and provision the stack's index in it.

The bucket and index come from the synthesized CDK template (``npx cdk synth``), so the local index
has exactly the dimension, metric and non-filterable keys that ``cdk deploy`` would create. The
outputs are written to ``<local dir>/cdk-outputs.json``, never to the user's ``cdk-outputs.json``
(which describes the real deployment).

Every ``--local`` run goes through here, so a run that finds everything in place stays cheap: the
endpoint is found again through its ``endpoint.json`` and probed over plain HTTP
(``s3vectors_local.process``), and the template is provisioned again only when it, the stack name or
the outputs file changed since the last provisioning (``provisioned.json`` records their digests) or
the index is gone; only then are the endpoint's provisioning modules imported.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from pathlib import Path

from loader.errors import LoaderError, TargetError
from loader.outputs import read_outputs_file, target_from_outputs

OUTPUTS_FILE_NAME = "cdk-outputs.json"
PROVISIONED_FILE_NAME = "provisioned.json"  # what the outputs file was last provisioned from


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
    from s3vectors_local import ensure_running  # the package's public API (standard library only)

    outputs_file = local_dir / OUTPUTS_FILE_NAME
    if not outputs_file.exists() and not template.is_file():
        raise LoaderError(_no_template(template))
    try:
        endpoint_url = ensure_running(local_dir)
    except (OSError, RuntimeError, TimeoutError) as exc:
        raise LoaderError(f"could not start the local S3 Vectors endpoint in {local_dir}: {exc}") from None
    if not template.is_file():
        if not _index_exists(endpoint_url, outputs_file, stack_name):
            raise LoaderError(_no_template(template))
        return endpoint_url, outputs_file
    # Provision whenever the template (or the stack name, or the outputs file) differs from what was last
    # provisioned, not only when the index is missing: a re-synthesized template (a renamed index, another
    # dimension) must take effect, as `cdk deploy` would make it. Provisioning is idempotent; skipping it
    # when nothing changed only saves its time.
    stamp = local_dir / PROVISIONED_FILE_NAME
    if _read_json(stamp) == _provisioned(template, outputs_file, stack_name) and _index_exists(
        endpoint_url, outputs_file, stack_name
    ):
        return endpoint_url, outputs_file
    from s3vectors_local import provision

    try:
        provision(template, endpoint_url=endpoint_url, outputs_file=outputs_file, stack_name=stack_name)
    except (ValueError, KeyError, OSError, RuntimeError) as exc:  # RuntimeError: ProvisionError
        raise LoaderError(f"could not provision {template} on the local endpoint: {exc}") from None
    _write_json(stamp, _provisioned(template, outputs_file, stack_name))
    return endpoint_url, outputs_file


def _provisioned(template: Path, outputs_file: Path, stack_name: str) -> dict[str, str | None]:
    """The digests that say whether ``outputs_file`` is what provisioning ``template`` would write."""
    return {"template": _digest(template), "stack_name": stack_name, "outputs": _digest(outputs_file)}


def _digest(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def _read_json(path: Path) -> object:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _write_json(path: Path, data: object) -> None:
    """Best effort (a read-only folder only means provisioning again next time); atomic for concurrent runs."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
        os.replace(tmp, path)
    except OSError:
        with contextlib.suppress(OSError):
            tmp.unlink()


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
