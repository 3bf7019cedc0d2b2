"""Raw printing ports (9100-9107): a printer prints whatever it is sent there, so
identification sends the PJL identity query and nothing else, as nmap's version detection
leaves these ports alone."""

from __future__ import annotations

import asyncio
import contextlib
import secrets

import pytest

from portkit.proto.jetdirect import PJL_INFO_ID
from portkit.scan import identify

# A loopback address of this test's own, so port 9100 is free whatever else runs here.
HOST = f"127.{secrets.randbelow(200) + 20}.{secrets.randbelow(250) + 1}.1"
MODEL = b'"HP LaserJet 4250"'


async def _printer(port: int, answer: bool) -> tuple[asyncio.Server, list[bytes]]:
    """A raw printing port: it takes every byte as a job; with ``answer``, PJL answers."""
    jobs: list[bytes] = []

    async def job(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        data = b""
        with contextlib.suppress(ConnectionError):
            while chunk := await reader.read(4096):
                data += chunk
                if answer and b"@PJL INFO ID" in data and data.count(b"\x1b%-12345X") >= 2:
                    writer.write(b"@PJL INFO ID\r\n" + MODEL + b"\r\n\x0c")
                    await writer.drain()
        jobs.append(data)
        writer.close()

    server = await asyncio.start_server(job, HOST, port)
    return server, jobs


async def _identify_printer(port: int, *, answer: bool) -> tuple[str | None, list[bytes]]:
    try:
        server, jobs = await _printer(port, answer)
    except OSError as exc:
        pytest.skip(f"cannot listen on {HOST}:{port}: {exc}")
    async with server:
        found = await asyncio.wait_for(identify(HOST, port, budget=4.0), 10)
        await asyncio.sleep(0.2)  # the last job is recorded once its connection closes
    return found.service, [j for j in jobs if j]


@pytest.mark.parametrize("port", [9100, 9103, 9107])
async def test_a_silent_printer_is_sent_only_the_pjl_query(port: int) -> None:
    service, jobs = await _identify_printer(port, answer=False)
    assert service is None
    assert jobs == [PJL_INFO_ID.build(HOST)]  # no GET, no ClientHello, nothing else printed


async def test_a_printer_that_answers_pjl_is_named() -> None:
    service, jobs = await _identify_printer(9100, answer=True)
    assert service == "jetdirect"
    assert jobs == [PJL_INFO_ID.build(HOST)]


async def test_other_ports_still_get_the_whole_ladder() -> None:
    _, jobs = await _identify_printer(9108, answer=False)
    assert len(jobs) > 1  # the guard is for 9100-9107 only
