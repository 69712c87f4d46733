#!/usr/bin/env python3
"""CDK entry point: the only place that reads the context."""

from __future__ import annotations

import sys

import aws_cdk as cdk
from aws_cdk import Validations
from cdk_nag import AwsSolutionsChecks

from loader.contract import DEFAULT_STACK_NAME
from stacks.doc_search_stack import DocSearchStack
from stacks.settings import CONTEXT_KEYS, SettingsError, settings_from_context


def build_app(app: cdk.App) -> DocSearchStack:
    """Add the stack and the cdk-nag checks to ``app``; tests call this with cdk.json's context.

    The stack is environment-agnostic (no account or region pinned): `cdk synth` is deterministic
    and offline, and `cdk deploy` takes both from the caller's credentials.
    """
    context = {key: app.node.try_get_context(key) for key in CONTEXT_KEYS}
    settings = settings_from_context({key: value for key, value in context.items() if value is not None})
    stack = DocSearchStack(
        app,
        DEFAULT_STACK_NAME,
        settings=settings,
        description="S3 Vectors document search: vector bucket, index and access roles",
    )
    Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    return stack


if __name__ == "__main__":
    cdk_app = cdk.App()
    try:
        build_app(cdk_app)
    except SettingsError as error:
        sys.exit(f"error: {error}")
    cdk_app.synth()
