"""Parse endpoint text into a frozen :class:`Endpoint`; pure, no I/O.

Accepted forms::

    http://testing.example.com:8080/login     a URL (WHATWG URL Standard, via ada-url)
    ssh://user@host:2222                      any scheme; its default port from the registry
    example.com:8080   [::1]:8080             host:port
    example.com:https                         host:service (port from the registry)
    example.com        ::1                    a bare host, with a default scheme
    example.com:53/udp  example.com:domain/udp   a transport after host:port or host:service
    udp://example.com:53   tcp://host:7           the transport as the scheme (port required)
    ("example.org", "smtp")                   the two-argument form, parse_host_service()

For the web's special schemes (http, https, ws, wss, ftp) the URL Standard decides
everything about the port: a port equal to the scheme's default is dropped, leading
zeros are ignored, an empty port means the default, and anything non-digit or above
65535 is a failure. Every other scheme's default port comes from the registry. As the
URL Standard does, ASCII tab and newline characters are removed from every form before
parsing (a URL pasted across lines is the URL), after leading and trailing C0 controls
and spaces are stripped.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass
from typing import Any, Literal

from portkit._errors import EndpointError, LookupNotFound
from portkit.endpoint._authority import bracket_host, host_port
from portkit.endpoint._schemes import ServiceDirectory, ServiceInfo, service_info

__all__ = [
    "Endpoint",
    "EndpointForm",
    "HostType",
    "PortSource",
    "parse_endpoint",
    "parse_host_service",
]

PortSource = Literal["explicit", "scheme-default", "registry"]
HostType = Literal["domain", "ipv4", "ipv6"]
#: url: ``scheme://...``; host-port: ``host:8080``; host-service: ``host:https``;
#: host: a bare host completed by a default scheme.
EndpointForm = Literal["url", "host-port", "host-service", "host"]

MAX_PORT = 65535

# The URL Standard strips leading and trailing "C0 control or space" from a URL; do the
# same for every form.
_C0_AND_SPACE = "".join(chr(c) for c in range(0x21))
# ... and removes every ASCII tab or newline anywhere in it (URL parsing, step 3).
_TAB_OR_NEWLINE = str.maketrans("", "", "\t\n\r")
# A transport written after host:port or host:service: "example.com:53/udp".
_TRANSPORT_SUFFIX = re.compile(r"(?P<rest>.+)/(?P<transport>tcp|udp)", re.IGNORECASE)
# Schemes that name a transport rather than a protocol: udp://host:53.
_TRANSPORT_SCHEMES = frozenset({"tcp", "udp"})

_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*")
_ASCII_DIGITS = re.compile(r"[0-9]+")
# A service name as RFC 6335 section 5.1 shapes them (letters, digits, hyphens, at least
# one letter), relaxed on length and case: the registry has the final word.
_SERVICE_NAME = re.compile(r"[A-Za-z0-9]+(?:-+[A-Za-z0-9]+)*")
# host:service, where the service has a letter (so it is not a port): example.com:https.
_HOST_SERVICE = re.compile(r"(?:[^:\[\]]*|\[[^\]]*\]):(?=[A-Za-z0-9-]*[A-Za-z])[A-Za-z0-9-]+")
# Characters that end a host in a URL authority; in host:port text they mean the input
# is really a URL missing its scheme, or garbage.
_NOT_IN_HOST = frozenset("/\\?#@ \t\r\n")

# Only the URL components used here: the parser's "origin" and friends cost time.
_URL_PARTS = (
    "href",
    "username",
    "password",
    "protocol",
    "port",
    "hostname",
    "pathname",
    "host_type",
    "scheme_type",
)
_HOST_PARTS = ("username", "port", "hostname", "pathname", "search", "host_type")

_ADA_HOST_TYPES: dict[int, HostType] = {0: "domain", 1: "ipv4", 2: "ipv6"}


@dataclass(frozen=True, slots=True, kw_only=True)
class Endpoint:
    """Where a client connects, and where each part of that answer came from.

    ``port`` is the effective port; ``explicit_port`` is the port written in the input
    (``None`` when there was none, or when the URL Standard dropped it because it equals
    the scheme's default); ``default_port`` is the scheme's or service's registered port.
    """

    text: str  #: the input, as given
    form: EndpointForm
    scheme: str | None  #: lower case; ``None`` for host:port and host:service
    host: str  #: normalised: lower-case ASCII (punycode), IPv6 without brackets
    host_type: HostType
    port: int  #: the effective port: where the client connects
    explicit_port: int | None
    default_port: int | None
    port_source: PortSource
    transport: str  #: "tcp" unless the registry knows the service only over UDP
    service: str | None  #: the IANA service name spoken there (``postgresql``), if known
    tls: bool  #: whether TLS from the first byte is conventional (https, imaps, ...)
    path: str | None = None  #: the URL's path (URLs only)
    url: str | None = None  #: the normalised URL without any password (URLs only)
    username: str | None = None  #: a URL's user name (``ssh://user@host``), percent-encoded
    #: The input wrote the scheme's default port (``http://h:80``), which the URL
    #: Standard drops: ``explicit_port`` is then ``None``.
    port_dropped: bool = False
    #: For host:port, what the registry says usually runs on that port
    #: ("Node/React dev servers (...)"), if anything.
    note: str = ""

    @property
    def host_unicode(self) -> str:
        """The host for display: punycode labels decoded (``bücher.de``)."""
        if self.host_type != "domain" or "xn--" not in self.host:
            return self.host
        import ada_url

        decoded = ada_url.idna_to_unicode(self.host)
        return decoded if isinstance(decoded, str) and decoded else self.host

    @property
    def authority(self) -> str:
        """``host:port`` with IPv6 hosts bracketed (``[::1]:8080``)."""
        return host_port(self.host, self.port)

    def as_dict(self) -> dict[str, Any]:
        """The endpoint as JSON-ready data; the keys are stable (see docs/endpoint.md)."""
        return {
            "input": self.text,
            "form": self.form,
            "scheme": self.scheme,
            "host": self.host,
            "host_unicode": self.host_unicode,
            "host_type": self.host_type,
            "port": self.port,
            "explicit_port": self.explicit_port,
            "default_port": self.default_port,
            "port_source": self.port_source,
            "port_dropped": self.port_dropped,
            "transport": self.transport,
            "service": self.service,
            "tls": self.tls,
            "path": self.path,
            "url": self.url,
            "username": self.username,
            "note": self.note,
            "explanation": self.explain(),
        }

    def explain(self) -> str:
        """One sentence: which port the client uses and why."""
        port = self.port
        name = self.scheme or self.service
        if self.port_source == "explicit":
            where = "explicit in the URL" if self.form == "url" else f"explicit in {self.text!r}"
            if self.default_port is None or name is None:
                if self.form != "url" and self.service:
                    usual = f"; in practice: {self.note}" if self.note else ""
                    return f"port {port}: {where}; registered as {self.service}{usual}"
                return f"port {port}: {where}"
            if self.default_port == port:
                return f"port {port}: {where}, the same as {name}'s default"
            return f"port {port}: {where}, overriding {name}'s default {self.default_port}"
        if self.port_source == "scheme-default":
            if self.port_dropped:
                return (
                    f"port {port}: the default port of {name}:// URLs; the URL Standard "
                    "drops an explicit port equal to it"
                )
            return f"port {port}: the default port of {name}:// URLs (WHATWG URL Standard)"
        service = self.service or name
        if self.form == "url":
            via = "" if service == self.scheme else f" (scheme {self.scheme} is {service})"
            return f"port {port}: no port in the URL; the registered port of {service}{via}"
        return f"port {port}: the registered port of service {service}"


def parse_endpoint(
    text: str,
    *,
    default_scheme: str | None = None,
    registry: ServiceDirectory | None = None,
) -> Endpoint:
    """Parse a URL, ``host:port``, ``[v6]:port``, ``host:service`` or bare host.

    Args:
        text: what the user typed.
        default_scheme: completes input without a scheme: ``example.com`` or
            ``example.com:8080`` then means ``default_scheme://example.com[:8080]``.
        registry: the service directory for default ports (the bundled registry if
            omitted).

    Raises:
        EndpointError: the text is not an endpoint; the message quotes it.
    """
    stripped = text.strip(_C0_AND_SPACE).translate(_TAB_OR_NEWLINE)
    if not stripped:
        raise EndpointError(f"empty endpoint {text!r}")
    reg = registry if registry is not None else _default_registry()
    if _is_url(stripped):
        return _from_url(text, stripped, reg, form="url")
    return _from_host_text(text, stripped, default_scheme, reg)


def parse_host_service(
    host: str, service: str, *, registry: ServiceDirectory | None = None
) -> Endpoint:
    """Parse the two-argument form ``HOST PORT|SERVICE`` (``example.org smtp``).

    ``host`` may be a name, an IPv4 address, or an IPv6 address with or without brackets.

    Raises:
        EndpointError: bad host, port out of range, or unknown service; quoting the input.
    """
    text = f"{host} {service}"
    reg = registry if registry is not None else _default_registry()
    host = host.strip()
    if host.count(":") >= 2 and not host.startswith("["):
        host = bracket_host(host)
    if not host.startswith("[") and ":" in host:
        raise EndpointError(f"host must not carry a port in {text!r}; give the port separately")
    service, transport = _split_transport(service.strip())
    return _from_parts(text, host, service, reg, transport=transport)


def port_of(text: str, *, registry: ServiceDirectory | None = None) -> tuple[int, str, bool]:
    """Read a port alone: ``8080``, ``http``, ``53/udp``, ``domain/udp``.

    Returns:
        (port, transport, whether the text wrote the transport).

    Raises:
        EndpointError: not a port number 0-65535 or a registered service; quoting ``text``.
    """
    reg = registry if registry is not None else _default_registry()
    body, transport = _split_transport(text.strip(_C0_AND_SPACE).translate(_TAB_OR_NEWLINE))
    endpoint = _from_parts(text, "localhost", body, reg, transport=transport)
    return endpoint.port, endpoint.transport, transport is not None


def _split_transport(text: str) -> tuple[str, str | None]:
    """``53/udp`` -> (``53``, ``udp``); text without a transport suffix is returned whole."""
    match = _TRANSPORT_SUFFIX.fullmatch(text)
    if match is None:
        return text, None
    return match["rest"], match["transport"].lower()


def _default_registry() -> ServiceDirectory:
    from portkit.registry import default_registry

    registry: ServiceDirectory = default_registry()
    return registry


def _is_url(text: str) -> bool:
    """Return whether ``text`` is a URL rather than ``host:port`` / ``host:service``."""
    match = _SCHEME.match(text)
    if match is None or text[match.end() : match.end() + 1] != ":":
        return False
    rest = text[match.end() + 1 :]
    if rest.startswith("//"):
        return True
    # "http:example.com" is a URL too: the URL Standard lets special schemes drop the
    # slashes. Ask the parser whether the scheme is special rather than listing them.
    return _is_special_scheme(match.group())


def _is_special_scheme(scheme: str) -> bool:
    import ada_url

    try:
        parsed = ada_url.parse_url(f"{scheme}://h", attributes=("scheme_type",))
    except ValueError:
        return False
    return bool(parsed["scheme_type"] != ada_url.SchemeType.NOT_SPECIAL)


def _from_url(text: str, url: str, reg: ServiceDirectory, *, form: EndpointForm) -> Endpoint:
    import ada_url  # imported on first use: `import portkit` stays fast

    try:
        parts = ada_url.parse_url(url, attributes=_URL_PARTS)
    except ValueError:
        raise EndpointError(_diagnose_url(text, url)) from None
    scheme = str(parts["protocol"]).removesuffix(":")
    scheme_type = parts["scheme_type"]
    if scheme_type == ada_url.SchemeType.FILE:
        raise EndpointError(f"a file URL names no network endpoint: {text!r}")
    special = scheme_type != ada_url.SchemeType.NOT_SPECIAL
    raw_host = str(parts["hostname"])
    if not raw_host:
        raise EndpointError(f"empty host in {text!r}")
    if special:
        host, host_type = _unbracket(raw_host), _ADA_HOST_TYPES[int(parts["host_type"])]
    else:
        # Non-special schemes keep an opaque, percent-encoded host; give it the same
        # normalisation (IDNA, lower case, IPv4 forms) a special scheme would.
        host, host_type = _normalise_host(raw_host, text)

    info = None if scheme in _TRANSPORT_SCHEMES else _lookup(scheme, reg)
    explicit = int(parts["port"]) if parts["port"] else None
    source: PortSource
    if explicit is not None:
        port, source = explicit, "explicit"
    elif info is not None:
        port, source = info.port, "scheme-default" if special else "registry"
    else:
        if scheme in _TRANSPORT_SCHEMES:
            raise EndpointError(f"no port in {text!r}: {scheme}:// needs one ({scheme}://host:53)")
        raise EndpointError(
            f"no port in {text!r} and no registered default port for scheme {scheme!r}"
        )
    href = str(parts["href"])
    if parts["password"]:
        href = ada_url.replace_url(href, password="")
    return Endpoint(
        text=text,
        form=form,
        scheme=scheme,
        host=host,
        host_type=host_type,
        port=port,
        explicit_port=explicit,
        default_port=info.port if info else None,
        port_source=source,
        transport=info.transport if info else scheme if scheme in _TRANSPORT_SCHEMES else "tcp",
        service=info.service if info else None,
        tls=info.tls if info else False,
        path=str(parts["pathname"]),
        url=href,
        username=str(parts["username"]) or None,
        port_dropped=explicit is None and bool(_port_text(url.split(":", 1)[1].lstrip("/\\"))),
    )


def _from_host_text(
    text: str, stripped: str, default_scheme: str | None, reg: ServiceDirectory
) -> Endpoint:
    stripped, transport = _split_transport(stripped)
    service_form = _HOST_SERVICE.fullmatch(stripped)
    if default_scheme is not None and service_form is None and transport is None:
        # host, host:port, [v6]:port, even host:port/path: exactly the URL they abbreviate.
        scheme = default_scheme.lower()
        if _SCHEME.fullmatch(scheme) is None:
            raise EndpointError(f"invalid default scheme {default_scheme!r}")
        if stripped.count(":") >= 2 and not stripped.startswith("["):
            stripped = bracket_host(stripped)  # a bare IPv6 address
        form: EndpointForm = "host" if _port_text(stripped) is None else "host-port"
        return _from_url(text, f"{scheme}://{stripped}", reg, form=form)
    host, port_text = _split_host_port(text, stripped)
    if port_text is None:
        raise EndpointError(
            f"no port in {text!r}: give host:port, host:service or a URL (https://{host})"
        )
    # host:service names its own protocol; a default scheme does not apply.
    return _from_parts(text, host, port_text, reg, transport=transport)


def _port_text(after_scheme: str) -> str | None:
    """Return the port written after ``scheme://`` (``""`` if empty, ``None`` if absent)."""
    hostport = re.split(r"[/\\?#]", after_scheme, maxsplit=1)[0].rpartition("@")[2]
    after_host = hostport.rpartition("]")[2]
    if ":" not in after_host:
        return None
    return re.sub(r"[\t\n\r]", "", after_host.rpartition(":")[2])


def _from_parts(
    text: str,
    host_text: str,
    port_text: str,
    reg: ServiceDirectory,
    *,
    transport: str | None = None,
) -> Endpoint:
    """Build an endpoint from a host and a port number or service name (no scheme).

    ``transport`` is the one the text named (``/udp``); ``None`` means tcp for a port
    number and the registry's transport for a service name.
    """
    if not host_text:
        raise EndpointError(f"empty host in {text!r}")
    if not port_text:
        raise EndpointError(f"empty port in {text!r}")
    host, host_type = _normalise_host(host_text, text)
    if _ASCII_DIGITS.fullmatch(port_text):
        port = _check_port(port_text, text)
        wanted = transport or "tcp"
        entries = [e for e in reg.by_port(port, wanted) if e.name]
        service = entries[0].name if entries else None
        info = _lookup(service, reg, (wanted,)) if service else None
        return Endpoint(
            text=text,
            form="host-port",
            scheme=None,
            host=host,
            host_type=host_type,
            port=port,
            explicit_port=port,
            default_port=None,
            port_source="explicit",
            transport=wanted,
            service=service,
            tls=info.tls if info is not None and info.port == port else False,
            note=entries[0].note if entries else "",
        )
    if not any(c.isalpha() for c in port_text):
        raise EndpointError(f"port must be a number 0-{MAX_PORT}, not {port_text!r} in {text!r}")
    transports = ("tcp", "udp") if transport is None else (transport,)
    info = _lookup(port_text, reg, transports) if _SERVICE_NAME.fullmatch(port_text) else None
    if info is None:
        if transport is not None and _lookup(port_text, reg) is not None:
            raise EndpointError(
                f"service {port_text!r} has no registered {transport} port in {text!r}"
            )
        raise EndpointError(
            f"unknown service {port_text!r} in {text!r}: "
            "expected a port number 0-65535 or a registered service name"
        )
    return Endpoint(
        text=text,
        form="host-service",
        scheme=None,
        host=host,
        host_type=host_type,
        port=info.port,
        explicit_port=None,
        default_port=info.port,
        port_source="registry",
        transport=info.transport,
        service=info.service,
        tls=info.tls,
    )


def _split_host_port(text: str, stripped: str) -> tuple[str, str | None]:
    """Split ``host:port``, ``[v6]:port``, a bare host or a bare IPv6 address."""
    bad = next((c for c in stripped if c in _NOT_IN_HOST or not c.isprintable()), None)
    if bad == "/" and stripped.count(":") == 1:
        raise EndpointError(f"a path needs a URL with a scheme, as in http://{stripped}")
    if bad is not None:
        raise EndpointError(f"unexpected {bad!r} in {text!r}; a URL needs a scheme (http://...)")
    if stripped.startswith("["):
        end = stripped.find("]")
        if end < 0:
            raise EndpointError(f"unclosed '[' in {text!r}")
        rest = stripped[end + 1 :]
        if not rest:
            return stripped, None
        if not rest.startswith(":"):
            raise EndpointError(f"unexpected {rest!r} after the IPv6 address in {text!r}")
        return stripped[: end + 1], rest[1:]
    colons = stripped.count(":")
    if colons == 0:
        return stripped, None
    if colons == 1:
        host, _, port = stripped.partition(":")
        return host, port
    # Several colons without brackets: an IPv6 address, which cannot carry a port.
    return bracket_host(stripped), None


def _normalise_host(host_text: str, text: str) -> tuple[str, HostType]:
    """Normalise a host the way the URL Standard's host parser does for special schemes."""
    import ada_url

    if any(c in _NOT_IN_HOST or c == ":" for c in host_text) and not host_text.startswith("["):
        raise EndpointError(f"invalid host {host_text!r} in {text!r}")
    if host_text.startswith("[") and "%" in host_text:
        return _scoped_ipv6(host_text, text), "ipv6"
    try:
        parts = ada_url.parse_url(f"http://{host_text}/", attributes=_HOST_PARTS)
    except ValueError:
        hint = ""
        if host_text.startswith("[") and host_text.count(":") >= 2:
            hint = " (an IPv6 address with a port needs brackets: [::1]:8080)"
        raise EndpointError(f"invalid host {host_text!r} in {text!r}{hint}") from None
    if parts["port"] or parts["pathname"] != "/" or parts["username"] or parts["search"]:
        raise EndpointError(f"invalid host {host_text!r} in {text!r}")
    hostname = str(parts["hostname"])
    if not hostname:
        raise EndpointError(f"empty host in {text!r}")
    return _unbracket(hostname), _ADA_HOST_TYPES[int(parts["host_type"])]


def _scoped_ipv6(host_text: str, text: str) -> str:
    """Accept ``[fe80::1%eth0]``: a link-local address with its zone (RFC 4007 section 11).

    URLs cannot carry a zone (the URL Standard rejects it), but ``host:port`` text can,
    and ``getaddrinfo`` understands it.
    """
    import ipaddress

    inner = _unbracket(host_text)
    address, _, zone = inner.partition("%")
    try:
        parsed = ipaddress.IPv6Address(address)
    except ValueError:
        raise EndpointError(f"invalid IPv6 address {host_text!r} in {text!r}") from None
    if not zone or not zone.isprintable() or any(c in zone for c in "%[]/ "):
        raise EndpointError(f"invalid IPv6 zone {zone!r} in {text!r}")
    return f"{parsed.compressed}%{zone}"


def _unbracket(host: str) -> str:
    return host[1:-1] if host.startswith("[") and host.endswith("]") else host


def _check_port(digits: str, text: str) -> int:
    # Leading zeros are fine (as in URLs); compare lengths first so a thousand-digit
    # port cannot hit int()'s conversion limit.
    significant = digits.lstrip("0") or "0"
    if len(significant) > len(str(MAX_PORT)) or int(significant) > MAX_PORT:
        raise EndpointError(f"port must be 0-{MAX_PORT}, not {digits} in {text!r}")
    return int(significant)


def _lookup(
    name: str, reg: ServiceDirectory, transports: tuple[str, ...] = ("tcp", "udp")
) -> ServiceInfo | None:
    try:
        return service_info(name, reg, transports)
    except LookupNotFound:
        return None


def _diagnose_url(text: str, url: str) -> str:
    """Say why the URL parser rejected ``url``: port, host, or the URL as a whole.

    The verdict is the URL parser's; this only finds words for it.
    """
    scheme, _, after_scheme = url.partition(":")
    special = _is_special_scheme(scheme)
    after_scheme = after_scheme.lstrip("/\\" if special else "/")
    authority = re.split(r"[/\\?#]" if special else r"[/?#]", after_scheme, maxsplit=1)[0]
    hostport = authority.rpartition("@")[2]
    if hostport.startswith("["):
        close = hostport.find("]")
        if close < 0:
            return f"unclosed '[' in the host of {text!r}"
        port_text = hostport[close + 2 :] if hostport[close + 1 : close + 2] == ":" else None
        host_text = hostport[: close + 1]
    elif ":" in hostport:
        host_text, _, port_text = hostport.partition(":")
        if ":" in port_text and all(c in string.hexdigits for c in host_text):
            return f"invalid host in {text!r} (an IPv6 address needs brackets: [::1]:8080)"
    else:
        host_text, port_text = hostport, None
    if port_text:
        clean = port_text.replace("\t", "").replace("\n", "").replace("\r", "")
        if not _ASCII_DIGITS.fullmatch(clean):
            return f"port must be a number, not {port_text!r} in {text!r}"
        if len(clean.lstrip("0")) > len(str(MAX_PORT)) or int(clean.lstrip("0") or "0") > MAX_PORT:
            return f"port must be 0-{MAX_PORT}, not {clean} in {text!r}"
    if not host_text:
        return f"empty host in {text!r}"
    return f"malformed URL {text!r}: invalid host {host_text!r}"
