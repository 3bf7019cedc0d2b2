#!/usr/bin/env python3
"""Start-up cost of `portkit lookup 443`, side by side with its peers, in one run.

Peers: `python -c pass` (the floor for any Python CLI) and `getent services 443`
(glibc's lookup in /etc/services, a C program). Also measured: loading the registry
and the cost of one in-process lookup once it is loaded.

Usage: python bench/cli_startup.py [--rounds N]
Prints a table of medians and the ratios of portkit to each peer.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time
import timeit
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def portkit_command() -> list[str]:
    script = Path(sys.executable).with_name("portkit")
    if script.exists():
        return [str(script), "lookup", "443"]
    return [sys.executable, "-m", "portkit", "lookup", "443"]


def wall(command: list[str], rounds: int) -> float:
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()
    rounds = max(3, min(args.rounds, 500))  # bounded

    commands = {
        "portkit lookup 443": portkit_command(),
        "python -c pass": [sys.executable, "-c", "pass"],
    }
    getent = shutil.which("getent")
    if getent:
        commands["getent services 443"] = [getent, "services", "443"]
    results = {name: wall(cmd, rounds) for name, cmd in commands.items()}

    sys.path.insert(0, str(ROOT / "src"))
    from portkit.registry import load_registry

    start = time.perf_counter()
    registry = load_registry(use_cache=False)
    load_ms = (time.perf_counter() - start) * 1000
    number = 100_000
    per_lookup = timeit.timeit(lambda: registry.service_name(443), number=number) / number
    per_name = timeit.timeit(lambda: registry.by_name("imaps"), number=number) / number

    print(f"rounds: {rounds} (medians)")
    print(f"{'command':<24} {'ms':>8}")
    for name, seconds in results.items():
        print(f"{name:<24} {seconds * 1000:8.1f}")
    ours = results["portkit lookup 443"]
    for name, seconds in results.items():
        if name != "portkit lookup 443":
            print(f"ratio portkit / {name}: {ours / seconds:.2f}x")
    print(f"registry load (in process): {load_ms:.1f} ms for {len(registry)} entries")
    print(f"lookup by port (loaded): {per_lookup * 1e6:.2f} us")
    print(f"lookup by name (loaded): {per_name * 1e6:.2f} us")
    return 0


if __name__ == "__main__":
    sys.exit(main())
