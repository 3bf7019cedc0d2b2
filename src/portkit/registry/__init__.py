"""The registry: every IANA-registered port and service, plus what people call them.

>>> from portkit.registry import default_registry
>>> default_registry().service_name(443)
'https'
"""

from portkit.registry._iana import IANA_CSV_URL
from portkit.registry._index import (
    Registry,
    cache_path,
    default_registry,
    load_registry,
    reset_default_registry,
)
from portkit.registry._model import RegistryInfo, Service
from portkit.registry._update import import_file, reset_cache, update_from_url

__all__ = [
    "IANA_CSV_URL",
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
