"""Every option's environment-variable fallback and default, declared once.

Precedence: a flag on the command line, then the environment variable(s) below, then the default.
The CLI declares its flags with ``default=None`` and calls :func:`resolve` so that it can tell "given"
from "defaulted" (``--prune`` given explicitly is allowed to empty an index; the default is not).

``region`` is special: ``LOADER_REGION`` is a real override, but ``AWS_REGION``/``AWS_DEFAULT_REGION``
are only "weak" fallbacks used after the stack's own ``Region`` output, because a shell's default
region says nothing about where the stack was deployed.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from loader import contract
from loader.errors import UsageError

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


@dataclass(frozen=True)
class Setting:
    name: str
    env: tuple[str, ...] = ()
    default: Any = None
    kind: str = "str"  # str | int | bool
    weak_env: tuple[str, ...] = ()


SETTINGS: Mapping[str, Setting] = {
    s.name: s
    for s in (
        # Where to write.
        Setting("outputs_file", ("LOADER_OUTPUTS_FILE",), contract.DEFAULT_OUTPUTS_FILE),
        Setting("stack_name", ("LOADER_STACK_NAME",), contract.DEFAULT_STACK_NAME),
        Setting("bucket", ("LOADER_BUCKET",)),
        Setting("index", ("LOADER_INDEX",)),
        Setting("region", ("LOADER_REGION",), weak_env=("AWS_REGION", "AWS_DEFAULT_REGION")),
        Setting("profile", ("LOADER_PROFILE",)),  # boto3 also honours AWS_PROFILE by itself
        Setting("endpoint_url", ("LOADER_ENDPOINT_URL",)),
        Setting("local", ("LOADER_LOCAL",), False, "bool"),
        Setting("local_dir", ("LOADER_LOCAL_DIR",), ".local-s3vectors"),
        Setting("template", ("LOADER_TEMPLATE",), f"cdk.out/{contract.DEFAULT_STACK_NAME}.template.json"),
        Setting("assume_role", ("LOADER_ASSUME_ROLE",), False, "bool"),
        # Where to read (an s3:// source; boto3 also honours AWS_ENDPOINT_URL_S3 by itself).
        Setting("s3_endpoint_url", ("LOADER_S3_ENDPOINT_URL",)),
        Setting("shard", ("LOADER_SHARD",)),
        # What to embed and how.
        Setting("model", ("LOADER_MODEL",)),  # None: the bundled all-MiniLM-L6-v2 (loader.embedding)
        Setting("device", ("LOADER_DEVICE",)),
        Setting("backend", ("LOADER_BACKEND",)),
        Setting("chunk_tokens", ("LOADER_CHUNK_TOKENS",), None, "int"),  # None: the model's limit
        Setting("overlap_tokens", ("LOADER_OVERLAP_TOKENS",), 32, "int"),
        Setting("batch_size", ("LOADER_BATCH_SIZE",), 64, "int"),
        Setting("max_in_flight", ("LOADER_MAX_IN_FLIGHT",), 8, "int"),
        Setting("strict", ("LOADER_STRICT",), False, "bool"),
        Setting("prune", ("LOADER_PRUNE",), True, "bool"),
        Setting("dry_run", ("LOADER_DRY_RUN",), False, "bool"),
        # Output.
        Setting("json", ("LOADER_JSON",), False, "bool"),
        Setting("quiet", ("LOADER_QUIET",), False, "bool"),
        # Query.
        Setting("top_k", ("LOADER_TOP_K",), 5, "int"),
    )
}


@dataclass(frozen=True)
class Resolved:
    value: Any
    origin: str  # "flag", "env:NAME" or "default"


def _parse(setting: Setting, env_name: str, raw: str) -> Any:
    if setting.kind == "bool":
        low = raw.strip().lower()
        if low in _TRUE:
            return True
        if low in _FALSE:
            return False
        raise UsageError(f"{env_name}={raw!r}: expected one of 1/0, true/false, yes/no, on/off")
    if setting.kind == "int":
        try:
            return int(raw)
        except ValueError:
            raise UsageError(f"{env_name}={raw!r}: expected a whole number") from None
    return raw


def resolve(name: str, cli_value: Any = None, environ: Mapping[str, str] | None = None) -> Resolved:
    """The value of one setting: the flag if given, else its environment variable, else the default."""
    setting = SETTINGS[name]
    env = os.environ if environ is None else environ
    if cli_value is not None:
        return Resolved(cli_value, "flag")
    for env_name in setting.env:
        raw = env.get(env_name)
        if raw is not None and raw != "":
            return Resolved(_parse(setting, env_name, raw), f"env:{env_name}")
    return Resolved(setting.default, "default")


def weak_env(name: str, environ: Mapping[str, str] | None = None) -> Resolved | None:
    """The low-priority environment fallback of ``name`` (``AWS_REGION`` for region), if set."""
    env = os.environ if environ is None else environ
    for env_name in SETTINGS[name].weak_env:
        if env.get(env_name):
            return Resolved(env[env_name], f"env:{env_name}")
    return None


class Options:
    """Resolved settings of one command, with where each value came from."""

    def __init__(self, cli_values: Mapping[str, Any], environ: Mapping[str, str] | None = None) -> None:
        # Settings without a flag on this command (e.g. local_dir) still get their env/default value.
        self._resolved = {name: resolve(name, cli_values.get(name), environ) for name in SETTINGS}
        self._environ = environ

    def __getattr__(self, name: str) -> Any:
        try:
            return self._resolved[name].value
        except KeyError:
            raise AttributeError(name) from None

    def get(self, name: str, default: Any = None) -> Any:
        resolved = self._resolved.get(name)
        return default if resolved is None else resolved.value

    def origin(self, name: str) -> str:
        resolved = self._resolved.get(name)
        return "default" if resolved is None else resolved.origin

    def weak_env(self, name: str) -> Resolved | None:
        return weak_env(name, self._environ)


def help_suffix(name: str) -> str:
    """`` [env: LOADER_X; default: y]`` for --help texts, generated from the table above."""
    setting = SETTINGS[name]
    parts = []
    if setting.env or setting.weak_env:
        parts.append("env: " + ", ".join((*setting.env, *setting.weak_env)))
    if setting.default not in (None, False):
        parts.append(f"default: {setting.default}")
    return f" [{'; '.join(parts)}]" if parts else ""
