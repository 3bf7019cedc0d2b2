"""Smoke tests of the lab: real clients inside the namespace get real answers from every port."""

from __future__ import annotations

import json
import re
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from portkit.registry import default_registry
from tests._lab import Lab, load_ground_truth

pytestmark = [pytest.mark.lab, pytest.mark.root]

INSIDE = Path(__file__).with_name("_inside.py")
TRUTH = load_ground_truth()
USER, PASSWORD = "labuser", "labpass"
WELCOME_SUBJECT = "Subject: welcome to the portkit lab"


def rows(*services: str) -> list[Any]:
    """Ground-truth rows for SERVICES, as pytest params named port/transport."""
    return [pytest.param(r, id=f"{r.port}/{r.transport}") for r in TRUTH if r.service in services]


def need(lab: Lab, row: Any) -> None:
    """Skip when ROW is served only by `lab/up.sh --extra` and this lab was started without."""
    if row.extra and not lab.extra:
        pytest.skip("this lab was started without --extra")


def inside(lab: Lab, *args: str, host: str = "127.0.0.1") -> dict[str, Any]:
    """Run one of the clients in _inside.py in the lab's namespace and return its JSON."""
    proc = lab.run_in(["env", f"PORTKIT_LAB_HOST={host}", sys.executable, str(INSIDE), *args])
    assert proc.returncode == 0, proc.stderr
    result: dict[str, Any] = json.loads(proc.stdout)
    return result


def curl(lab: Lab, *args: str) -> tuple[int, str, str]:
    """Run curl in the namespace; return its exit code, stdout and verbose stderr."""
    proc = lab.run_in(["curl", "-sS", "-v", "--max-time", "20", *args])
    return proc.returncode, proc.stdout, proc.stderr


def test_every_daemon_runs_inside_the_namespace(lab: Lab) -> None:
    pids = lab.pids()
    expected = {"nginx", "sshd", "postfix", "dovecot", "vsftpd", "dnsmasq", "inetd"}
    expected |= {"redis", "memcached"} if lab.extra else set()
    expected |= {"vsftpd6"} if "::1" in lab.hosts else set()
    assert set(pids) == expected
    for daemon, pid in pids.items():
        proc = lab.run_in(["ip", "netns", "identify", str(pid)])
        assert proc.stdout.strip() == lab.name, f"{daemon} (pid {pid}) is not in {lab.name}"


def test_ground_truth_is_consistent() -> None:
    keys = [(r.port, r.transport) for r in TRUTH]
    assert len(keys) == len(set(keys))
    for r in TRUTH:
        assert r.transport in {"tcp", "udp"}
        assert r.product
        if r.version:
            assert r.announced, f"{r.port}: a version is only known when announced"


@pytest.mark.parametrize("service", sorted({r.service for r in TRUTH}))
def test_ground_truth_services_are_spelled_as_the_registry_does(service: str) -> None:
    names = {s.name for s in default_registry().by_name(service)}
    assert names == {service}


@pytest.mark.parametrize("row", rows("http", "https"))
def test_nginx_serves_http_and_https(lab: Lab, row: Any) -> None:
    need(lab, row)
    scheme = "https" if row.tls else "http"
    code, out, err = curl(
        lab, "-k", "-D", "-", "-o", "/dev/null", f"{scheme}://127.0.0.1:{row.port}/"
    )
    assert code == 0, err
    assert out.startswith("HTTP/1.1 200"), out
    headers = dict(line.split(": ", 1) for line in out.splitlines()[1:] if ": " in line)
    assert headers["Server"] == f"{row.product}/{row.version}"
    assert headers["X-Lab-Port"] == str(row.port)
    if row.tls:
        assert "CN=lab.portkit.test" in err


@pytest.mark.parametrize("row", rows("ssh"))
def test_openssh_banner_and_host_key(lab: Lab, row: Any) -> None:
    proc = lab.run_in(["ssh-keyscan", "-t", "ed25519", "-T", "10", "-p", str(row.port), lab.host])
    assert proc.returncode == 0, proc.stderr
    # The ground truth spells the version as nmap does ("9.2p1 Debian 2+deb12u10"); on
    # the wire the release comes first ("OpenSSH_9.2p1 Debian-2+deb12u10").
    release = row.version.split()[0]
    assert f"SSH-2.0-{row.product}_{release} " in proc.stderr
    key = (lab.state_dir / "ssh" / "ssh_host_ed25519_key.pub").read_text().split()[:2]
    scanned = proc.stdout.split()
    assert scanned[1:3] == key, "the key served is not the lab's own host key"


