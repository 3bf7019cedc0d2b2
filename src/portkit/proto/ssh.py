"""SSH servers, recognised by the identification string they send first.

RFC 4253 §4.2: the server sends ``SSH-protoversion-softwareversion SP comments CR LF``,
at most 255 characters, and may send other lines before it (not starting with ``SSH-``).

Reported as nmap's version detection reports it: OpenSSH's comment naming the
distribution's package (``Debian-2+deb12u3``, ``Ubuntu-3ubuntu0.10``) is part of the
version (``9.2p1 Debian 2+deb12u3``), the protocol version goes to ``extra``.
"""

from __future__ import annotations

from portkit.proto._match import NEED_MORE, Match, Matcher, NoMatch, Verdict

__all__ = ["SSH"]

MAX_LINE = 255
MAX_PRE_LINES = 8  # lines of text before the identification string we tolerate

_PRODUCTS = {
    "openssh": "OpenSSH",
    "dropbear": "Dropbear sshd",
    "libssh": "libssh",
    "paramiko": "Paramiko",
    "asyncssh": "AsyncSSH",
    "cisco": "Cisco SSH",
    "rosssh": "MikroTik RouterOS sshd",
    "go": "Go x/crypto/ssh",
}


def parse_software(software: str) -> tuple[str, str | None]:
    """Split ``OpenSSH_9.2p1`` into a product name and version."""
    name, sep, version = software.partition("_")
    if not sep:
        name, sep, version = software.partition("-")
    product = _PRODUCTS.get(name.lower(), name)
    return product, (version or None)


# Distributions that append their package revision to OpenSSH's comment field.
_DISTRIBUTIONS = ("Debian", "Ubuntu", "Raspbian", "FreeBSD", "NetBSD")


def _with_package(version: str | None, comments: str) -> tuple[str | None, str]:
    """Fold a ``Debian-2+deb12u3`` comment into the version; the rest stays comment."""
    word, _, rest = comments.partition(" ")
    name, dash, revision = word.partition("-")
    if version is None or not dash or not revision or name not in _DISTRIBUTIONS:
        return version, comments
    return f"{version} {name} {revision}", rest


def _judge(data: bytes, final: bool) -> Verdict:
    pos = 0
    for _ in range(MAX_PRE_LINES + 1):
        rest = data[pos:]
        if not rest:
            return NEED_MORE
        if not (rest.startswith(b"SSH-") or b"SSH-".startswith(rest[:4])):
            # A line before the identification string: must be text.
            end = rest.find(b"\n", 0, MAX_LINE + 2)
            if end < 0:
                if len(rest) > MAX_LINE + 1:
                    return NoMatch(reason="line too long")
                if pos == 0 and not rest[:1].isascii():
                    return NoMatch(reason="not text")
                return NEED_MORE
            if pos == 0 and not rest[:end].isascii():
                return NoMatch(reason="not text")
            pos += end + 1
            continue
        end = rest.find(b"\n", 0, MAX_LINE + 2)
        if end < 0:
            return NoMatch(reason="identification too long") if len(rest) > MAX_LINE else NEED_MORE
        line = rest[:end].rstrip(b"\r").decode("latin-1")
        parts = line.split("-", 2)
        if len(parts) < 3 or parts[1] not in ("2.0", "1.99", "1.5"):
            return NoMatch(reason="bad identification string")
        software, _, comments = parts[2].partition(" ")
        product, version = parse_software(software)
        if product == "OpenSSH":
            version, comments = _with_package(version, comments)
        extra = f"protocol {parts[1]}" + (f"; {comments}" if comments else "")
        return Match(service="ssh", product=product, version=version, extra=extra)
    return NoMatch(reason="no identification string")


SSH = Matcher(name="ssh", judge=_judge, max_bytes=(MAX_LINE + 2) * (MAX_PRE_LINES + 1))
