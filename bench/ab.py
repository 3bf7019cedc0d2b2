"""Benchmark: two source trees of portkit against each other, paired, in a namespace.

For a change to the scan engines: runs the same scans with ``PYTHONPATH`` pointing at
a baseline tree (``--base``, e.g. ``git archive HEAD~3 src | tar -x -C /tmp/base``) and
at this checkout, alternating which goes first, and reports the median of each and
the median of the per-round ratios (this tree / baseline). Every run's open set must
equal the listeners. Listeners and scans live in a namespace of their own (deleted
afterwards), as in ``bench/scan.py``.

    sudo python bench/ab.py --base /tmp/base/src [--rounds 7] [--only syn]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _netns import namespace

import scan as scan_bench  # bench/ is sys.path[0] when run as a script

ROOT = Path(__file__).resolve().parents[1]


def run_once(ns: str, src: str, argv: list[str], expected: set[tuple[str, int]]) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out.xml"
        env = {**os.environ, "PYTHONPATH": src}
        start = time.perf_counter()
        proc = subprocess.run(
            ["ip", "netns", "exec", ns, *argv, "-o", "xml", "--output", str(out)],
            env=env,
            capture_output=True,
            check=False,
        )
        elapsed = time.perf_counter() - start
        if proc.returncode != 0:
            raise SystemExit(f"{src}: {argv} failed: {proc.stderr.decode()[-400:]}")
        found = scan_bench.open_set(out)
        if found != expected:
            raise SystemExit(f"{src}: {argv}: open set differs: {sorted(found ^ expected)}")
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", required=True, help="the baseline's src directory")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--only", help="run only scenarios whose name contains this")
    args = parser.parse_args()
    here = str(ROOT / "src")
    with namespace("pk-ab-") as ns, scan_bench.listeners(ns):
        for name, portkit_argv, _nmap, expected in scan_bench.scenarios():
            if args.only and args.only not in name:
                continue
            times: dict[str, list[float]] = {"base": [], "new": []}
            for rnd in range(args.rounds):
                order = [("base", args.base), ("new", here)]
                if rnd % 2:
                    order.reverse()
                for label, src in order:
                    times[label].append(run_once(ns, src, portkit_argv, expected))
            ratios = [n / b for n, b in zip(times["new"], times["base"], strict=True)]
            print(
                f"{name}: base {statistics.median(times['base']):.3f} s, "
                f"new {statistics.median(times['new']):.3f} s, "
                f"median ratio new/base {statistics.median(ratios):.2f} "
                f"({args.rounds} paired rounds)",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
