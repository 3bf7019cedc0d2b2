"""The public API is exactly what ``portkit.__all__`` names, sorted."""

import subprocess
import sys

import portkit


def test_all_is_sorted_and_unique() -> None:
    assert list(portkit.__all__) == sorted(set(portkit.__all__))


def test_every_exported_name_resolves() -> None:
    for name in portkit.__all__:
        assert getattr(portkit, name) is not None, name


def test_nothing_public_is_left_out_of_all() -> None:
    public = {
        name
        for name in vars(portkit)
        if not name.startswith("_") and not isinstance(getattr(portkit, name), type(portkit))
    }
    assert public <= set(portkit.__all__)


def test_errors_share_one_root() -> None:
    for name in portkit.__all__:
        obj = getattr(portkit, name)
        if isinstance(obj, type) and issubclass(obj, Exception):
            assert issubclass(obj, portkit.PortkitError), name


def test_importing_portkit_stays_light() -> None:
    code = "import sys, portkit; print(sorted(m for m in ('asyncio', 'aiohttp', 'ada_url') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
