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
import resource
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


def timed(command: list[str]) -> tuple[float, float]:
    """Wall-clock and CPU (user + system) seconds of one run of ``command``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return elapsed, cpu


def interleaved(
    commands: dict[str, list[str]], rounds: int
) -> dict[str, list[tuple[float, float]]]:
    """Run every command once per round, in turn, so that load from other processes on
    the machine falls on all of them alike; one warm-up round is not counted."""
    samples: dict[str, list[tuple[float, float]]] = {name: [] for name in commands}
    for round_number in range(rounds + 1):
        for name, command in commands.items():
            result = timed(command)
            if round_number:
                samples[name].append(result)
    return samples


def compile_sources() -> None:
    """Write bytecode for every module, as installing a wheel does: without it (a fresh
    checkout, or PYTHONDONTWRITEBYTECODE set) each run would time the compiler too."""
    import compileall

    compileall.compile_dir(str(ROOT / "src"), quiet=1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()
    compile_sources()
    rounds = max(3, min(args.rounds, 500))  # bounded

    commands = {
        "portkit lookup 443": portkit_command(),
        "python -c pass": [sys.executable, "-c", "pass"],
    }
    getent = shutil.which("getent")
    if getent:
        commands["getent services 443"] = [getent, "services", "443"]
    samples = interleaved(commands, rounds)

    sys.path.insert(0, str(ROOT / "src"))
    from portkit.registry import load_registry

    start = time.perf_counter()
    registry = load_registry(use_cache=False)
    load_ms = (time.perf_counter() - start) * 1000
    number = 100_000
    per_lookup = timeit.timeit(lambda: registry.service_name(443), number=number) / number
    per_name = timeit.timeit(lambda: registry.by_name("imaps"), number=number) / number

    print(f"rounds: {rounds}, interleaved (medians)")
    print(f"{'command':<24} {'wall ms':>8} {'cpu ms':>8}")
    for name, runs in samples.items():
        wall = statistics.median(r[0] for r in runs) * 1000
        cpu = statistics.median(r[1] for r in runs) * 1000
        print(f"{name:<24} {wall:8.1f} {cpu:8.1f}")
    ours = samples["portkit lookup 443"]
    for name, runs in samples.items():
        if name != "portkit lookup 443":
            # the median of the ratios of runs made one after the other
            wall_ratio = statistics.median(a[0] / b[0] for a, b in zip(ours, runs, strict=True))
            cpu_ratio = statistics.median(
                a[1] / max(b[1], 1e-4) for a, b in zip(ours, runs, strict=True)
            )
            print(f"ratio portkit / {name}: wall {wall_ratio:.2f}x, cpu {cpu_ratio:.2f}x")
    print(f"registry load (in process): {load_ms:.1f} ms for {len(registry)} entries")
    print(f"lookup by port (loaded): {per_lookup * 1e6:.2f} us")
    print(f"lookup by name (loaded): {per_name * 1e6:.2f} us")
    return 0


if __name__ == "__main__":
    sys.exit(main())
