"""The real CLI (`npx cdk synth`) writes the same template the in-process tests check."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from loader.contract import DEFAULT_STACK_NAME
from tests.stacks.synth import REPO_ROOT, synth


@pytest.mark.slow
def test_npx_cdk_synth_matches_in_process_template(tmp_path: Path) -> None:
    cli = REPO_ROOT / "node_modules" / ".bin" / "cdk"
    assert cli.exists(), "the pinned CDK CLI is missing: run `make setup` (npm ci)"
    assert shutil.which("npx"), "npx (Node.js) is required"
    env = {**os.environ, "PATH": f"{REPO_ROOT / 'node_modules' / '.bin'}{os.pathsep}{os.environ['PATH']}"}
    env["JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION"] = "20"
    outdir = tmp_path / "cli.out"
    subprocess.run(
        ["npx", "cdk", "synth", "--quiet", "--output", str(outdir)],
        cwd=REPO_ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
        timeout=300,
    )
    from_cli = json.loads((outdir / f"{DEFAULT_STACK_NAME}.template.json").read_text())
    _, in_process = synth(tmp_path / "in-process.out")
    assert from_cli == in_process
