"""The model registry: immutable versions, aliases, approvals, history, integrity checks."""

from mlopsctl.registry.aliases import aliases, get_alias, promote, rollback
from mlopsctl.registry.history import events
from mlopsctl.registry.versions import (
    approval,
    manifest,
    model_names,
    publish,
    read_files,
    resolve,
    set_approval,
    verify,
    version_numbers,
)

__all__ = [
    "aliases",
    "approval",
    "events",
    "get_alias",
    "manifest",
    "model_names",
    "promote",
    "publish",
    "read_files",
    "resolve",
    "rollback",
    "set_approval",
    "verify",
    "version_numbers",
]
