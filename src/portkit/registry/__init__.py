"""The registry: every IANA-registered port and service, plus what people call them.

>>> from portkit.registry import default_registry
>>> default_registry().service_name(443)
'https'
>>> [(s.name, s.port) for s in default_registry().lookup("imap").matches]
[('imap', 143)]
"""

from __future__ import annotations

from portkit._lazy import lazy_attributes as _lazy_attributes
from portkit.registry._index import (
    Registry,
    cache_path,
    default_registry,
    load_registry,
    reset_default_registry,
)
from portkit.registry._model import RegistryInfo, Service

TYPE_CHECKING = False  # not `typing` at run time: it is on every command's start-up path
if TYPE_CHECKING:
    from portkit.registry._iana import IANA_CSV_URL
    from portkit.registry._query import Answer
    from portkit.registry._update import import_file, reset_cache, update_from_url

# Updating pulls in urllib and csv; lookups should not pay for that at start-up.
_LAZY = {
    "Answer": "portkit.registry._query",
    "IANA_CSV_URL": "portkit.registry._iana",
    "import_file": "portkit.registry._update",
    "reset_cache": "portkit.registry._update",
    "update_from_url": "portkit.registry._update",
}


__getattr__ = _lazy_attributes(__name__, globals(), _LAZY)


__all__ = [
    "IANA_CSV_URL",
    "Answer",
    "Registry",
    "RegistryInfo",
    "Service",
    "cache_path",
    "default_registry",
    "import_file",
    "load_registry",
    "reset_cache",
    "reset_default_registry",
    "update_from_url",
]
