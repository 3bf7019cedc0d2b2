"""IRC servers: the notices they send on connect, or their answer to registration.

RFC 2812 §2.3: a message is ``[":" prefix SPACE] command [params] CRLF``, at most 512
bytes with the CRLF; the command is a word or a three-digit numeric reply. Many servers
greet a new connection with ``NOTICE`` lines (``*** Looking up your hostname``) before
anything is sent. Registration (§3.1.2 ``NICK``, §3.1.3 ``USER``) is answered with
``001``-``004`` (§5.1): ``002 RPL_YOURHOST`` says "running version <version>" and
``004 RPL_MYINFO`` carries ``<servername> <version> <user modes> <channel modes>``.
"""

from __future__ import annotations

import re

from portkit.proto._match import NEED_MORE, Match, Matcher, NoMatch, Probe, Verdict

__all__ = ["IRC", "IRC_REGISTER"]

MAX_LINE = 512
MAX_LINES = 40

_MESSAGE = re.compile(rb"^(?::(\S+) +)?([A-Za-z]+|\d{3})(?: +(.*))?$")
# Commands a server sends to a client it does not know yet (RFC 2812 §3.1, §3.7.2,
# §3.7.4): anything else as a first line is not IRC.
_FIRST = {b"NOTICE", b"PING", b"ERROR", b"PRIVMSG", b"CAP"}
# Numerics that end the exchange: welcome done (004, 005), or registration refused
# (432 erroneous nickname, 433 nickname in use, 451 not registered, 461 need more
# params, 465 banned).
_CONCLUSIVE = {b"004", b"005", b"432", b"433", b"451", b"461", b"465"}
_VERSION = re.compile(r"^([A-Za-z][\w.+]*?)[-_/ ]v?(\d[\w.+~-]*)")
_PRODUCTS = {
    "ngircd": "ngIRCd",
    "inspircd": "InspIRCd",
    "unrealircd": "UnrealIRCd",
    "unreal": "UnrealIRCd",
    "hybrid": "Hybrid ircd",
    "ircd-hybrid": "Hybrid ircd",
    "solanum": "Solanum",
    "charybdis": "Charybdis",
    "ircd-ratbox": "ircd-ratbox",
    "bahamut": "Bahamut",
    "ergo": "Ergo",
    "oragono": "Oragono",
}


def _product(version_field: str) -> tuple[str | None, str | None]:
    found = _VERSION.match(version_field)
    if found is None:
        return None, None
    name = found.group(1)
    return _PRODUCTS.get(name.lower(), name), found.group(2)


def _first_line_ok(found: re.Match[bytes]) -> bool:
    # Numeric replies always come from a server, so with its name as prefix (§2.4);
    # a bare "220 ..." is an FTP or SMTP greeting, not IRC.
    command = found.group(2)
    if command.isdigit():
        return found.group(1) is not None
    # NOTICE, PING, ERROR, ... always carry parameters (§3.3.2, §3.7.2, §3.7.4); a bare
    # "ERROR" line is memcached's answer to a command it does not know.
    return command.upper() in _FIRST and bool(found.group(3))


def _judge(data: bytes, final: bool) -> Verdict:
    pos = 0
    seen = 0
    product: str | None = None
    version: str | None = None
    for _ in range(MAX_LINES):
        end = data.find(b"\n", pos, pos + MAX_LINE + 1)
        if end < 0:
            if len(data) - pos > MAX_LINE:
                return NoMatch(reason="line too long")
            break
        line = data[pos:end].rstrip(b"\r")
        pos = end + 1
        found = _MESSAGE.match(line)
        if found is None or (seen == 0 and not _first_line_ok(found)):
            if seen == 0:
                return NoMatch(reason="not an IRC message")
            break
        seen += 1
        command, params = found.group(2), (found.group(3) or b"").decode("utf-8", "replace")
        if command == b"002" and product is None:
            running = re.search(r"running (?:version )?(\S+)", params)
            if running:
                product, version = _product(running.group(1).rstrip(",."))
        if command == b"004":
            # "<nick> <servername> <version> <user modes> <channel modes>"
            words = params.split()
            if len(words) >= 3:
                product, version = _product(words[2])
        if command in _CONCLUSIVE:
            return _found(product, version)
    if seen == 0:
        return NoMatch(reason="no complete message") if final else NEED_MORE
    # Notices alone: more may come (the answer to registration names the version).
    return _found(product, version) if final else NEED_MORE


def _found(product: str | None, version: str | None) -> Match:
    return Match(service="irc", product=product, version=version)


IRC = Matcher(name="irc", judge=_judge, max_bytes=(MAX_LINE + 2) * MAX_LINES)

# RFC 2812 §3.1.2 NICK and §3.1.3 USER (mode 0, unused "*", real name). A nickname of
# nine characters at most (§2.3.1) that no one else is likely to hold.
IRC_REGISTER = Probe(
    name="irc-register",
    build=lambda host: b"NICK pk7probe\r\nUSER pk7probe 0 * :portkit\r\n",
    matchers=("irc",),
    services=("irc", "ircs", "ircu", "ircs-u", "ircd"),
)
