"""The lab as a pytest fixture: real Debian daemons in a network namespace, once per session.

`tests/conftest.py` imports `lab` from here, so any test can ask for it::

    def test_ssh_banner(lab: Lab) -> None:
        proc = lab.run_in(["ssh-keyscan", "-p", "2222", "127.0.0.1"])

The lab is `lab/up.sh --extra pk-lab-<pid>` and is always torn down with `lab/down.sh`.
Without root, or with a package missing, every test using it skips and says why.
"""

from __future__ import annotations

import csv
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
LAB_DIR = REPO / "lab"
GROUND_TRUTH = LAB_DIR / "ground-truth.tsv"
LAB_HOST = "127.0.0.1"
"""The address every lab daemon listens on, inside the namespace."""

UP_TIMEOUT = 60.0
"""Seconds lab/up.sh may take (it gives each daemon 20 s to answer and usually needs ~2 s)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class GroundTruthRow:
    """What the lab runs on one port: the truth a detector's verdict is checked against."""

    port: int
    transport: str
    service: str
    product: str
    version: str
    """Empty when the server does not announce its version."""
    tls: bool
    announced: bool
    """True when the product can be read from what the server sends."""
    extra: bool
    """True for servers started only by `lab/up.sh --extra`."""

    def version_matches(self, found: str | None) -> bool:
        """Whether ``found`` is a release of ``version``'s series: its last number may differ.

        The ground truth records what Debian ships today; a point release (nginx 1.22.1 to
        1.22.4, OpenSSH 9.2p1 to 9.2p3) is the same server, a new series (1.24) is not.
        """
        if not self.version:
            return True
        parts = re.split(r"(\d+)", self.version)  # text, number, text, ..., number, text
        last = max(i for i, part in enumerate(parts) if part.isdigit())
        pattern = "".join(r"\d+" if i == last else re.escape(part) for i, part in enumerate(parts))
        return found is not None and re.fullmatch(pattern, found) is not None


