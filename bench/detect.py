"""Detection benchmark: portkit's identification vs ``nmap -sV``, side by side, on the lab.

    sudo .venv/bin/python bench/detect.py [--rounds N] [--markdown]

Brings the lab up (``lab/up.sh --extra`` in namespace ``pk-identify-bench``), then inside
it runs, in the same run and one after the other:

- *lab ports*: ``nmap -sV`` on exactly the ground-truth ports (TCP with -sT, UDP 53 with
  -sU) and portkit identifying the same ports concurrently;
- *all ports*: ``nmap -sV -p-`` (TCP) and portkit's scan engine over all 65535 TCP
  ports with detection (``portkit.scan.scan_batches(plan, detect=True)``).

For each port it checks the service name (registry spelling; nmap's ``ssl`` tunnel turns
``http``/``imap``/``pop3`` into ``https``/``imaps``/``pop3s``, and nmap's guesses from the
port number alone, ``method="table"``, do not count) and the product where the server
announces it. Wall times are whole processes, interpreter start-up included. Traffic goes
only to 127.0.0.1 inside the namespace, which has no other interface.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
# Unique per run: other runs (and other checkouts) may bench at the same time.
NAMESPACE = f"pk-idbench-{os.getpid()}"
HOST = "127.0.0.1"
NMAP_TIMEOUT = 600


@dataclass(frozen=True)
class Truth:
    port: int
    transport: str
    service: str
    product: str
    announced: bool


def ground_truth() -> list[Truth]:
    lines = [
        line
        for line in (REPO / "lab" / "ground-truth.tsv").read_text().splitlines()
        if not line.startswith("#")
    ]
    return [
        Truth(int(r["port"]), r["transport"], r["service"], r["product"], r["announced"] == "yes")
        for r in csv.DictReader(lines, delimiter="\t")
    ]


# ---- inside the namespace: portkit's side -------------------------------------------


async def _scan_all() -> list[dict[str, Any]]:
    """portkit's scan engine over every TCP port, with identification of the open ones."""
    sys.path.insert(0, str(REPO / "src"))
    from portkit.scan import PortState, plan_scan, scan_batches

    plan = await plan_scan(HOST, "1-65535")
    found = []
    async for batch in scan_batches(plan, detect=True):
        for r in batch.results:
            if r.state is PortState.OPEN and r.identified is not None:
                i = r.identified
                found.append({"port": r.port, "transport": r.transport, "state": str(r.state),
                              "service": i.service, "product": i.product, "version": i.version})  # fmt: skip
    return found


async def _identify_all(specs: list[tuple[int, str]]) -> list[dict[str, Any]]:
    sys.path.insert(0, str(REPO / "src"))
    from portkit.registry import default_registry
    from portkit.scan import probe_port

    reg = default_registry()

    async def one(port: int, transport: str) -> dict[str, Any]:
        result = await probe_port(
            HOST, port, transport=transport, expected=reg.service_name(port, transport)
        )
        found = result.identified
        return {"port": port, "transport": transport, "state": str(result.state),
                "service": found.service if found else None,
                "product": found.product if found else None,
                "version": found.version if found else None}  # fmt: skip

    return list(await asyncio.gather(*(one(p, t) for p, t in specs)))


def inside_portkit(args: list[str]) -> int:
    """``--inside-portkit all`` or ``--inside-portkit 21/tcp 22/tcp ...``: print JSON."""

    async def run() -> list[dict[str, Any]]:
        if args == ["all"]:
            return await _scan_all()
        specs = [(int(a.split("/")[0]), a.split("/")[1]) for a in args]
        return await _identify_all(specs)

    with _fast_loop():
        print(json.dumps(asyncio.run(run())))
    return 0


class _fast_loop:
    """Use uvloop when installed (portkit's ``fast`` extra), as the CLI does."""

    def __enter__(self) -> None:
        try:
            import uvloop
        except ImportError:
            return
        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())

    def __exit__(self, *exc: object) -> None:
        asyncio.set_event_loop_policy(None)


# ---- outside: run both, judge both ---------------------------------------------------


def run_ns(cmd: list[str]) -> tuple[float, str]:
    started = time.perf_counter()
    proc = subprocess.run(
        ["ip", "netns", "exec", NAMESPACE, *cmd],
        capture_output=True,
        text=True,
        timeout=NMAP_TIMEOUT,
        check=False,
    )
    elapsed = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"detect: {cmd[0]} failed: {proc.stderr.strip()[:400]}")
    return elapsed, proc.stdout


def nmap_services(xml_text: str) -> dict[tuple[int, str], dict[str, Any]]:
    found: dict[tuple[int, str], dict[str, Any]] = {}
    for port in ET.fromstring(xml_text).iter("port"):
        state = port.find("state")
        if state is None or state.get("state") not in ("open", "open|filtered"):
            continue
        service = port.find("service")
        entry: dict[str, Any] = {"service": None, "product": None, "method": None}
        if service is not None:
            name = service.get("name")
            if service.get("tunnel") == "ssl" and name in ("http", "imap", "pop3", "smtp"):
                name = {"http": "https", "imap": "imaps", "pop3": "pop3s", "smtp": "smtps"}[name]
            entry = {
                "service": name,
                "product": service.get("product"),
                "method": service.get("method"),
            }
        found[(int(port.get("portid", "0")), port.get("protocol", "tcp"))] = entry
    return found


def same(truth: str, name: str | None) -> bool:
    sys.path.insert(0, str(REPO / "src"))
    from portkit.scan import same_protocol

    return bool(same_protocol(truth, name)) or (truth, name) in {("submissions", "smtps")}


