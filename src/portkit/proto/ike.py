"""IKE responders (IPsec key exchange), via an IKEv2 IKE_SA_INIT request (RFC 7296).

§3.1: a message is a 28-byte header (initiator SPI, responder SPI, next payload, version
0x20, exchange type 34 for IKE_SA_INIT, flags with Initiator 0x08, message ID 0, length)
and chained payloads (§3.2: next payload, flags, length). IKE_SA_INIT carries SA (33),
KE (34) and Nonce (40) (§1.2). We offer AES-CBC-256 / HMAC-SHA2-256 / group 14 with a
key share of the right length. A responder answers with our SPI and the Response flag
(0x20): its own SA, KE and Nonce, or a Notify (41) such as NO_PROPOSAL_CHOSEN (14) or
INVALID_KE_PAYLOAD (17) (§3.10.1). Either names IKE.
"""

from __future__ import annotations

from portkit.proto._match import Match, Matcher, NoMatch, Probe, Verdict

__all__ = ["IKE", "IKE_SA_INIT"]

SPI = b"portkit!"
GROUP = 14  # 2048-bit MODP (RFC 3526): a 256-byte key share
_NOTIFY = 41
_NOTIFIES = {
    7: "INVALID_SYNTAX",
    14: "NO_PROPOSAL_CHOSEN",
    17: "INVALID_KE_PAYLOAD",
    16390: "COOKIE",
    16388: "NAT_DETECTION_SOURCE_IP",
}


def _payload(next_payload: int, body: bytes) -> bytes:
    return bytes([next_payload, 0]) + (len(body) + 4).to_bytes(2, "big") + body


def _transform(last: bool, kind: int, ident: int, attrs: bytes = b"") -> bytes:
    body = bytes([kind, 0]) + ident.to_bytes(2, "big") + attrs
    return bytes([0 if last else 3, 0]) + (len(body) + 4).to_bytes(2, "big") + body


def _request(host: str) -> bytes:
    # §3.3: one proposal, protocol IKE (1), four transforms. ENCR_AES_CBC (12) with a
    # Key Length attribute of 256 (TV format 0x800e); PRF_HMAC_SHA2_256 (5);
    # AUTH_HMAC_SHA2_256_128 (12); D-H group 14.
    transforms = (
        _transform(False, 1, 12, b"\x80\x0e\x01\x00")
        + _transform(False, 2, 5)
        + _transform(False, 3, 12)
        + _transform(True, 4, GROUP)
    )
    proposal_body = bytes([1, 1, 0, 4]) + transforms  # number 1, IKE, no SPI, 4 transforms
    proposal = bytes([0, 0]) + (len(proposal_body) + 4).to_bytes(2, "big") + proposal_body
    sa = _payload(34, proposal)
    ke = _payload(40, GROUP.to_bytes(2, "big") + b"\x00\x00" + bytes(range(256)))
    nonce = _payload(0, b"portkit-ike-nonce-0123456789abcd")
    body = sa + ke + nonce
    header = (
        SPI + bytes(8) + bytes([33, 0x20, 34, 0x08]) + bytes(4)
        + (28 + len(body)).to_bytes(4, "big")
    )  # fmt: skip
    return header + body


def _judge(data: bytes, final: bool) -> Verdict:
    if len(data) < 28 or data[:8] != SPI:
        return NoMatch(reason="not an answer to our SPI")
    major, exchange, flags = data[17] >> 4, data[18], data[19]
    if major != 2 or exchange != 34 or not flags & 0x20:
        return NoMatch(reason="not an IKE_SA_INIT response")
    if int.from_bytes(data[24:28], "big") != len(data):
        return NoMatch(reason="length disagrees")
    kinds = []
    notify = None
    next_payload, pos = data[16], 28
    while next_payload and pos + 4 <= len(data):
        size = int.from_bytes(data[pos + 2 : pos + 4], "big")
        if size < 4 or pos + size > len(data):
            return NoMatch(reason="broken payload")
        kinds.append(next_payload)
        if next_payload == _NOTIFY and notify is None and size >= 8:
            notify = int.from_bytes(data[pos + 6 : pos + 8], "big")
        next_payload, pos = data[pos], pos + size
    if next_payload:
        return NoMatch(reason="payload chain runs past the end")
    extra = "IKEv2"
    if notify is not None:
        extra += f"; {_NOTIFIES.get(notify, f'notify {notify}')}"
    elif 33 in kinds:
        extra += "; proposal accepted"
    return Match(service="isakmp", extra=extra)


IKE = Matcher(name="ike", judge=_judge, max_bytes=4096)

IKE_SA_INIT = Probe(
    name="ike-sa-init",
    build=_request,
    matchers=("ike",),
    services=("isakmp", "ipsec-nat-t"),
    transport="udp",
)
