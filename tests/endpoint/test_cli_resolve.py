"""``portkit resolve``: human output, stable JSON, one-line errors with exit code 2."""

import json
import subprocess
import sys

import pytest

from portkit.cli import main
from tests.endpoint.dnsmasq import DnsServer


def _json(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, object]:
    assert main(["resolve", *argv, "--json"]) == 0
    data: dict[str, object] = json.loads(capsys.readouterr().out)
    return data


def test_8080_url_json(capsys: pytest.CaptureFixture[str]) -> None:
    data = _json(capsys, "http://testing.example.com:8080/login")
    assert data["port"] == 8080
    assert data["explicit_port"] == 8080
    assert data["default_port"] == 80
    assert data["port_source"] == "explicit"
    assert data["scheme"] == "http"
    assert data["host"] == "testing.example.com"
    assert data["path"] == "/login"
    assert data["addresses"] is None
    assert data["srv"] is None
    assert data["explanation"] == "port 8080: explicit in the URL, overriding http's default 80"


def test_https_json(capsys: pytest.CaptureFixture[str]) -> None:
    data = _json(capsys, "https://example.com")
    assert (data["port"], data["port_source"], data["tls"]) == (443, "scheme-default", True)


def test_ssh_json(capsys: pytest.CaptureFixture[str]) -> None:
    data = _json(capsys, "ssh://h")
    assert (data["port"], data["port_source"], data["service"]) == (22, "registry", "ssh")


def test_human_output_explains_the_port(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["resolve", "http://testing.example.com:8080/login"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0] == "connect to testing.example.com port 8080/tcp, speaking http"
    assert "port 8080: explicit in the URL, overriding http's default 80" in lines[1]
    assert any(line.split() == ["default", "port", "80"] for line in lines)
    assert any(line.split() == ["path", "/login"] for line in lines)


def test_human_output_for_an_idn_host(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["resolve", "imaps://bücher.example"]) == 0
    out = capsys.readouterr().out
    assert "xn--bcher-kva.example (bücher.example)" in out
    assert "over TLS" in out.splitlines()[0]


def test_two_argument_form(capsys: pytest.CaptureFixture[str]) -> None:
    data = _json(capsys, "example.org", "smtp")
    assert (data["port"], data["service"], data["form"]) == (25, "smtp", "host-service")


def test_scheme_option(capsys: pytest.CaptureFixture[str]) -> None:
    data = _json(capsys, "example.org", "--scheme", "https")
    assert (data["scheme"], data["port"], data["url"]) == ("https", 443, "https://example.org/")


def test_addresses_of_a_loopback_literal(capsys: pytest.CaptureFixture[str]) -> None:
    data = _json(capsys, "127.0.0.1:8080", "--addresses")
    assert data["addresses"] == [{"family": "ipv4", "address": "127.0.0.1", "port": 8080}]
    assert main(["resolve", "[::1]:8080", "--addresses"]) == 0
    out = capsys.readouterr().out
    assert any(line.split() == ["ipv6", "::1", "8080"] for line in out.splitlines())


def test_srv_against_a_real_dns_server(
    capsys: pytest.CaptureFixture[str], dns_server: DnsServer
) -> None:
    ns = ["--nameserver", dns_server.host, "--nameserver-port", str(dns_server.port)]
    data = _json(capsys, "imaps://example.test", "--srv", *ns)
    assert data["addresses"] is None
    srv = data["srv"]
    assert isinstance(srv, dict)
    assert srv["name"] == "_imaps._tcp.example.test"
    assert srv["records"][0] == {
        "priority": 10,
        "weight": 50,
        "port": 993,
        "target": "mail2.example.test",
    }
    assert main(["resolve", "pop3s://example.test", "--srv", *ns]) == 0
    assert "no SRV records for _pop3s._tcp.example.test" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["http://h:70000/"], "port must be 0-65535, not 70000"),
        (["example.com:99999"], "port must be 0-65535, not 99999"),
        (["http://h:8x/"], "port must be a number, not '8x'"),
        (["example.com:nosuchservice"], "unknown service 'nosuchservice'"),
        (["ssh:///x"], "empty host"),
        (["http://"], "empty host"),
        (["example.com"], "no port in 'example.com'"),
        (["http://exa mple.com/"], "malformed URL"),
        (["example.org", "nosuchservice"], "unknown service"),
        (["example.org", "smtp", "--scheme", "http"], "either SERVICE or --scheme"),
        (["imaps://127.0.0.1", "--srv"], "needs a domain name"),
        (["h:22", "--timeout", "0"], "--timeout: must be more than 0 seconds, not '0'"),
        (["h:22", "--timeout", "250ms"], "--timeout: expected seconds, such as 5 or 0.25"),
    ],
)
def test_bad_input_is_one_line_exit_2(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    assert main(["resolve", *argv]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    err = captured.err.strip()
    assert len(err.splitlines()) == 1
    assert message in err
    assert "Traceback" not in err


def test_help_has_examples() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "portkit", "resolve", "--help"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0
    assert "portkit resolve http://testing.example.com:8080/login" in proc.stdout


def test_plain_resolve_does_not_load_the_network_step() -> None:
    # Without --addresses or --srv, resolve only parses: the module that talks to DNS
    # is never imported, so nothing can have been sent.
    code = (
        "import sys\n"
        "from portkit.cli import main\n"
        "assert main(['resolve', 'https://example.com', '--json']) == 0\n"
        "assert 'portkit.endpoint._resolve' not in sys.modules\n"
        "assert 'dns.asyncresolver' not in sys.modules\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["port"] == 443


@pytest.mark.parametrize(
    ("argv", "port", "transport"),
    [
        (["127.0.0.1:53/udp"], 53, "udp"),
        (["udp://127.0.0.1:5353"], 5353, "udp"),
        (["ntp.example:ntp/udp"], 123, "udp"),
        (["127.0.0.1", "53/udp"], 53, "udp"),
        (["ht\ttp://exa\nmple.com:80\n80/"], 8080, "tcp"),
    ],
)
def test_accepts_the_forms_connect_accepts(
    capsys: pytest.CaptureFixture[str], argv: list[str], port: int, transport: str
) -> None:
    data = _json(capsys, *argv)
    assert (data["port"], data["transport"]) == (port, transport)
    assert main(["resolve", *argv]) == 0
    assert capsys.readouterr().out.startswith("connect to ")


def test_udp_addresses_are_looked_up_for_udp(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["resolve", "127.0.0.1:53/udp", "--addresses"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == "connect to 127.0.0.1 port 53/udp"
    assert "ipv4    127.0.0.1  53" in out
