"""echo: the classic internal service (RFC 862): every byte received is sent back.

RFC 862 "TCP Based Echo Service": once a connection is established any data received is
sent back, until the calling user terminates the connection. We also end it after
``idle_timeout`` seconds without data, and stop reading while the peer does not read what
we send (the writer's flow control), so a client that never reads costs bounded memory.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Mapping
from typing import Any

from portkit.host._app import AppContext, Application, Kind, StreamApplication, Where, option
from portkit.host._limits import Admission

__all__ = ["KINDS", "EchoKind", "EchoOptions"]

CHUNK = 64 * 1024


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class EchoOptions:
    """Options of an ``echo`` application."""

    idle_timeout: float = option(300.0, help="seconds without data before closing", min=0.001)
    max_connections: int = option(1024, help="connections served at once; more are refused", min=1)
    per_source: int | None = option(
        None, help="connections at once from one address; default: half of max_connections", min=1
    )


class EchoApp(StreamApplication[EchoOptions]):
    """Send back everything, per RFC 862."""

    def __init__(self, options: EchoOptions, ctx: AppContext) -> None:
        super().__init__(options, ctx)
        self.admission = Admission(options.max_connections, options.per_source)

    async def handle(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, peer: str
    ) -> None:
        total = 0
        while True:
            try:
                async with asyncio.timeout(self.options.idle_timeout):
                    data = await reader.read(CHUNK)
            except TimeoutError:
                self.ctx.access(peer, "idle timeout", nbytes=total)
                return
            if not data:
                break
            self.counters.bytes_in += len(data)
            writer.write(data)
            # Backpressure: a peer that does not read stops us reading (bounded memory).
            async with asyncio.timeout(self.options.idle_timeout):
                await writer.drain()
            self.counters.bytes_out += len(data)
            total += len(data)
        self.ctx.access(peer, "echo", nbytes=total)


@dataclasses.dataclass(frozen=True, slots=True)
class EchoKind:
    """The ``echo`` kind."""

    name: str = "echo"
    options: type[EchoOptions] = EchoOptions

    def check(self, options: EchoOptions, where: Where) -> None:
        pass

    def create(self, options: EchoOptions, ctx: AppContext) -> Application:
        return EchoApp(options, ctx)


KINDS: Mapping[str, Kind[Any]] = {"echo": EchoKind()}
