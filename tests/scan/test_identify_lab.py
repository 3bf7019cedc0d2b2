"""Identification against the lab: every ground-truth port's service, product and version.

The lab (tests/_lab.py) runs Debian's own daemons in a network namespace; identification
runs inside it, all ports at once, as a scan would.
"""

from __future__ import annotations

import json
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from tests._lab import Lab, load_ground_truth

pytestmark = [pytest.mark.lab, pytest.mark.root]

INSIDE = Path(__file__).with_name("_identify_inside.py")
TRUTH = load_ground_truth()


@pytest.fixture(scope="module")
def verdicts(lab: Lab) -> dict[tuple[int, str], dict[str, Any]]:
    specs = [f"{r.port}/{r.transport}" for r in lab.ground_truth]
    proc = lab.run_in([sys.executable, str(INSIDE), *specs], timeout=60)
    assert proc.returncode == 0, proc.stderr
    return {(v["port"], v["transport"]): v for v in json.loads(proc.stdout)}


@pytest.mark.parametrize("row", TRUTH, ids=[f"{r.port}/{r.transport}" for r in TRUTH])
def test_every_lab_port_is_identified(verdicts: dict[tuple[int, str], Any], row: Any) -> None:
    found = verdicts[(row.port, row.transport)]
    assert found["service"] == row.service
    if row.announced:
        assert found["product"] == row.product
    assert row.version_matches(found["version"]), (found["version"], row.version)
    if row.tls:
        assert found["tls_subject"] is not None


def test_probe_command_on_imaps(lab: Lab) -> None:
    proc = lab.run_in([sys.executable, "-m", "portkit", "probe", "127.0.0.1:993", "--json"])
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["identified"]["service"] == "imaps"
    assert doc["identified"]["tls"]["subject"].startswith("CN=")
    assert doc["matches_expected"] is True


def test_probe_command_names_the_non_standard_port(lab: Lab) -> None:
    proc = lab.run_in([sys.executable, "-m", "portkit", "probe", "127.0.0.1:3000"])
    assert proc.returncode == 0, proc.stderr
    assert "answers    http: nginx 1.22.1" in proc.stdout
    assert "but http answers" in proc.stdout


def test_starttls_certificates_are_recorded_as_nmap_does(lab: Lab) -> None:
    # Dovecot offers STLS and STARTTLS on 110 and 143, Postfix STARTTLS on 587 only.
    if not lab.extra:
        pytest.skip("needs the lab's --extra servers (submission on 587)")
    argv = [sys.executable, "-m", "portkit", "scan", "127.0.0.1", "-p", "25,110,143,587"]
    proc = lab.run_in([*argv, "--detect", "-o", "json"])
    assert proc.returncode == 0, proc.stderr
    ports = {p["port"]: p["identified"] for p in json.loads(proc.stdout)["hosts"][0]["ports"]}
    for port, service in ((110, "pop3"), (143, "imap"), (587, "smtp")):
        assert ports[port]["service"] == service  # the plain protocol keeps its name
        assert ports[port]["tls"] is not None, port
        assert ports[port]["tls"]["subject"].startswith("CN=")
    assert ports[25]["tls"] is None  # no STARTTLS offered there
    xml = lab.run_in([*argv, "--detect", "-o", "xml"])
    assert xml.returncode == 0, xml.stderr
    services = {
        int(p.get("portid", "0")): p.find("service") for p in ET.fromstring(xml.stdout).iter("port")
    }
    submission = services[587]
    assert submission is not None
    assert submission.get("name") == "smtp"
    assert submission.get("tunnel") is None  # STARTTLS is not nmap's ssl tunnel


def test_probe_says_the_tls_came_from_starttls(lab: Lab) -> None:
    proc = lab.run_in([sys.executable, "-m", "portkit", "probe", "127.0.0.1:143"])
    assert proc.returncode == 0, proc.stderr
    assert "(after STARTTLS)" in proc.stdout
    assert "certificate  CN=" in proc.stdout
    implicit = lab.run_in([sys.executable, "-m", "portkit", "probe", "127.0.0.1:993"])
    assert "STARTTLS" not in implicit.stdout
