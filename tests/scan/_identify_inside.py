"""Run inside the lab's namespace: identify every port given, concurrently; print JSON.

python _identify_inside.py 21/tcp 22/tcp ... 53/udp
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any

from portkit.registry import default_registry
from portkit.scan import identify

HOST = "127.0.0.1"


START_TIMEOUT = 60.0


async def wait_for(port: int) -> None:
    """Wait until ``port`` accepts a connection (a daemon still starting refuses)."""
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        try:
            _, writer = await asyncio.open_connection(HOST, port)
        except OSError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)  # polling a starting daemon, bounded by the deadline
            continue
        writer.close()
        await writer.wait_closed()
        return


async def one(port: int, transport: str, hint: bool) -> dict[str, Any]:
    expected = default_registry().service_name(port, transport) if hint else None
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


async def main(args: list[str]) -> list[dict[str, Any]]:
    wait = args[:1] == ["--wait"]
    specs = [s.partition("/") for s in args[wait:]]
    if wait:
        await asyncio.gather(*(wait_for(int(p)) for p, _, t in specs if t != "udp"))
    jobs = [one(int(p), t or "tcp", hint=not wait) for p, _, t in specs]
    return list(await asyncio.gather(*jobs))


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(sys.argv[1:]))))
