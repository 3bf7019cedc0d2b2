"""DTLS servers (RFC 6347, DTLS 1.2), via a ClientHello in one datagram.

§4.1: a record is content type, version (DTLS 1.0 is 0xFEFF, 1.2 0xFEFD), a 16-bit epoch,
a 48-bit sequence number, a 16-bit length and the fragment. §4.2.2: handshake messages
add a message sequence, fragment offset and fragment length to TLS's header. A server
answers a ClientHello with a HelloVerifyRequest (type 3, a cookie to send back, §4.2.1),
a ServerHello (type 2), or an alert (content type 21) -- all in DTLS records.
"""

from __future__ import annotations

from portkit.proto._match import Match, Matcher, NoMatch, Probe, Verdict

__all__ = ["DTLS", "DTLS_CLIENT_HELLO"]

_VERSIONS = {0xFEFF: "DTLS 1.0", 0xFEFD: "DTLS 1.2", 0xFEFC: "DTLS 1.3"}
_HANDSHAKE, _ALERT = 22, 21
_MESSAGES = {2: "ServerHello", 3: "HelloVerifyRequest"}


def _extension(kind: int, body: bytes) -> bytes:
    return kind.to_bytes(2, "big") + len(body).to_bytes(2, "big") + body


def _client_hello(host: str) -> bytes:
    # ECDHE and RSA key exchange with AES-GCM (RFC 5289, RFC 5288); the extensions a
    # modern server needs to pick them: supported_groups x25519/secp256r1 (RFC 8422),
    # ec_point_formats, signature_algorithms (RFC 5246 §7.4.1.4.1), extended master
    # secret (RFC 7627) and renegotiation_info (RFC 5746).
    suites = bytes.fromhex("c02bc02fc02cc030009c009d")
    extensions = (
        _extension(10, bytes.fromhex("0004001d0017"))
        + _extension(11, b"\x01\x00")
        # rsa_pss_rsae_sha256, ecdsa_secp256r1_sha256, rsa_pkcs1_sha256, rsa_pkcs1_sha1
        + _extension(13, bytes.fromhex("00080804040304010201"))
        + _extension(23, b"")
        + _extension(0xFF01, b"\x00")
    )
    body = (
        b"\xfe\xfd" + b"portkit-dtls-client-random-32byt"  # client_version, random
        + b"\x00" + b"\x00"  # session_id, cookie: both empty
        + len(suites).to_bytes(2, "big") + suites
        + b"\x01\x00"  # compression: null
        + len(extensions).to_bytes(2, "big") + extensions
    )  # fmt: skip
    length = len(body).to_bytes(3, "big")
    handshake = b"\x01" + length + b"\x00\x00" + b"\x00\x00\x00" + length + body
    record = b"\x16\xfe\xff" + bytes(8) + len(handshake).to_bytes(2, "big")
    return record + handshake


def _judge(data: bytes, final: bool) -> Verdict:
    if len(data) < 13 or data[0] not in (_HANDSHAKE, _ALERT):
        return NoMatch(reason="not a DTLS record")
    version = int.from_bytes(data[1:3], "big")
    if version not in _VERSIONS:
        return NoMatch(reason="not a DTLS version")
    length = int.from_bytes(data[11:13], "big")
    if 13 + length > len(data):
        return NoMatch(reason="record longer than the datagram")
    fragment = data[13 : 13 + length]
    if data[0] == _ALERT:
        if length != 2 or fragment[0] not in (1, 2):
            return NoMatch(reason="not an alert")
        return Match(service="dtls", extra=f"{_VERSIONS[version]}; alert {fragment[1]}")
    if len(fragment) < 12 or fragment[0] not in _MESSAGES:
        return NoMatch(reason="not a server's first handshake message")
    return Match(service="dtls", extra=f"{_VERSIONS[version]}; {_MESSAGES[fragment[0]]}")


DTLS = Matcher(name="dtls", judge=_judge, max_bytes=4096)

DTLS_CLIENT_HELLO = Probe(
    name="dtls-client-hello",
    build=_client_hello,
    matchers=("dtls",),
    services=("dtls", "coaps", "turns", "stuns", "ipsec-nat-t"),
    transport="udp",
)