def load_ground_truth(path: Path = GROUND_TRUTH) -> tuple[GroundTruthRow, ...]:
    """Read lab/ground-truth.tsv (tab separated, '#' comment lines, one header line)."""
    with path.open(encoding="utf-8", newline="") as f:
        lines = [line for line in f if not line.startswith("#")]
    return tuple(
        GroundTruthRow(
            port=int(rec["port"]),
            transport=rec["transport"],
            service=rec["service"],
            product=rec["product"],
            version=rec["version"],
            tls=rec["tls"] == "yes",
            announced=rec["announced"] == "yes",
            extra=rec["set"] == "extra",
        )
        for rec in csv.DictReader(lines, delimiter="\t")
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class Lab:
    """A running lab: the namespace's name, its state directory and its ground truth."""

    name: str
    state_dir: Path
    ground_truth: tuple[GroundTruthRow, ...]
    extra: bool
    """True when the --extra servers run too (redis, memcached, submission, https on 8443)."""
    hosts: tuple[str, ...] = (LAB_HOST,)
    """Every address the daemons listen on: 127.0.0.1, and ::1 when the kernel has IPv6."""
    host: str = LAB_HOST

    def run_in(
        self,
        cmd: Sequence[str],
        *,
        timeout: float = 60.0,
        input: str | None = None,
        check: bool = False,
    ) -> subprocess.CompletedProcess[str]:
        """Run CMD inside the lab's namespace (`ip netns exec NAME ...`), capturing text output."""
        return subprocess.run(
            ["ip", "netns", "exec", self.name, *cmd],
            capture_output=True,
            text=True,
            timeout=timeout,
            input=input,
            check=check,
        )

    def portkit(self, *args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        """Run this checkout's `python -m portkit ARGS` inside the lab's namespace."""
        src = str(REPO / "src")
        path = os.environ.get("PYTHONPATH")
        env = {**os.environ, "PYTHONPATH": f"{src}{os.pathsep}{path}" if path else src}
        return subprocess.run(
            ["ip", "netns", "exec", self.name, sys.executable, "-m", "portkit", *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            env=env,
        )

    def ports(self, transport: str = "tcp") -> list[int]:
        """The ports open for TRANSPORT, sorted."""
        return sorted({r.port for r in self.ground_truth if r.transport == transport})

    def row(self, port: int, transport: str = "tcp") -> GroundTruthRow:
        """The ground truth for one port."""
        for r in self.ground_truth:
            if r.port == port and r.transport == transport:
                return r
        raise KeyError(f"no lab ground truth for {port}/{transport}")

    def pids(self) -> dict[str, int]:
        """The pid of each daemon lab/up.sh started, by daemon name."""
        text = (self.state_dir / "pids").read_text(encoding="utf-8")
        return {d: int(p) for d, p in (line.split("\t") for line in text.splitlines() if line)}


def lab_unavailable_reason() -> str | None:
    """Why the lab cannot run here (not root, a package missing), or None when it can."""
    if os.geteuid() != 0:
        return "the lab needs root (network namespaces, ports below 1024)"
    if shutil.which("ip") is None:
        return "the lab needs iproute2 (ip netns)"
    proc = subprocess.run(
        [str(LAB_DIR / "up.sh"), "--check", "--extra"],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        return proc.stderr.strip() or f"lab/up.sh --check exited {proc.returncode}"
    return None


def _hosts(state_dir: Path) -> tuple[str, ...]:
    """The addresses up.sh made the daemons listen on (its state file `addresses`)."""
    return tuple((state_dir / "addresses").read_text(encoding="utf-8").split())


def _lab(name: str, state_dir: Path, *, extra: bool) -> Lab:
    """The Lab whose up.sh state is in STATE_DIR (with the --extra daemons or not)."""
    rows = tuple(r for r in load_ground_truth() if extra or not r.extra)
    return Lab(
        name=name,
        state_dir=state_dir,
        ground_truth=rows,
        extra=extra,
        hosts=_hosts(state_dir),
    )


def lab_up(name: str, *, extra: bool = True) -> Lab:
    """Bring a lab up in namespace NAME; raise RuntimeError with up.sh's message if it fails."""
    cmd = [str(LAB_DIR / "up.sh"), *(["--extra"] if extra else []), name]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=UP_TIMEOUT, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"lab/up.sh {name} failed: {proc.stderr.strip()}")
    state_dir = Path((LAB_DIR / "state" / name).read_text(encoding="utf-8").strip())
    return _lab(name, state_dir, extra=extra)


def lab_down(name: str) -> subprocess.CompletedProcess[str]:
    """Tear down the lab in namespace NAME (safe when it is already gone)."""
    return subprocess.run(
        [str(LAB_DIR / "down.sh"), name],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def lab_attach(name: str) -> Lab:
    """A Lab for one already running (brought up by hand with lab/up.sh NAME)."""
    pointer = LAB_DIR / "state" / name
    if not pointer.is_file() or not Path("/run/netns", name).exists():
        raise RuntimeError(f"no running lab named {name!r} (start it with lab/up.sh {name})")
    state_dir = Path(pointer.read_text(encoding="utf-8").strip())
    daemons = (state_dir / "pids").read_text(encoding="utf-8")
    return _lab(name, state_dir, extra="\nredis\t" in f"\n{daemons}")


@pytest.fixture(scope="session")
def lab() -> Iterator[Lab]:
    """The lab, brought up once per test session as `pk-lab-<pid>` and always torn down.

    With PORTKIT_LAB=NAME in the environment, the tests use that running lab instead (brought
    up by hand with `lab/up.sh --extra NAME`) and leave it running: quicker while developing.
    """
    reason = lab_unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    existing = os.environ.get("PORTKIT_LAB")
    if existing:
        yield lab_attach(existing)
        return
    name = f"pk-lab-{os.getpid()}"
    try:
        running = lab_up(name)
    except BaseException:
        lab_down(name)
        raise
    try:
        yield running
    finally:
        down = lab_down(name)
        if down.returncode != 0:
            raise RuntimeError(f"lab/down.sh {name} failed: {down.stderr.strip()}")
