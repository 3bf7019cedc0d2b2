"""Ports in URLs behave exactly as the WHATWG URL Standard says.

The cases are written from the standard's "port state" (section 4.4 of the URL parsing
algorithm) and its table of special schemes and their default ports: digits are
collected until the end of the authority; an empty port means none; a port above
65535 or any non-digit is a failure; a port equal to a special scheme's default is
dropped (set to null). Tabs and newlines are removed from the input first, and
leading and trailing C0 controls and spaces are stripped.
"""

import pytest

from portkit import EndpointError
from portkit.endpoint import parse_endpoint

# (url, effective port, explicit port as kept by the URL Standard, port source)
ACCEPTED = [
    # A port equal to the special scheme's default is dropped.
    ("http://h:80/", 80, None, "scheme-default"),
    ("https://h:443/", 443, None, "scheme-default"),
    ("ws://h:80/", 80, None, "scheme-default"),
    ("wss://h:443/", 443, None, "scheme-default"),
    ("ftp://h:21/", 21, None, "scheme-default"),
    # ... also when written with leading zeros: the value counts, not the spelling.
    ("http://h:080/", 80, None, "scheme-default"),
    ("https://h:000443", 443, None, "scheme-default"),
    # Another special scheme's default is an ordinary explicit port.
    ("http://h:443/", 443, 443, "explicit"),
    ("https://h:80/", 80, 80, "explicit"),
    ("ws://h:443/", 443, 443, "explicit"),
    ("wss://h:80/", 80, 80, "explicit"),
    ("ftp://h:22/", 22, 22, "explicit"),
    # Leading zeros are ignored, however many.
    ("http://h:08080/", 8080, 8080, "explicit"),
    ("http://h:0000000000000000000000000008080/", 8080, 8080, "explicit"),
    # The port ends at the end of input, "/", "?", "#", and for special schemes "\".
    ("http://h:8080", 8080, 8080, "explicit"),
    ("http://h:8080?q=1", 8080, 8080, "explicit"),
    ("http://h:8080#frag", 8080, 8080, "explicit"),
    ("http://h:8080\\path", 8080, 8080, "explicit"),
    # An empty port is no port.
    ("http://h:/", 80, None, "scheme-default"),
    ("http://h:", 80, None, "scheme-default"),
    ("https://[::1]:/", 443, None, "scheme-default"),
    # The bounds: 0 and 65535 are ports.
    ("http://h:0/", 0, 0, "explicit"),
    ("http://h:65535/", 65535, 65535, "explicit"),
    # Tabs and newlines vanish before parsing; outer spaces and controls are stripped.
    ("http://h:80\t80/", 8080, 8080, "explicit"),
    ("http://h:8\n0/", 80, None, "scheme-default"),
    ("  http://h:8080/ ", 8080, 8080, "explicit"),
    ("\x00http://h:8080/\x1f", 8080, 8080, "explicit"),
    # User info may hold a colon; the port is after the host.
    ("http://user:pass@h:8080/", 8080, 8080, "explicit"),
    ("http://user:99999@h/", 80, None, "scheme-default"),
    # IPv6 hosts are bracketed; the port follows the bracket.
    ("http://[::1]:8080/", 8080, 8080, "explicit"),
    ("http://[::1]:80/", 80, None, "scheme-default"),
    ("http://[2001:db8::1]/", 80, None, "scheme-default"),
    # Special schemes may omit the slashes, or use backslashes.
    ("http:h:8080", 8080, 8080, "explicit"),
    ("https:\\\\h:8443\\", 8443, 8443, "explicit"),
    # Non-special schemes have no default in the URL Standard: their port is kept.
    ("ssh://h:22", 22, 22, "explicit"),
    ("ssh://h:0022", 22, 22, "explicit"),
    ("redis://h:", 6379, None, "registry"),
]


