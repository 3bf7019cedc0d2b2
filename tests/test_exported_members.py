"""The public API is exactly what ``portkit.__all__`` names, sorted."""

import portkit


def test_all_is_sorted_and_unique() -> None:
    assert list(portkit.__all__) == sorted(set(portkit.__all__))


def test_every_public_name_is_exported() -> None:
    public = {
        name
        for name in vars(portkit)
        if not name.startswith("_") and not isinstance(getattr(portkit, name), type(portkit))
    }
    assert public == set(portkit.__all__)


def test_errors_share_one_root() -> None:
    for name in portkit.__all__:
        obj = getattr(portkit, name)
        if isinstance(obj, type) and issubclass(obj, Exception):
            assert issubclass(obj, portkit.PortkitError), name
