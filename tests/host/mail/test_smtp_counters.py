"""`serve --status` counters of an smtp application: every byte read and every reply."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from portkit.host.apps.mail import hash_password
from tests.host._helpers import eventually, running_host


async def test_smtp_counts_every_byte_both_ways(tmp_path: Path) -> None:
    users = json.dumps([f"dev:{hash_password('dev', n=16, r=1, p=1)}"])
    text = (
        '[apps.mx]\nkind = "smtp"\nlisten = "127.0.0.1:0"\nmaildir = "mail"\n'
        f'users = {users}\ncatch_all = "dev"\n'
    )
    async with running_host(text, tmp_path) as host:
        reader, writer = await asyncio.open_connection(*host.bound("mx")[0])
        sent = (
            b"EHLO client.example\r\nMAIL FROM:<a@example.test>\r\nRCPT TO:<b@example.test>\r\n"
            b"DATA\r\n"
        )
        received = await reader.readline()  # the greeting
        for line in sent.splitlines(keepends=True):
            writer.write(line)
            while True:  # replies are one or more lines; the last has a space after the code
                reply = await reader.readline()
                received += reply
                if reply[3:4] == b" ":
                    break
        message = b"Subject: counted\r\n\r\nbody\r\n.\r\nQUIT\r\n"
        writer.write(message)
        sent += message
        received += await reader.read()  # 250 queued, 221 bye, then the close
        writer.close()
        await writer.wait_closed()
        counters = host.apps["mx"].counters
        await eventually(lambda: counters.connections_open == 0, "the session ended")
        assert received.startswith(b"220 "), received
        assert received.endswith(b"221 Bye\r\n"), received
        assert (counters.bytes_in, counters.bytes_out) == (len(sent), len(received))
