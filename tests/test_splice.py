"""portkit._splice: the bulk movers shared by ``portkit connect`` and the forward
application, on real sockets, pipes and files."""

from __future__ import annotations

import asyncio
import os
import socket
from pathlib import Path

import pytest

from portkit._splice import HAVE_SPLICE, SpliceUnsupported, file_copy, splice_copy

pytestmark = pytest.mark.skipif(not HAVE_SPLICE, reason="needs os.splice (Linux)")

DATA = os.urandom(1024 * 1024 + 3)


async def _read_all(sock: socket.socket) -> bytes:
    loop = asyncio.get_running_loop()
    parts = []
    while part := await loop.sock_recv(sock, 65536):
        parts.append(part)
    return b"".join(parts)


async def test_socket_to_file_through_the_pipe(tmp_path: Path) -> None:
    ours, theirs = socket.socketpair()
    with ours, theirs, (tmp_path / "out").open("wb") as out:
        ours.setblocking(False)
        theirs.setblocking(False)
        moved: list[int] = []
        loop = asyncio.get_running_loop()

        async def send() -> None:
            await loop.sock_sendall(theirs, DATA)
            theirs.shutdown(socket.SHUT_WR)

        async with asyncio.TaskGroup() as group:
            group.create_task(send())
            group.create_task(
                splice_copy(ours.fileno(), out.fileno(), moved.append, pollable_dst=False)
            )
    assert (tmp_path / "out").read_bytes() == DATA
    assert sum(moved) == len(DATA)


async def test_an_appending_file_is_refused_with_what_the_pipe_held(tmp_path: Path) -> None:
    # splice(2) refuses an O_APPEND destination (EINVAL): the caller is told before any
    # byte reached it, and gets the bytes already taken from the source.
    ours, theirs = socket.socketpair()
    with ours, theirs, (tmp_path / "out").open("ab") as out:
        ours.setblocking(False)
        theirs.sendall(b"first bytes")
        with pytest.raises(SpliceUnsupported) as refused:
            await splice_copy(ours.fileno(), out.fileno(), lambda n: None, pollable_dst=False)
    assert refused.value.pending == b"first bytes"
    assert (tmp_path / "out").read_bytes() == b""


async def test_a_file_goes_whole_from_its_offset(tmp_path: Path) -> None:
    source = tmp_path / "in"
    source.write_bytes(b"skip" + DATA)
    ours, theirs = socket.socketpair()
    with ours, theirs, source.open("rb") as file:
        ours.setblocking(False)
        theirs.setblocking(False)
        file.seek(4)  # what a shell gives after something read the start
        moved: list[int] = []

        async def send() -> None:
            await file_copy(file.fileno(), ours.fileno(), moved.append)
            ours.shutdown(socket.SHUT_WR)

        async with asyncio.TaskGroup() as group:
            group.create_task(send())
            received = group.create_task(_read_all(theirs))
    assert received.result() == DATA
    assert sum(moved) == len(DATA)


async def test_send_timeout_when_nothing_is_taken() -> None:
    ours, theirs = socket.socketpair()
    dst, silent = socket.socketpair()
    with ours, theirs, dst, silent:
        for sock in (ours, theirs, dst, silent):
            sock.setblocking(False)
        loop = asyncio.get_running_loop()
        sender = loop.create_task(loop.sock_sendall(theirs, DATA * 8))
        try:
            # ``silent`` never reads: the destination fills, and the wait for it ends.
            with pytest.raises(TimeoutError, match="nothing taken"):
                await splice_copy(
                    ours.fileno(),
                    dst.fileno(),
                    lambda n: None,
                    send_timeout=0.2,
                    expired=lambda: TimeoutError("nothing taken"),
                )
        finally:
            sender.cancel()