def score(truth: list[Truth], got: dict[tuple[int, str], dict[str, Any]], *, table_counts: bool
          ) -> tuple[int, int, int, int, dict[tuple[int, str], tuple[bool, bool | None]]]:  # fmt: skip
    services = products = wanted_products = 0
    per: dict[tuple[int, str], tuple[bool, bool | None]] = {}
    for t in truth:
        entry = got.get((t.port, t.transport), {})
        ok = same(t.service, entry.get("service")) and (
            table_counts or entry.get("method") != "table"
        )
        prod: bool | None = None
        if t.announced:
            wanted_products += 1
            prod = bool(entry.get("product")) and t.product.lower() in entry["product"].lower()
            products += prod
        services += ok
        per[(t.port, t.transport)] = (ok, prod)
    return services, len(truth), products, wanted_products, per


def main() -> int:
    parser = argparse.ArgumentParser(description="portkit identification vs nmap -sV")
    parser.add_argument("--inside-portkit", nargs="+", help=argparse.SUPPRESS)
    parser.add_argument("--markdown", action="store_true", help="print a Markdown report")
    parser.add_argument("--skip-all-ports", action="store_true", help="lab ports only")
    args = parser.parse_args()
    if args.inside_portkit:
        return inside_portkit(args.inside_portkit)
    if os.geteuid() != 0:
        print("detect: needs root (network namespace)", file=sys.stderr)
        return 3
    truth = ground_truth()
    tcp = [t.port for t in truth if t.transport == "tcp"]
    udp = [t.port for t in truth if t.transport == "udp"]
    me = [sys.executable, str(Path(__file__).resolve())]
    subprocess.run([str(REPO / "lab" / "up.sh"), "--extra", NAMESPACE], check=True,
                   capture_output=True)  # fmt: skip
    try:
        results = []
        nmap_spec = ",".join([f"T:{p}" for p in tcp] + [f"U:{p}" for p in udp])
        t_nmap, xml_lab = run_ns(["nmap", "-sT", "-sU", "-sV", "-Pn", "-n", "-p", nmap_spec,
                                  "-oX", "-", HOST])  # fmt: skip
        specs = [f"{t.port}/{t.transport}" for t in truth]
        t_pk, out = run_ns([*me, "--inside-portkit", *specs])
        pk = {(d["port"], d["transport"]): d for d in json.loads(out)}
        results.append(("lab ports", truth, t_nmap, nmap_services(xml_lab), t_pk, pk))
        if not args.skip_all_ports:
            tcp_truth = [t for t in truth if t.transport == "tcp"]
            t_nmap_all, xml_all = run_ns(["nmap", "-sT", "-sV", "-Pn", "-n", "-p-", "-oX", "-",
                                          HOST])  # fmt: skip
            t_pk_all, out_all = run_ns([*me, "--inside-portkit", "all"])
            pk_all = {(d["port"], d["transport"]): d for d in json.loads(out_all)}
            results.append(("all TCP ports", tcp_truth, t_nmap_all, nmap_services(xml_all),
                            t_pk_all, pk_all))  # fmt: skip
    finally:
        subprocess.run([str(REPO / "lab" / "down.sh"), NAMESPACE], check=False,
                       capture_output=True)  # fmt: skip
    report(results, markdown=args.markdown)
    return 0


def report(results: list[Any], *, markdown: bool) -> None:
    for title, truth, t_nmap, nm, t_pk, pk in results:
        s_n, total, p_n, want, per_n = score(truth, nm, table_counts=False)
        s_p, _, p_p, _, per_p = score(truth, pk, table_counts=True)
        extra_pk = sorted(set(pk) - {(t.port, t.transport) for t in truth})
        print(f"\n### {title}\n" if markdown else f"\n== {title} ==")
        rows = []
        for t in truth:
            key = (t.port, t.transport)
            p, n = pk.get(key, {}), nm.get(key, {})

            def cell(entry: dict[str, Any], verdict: tuple[bool, bool | None]) -> str:
                name = entry.get("service") or "-"
                if entry.get("method") == "table":
                    name += " (port guess)"
                product = entry.get("product") or ""
                mark = "ok" if verdict[0] and verdict[1] is not False else "WRONG"
                return f"{name} {product}".strip() + f" [{mark}]"

            rows.append((f"{t.port}/{t.transport}", f"{t.service} {t.product}".strip(),
                         cell(p, per_p[key]), cell(n, per_n[key])))  # fmt: skip
        headers = ("port", "truth", "portkit", "nmap -sV")
        if markdown:
            print("| " + " | ".join(headers) + " |")
            print("|" + "---|" * len(headers))
            for r in rows:
                print("| " + " | ".join(r) + " |")
        else:
            widths = [max(len(str(x)) for x in col) for col in zip(headers, *rows, strict=False)]
            for r in (headers, *rows):
                print("  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)))
        print()
        print(f"- services right: portkit {s_p}/{total}, nmap -sV {s_n}/{total}")
        print(f"- products right (where announced): portkit {p_p}/{want}, nmap -sV {p_n}/{want}")
        print(f"- wall time: portkit {t_pk:.2f} s, nmap -sV {t_nmap:.2f} s, "
              f"ratio {t_pk / t_nmap:.3f}x")  # fmt: skip
        if extra_pk:
            print(f"- open ports portkit found beyond the ground truth: {extra_pk}")


if __name__ == "__main__":
    sys.exit(main())
