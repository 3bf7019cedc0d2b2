"""What a completed TLS handshake showed, summarised once for every command.

``portkit probe`` (identification) and ``portkit connect`` (the client) both report
the peer's certificate; they call :func:`tls_summary`, so the same certificate reads
the same in both: protocol version, cipher, ALPN, subject, issuer, validity (UTC) and
subject alternative names (RFC 5280 section 4.2.1.6: DNS names, then IP addresses).
"""

from __future__ import annotations

import ssl
from dataclasses import replace
from datetime import UTC

# The results model's home today; a results layer below scan, host and client is planned.
from portkit.results import TlsInfo

__all__ = ["tls_summary"]


def tls_summary(tls: ssl.SSLObject | ssl.SSLSocket) -> TlsInfo:
    """Summarise the handshake of ``tls``; certificate fields stay ``None`` without one.

    A certificate that cannot be parsed leaves the certificate fields empty rather than
    failing: the connection is up, and what is known of it is still worth reporting.
    """
    from cryptography import x509

    cipher = tls.cipher()
    info = TlsInfo(
        version=tls.version(),
        cipher=cipher[0] if cipher else None,
        alpn=tls.selected_alpn_protocol(),
    )
    der = tls.getpeercert(binary_form=True)
    if not der:
        return info
    try:
        cert = x509.load_der_x509_certificate(der)
    except ValueError:
        return info
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        sans = tuple(str(v) for v in san.get_values_for_type(x509.DNSName)) + tuple(
            str(v) for v in san.get_values_for_type(x509.IPAddress)
        )
    except (x509.ExtensionNotFound, ValueError):
        sans = ()
    return replace(
        info,
        subject=cert.subject.rfc4514_string(),
        issuer=cert.issuer.rfc4514_string(),
        not_before=cert.not_valid_before_utc.astimezone(UTC).isoformat(),
        not_after=cert.not_valid_after_utc.astimezone(UTC).isoformat(),
        self_signed=cert.subject == cert.issuer,
        subject_alt_names=sans,
    )
