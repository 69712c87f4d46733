"""The real CLI (`npx cdk synth`) writes the same template the in-process tests check."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from loader.contract import DEFAULT_STACK_NAME
from tests.stacks.synth import cli_synth, synth


@pytest.mark.slow
def test_npx_cdk_synth_matches_in_process_template(tmp_path: Path) -> None:
    assert shutil.which("npx"), "npx (Node.js) is required"
    outdir = tmp_path / "cli.out"
    cli_synth(outdir)
    from_cli = json.loads((outdir / f"{DEFAULT_STACK_NAME}.template.json").read_text())
    _, in_process = synth(tmp_path / "in-process.out")
    assert from_cli == in_process
