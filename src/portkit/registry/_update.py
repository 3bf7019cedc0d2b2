"""``portkit registry update``: bring a live IANA registry into the user's cache."""

from __future__ import annotations

from pathlib import Path

from portkit._errors import RegistryError, RegistryFileError
from portkit.registry._iana import IANA_CSV_URL, download, import_csv_text, write_data_file
from portkit.registry._index import cache_path, load_registry, reset_default_registry
from portkit.registry._model import RegistryInfo

__all__ = ["import_file", "reset_cache", "update_from_url"]


def _install(text: str, *, source: str) -> RegistryInfo:
    services = import_csv_text(text)  # validates fully before anything is written
    target = cache_path()
    try:
        write_data_file(target, services, source=source)
    except OSError as exc:
        raise RegistryError(f"cannot write {str(target)!r}: {exc.strerror}") from None
    reset_default_registry()
    return load_registry().info


def update_from_url(url: str = IANA_CSV_URL) -> RegistryInfo:
    """Download the IANA CSV from ``url`` into the cache; it then takes precedence."""
    return _install(download(url), source=url)


def import_file(path: Path) -> RegistryInfo:
    """Import a local copy of the IANA CSV into the cache."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise RegistryFileError(f"cannot read {str(path)!r}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise RegistryFileError(f"{str(path)!r} is not UTF-8 text") from None
    return _install(text, source=f"file {path.name}")


def reset_cache() -> bool:
    """Remove the cached registry; return whether there was one."""
    target = cache_path()
    existed = target.is_file()
    target.unlink(missing_ok=True)
    reset_default_registry()
    return existed
