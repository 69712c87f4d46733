"""Synthesize the app in-process exactly as `cdk synth` does: same entry point, same cdk.json context."""

from __future__ import annotations

import json
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
