"""The kind registry: kind name -> the module that defines it, imported lazily.

A configuration names each application's ``kind``; :func:`load_kind` imports the module
listed here only then, so ``portkit serve`` with a web site never imports the mail code.
Each module exposes ``KINDS: Mapping[str, Kind]`` (one module may define several kinds,
as the mail module does for ``smtp``, ``pop3`` and ``imap``).
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

from portkit._errors import ConfigError
from portkit.host._app import Kind

__all__ = ["KIND_MODULES", "kind_names", "load_kind"]

#: kind name -> module path. Adding a kind is one line here plus its module.
KIND_MODULES: Mapping[str, str] = {
    "console": "portkit.host.apps.console",
    "echo": "portkit.host.apps.echo",
    "exec": "portkit.host.apps.exec",
    "forward": "portkit.host.apps.forward",
    "imap": "portkit.host.apps.mail",
    "pop3": "portkit.host.apps.mail",
    "smtp": "portkit.host.apps.mail",
    "video": "portkit.host.apps.video",
    "web": "portkit.host.apps.web",
}


def kind_names() -> list[str]:
    """Every kind name the registry knows, sorted."""
    return sorted(KIND_MODULES)


def load_kind(name: str) -> Kind[Any]:
    """Import and return the kind called ``name``.

    Raises:
        ConfigError: the name is unknown, or its module is missing or does not define it
            (the caller adds the file/line/key context).
    """
    module_path = KIND_MODULES.get(name)
    if module_path is None:
        raise ConfigError(f"unknown kind {name!r} (known: {', '.join(kind_names())})")
    try:
        module = importlib.import_module(module_path)
    except ModuleNotFoundError as exc:
        if exc.name is not None and module_path.startswith(exc.name):
            raise ConfigError(
                f"kind {name!r} is not available in this installation ({module_path} is missing)"
            ) from exc
        raise ConfigError(
            f"kind {name!r} is not available: {module_path} needs {exc.name!r}, not installed"
        ) from exc
    kinds: Mapping[str, Kind[Any]] | None = getattr(module, "KINDS", None)
    if kinds is None or name not in kinds:
        raise ConfigError(f"kind {name!r} is not available ({module_path} does not define it)")
    return kinds[name]
