#!/usr/bin/env python3
"""CDK entry point: the only place that reads the context."""

from __future__ import annotations

import sys

import aws_cdk as cdk
from aws_cdk import Validations
from cdk_nag import AwsSolutionsChecks

from loader.contract import DEFAULT_STACK_NAME
from stacks.batch_settings import BATCH_CONTEXT_KEYS, batch_settings_from_context
from stacks.batch_stack import BatchStack
from stacks.doc_search_stack import DocSearchStack
from stacks.settings import CONTEXT_KEYS, SettingsError, settings_from_context

BATCH_STACK_NAME = f"{DEFAULT_STACK_NAME}Batch"


def build_app(app: cdk.App) -> DocSearchStack:
    """Add the stack and the cdk-nag checks to ``app``; tests call this with cdk.json's context.

    The stack is environment-agnostic (no account or region pinned): `cdk synth` is deterministic
    and offline, and `cdk deploy` takes both from the caller's credentials.
    """
    context = {key: app.node.try_get_context(key) for key in (*CONTEXT_KEYS, *BATCH_CONTEXT_KEYS)}
    context = {key: value for key, value in context.items() if value is not None}
    settings = settings_from_context({key: context[key] for key in CONTEXT_KEYS if key in context})
    # Validated before any construct exists, so a bad Batch key fails synth with the key's name.
    batch_settings = batch_settings_from_context({key: context[key] for key in BATCH_CONTEXT_KEYS if key in context})
    stack = DocSearchStack(
        app,
        DEFAULT_STACK_NAME,
        settings=settings,
        description="S3 Vectors document search: vector bucket, index and access roles",
    )
    if batch_settings is not None:
        # Optional second stack (context batch=true): AWS Batch runs the loader as sharded array jobs.
        BatchStack(
            app,
            BATCH_STACK_NAME,
            store=stack.store,
            settings=batch_settings,
            description="S3 Vectors document search: AWS Batch queue and job definition for sharded loads",
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
