"""Every exception class portkit defines derives from PortkitError, wherever it lives."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest

import portkit
from portkit import PortkitError

# Internal control-flow signals, each caught inside the module that raises it, so that no
# caller of portkit ever sees one. The reason says why each stays outside the tree.
NOT_PORTKIT_ERRORS = {
    "portkit.scan._channel.Closed": (
        "identification's 'the peer closed' signal; the ladder catches it to move to the "
        "next probe, it never leaves scan"
    ),
    "portkit.scan._loopless.Cancelled": (
        "Ctrl-C thrown into a scan run without an event loop, as asyncio's CancelledError "
        "(a BaseException, so that no 'except Exception' swallows it); the scan command "
        "catches it, and run_loopless turns one let through into KeyboardInterrupt"
    ),
}


def _portkit_modules() -> list[str]:
    walked = pkgutil.walk_packages(portkit.__path__, prefix=f"{portkit.__name__}.")
    # ``python -m portkit`` runs the command line when imported.
    return [portkit.__name__] + [m.name for m in walked if not m.name.endswith(".__main__")]


def _exception_classes() -> dict[str, type[BaseException]]:
    found: dict[str, type[BaseException]] = {}
    for name in _portkit_modules():
        module = importlib.import_module(name)
        for _, obj in inspect.getmembers(module, inspect.isclass):
            # Only classes defined in portkit, each once under its own module.
            if issubclass(obj, BaseException) and obj.__module__ == name:
                found[f"{name}.{obj.__qualname__}"] = obj
    return found


def test_the_walk_sees_the_whole_package() -> None:
    modules = _portkit_modules()
    # Subpackages and their private modules are all there (not just the top level).
    assert "portkit.host.apps.mail._store" in modules
    assert "portkit.scan._channel" in modules
    classes = _exception_classes()
    assert "portkit.client._connect.TlsError" in classes
    assert "portkit._errors.PortkitError" in classes


def test_every_exception_class_is_a_portkit_error() -> None:
    outside = sorted(
        name
        for name, cls in _exception_classes().items()
        if not issubclass(cls, PortkitError) and name not in NOT_PORTKIT_ERRORS
    )
    assert outside == [], "derive these from PortkitError (or a subclass): " + ", ".join(outside)


def test_the_listed_exceptions_are_still_outside_the_tree() -> None:
    classes = _exception_classes()
    # A listed class that became a PortkitError no longer needs its exemption. (One that
    # was removed or moved cannot break the rule; a new home is checked like any class.)
    joined = sorted(
        n for n in NOT_PORTKIT_ERRORS if n in classes and issubclass(classes[n], PortkitError)
    )
    assert joined == [], "remove these from NOT_PORTKIT_ERRORS: " + ", ".join(joined)


@pytest.mark.parametrize(
    ("module", "name"),
    [
        ("portkit.client._connect", "TlsError"),
        ("portkit.host._host", "BindError"),
        ("portkit.demo", "DemoError"),
        ("portkit.host.apps.mail._store", "MaildropLocked"),
        ("portkit.host.apps.mail._store", "MessageGone"),
    ],
)
def test_the_documented_tree_names_every_error(module: str, name: str) -> None:
    from portkit import _errors

    assert _errors.__doc__ is not None
    assert f"── {name} " in _errors.__doc__
    assert issubclass(getattr(importlib.import_module(module), name), PortkitError)
