"""Run inside the lab's namespace: identify every port given, concurrently; print JSON.

python _identify_inside.py 21/tcp 22/tcp ... 53/udp
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

from portkit.registry import default_registry
from portkit.scan import identify

HOST = "127.0.0.1"


async def one(port: int, transport: str) -> dict[str, Any]:
    expected = default_registry().service_name(port, transport)
    found = await identify(HOST, port, transport=transport, expected=expected)
    return {
        "port": port,
        "transport": transport,
        "service": found.service,
        "product": found.product,
        "version": found.version,
        "probe": found.probe,
        "tls_subject": found.tls.subject if found.tls else None,
    }


async def main(specs: list[str]) -> list[dict[str, Any]]:
    jobs = []
    for spec in specs:
        port, _, transport = spec.partition("/")
        jobs.append(one(int(port), transport or "tcp"))
    return list(await asyncio.gather(*jobs))


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(sys.argv[1:]))))
