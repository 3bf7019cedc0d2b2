"""TLS server contexts for the mail applications (STARTTLS/STLS and implicit TLS)."""

from __future__ import annotations

import ssl
from pathlib import Path

from portkit._errors import ConfigError

__all__ = ["server_context"]


def server_context(cert: Path, key: Path) -> ssl.SSLContext:
    """A server-side context with modern defaults (TLS 1.2+) for ``cert``/``key`` (PEM).

    Raises:
        ConfigError: the files are missing or do not hold a matching certificate and key.
    """
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(cert, key)
    except FileNotFoundError as exc:
        raise ConfigError(f"tls certificate or key not found: {exc.filename!r}") from None
    except ssl.SSLError as exc:
        raise ConfigError(
            f"tls certificate {str(cert)!r} and key do not load: {exc.reason}"
        ) from None
    return context
