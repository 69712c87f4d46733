"""The loader's expected errors: the CLI prints them as one line, without a traceback.

``LoaderError`` means "the run failed" (exit status 1); ``UsageError`` means "the command line or
its input is wrong" (exit status 2, like argparse's own errors).
"""

from __future__ import annotations


class LoaderError(Exception):
    """A failure the user can act on; the message says what happened and what to do."""

    exit_code = 1


class UsageError(LoaderError):
    """An invalid option, value or filter."""

    exit_code = 2


class TargetError(LoaderError):
    """The bucket/index to use could not be resolved (no outputs file, malformed outputs...)."""


class IndexMismatchError(LoaderError):
    """The index cannot hold what the loader writes (dimension, metric, filterable text key)."""


class WriteError(LoaderError):
    """A PutVectors/DeleteVectors request failed for good (after retries)."""
