"""The stack declares exactly the outputs the loader reads, and the same non-filterable keys."""

from __future__ import annotations

from pathlib import Path

from loader import contract
from tests.stacks.synth import synth


def test_stack_outputs_are_the_contract_names(tmp_path: Path) -> None:
    _, raw = synth(tmp_path)
    assert set(raw["Outputs"]) == set(contract.Outputs.ALL)
    assert raw["Outputs"][contract.Outputs.NON_FILTERABLE_METADATA_KEYS]["Value"] == ",".join(
        contract.NON_FILTERABLE_METADATA_KEYS
    )
    (index,) = [r for r in raw["Resources"].values() if r["Type"] == "AWS::S3Vectors::Index"]
    assert contract.TEXT_METADATA_KEY in index["Properties"]["MetadataConfiguration"]["NonFilterableMetadataKeys"]


def test_loader_reads_what_cdk_deploy_writes_for_this_stack(tmp_path: Path) -> None:
    """An outputs file keyed by the template's own output names resolves to the right target."""
    import json

    from loader.outputs import read_outputs_file, target_from_outputs

    _, raw = synth(tmp_path / "out")
    deployed = {
        contract.Outputs.VECTOR_BUCKET_NAME: "docs-bucket",
        contract.Outputs.VECTOR_BUCKET_ARN: "arn:aws:s3vectors:eu-west-1:111122223333:bucket/docs-bucket",
        contract.Outputs.INDEX_NAME: "docs-index",
        contract.Outputs.INDEX_ARN: "arn:aws:s3vectors:eu-west-1:111122223333:bucket/docs-bucket/index/docs-index",
        contract.Outputs.DIMENSION: raw["Outputs"][contract.Outputs.DIMENSION]["Value"],
        contract.Outputs.DISTANCE_METRIC: raw["Outputs"][contract.Outputs.DISTANCE_METRIC]["Value"],
        contract.Outputs.NON_FILTERABLE_METADATA_KEYS: "text",
        contract.Outputs.WRITER_ROLE_ARN: "arn:aws:iam::111122223333:role/writer",
        contract.Outputs.READER_ROLE_ARN: "arn:aws:iam::111122223333:role/reader",
        contract.Outputs.REGION: "eu-west-1",
    }
    # `cdk deploy --outputs-file` writes {stack: {output logical id: value}}.
    outputs_file = tmp_path / "cdk-outputs.json"
    outputs_file.write_text(
        json.dumps({contract.DEFAULT_STACK_NAME: {name: deployed[name] for name in raw["Outputs"]}})
    )
    stack, outputs = read_outputs_file(outputs_file, None)
    target = target_from_outputs(outputs, stack_name=stack, origin=str(outputs_file))
    assert (target.bucket, target.index, target.region) == ("docs-bucket", "docs-index", "eu-west-1")
    assert (target.dimension, target.distance_metric) == (384, "cosine")
    assert target.writer_role_arn == deployed[contract.Outputs.WRITER_ROLE_ARN]
    assert target.reader_role_arn == deployed[contract.Outputs.READER_ROLE_ARN]
