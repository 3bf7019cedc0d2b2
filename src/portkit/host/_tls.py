"""TLS server contexts: from configured files, or a fresh self-signed certificate."""

from __future__ import annotations

import datetime
import ipaddress
import os
import ssl
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from portkit.host._app import Where

__all__ = ["check_cert_key", "self_signed_pem", "server_context", "write_self_signed"]

SELF_SIGNED_DAYS = 30


def self_signed_pem(
    names: tuple[str, ...] = ("localhost", "127.0.0.1", "::1"),
) -> tuple[bytes, bytes]:
    """A new EC P-256 key and a self-signed certificate for ``names``, both PEM."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
    alt: list[x509.GeneralName] = []
    for name in names:
        try:
            alt.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            alt.append(x509.DNSName(name))
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=SELF_SIGNED_DAYS))
        .add_extension(x509.SubjectAlternativeName(alt), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def server_context(cert: Path | None, key: Path | None) -> ssl.SSLContext:
    """A TLS server context for ``cert``/``key``, or a self-signed one when ``cert`` is None."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if cert is not None:
        context.load_cert_chain(cert, key)
        return context
    # The ssl module loads chains from files only: a private directory, removed at once.
    with tempfile.TemporaryDirectory(prefix="portkit-tls-") as tmp:
        context.load_cert_chain(*write_self_signed(Path(tmp)))
    return context


def write_self_signed(
    directory: Path, names: tuple[str, ...] = ("localhost", "127.0.0.1", "::1")
) -> tuple[Path, Path]:
    """Write a new self-signed certificate for ``names`` into ``directory``.

    Returns:
        The paths of ``cert.pem`` and ``key.pem``; the key is created readable by its owner
        only, and neither file may exist beforehand.
    """
    cert_pem, key_pem = self_signed_pem(names)
    cert_file, key_file = directory / "cert.pem", directory / "key.pem"
    fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(key_pem)
    cert_file.write_bytes(cert_pem)
    return cert_file, key_file


def check_cert_key(cert: Path | None, key: Path | None, where: Where) -> None:
    """Check an application's ``cert``/``key`` options: key needs cert, files exist and load.

    Raises:
        ConfigError: naming the key at fault (via ``where``).
    """
    if key is not None and cert is None:
        raise where.error("key", "needs cert as well")
    for name, path in (("cert", cert), ("key", key)):
        if path is not None and not path.is_file():
            raise where.error(name, f"file {str(path)!r} does not exist")
    if cert is not None:
        try:
            server_context(cert, key)
        except (ssl.SSLError, OSError) as exc:
            raise where.error("cert", f"cannot load certificate and key: {exc}") from None
