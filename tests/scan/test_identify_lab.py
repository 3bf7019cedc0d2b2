"""Identification against the lab: every ground-truth port's service, product and version.

The lab (tests/_lab.py) runs Debian's own daemons in a network namespace; identification
runs inside it, all ports at once, as a scan would.
"""

from __future__ import annotations

import json
import sys
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
        assert found["product"] is not None
        assert row.product.lower() in found["product"].lower()
    if row.version:
        assert found["version"] == row.version
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
