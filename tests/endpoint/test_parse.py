"""Endpoint parsing: every accepted form, where the port came from, and the errors."""

import dataclasses
import re

import pytest

from portkit import EndpointError, UsageError
from portkit.endpoint import Endpoint, parse_endpoint, parse_host_service


def test_the_8080_url_keeps_explicit_and_default_apart() -> None:
    e = parse_endpoint("http://testing.example.com:8080/login")
    assert (e.scheme, e.host, e.port) == ("http", "testing.example.com", 8080)
    assert e.explicit_port == 8080
    assert e.default_port == 80
    assert e.port_source == "explicit"
    assert e.path == "/login"
    assert e.url == "http://testing.example.com:8080/login"
    assert e.transport == "tcp"
    assert not e.tls
    assert e.explain() == "port 8080: explicit in the URL, overriding http's default 80"


def test_https_takes_the_scheme_default() -> None:
    e = parse_endpoint("https://example.com")
    assert (e.port, e.explicit_port, e.default_port) == (443, None, 443)
    assert e.port_source == "scheme-default"
    assert e.tls
    assert e.path == "/"


def test_ssh_takes_its_port_from_the_registry() -> None:
    e = parse_endpoint("ssh://h")
    assert (e.scheme, e.host, e.port, e.explicit_port) == ("ssh", "h", 22, None)
    assert e.port_source == "registry"
    assert not e.tls
    assert "registered port of ssh" in e.explain()


def test_user_and_port_in_a_non_special_url() -> None:
    e = parse_endpoint("ssh://user@host:2222")
    assert (e.username, e.host, e.port, e.default_port) == ("user", "host", 2222, 22)
    assert e.port_source == "explicit"
    assert e.explain() == "port 2222: explicit in the URL, overriding ssh's default 22"


def test_a_password_never_reaches_the_normalised_url() -> None:
    e = parse_endpoint("ftp://anna:s3cret@files.example.com/pub")
    assert e.url == "ftp://anna@files.example.com/pub"
    assert e.username == "anna"
    assert "s3cret" not in e.explain()


@pytest.mark.parametrize(
    ("url", "port", "service", "tls"),
    [
        ("telnet://h", 23, "telnet", False),
        ("smtp://h", 25, "smtp", False),
        ("imap://h", 143, "imap", False),
        ("imaps://mail.example.com", 993, "imaps", True),
        ("pop3://h", 110, "pop3", False),
        ("pop3s://h", 995, "pop3s", True),
        ("ldap://h", 389, "ldap", False),
        ("ldaps://h", 636, "ldaps", True),
        ("ftps://h", 990, "ftps", True),
        ("redis://h", 6379, "redis", False),
        ("postgresql://h/db", 5432, "postgresql", False),
        ("mysql://h", 3306, "mysql", False),
        ("mqtt://h", 1883, "mqtt", False),
        ("amqp://h", 5672, "amqp", False),
        ("amqps://h", 5671, "amqps", True),
        ("nntps://h", 563, "nntps", True),
        ("sips://h", 5061, "sips", True),
    ],
)
def test_registry_defaults_for_other_schemes(url: str, port: int, service: str, tls: bool) -> None:
    e = parse_endpoint(url)
    assert (e.port, e.default_port, e.explicit_port) == (port, port, None)
    assert e.port_source == "registry"
    assert e.service == service
    assert e.tls is tls


@pytest.mark.parametrize(
    ("url", "port", "service", "tls"),
    [
        # names the registry resolves as aliases
        ("postgres://h/db", 5432, "postgresql", False),
        ("smtps://h", 465, "submissions", True),
        ("dns://h", 53, "domain", False),
        # names resolved by the scheme alias map
        ("sftp://h", 22, "ssh", False),
        ("mqtts://h", 8883, "secure-mqtt", True),
        ("rediss://h", 6379, "redis", True),
    ],
)
def test_scheme_names_that_differ_from_iana(url: str, port: int, service: str, tls: bool) -> None:
    e = parse_endpoint(url)
    assert (e.port, e.service, e.tls) == (port, service, tls)
    assert e.scheme == url.split(":")[0]
    assert f"(scheme {e.scheme} is {service})" in e.explain()