@pytest.mark.parametrize(("url", "port", "explicit", "source"), ACCEPTED)
def test_accepted_ports(url: str, port: int, explicit: int | None, source: str) -> None:
    endpoint = parse_endpoint(url)
    assert endpoint.port == port
    assert endpoint.explicit_port == explicit
    assert endpoint.port_source == source


REJECTED = [
    ("http://h:65536/", "port must be 0-65535, not 65536"),
    ("http://h:99999999999999999999/", "port must be 0-65535"),
    ("http://h:8a/", "port must be a number, not '8a'"),
    ("http://h:a/", "port must be a number"),
    ("http://h:-1/", "port must be a number, not '-1'"),
    ("http://h:+80/", "port must be a number"),
    ("http://h:0x50/", "port must be a number"),
    ("http://h: 80/", "port must be a number"),
    ("http://h:80 80/", "port must be a number"),
    ("http://h:8080:9090/", "port must be a number"),
    ("http://h:\uff18\uff10/", "port must be a number"),  # fullwidth digits are not ASCII
    ("http://h:\u0668\u0660/", "port must be a number"),  # Arabic-Indic digits neither
    ("ssh://h:65536", "port must be 0-65535"),
    ("ssh://h:2x", "port must be a number"),
    ("foo://h:22\\x", "port must be a number"),  # "\" ends the port for special schemes only
    ("http://::1:8080/", "needs brackets"),
    ("http://[::1]8080/", "malformed URL"),
    ("http://[::1/", "unclosed '['"),
    ("http://:8080/", "empty host"),
    ("https://", "empty host"),
]


@pytest.mark.parametrize(("url", "message"), REJECTED)
def test_rejected_ports(url: str, message: str) -> None:
    with pytest.raises(EndpointError) as caught:
        parse_endpoint(url)
    text = str(caught.value)
    assert message in text
    assert repr(url) in text  # the message quotes the input
    assert "\n" not in text


@pytest.mark.parametrize("port", [0, 1, 21, 22, 79, 80, 81, 443, 8080, 65534, 65535])
@pytest.mark.parametrize("scheme", ["http", "https", "ws", "wss", "ftp"])
def test_every_port_round_trips(scheme: str, port: int) -> None:
    endpoint = parse_endpoint(f"{scheme}://h:{port}/")
    assert endpoint.port == port
    dropped = port == endpoint.default_port
    assert endpoint.explicit_port == (None if dropped else port)
    assert endpoint.port_dropped is dropped
    assert (endpoint.url or "").endswith("h/" if dropped else f"h:{port}/")


def _wpt_cases() -> list[dict[str, object]]:
    import json
    from pathlib import Path

    data = Path(__file__).with_name("data") / "wpt_url_ports.json"
    cases: list[dict[str, object]] = json.loads(data.read_text(encoding="utf-8"))["cases"]
    return cases


@pytest.mark.parametrize("case", _wpt_cases(), ids=lambda c: repr(c["input"]))
def test_web_platform_tests_port_cases(case: dict[str, object]) -> None:
    text = str(case["input"])
    if case.get("failure"):
        with pytest.raises(EndpointError):
            parse_endpoint(text)
        return
    endpoint = parse_endpoint(text)
    assert endpoint.explicit_port == case["port"]
    if case["port"] is None:
        assert endpoint.port_source == "scheme-default"


@pytest.mark.parametrize(
    ("text", "host", "port"),
    [
        # Tabs and newlines vanish anywhere: a URL or host:port pasted across lines.
        ("ht\ttp://exa\nmple.com:80\r\n80/login", "example.com", 8080),
        ("http://[::\n1]:8\t080/", "::1", 8080),
        ("example.com:80\n80", "example.com", 8080),
        ("\texample.\ncom:ht\ttps\n", "example.com", 443),
    ],
)
def test_tab_and_newline_are_removed_in_every_form(text: str, host: str, port: int) -> None:
    endpoint = parse_endpoint(text)
    assert (endpoint.host, endpoint.port) == (host, port)
    assert endpoint.text == text  # the input is kept as given, for messages
