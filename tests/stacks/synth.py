"""Synthesize the app in-process exactly as `cdk synth` does: same entry point, same cdk.json context."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import aws_cdk as cdk
from aws_cdk.assertions import Template

from app import build_app

REPO_ROOT = Path(__file__).resolve().parents[2]


def cdk_json_context() -> dict[str, Any]:
    return dict(json.loads((REPO_ROOT / "cdk.json").read_text())["context"])


# What the CDK CLI adds to the context of every `cdk synth` by default (path metadata, asset
# metadata, version reporting), so the in-process template is byte-for-byte the CLI's.
CLI_DEFAULT_CONTEXT = {
    "aws:cdk:enable-path-metadata": True,
    "aws:cdk:enable-asset-metadata": True,
    "aws:cdk:version-reporting": True,
    "aws:cdk:bundling-stacks": ["**"],
}


def synth(outdir: Path, **context: Any) -> tuple[Template, dict[str, Any]]:
    """Return the stack's template (for assertions) and the raw template JSON (for snapshots)."""
    app = cdk.App(context={**CLI_DEFAULT_CONTEXT, **cdk_json_context(), **context}, outdir=str(outdir))
    stack = build_app(app)
    assembly = app.synth()  # raises if a cdk-nag check fails
    raw = assembly.get_stack_artifact(stack.artifact_id).template
    return Template.from_stack(stack), raw


def cli_synth(outdir: Path, *args: str) -> None:
    """Run the pinned CDK CLI, ``npx cdk synth --quiet [args] --output outdir``, from the repository root."""
    cli = REPO_ROOT / "node_modules" / ".bin" / "cdk"
    assert cli.exists(), "the pinned CDK CLI is missing: run `make setup` (npm ci)"
    env = {**os.environ, "PATH": f"{REPO_ROOT / 'node_modules' / '.bin'}{os.pathsep}{os.environ['PATH']}"}
    env["JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION"] = "20"
    subprocess.run(
        ["npx", "cdk", "synth", "--quiet", *args, "--output", str(outdir)],
        cwd=REPO_ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
        timeout=300,
    )


def synth_warnings(outdir: Path, **context: Any) -> list[str]:
    """Warnings that `cdk synth` prints for the stack."""
    app = cdk.App(context={**CLI_DEFAULT_CONTEXT, **cdk_json_context(), **context}, outdir=str(outdir))
    stack = build_app(app)
    artifact = app.synth().get_stack_artifact(stack.artifact_id)
    return [str(message.entry.data) for message in artifact.messages if message.entry.type == "aws:cdk:warning"]


def validation_violations(outdir: Path) -> list[str]:
    """cdk-nag findings (the report also lists the stack's own annotations; those are not findings)."""
    report = json.loads((outdir / "validation-report.json").read_text())
    return [
        violation["ruleName"]
        for plugin in report.get("pluginReports", [])
        for violation in plugin.get("violations", [])
        if not violation["ruleName"].startswith("Annotation:")
    ]
