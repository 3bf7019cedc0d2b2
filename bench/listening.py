#!/usr/bin/env python3
"""`portkit listening` side by side with `ss -ltnup` and `lsof -i`, in one run.

The machine gets --sockets extra loopback listeners (TCP and UDP, held by this process)
so that every tool has a real table to read; each command is run --rounds times and
the table shows the median wall time and the ratio of portkit to each peer. Every
tool runs with the same privileges (this user's), and prints to /dev/null.

Usage: python bench/listening.py [--sockets N] [--rounds N]
"""

from __future__ import annotations

import argparse
import shutil
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def portkit_command() -> list[str]:
    script = Path(sys.executable).with_name("portkit")
    if script.exists():
        return [str(script), "listening"]
    return [sys.executable, "-m", "portkit", "listening"]


def wall(command: list[str], rounds: int) -> float:
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sockets", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    count = max(0, min(args.sockets, 2000))  # bounded
    rounds = max(1, min(args.rounds, 100))
    held = []
    try:
        for i in range(count):
            kind = socket.SOCK_STREAM if i % 2 == 0 else socket.SOCK_DGRAM
            sock = socket.socket(socket.AF_INET, kind)
            sock.bind(("127.0.0.1", 0))
            if kind == socket.SOCK_STREAM:
                sock.listen()
            held.append(sock)
        import os

        env_path = str(ROOT / "src")
        os.environ["PYTHONPATH"] = env_path + os.pathsep + os.environ.get("PYTHONPATH", "")
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
        results = {name: wall(command, rounds) for name, command in commands.items()}
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
    ours = results["portkit listening"]
    print(f"{count} extra listeners, median of {rounds} runs (ms, lower is better)")
    print(f"{'command':<20}{'ms':>8}{'portkit/peer':>14}")
    for name, seconds in results.items():
        ratio = "" if name == "portkit listening" else f"{ours / seconds:.2f}"
        name = f"{name} (floor)" if name.startswith("python") else name
        print(f"{name:<20}{seconds * 1000:>8.1f}{ratio:>14}")
    print(f"{'listening_sockets()':<20}{statistics.median(in_process) * 1000:>8.1f}   (in process)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