def test_ws_and_wss_use_the_web_defaults() -> None:
    ws, wss = parse_endpoint("ws://h/chat"), parse_endpoint("wss://h/chat")
    assert (ws.port, ws.port_source, ws.tls) == (80, "scheme-default", False)
    assert (wss.port, wss.port_source, wss.tls) == (443, "scheme-default", True)


def test_ipv6_url_host_is_unbracketed_with_an_authority_for_display() -> None:
    e = parse_endpoint("http://[::1]:8080/")
    assert (e.host, e.host_type, e.port) == ("::1", "ipv6", 8080)
    assert e.authority == "[::1]:8080"
    full = parse_endpoint("http://[2001:DB8:0:0:0:0:0:1]/")
    assert full.host == "2001:db8::1"  # compressed, lower case


@pytest.mark.parametrize(
    "text",
    ["http://bücher.example/", "ssh://BÜCHER.example", "bücher.example:22", "BÜCHER.example:ssh"],
)
def test_idn_hosts_become_punycode(text: str) -> None:
    e = parse_endpoint(text)
    assert e.host == "xn--bcher-kva.example"
    assert e.host_unicode == "bücher.example"
    assert e.host_type == "domain"


def test_hosts_are_normalised_alike_for_every_scheme() -> None:
    hosts = {
        parse_endpoint(t).host
        for t in ["http://EXAMPLE.com", "ssh://EXAMPLE.com", "EXAMPLE.com:22"]
    }
    assert hosts == {"example.com"}
    assert parse_endpoint("ssh://0x7f.1").host == "127.0.0.1"
    assert parse_endpoint("ssh://0x7f.1").host_type == "ipv4"


def test_host_port() -> None:
    e = parse_endpoint("example.com:8080")
    assert (e.scheme, e.host, e.port, e.explicit_port) == (None, "example.com", 8080, 8080)
    assert (e.form, e.port_source, e.default_port) == ("host-port", "explicit", None)
    assert e.service == "http-alt"  # what the registry calls 8080


def test_host_port_names_the_dev_server_convention() -> None:
    e = parse_endpoint("localhost:3000")
    assert e.note  # the registry's label for a common development port
    assert e.note in e.explain()


def test_bracketed_ipv6_host_port() -> None:
    e = parse_endpoint("[::1]:8080")
    assert (e.host, e.host_type, e.port) == ("::1", "ipv6", 8080)


def test_host_service() -> None:
    e = parse_endpoint("example.com:https")
    assert (e.host, e.port, e.explicit_port, e.default_port) == ("example.com", 443, None, 443)
    assert (e.form, e.port_source, e.service, e.tls) == ("host-service", "registry", "https", True)
    assert e.explain() == "port 443: the registered port of service https"


def test_host_service_is_case_insensitive_and_knows_aliases() -> None:
    assert parse_endpoint("db:Postgres").port == 5432
    assert parse_endpoint("db:Postgres").service == "postgresql"


def test_bare_host_with_a_default_scheme() -> None:
    e = parse_endpoint("example.com", default_scheme="https")
    assert (e.scheme, e.port, e.port_source, e.form) == ("https", 443, "scheme-default", "host")
    assert parse_endpoint("::1", default_scheme="http").authority == "[::1]:80"
    assert parse_endpoint("mail.example", default_scheme="imaps").port == 993


def test_host_port_with_a_default_scheme_is_the_url_it_abbreviates() -> None:
    e = parse_endpoint("example.com:8080/x", default_scheme="http")
    assert (e.scheme, e.port, e.default_port, e.path) == ("http", 8080, 80, "/x")
    assert e.form == "host-port"
    same = parse_endpoint("example.com:80", default_scheme="http")
    assert (same.port, same.explicit_port, same.port_dropped) == (80, None, True)


def test_a_service_name_beats_the_default_scheme() -> None:
    e = parse_endpoint("example.org:smtp", default_scheme="http")
    assert (e.scheme, e.port, e.service) == (None, 25, "smtp")


def test_two_argument_form() -> None:
    e = parse_host_service("example.org", "smtp")
    assert (e.host, e.port, e.port_source, e.service) == ("example.org", 25, "registry", "smtp")
    n = parse_host_service("::1", "2525")
    assert (n.host, n.port, n.port_source, n.authority) == ("::1", 2525, "explicit", "[::1]:2525")
    assert parse_host_service("[::1]", "imaps").port == 993


