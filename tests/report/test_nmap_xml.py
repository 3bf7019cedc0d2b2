"""portkit's nmap XML against nmap's own: ndiff sees the same ports, nmap.xsl renders it."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.scan.conftest import needs_root

needs_nmap = pytest.mark.skipif(
    shutil.which("nmap") is None or shutil.which("ndiff") is None,
    reason="needs nmap and ndiff (scripts/install-system-deps.sh)",
)
STYLESHEET = Path("/usr/share/nmap/nmap.xsl")
SRC = str(Path(__file__).resolve().parents[2] / "src")

# Listeners on ports whose names nmap's table and portkit's registry agree on, plus a
# few closed ports, inside the test's own namespace.
LISTEN = (22, 80, 443)
SCANNED = "20-30,80,443,8000-8005"

SCRIPT = textwrap.dedent(
    """
    import socket, subprocess, sys
    socks = []
    for port in {listen}:
        s = socket.socket(); s.bind(("127.0.0.1", port)); s.listen(8); socks.append(s)
    nmap = subprocess.run(["nmap", "-sT", "-n", "-Pn", "-p", "{ports}", "-oX", sys.argv[1],
                           "127.0.0.1"], capture_output=True, check=True)
    from portkit.cli import main
    code = main(["scan", "127.0.0.1", "-p", "{ports}", "-o", "xml", "--output", sys.argv[2]])
    sys.exit(code)
    """
)


@needs_root
@needs_nmap
@pytest.mark.root
def test_ndiff_finds_no_port_differences(netns: str, tmp_path: Path) -> None:
    theirs, ours = tmp_path / "nmap.xml", tmp_path / "portkit.xml"
    script = SCRIPT.format(listen=LISTEN, ports=SCANNED)
    subprocess.run(
        ["ip", "netns", "exec", netns, sys.executable, "-c", script, str(theirs), str(ours)],
        check=True,
        timeout=60,
        env={"PYTHONPATH": SRC, "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
    )
    proc = subprocess.run(
        ["ndiff", str(theirs), str(ours)], capture_output=True, text=True, check=False
    )
    assert proc.returncode in (0, 1), proc.stderr  # 1: "differences" (the header lines)
    # ndiff prints a changed port as a "-" line (nmap) and a "+" line (portkit). Service
    # names may differ (nmap's own table versus the IANA registry); states may not.
    removed: list[tuple[str, ...]] = []
    added: list[tuple[str, ...]] = []
    for line in proc.stdout.splitlines():
        if line[:1] not in "+-" or line[1:].startswith(("Nmap ", "portkit ")):
            continue
        words = line[1:].split()
        if words:
            (removed if line[0] == "-" else added).append(tuple(words[:2]))
    assert sorted(removed) == sorted(added), proc.stdout
    assert all("/tcp" in port for port, _state in removed), proc.stdout
    # The same document is what nmap's stylesheet turns into a report.
    root = ET.parse(ours).getroot()
    opened = {
        int(p.get("portid", "0"))
        for p in root.iter("port")
        if p.find("state") is not None and p.find("state").get("state") == "open"  # type: ignore[union-attr]
    }
    assert opened == set(LISTEN)


@pytest.mark.skipif(
    shutil.which("xsltproc") is None or not STYLESHEET.exists(),
    reason="needs xsltproc and nmap's stylesheet (nmap, xsltproc packages)",
)
def test_nmap_stylesheet_renders_our_xml(tmp_path: Path) -> None:
    import socket

    from portkit.cli import main

    server = socket.socket()
    server.bind(("127.0.0.2", 0))
    server.listen(8)
    port = server.getsockname()[1]
    out = tmp_path / "scan.xml"
    try:
        assert (
            main(
                ["scan", "127.0.0.2", "-p", f"{port},{port + 1}", "-o", "xml", "--output", str(out)]
            )
            == 0
        )
    finally:
        server.close()
    proc = subprocess.run(
        ["xsltproc", str(STYLESHEET), str(out)], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    html = proc.stdout
    assert "<html" in html
    assert "127.0.0.2" in html
    assert f">{port}<" in html
    assert "portkit scan 127.0.0.2" in html