@pytest.mark.parametrize("row", rows("smtp", "submissions"))
def test_postfix_speaks_smtp(lab: Lab, row: Any) -> None:
    need(lab, row)
    # 587 is the submission service: STARTTLS required before mail (RFC 6409, RFC 3207).
    mode = "tls" if row.tls else "starttls" if row.port == 587 else "plain"
    result = inside(lab, "smtp", str(row.port), mode)
    code, greeting = result["greeting"]
    assert code == 220
    assert greeting.startswith("mail.lab.portkit.test ESMTP Postfix")
    if mode == "starttls":
        assert "STARTTLS" in result["ehlo_before_tls"][1].splitlines()
        assert result["mail_before_tls"] == [530, "5.7.0 Must issue a STARTTLS command first"]
        assert result["starttls"] == 220
    ehlo_code, ehlo = result["ehlo"]
    assert ehlo_code == 250
    assert "PIPELINING" in ehlo.splitlines()
    assert result["noop"] == 250
    assert (result["tls_version"] is not None) == (mode != "plain")


@pytest.mark.parametrize("row", rows("pop3", "pop3s"))
def test_dovecot_pop3_retrieves_the_welcome_message(lab: Lab, row: Any) -> None:
    url = f"{row.service}://127.0.0.1:{row.port}/1"
    code, out, err = curl(lab, "-k", "-u", f"{USER}:{PASSWORD}", url)
    assert code == 0, err
    assert WELCOME_SUBJECT in out
    assert "+OK Dovecot (Debian) ready." in err
    assert ("SSL connection using TLS" in err) == row.tls


@pytest.mark.parametrize("row", rows("imap", "imaps"))
def test_dovecot_imap_fetches_the_welcome_message(lab: Lab, row: Any) -> None:
    url = f"{row.service}://127.0.0.1:{row.port}/INBOX;UID=1"
    code, out, err = curl(lab, "-k", "-u", f"{USER}:{PASSWORD}", url)
    assert code == 0, err
    assert WELCOME_SUBJECT in out
    assert "Dovecot (Debian) ready." in err
    assert ("SSL connection using TLS" in err) == row.tls


def test_dovecot_refuses_a_wrong_password(lab: Lab) -> None:
    code, _, err = curl(lab, "-u", f"{USER}:wrong", "pop3://127.0.0.1:110/")
    assert code == 67, err  # CURLE_LOGIN_DENIED


def test_vsftpd_anonymous_read_only(lab: Lab) -> None:
    code, out, err = curl(lab, "ftp://127.0.0.1:21/pub/README.txt")
    assert code == 0, err
    assert out == "portkit lab: a file for anonymous FTP\n"
    row = lab.row(21)
    assert f"220 ({row.product.replace('vsftpd', 'vsFTPd')} {row.version})" in err
    proc = lab.run_in(
        ["curl", "-sS", "--max-time", "20", "-T", "-", "ftp://127.0.0.1:21/pub/new.txt"],
        input="should not be stored\n",
    )
    assert proc.returncode != 0, "anonymous upload was accepted"
    assert not (lab.state_dir / "ftp" / "pub" / "new.txt").exists()


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_dnsmasq_answers_for_the_lab_zone_only(lab: Lab, transport: str) -> None:
    a = inside(lab, "dns", "53", transport, "www.lab.portkit.test", "A", "IN")
    assert (a["rcode"], a["answers"]) == ("NOERROR", ["127.0.0.1"])
    soa = inside(lab, "dns", "53", transport, "lab.portkit.test", "SOA", "IN")
    assert soa["aa"], "dnsmasq is not authoritative for lab.portkit.test"
    assert soa["answers"][0].startswith("ns.lab.portkit.test. hostmaster.lab.portkit.test.")
    version = inside(lab, "dns", "53", transport, "version.bind", "TXT", "CH")
    row = lab.row(53, transport)
    assert version["answers"] == [f'"{row.product}-{row.version}"']
    # No upstream: a name outside the zone is refused, never forwarded.
    outside = inside(lab, "dns", "53", transport, "example.com", "A", "IN")
    assert (outside["rcode"], outside["answers"]) == ("REFUSED", [])


