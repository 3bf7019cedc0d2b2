#!/usr/bin/env python3
"""`portkit listening` side by side with `ss -ltnup` and `lsof -i`, in one run.

The machine gets --sockets extra loopback listeners (TCP and UDP, held by this process)
so that every tool has a real table to read; each command is run --rounds times and
the table shows the median wall time and the ratio of portkit to each peer. Every
tool runs with the same privileges (this user's), and prints to /dev/null.

Usage: python bench/listening.py [--sockets N] [--rounds N] [--baseline SRC]

--baseline names the ``src`` directory of another checkout (``git worktree add /tmp/old
HEAD~3``): its ``portkit listening`` then runs in the same rounds, for a before/after.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def portkit_command() -> list[str]:
    script = Path(sys.executable).with_name("portkit")
    if script.exists():
        return [str(script), "listening"]
    return [sys.executable, "-m", "portkit", "listening"]


def measure(
    command: list[str], rounds: int, env: dict[str, str] | None = None
) -> tuple[float, float]:
    """Median wall time and median CPU time (user + system) of ``command``, in seconds.

    CPU time is the steadier figure on a shared machine, where wall time includes the
    wait for a core.
    """
    walls, cpus = [], []
    for _ in range(rounds):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, env=env)
        walls.append(time.perf_counter() - start)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return statistics.median(walls), statistics.median(cpus)


def compile_sources(*sources: Path) -> None:
    """Write bytecode for every module, as installing a wheel does: without it (a fresh
    checkout, or PYTHONDONTWRITEBYTECODE set) each run would time the compiler too."""
    import compileall

    for source in sources:
        compileall.compile_dir(str(source), quiet=1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sockets", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--baseline", type=Path, metavar="SRC", help="another checkout's src")
    args = parser.parse_args()
    compile_sources(ROOT / "src", *([args.baseline] if args.baseline else []))
    count = max(0, min(args.sockets, 2000))  # bounded
    rounds = max(1, min(args.rounds, 100))
    held = []
    # A private cache directory: the registry's index lives there, and another checkout's
    # portkit run in between (a different data file path) would make a timed run rebuild it.
    cache = tempfile.TemporaryDirectory(prefix="pk-bench-listening-")
    try:
        for i in range(count):
            kind = socket.SOCK_STREAM if i % 2 == 0 else socket.SOCK_DGRAM
            sock = socket.socket(socket.AF_INET, kind)
            sock.bind(("127.0.0.1", 0))
            if kind == socket.SOCK_STREAM:
                sock.listen()
            held.append(sock)
        env_path = str(ROOT / "src")
        os.environ["PYTHONPATH"] = env_path + os.pathsep + os.environ.get("PYTHONPATH", "")
        os.environ["XDG_CACHE_HOME"] = cache.name
        commands = {
            "portkit listening": portkit_command(),
            "python -c pass": [sys.executable, "-c", "pass"],  # the floor for a Python CLI
        }
        ss = shutil.which("ss")
        if ss:
            commands["ss -ltnup"] = [ss, "-ltnup"]
        lsof = shutil.which("lsof")
        if lsof:
            commands["lsof -i -nP"] = [lsof, "-i", "-nP"]
        envs: dict[str, dict[str, str] | None] = dict.fromkeys(commands)
        if args.baseline:
            commands["baseline listening"] = portkit_command()
            envs["baseline listening"] = {
                **os.environ,
                "PYTHONPATH": str(args.baseline.resolve()),
                "XDG_CACHE_HOME": os.path.join(cache.name, "baseline"),
            }
        # Every command once per round, in turn, so that load from other processes falls
        # on all of them alike; the ratios are medians of the runs made one after another.
        runs: dict[str, list[tuple[float, float]]] = {name: [] for name in commands}
        for name in ("portkit listening", "baseline listening"):
            if name in commands:  # untimed: builds the registry's index
                measure(commands[name], 1, envs[name])
        for _ in range(rounds):
            for name, command in commands.items():
                runs[name].append(measure(command, 1, envs[name]))
        results = {
            name: (statistics.median(r[0] for r in rs), statistics.median(r[1] for r in rs))
            for name, rs in runs.items()
        }
        sys.path.insert(0, env_path)
        from portkit.client import listening_sockets

        listening_sockets()  # warm: the registry loaded once, as in a long-lived process
        in_process = []
        for _ in range(rounds):
            start = time.perf_counter()
            listing = listening_sockets()
            in_process.append(time.perf_counter() - start)
        assert len(listing.sockets) >= count
    finally:
        for sock in held:
            sock.close()
        cache.cleanup()
    # The owner walk (portkit's and ss's alike) visits every process: say how many there were.
    processes = sum(1 for entry in os.listdir("/proc") if entry.isdigit())
    print(
        f"{count} extra listeners, {processes} processes, median of {rounds} runs "
        "(ms, lower is better)"
    )
    print(f"{'command':<24}{'wall':>8}{'cpu':>8}{'portkit/peer (cpu)':>20}")
    for name, (wall_s, cpu_s) in results.items():
        paired = (
            a[1] / max(b[1], 1e-4)
            for a, b in zip(runs["portkit listening"], runs[name], strict=True)
        )
        ratio = "" if name == "portkit listening" else f"{statistics.median(paired):.2f}"
        label = f"{name} (floor)" if name.startswith("python") else name
        print(f"{label:<24}{wall_s * 1000:>8.1f}{cpu_s * 1000:>8.1f}{ratio:>20}")
    in_ms = statistics.median(in_process) * 1000
    print(f"{'listening_sockets()':<24}{in_ms:>8.1f}{'':>8}   (in process, registry loaded)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
