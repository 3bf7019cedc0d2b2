"""Commands run by a user who cannot read the registry cache (another user's HOME)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
NOBODY = 65534


def _python_for_nobody() -> str | None:
    """A Python 3.11+ interpreter the unprivileged user may run, or None."""
    for candidate in (sys.executable, os.path.realpath(sys.executable), "/usr/bin/python3"):
        proc = subprocess.run(
            [
                "setpriv",
                f"--reuid={NOBODY}",
                f"--regid={NOBODY}",
                "--clear-groups",
                candidate,
                "-c",
                "import sys; assert sys.version_info >= (3, 11)",
            ],
            capture_output=True,
            check=False,
        )
        if proc.returncode == 0:
            return candidate
    return None


@pytest.fixture
def locked_cache(tmp_path: Path) -> Path:
    """A cache directory holding a registry file that user nobody may not enter."""
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "services.tsv").write_text("# source: test\nnot a registry\n", encoding="utf-8")
    cache.chmod(0o700)  # owned by root: nobody cannot even look inside
    tmp_path.chmod(0o755)
    return cache


@pytest.mark.root
@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run a command as another user")
@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["lookup", "443"], "https"),
        (["listening", "--port", "1"], "nothing listens on port 1"),
        (["scan", "127.0.0.1", "-p", "1"], "scanned 1 host"),
    ],
)
def test_falls_back_to_the_shipped_registry(
    locked_cache: Path, argv: list[str], expected: str
) -> None:
    if shutil.which("setpriv") is None:
        pytest.skip("needs setpriv (util-linux) to drop to user nobody")
    python = _python_for_nobody()
    if python is None:
        pytest.skip("needs a Python 3.11 that user nobody may run")
    site = [p for p in sys.path if p.endswith("site-packages")]
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(locked_cache.parent),
        "PORTKIT_CACHE_DIR": str(locked_cache),
        "PYTHONPATH": os.pathsep.join([str(REPO / "src"), *site]),
    }
    check = subprocess.run(
        [
            "setpriv",
            f"--reuid={NOBODY}",
            f"--regid={NOBODY}",
            "--clear-groups",
            python,
            "-c",
            "import portkit.registry",
        ],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        cwd="/",
    )
    if check.returncode != 0:
        pytest.skip(f"this checkout is not readable by user nobody: {check.stderr.strip()[-80:]}")
    proc = subprocess.run(
        [
            "setpriv",
            f"--reuid={NOBODY}",
            f"--regid={NOBODY}",
            "--clear-groups",
            python,
            "-m",
            "portkit",
            *argv,
        ],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        cwd="/",
        timeout=60,
    )
    assert "internal error" not in proc.stderr
    assert proc.returncode in (0, 1), proc.stderr  # listening --port: 1 when nothing listens
    assert expected in proc.stdout