def test_telnetd_negotiates_then_prompts_for_login(lab: Lab) -> None:
    result = inside(lab, "telnet", "23")
    first = bytes.fromhex(result["first"])
    assert first[0] == 0xFF, "telnetd should open with IAC option negotiation"
    assert first[1] in (0xFB, 0xFD)  # WILL or DO
    assert result["text"].rstrip().endswith("login:")


@pytest.mark.parametrize("row", rows("redis"))
def test_redis_on_a_non_standard_port(lab: Lab, row: Any) -> None:
    need(lab, row)
    reply = inside(lab, "command", str(row.port), r"INFO server\r\n", "tcp_port:")["reply"]
    assert f"redis_version:{row.version}\r\n" in reply
    assert f"tcp_port:{row.port}" in reply


@pytest.mark.parametrize("row", rows("memcache"))
def test_memcached_on_a_non_standard_port(lab: Lab, row: Any) -> None:
    need(lab, row)
    reply = inside(lab, "command", str(row.port), r"version\r\n", "\r\n")["reply"]
    assert reply == f"VERSION {row.version}\r\n"


@pytest.mark.parametrize("host", ["127.0.0.1", "::1"])
def test_nmap_sees_exactly_the_ground_truth_ports(lab: Lab, host: str) -> None:
    if host not in lab.hosts:
        pytest.skip(f"the lab does not listen on {host} (no loopback IPv6 in this kernel)")
    family = ["-6"] if ":" in host else []
    proc = lab.run_in(
        ["nmap", *family, "-n", "-Pn", "-sT", "-p-", "--max-retries", "1", "-oX", "-", host],
        timeout=100,
    )
    assert proc.returncode == 0, proc.stderr
    tree = ET.fromstring(proc.stdout)
    open_tcp = sorted(
        int(port.attrib["portid"])
        for port in tree.iter("port")
        if port.attrib["protocol"] == "tcp"
        and any(state.attrib["state"] == "open" for state in port.iter("state"))
    )
    assert open_tcp == lab.ports("tcp")


def test_the_same_servers_answer_on_ipv6(lab: Lab) -> None:
    if "::1" not in lab.hosts:
        pytest.skip("the lab does not listen on ::1 (no loopback IPv6 in this kernel)")
    code, out, err = curl(lab, "-k", "-D", "-", "-o", "/dev/null", "https://[::1]:443/")
    assert code == 0, err
    assert "Server: nginx/" in out
    code, out, err = curl(lab, "ftp://[::1]:21/pub/README.txt")
    assert (code, out) == (0, "portkit lab: a file for anonymous FTP\n"), err
    code, out, err = curl(lab, "-u", f"{USER}:{PASSWORD}", "imap://[::1]:143/INBOX;UID=1")
    assert code == 0, err
    assert WELCOME_SUBJECT in out
    keyscan = lab.run_in(["ssh-keyscan", "-T", "10", "-p", "2222", "::1"])
    assert "SSH-2.0-OpenSSH_" in keyscan.stderr
    assert inside(lab, "smtp", "25", "plain", host="::1")["greeting"][0] == 220
    for transport in ("udp", "tcp"):
        a = inside(lab, "dns", "53", transport, "www.lab.portkit.test", "A", "IN", host="::1")
        assert a["answers"] == ["127.0.0.1"]
    assert inside(lab, "telnet", "23", host="::1")["text"].rstrip().endswith("login:")


def test_nmap_sees_dns_on_udp(lab: Lab) -> None:
    proc = lab.run_in(["nmap", "-n", "-Pn", "-sU", "-p", "53", "-oG", "-", lab.host], timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"\b53/open/udp//domain", proc.stdout), proc.stdout
    assert lab.ports("udp") == [53]


def test_portkit_runs_inside_the_lab(lab: Lab) -> None:
    proc = lab.portkit("lookup", "2222")
    assert proc.returncode == 0, proc.stderr
    name = default_registry().service_name(2222, "tcp")
    assert name is not None
    assert any(line.split()[:3] == ["2222", "tcp", name] for line in proc.stdout.splitlines())
