"""lab/up.sh and lab/down.sh: refusals, clean teardown, and failures that leave nothing behind."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests._lab import LAB_DIR, Lab, lab_down, lab_unavailable_reason, lab_up

pytestmark = [pytest.mark.lab, pytest.mark.root]

UP = str(LAB_DIR / "up.sh")
DOWN = str(LAB_DIR / "down.sh")


@pytest.fixture(scope="module", autouse=True)
def _needs_lab() -> None:
    reason = lab_unavailable_reason()
    if reason is not None:
        pytest.skip(reason)


_serial = itertools.count(1)


@pytest.fixture
def name() -> Iterator[str]:
    """A fresh namespace name for one test, torn down afterwards whatever happened."""
    ns = f"pk-lab-{os.getpid()}-t{next(_serial)}"
    yield ns
    lab_down(ns)


@pytest.fixture
def tmpdir_root() -> Iterator[Path]:
    """A world-traversable TMPDIR, so the test can see exactly what a lab leaves in it."""
    root = Path(tempfile.mkdtemp(prefix="pk-lab-test-"))
    root.chmod(0o755)
    yield root
    for leftover in root.iterdir():
        subprocess.run(["rm", "-rf", "--", str(leftover)], check=True)
    root.rmdir()


def up(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run lab/up.sh with ARGS."""
    return subprocess.run(
        [UP, *args],
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
        env={**os.environ, **(env or {})},
    )


def processes_mentioning(text: str) -> list[str]:
    """Command lines of running processes that mention TEXT (the daemons all name their state)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue  # the process ended while we looked
        if text in cmdline:
            found.append(f"{entry.name}: {cmdline}")
    return found


def assert_nothing_left(name: str, tmp_root: Path | None = None) -> None:
    """No namespace, no state pointer, no state directory and no daemon remain for NAME."""
    assert not Path("/run/netns", name).exists()
    assert not (LAB_DIR / "state" / name).exists()
    if tmp_root is not None:
        assert list(tmp_root.iterdir()) == []
        assert processes_mentioning(str(tmp_root)) == []


def test_up_refuses_a_name_in_use(lab: Lab) -> None:
    before = lab.pids()
    proc = up(lab.name)
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        f"lab/up.sh: network namespace '{lab.name}' already exists; "
        f"run lab/down.sh {lab.name} first"
    )
    assert lab.pids() == before
    for pid in before.values():
        assert Path(f"/proc/{pid}").exists(), "refusing must not disturb the running lab"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["bad name!"],
            "namespace name must be 1-40 letters, digits, '.', '_' or '-', not 'bad name!'",
        ),
        (
            ["--timeout", "soon", "pk-lab-x"],
            "--timeout must be a whole number of seconds, not 'soon'",
        ),
        (["--fast", "pk-lab-x"], "unknown option '--fast'"),
        ([], "lab/up.sh [--extra] [--timeout SECONDS] NAME"),
    ],
)
def test_up_rejects_bad_usage(args: list[str], message: str) -> None:
    proc = up(*args)
    assert proc.returncode == 2
    assert message in proc.stderr


def test_up_refuses_a_tmpdir_others_cannot_traverse(name: str, tmpdir_root: Path) -> None:
    private = tmpdir_root / "private"
    private.mkdir(mode=0o700)
    proc = up(name, env={"TMPDIR": str(private)})
    assert proc.returncode == 2
    assert f"'{private}' is not traversable by other users" in proc.stderr
    assert list(private.iterdir()) == []
    private.rmdir()
    assert_nothing_left(name, tmpdir_root)


def test_down_stops_everything_and_is_safe_twice(name: str) -> None:
    running = lab_up(name, extra=False)
    assert running.state_dir.is_dir()
    in_ns = subprocess.run(
        ["ip", "netns", "pids", name], capture_output=True, text=True, check=True
    ).stdout.split()
    assert len(in_ns) >= len(running.pids())  # the daemons and the children they spawned
    first = subprocess.run([DOWN, name], capture_output=True, text=True, check=False)
    assert (first.returncode, first.stdout, first.stderr) == (0, f"lab {name} down\n", "")
    for pid in in_ns:
        assert not Path(f"/proc/{pid}").exists() or _netns_of(int(pid)) != name
    assert not running.state_dir.exists()
    assert_nothing_left(name)
    second = subprocess.run([DOWN, name], capture_output=True, text=True, check=False)
    assert (second.returncode, second.stdout) == (0, f"lab {name} down\n")


def _netns_of(pid: int) -> str:
    return subprocess.run(
        ["ip", "netns", "identify", str(pid)], capture_output=True, text=True, check=False
    ).stdout.strip()


def test_a_daemon_that_exits_is_named_and_the_lab_torn_down(name: str, tmpdir_root: Path) -> None:
    proc = up(name, env={"TMPDIR": str(tmpdir_root), "PORTKIT_LAB_BREAK": "dovecot"})
    assert proc.returncode == 1
    assert proc.stderr.startswith(
        "lab/up.sh: dovecot exited before answering on its ports; "
        "its log: broken on purpose by PORTKIT_LAB_BREAK"
    )
    assert f"lab {name} down" in proc.stderr
    assert_nothing_left(name, tmpdir_root)


def test_a_daemon_that_never_listens_times_out_by_name(name: str, tmpdir_root: Path) -> None:
    env = {"TMPDIR": str(tmpdir_root), "PORTKIT_LAB_BREAK": "vsftpd:silent"}
    proc = up("--timeout", "2", name, env=env)
    assert proc.returncode == 1
    assert proc.stderr.startswith("lab/up.sh: not answering after 2 s: vsftpd:21;")
    assert_nothing_left(name, tmpdir_root)


def test_interrupted_up_leaves_nothing(name: str, tmpdir_root: Path) -> None:
    env = {**os.environ, "TMPDIR": str(tmpdir_root)}
    with subprocess.Popen(
        [UP, name], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as proc:
        # Wait (bounded) until some daemons are running, then interrupt the start.
        deadline = time.monotonic() + 30
        started = 0
        while started < 3 and time.monotonic() < deadline and proc.poll() is None:
            pids = list(tmpdir_root.glob("portkit-lab-*/pids"))
            started = len(pids[0].read_text().splitlines()) if pids else 0
            time.sleep(0.01)
        assert started >= 3, "up.sh did not start three daemons within 30 s"
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert f"lab {name} down" in err
    assert_nothing_left(name, tmpdir_root)
