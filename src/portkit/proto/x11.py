"""X11 display servers, via the connection setup request.

X Window System Protocol, version 11, section 8 "Connection Setup": the client sends a
byte-order byte (``l``: little-endian), an unused byte, protocol-major-version 11,
protocol-minor-version 0, the lengths of an authorization name and data (none here), and
two unused bytes. The server answers with a status byte (0 Failed, 1 Success,
2 Authenticate), then (for Failed: the reason's length first) the protocol version and
the length of the rest in 4-byte units. A Success reply carries the vendor string and
release number, which name the product.
"""

from __future__ import annotations

from portkit.proto._match import NEED_MORE, Match, Matcher, NoMatch, Probe, Verdict

__all__ = ["X11", "X11_SETUP"]

MAX_SETUP = 64 * 1024  # a Success reply lists screens and visuals; the head is enough

_VENDORS = {"The X.Org Foundation": "X.Org"}


def _judge(data: bytes, final: bool) -> Verdict:
    if not data:
        return NoMatch(reason="nothing") if final else NEED_MORE
    status = data[0]
    if status not in (0, 1, 2):
        return NoMatch(reason="not a setup status")
    if len(data) < 8:
        return NoMatch(reason="short reply") if final else NEED_MORE
    major = int.from_bytes(data[2:4], "little")
    minor = int.from_bytes(data[4:6], "little")
    extra_len = int.from_bytes(data[6:8], "little") * 4
    if status != 2 and (major, minor) != (11, 0):
        return NoMatch(reason="not protocol 11.0")
    if status == 2 and data[1:6] != bytes(5):
        return NoMatch(reason="bad Authenticate reply")  # §8: five unused bytes
    if status == 0:
        reason_len = data[1]
        if extra_len != (reason_len + 3) // 4 * 4:
            return NoMatch(reason="reason length disagrees")
        if len(data) < 8 + reason_len:
            return NoMatch(reason="short reason") if final else NEED_MORE
        if len(data) > 8 + extra_len:
            return NoMatch(reason="bytes after the reply")
        reason = data[8 : 8 + reason_len].decode("latin-1").strip()
        return Match(service="X11", extra=f"access denied: {reason[:80]}" if reason else None)
    if status == 2:
        if len(data) < 8 + extra_len:
            return NoMatch(reason="short reply") if final else NEED_MORE
        return Match(service="X11", extra="authentication required")
    # Success: release-number at 8, vendor length at 24, vendor string at 40.
    if len(data) < 40:
        return NoMatch(reason="short reply") if final else NEED_MORE
    vendor_len = int.from_bytes(data[24:26], "little")
    if 32 + vendor_len > extra_len:
        return NoMatch(reason="vendor longer than the reply")
    if len(data) < 40 + vendor_len:
        return NoMatch(reason="short vendor") if final else NEED_MORE
    vendor = data[40 : 40 + vendor_len].decode("latin-1").strip()
    release = int.from_bytes(data[8:12], "little")
    return Match(
        service="X11",
        product=_VENDORS.get(vendor, vendor) or None,
        version=_release(release) if vendor == "The X.Org Foundation" else str(release),
        extra="access granted",
    )


def _release(number: int) -> str:
    # X.Org encodes 1.20.4 as 12004000: major * 10^7 + minor * 10^5 + patch * 10^3 +
    # subpatch. From 1.21 on the server is numbered without the leading "1." (xorg-server
    # 21.1.7 is release 12101007), as xdpyinfo shows it.
    major, rest = divmod(number, 10_000_000)
    minor, rest = divmod(rest, 100_000)
    patch, subpatch = divmod(rest, 1000)
    if major == 1 and minor >= 21:
        return f"{minor}.{patch}.{subpatch}"
    return f"{major}.{minor}.{patch}" + (f".{subpatch}" if subpatch else "")


X11 = Matcher(name="x11", judge=_judge, max_bytes=MAX_SETUP)

X11_SETUP = Probe(
    name="x11-setup",
    build=lambda host: b"l\x00\x0b\x00\x00\x00\x00\x00\x00\x00\x00\x00",
    matchers=("x11",),
    services=("x11",),
)