@pytest.mark.parametrize(
    ("host", "service", "message"),
    [
        ("example.org", "nosuchservice", "unknown service 'nosuchservice'"),
        ("example.org", "70000", "port must be 0-65535, not 70000"),
        ("example.org:25", "smtp", "must not carry a port"),
        ("", "smtp", "empty host"),
        ("example.org", "", "empty port"),
    ],
)
def test_two_argument_form_errors(host: str, service: str, message: str) -> None:
    with pytest.raises(EndpointError, match=message):
        parse_host_service(host, service)


BAD = [
    ("", "empty endpoint"),
    ("   ", "empty endpoint"),
    ("example.com", "no port in 'example.com'"),
    ("example.com:", "empty port in 'example.com:'"),
    (":8080", "empty host in ':8080'"),
    ("example.com:70000", "port must be 0-65535, not 70000 in 'example.com:70000'"),
    ("example.com:-1", "port must be a number 0-65535, not '-1'"),
    ("example.com:nosuchservice", "unknown service 'nosuchservice' in 'example.com:nosuchservice'"),
    ("example.com:8080/login", "a path needs a URL with a scheme"),
    ("a b:80", "unexpected ' '"),
    ("user@host:22", "unexpected '@'"),
    ("[::1", "unclosed '['"),
    ("[::1]8080", "after the IPv6 address"),
    ("[nonsense]:80", "invalid host '[nonsense]'"),
    ("::1", "no port in '::1'"),
    ("http://", "empty host in 'http://'"),
    ("ssh://", "empty host in 'ssh://'"),
    ("ssh://:22", "empty host"),
    ("foo://h", "no registered default port for scheme 'foo'"),
    ("file:///etc/passwd", "a file URL names no network endpoint"),
    ("http://exa mple.com/", "malformed URL"),
    ("http://1.2.3.999/", "invalid host '1.2.3.999'"),
    ("ssh://a<b/", "malformed URL"),
    ("h:99999999999999999999999999999999999999999999999999999999", "port must be 0-65535"),
]


@pytest.mark.parametrize(("text", "message"), BAD)
def test_bad_input_is_one_endpoint_error_quoting_it(text: str, message: str) -> None:
    with pytest.raises(EndpointError) as caught:
        parse_endpoint(text)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)
    assert isinstance(caught.value, UsageError)
    assert caught.value.exit_code == 2


def test_invalid_default_scheme() -> None:
    with pytest.raises(EndpointError, match="invalid default scheme '1x'"):
        parse_endpoint("example.com", default_scheme="1x")


def test_endpoint_is_frozen() -> None:
    e = parse_endpoint("https://example.com")
    with pytest.raises(dataclasses.FrozenInstanceError):
        e.port = 1  # type: ignore[misc]
    assert isinstance(e, Endpoint)


def test_as_dict_keys_are_stable() -> None:
    data = parse_endpoint("https://example.com").as_dict()
    assert list(data) == [
        "input",
        "form",
        "scheme",
        "host",
        "host_unicode",
        "host_type",
        "port",
        "explicit_port",
        "default_port",
        "port_source",
        "port_dropped",
        "transport",
        "service",
        "tls",
        "path",
        "url",
        "username",
        "note",
        "explanation",
    ]


def test_link_local_ipv6_with_a_zone_in_host_port_text() -> None:
    e = parse_endpoint("[FE80:0::1%lo]:22")
    assert (e.host, e.host_type, e.port) == ("fe80::1%lo", "ipv6", 22)
    assert e.authority == "[fe80::1%lo]:22"
    assert parse_host_service("fe80::1%lo", "ssh").host == "fe80::1%lo"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[fe80::1%]:22", "invalid IPv6 zone ''"),
        ("[nonsense%lo]:22", "invalid IPv6 address"),
        ("http://[fe80::1%25lo]/", "malformed URL"),  # the URL Standard has no zones
    ],
)
def test_bad_zones(text: str, message: str) -> None:
    with pytest.raises(EndpointError, match=re.escape(message)):
        parse_endpoint(text)
