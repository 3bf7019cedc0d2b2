"""Certificates and TLS contexts for tests, made with portkit's own helper (host._tls)."""

from __future__ import annotations

import ssl
from pathlib import Path

from portkit.host._tls import server_context, write_self_signed

__all__ = ["client_tls", "self_signed_cert", "self_signed_context", "server_tls_context"]


def self_signed_cert(directory: Path, name: str = "localhost") -> tuple[Path, Path]:
    """Write a self-signed certificate for ``name`` and 127.0.0.1; return (cert, key) paths."""
    return write_self_signed(directory, (name, "127.0.0.1"))


def server_tls_context(cert: Path, key: Path) -> ssl.SSLContext:
    """A server context presenting ``cert`` (portkit's own server settings)."""
    return server_context(cert, key)


def self_signed_context(directory: Path, name: str = "localhost") -> ssl.SSLContext:
    """A server context with a fresh self-signed certificate for ``name`` and 127.0.0.1."""
    return server_tls_context(*self_signed_cert(directory, name))


def client_tls(cert: Path) -> ssl.SSLContext:
    """A client context trusting exactly the test certificate."""
    return ssl.create_default_context(cafile=str(cert))
