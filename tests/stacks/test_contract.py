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
