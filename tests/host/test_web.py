"""The web kind, driven by curl: types, validators, ranges, listing, HTTPS, traversal."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator
from email.parser import BytesParser
from email.policy import HTTP
from pathlib import Path

import pytest

from portkit.host._host import Host
from portkit.host._tls import self_signed_pem
from tests.host._helpers import (
    SRC,
    ServeProcess,
    addresses,
    curl,
    eventually,
    parse_head,
    poll_status,
    running_host,
    url,
)

SECRET = b"TOPSECRET-4f1c outside the document root"
DOT_SECRET = b"DOTSECRET-77a0 in a dot-file inside the root"


def make_site(base: Path) -> Path:
    root = base / "public"
    (root / "docs").mkdir(parents=True)
    (root / "empty").mkdir()
    (root / "index.html").write_text("<h1>portkit</h1>\n")
    (root / "style.css").write_text("h1{}\n")
    (root / "app.js").write_text("console.log(1)\n")
    (root / "data.json").write_text("{}\n")
    (root / "blob.bin").write_bytes(bytes(range(256)) * 40)  # 10240 bytes
    (root / "docs" / "<b>&.txt").write_text("odd name\n")
    (root / ".hidden").write_text("dot file\n")
    (root / ".env").write_bytes(DOT_SECRET)
    (root / ".git").mkdir()
    (root / ".git" / "config").write_bytes(DOT_SECRET)
    # Innocent names, dot-file targets inside the root: judged by the target.
    os.symlink("../.env", root / "docs" / "env_alias")
    os.symlink("../.git", root / "docs" / "repo")
    os.symlink("../.git/config", root / "docs" / "gitconfig.txt")
    (base / "secret.txt").write_bytes(SECRET)
    os.symlink(base / "secret.txt", root / "docs" / "leak.txt")
    os.symlink("/etc", root / "etc")
    os.symlink(root / "style.css", root / "docs" / "inside.css")  # inside the root: fine
    return root


CONFIG = """\
[apps.site]
kind = "web"
listen = "127.0.0.1:0"
root = "public"
access_log = "logs/site.log"

[apps.listed]
kind = "web"
listen = "127.0.0.1:0"
root = "public"
listing = true
"""


@pytest.fixture
async def host(tmp_path: Path) -> AsyncIterator[Host]:
    make_site(tmp_path)
    async with running_host(CONFIG, tmp_path) as running:
        yield running


async def get(*args: str) -> tuple[int, dict[str, str], bytes]:
    rc, out, err = await curl("-i", *args)
    assert rc == 0, err
    return parse_head(out)


@pytest.mark.parametrize(
    ("path", "media"),
    [
        ("/", "text/html; charset=utf-8"),
        ("/style.css", "text/css; charset=utf-8"),
        ("/app.js", "text/javascript; charset=utf-8"),
        ("/data.json", "application/json"),
        ("/blob.bin", "application/octet-stream"),
    ],
)
async def test_content_types(host: Host, path: str, media: str) -> None:
    status, headers, _ = await get(url(host, "site", path))
    assert status == 200
    assert headers["content-type"] == media


async def test_validators_and_conditional_requests(host: Host) -> None:
    status, headers, body = await get(url(host, "site", "/index.html"))
    assert (status, body) == (200, b"<h1>portkit</h1>\n")
    etag, modified = headers["etag"], headers["last-modified"]
    assert headers["accept-ranges"] == "bytes"
    status, _, body = await get("-H", f"If-None-Match: {etag}", url(host, "site", "/index.html"))
    assert (status, body) == (304, b"")
    status, _, body = await get("-H", f"If-Modified-Since: {modified}", url(host, "site", "/"))
    assert (status, body) == (304, b"")
    status, _, _ = await get("-H", 'If-Match: "nope"', url(host, "site", "/index.html"))
    assert status == 412


async def test_single_range(host: Host) -> None:
    status, headers, body = await get("-H", "Range: bytes=256-511", url(host, "site", "/blob.bin"))
    assert status == 206
    assert headers["content-range"] == "bytes 256-511/10240"
    assert body == bytes(range(256))


async def test_multiple_ranges_are_multipart_byteranges(host: Host) -> None:
    status, headers, body = await get(
        "-H", "Range: bytes=0-9,5000-5009,-4", url(host, "site", "/blob.bin")
    )
    assert status == 206
    assert headers["content-type"].startswith("multipart/byteranges; boundary=")
    assert int(headers["content-length"]) == len(body)
    message = BytesParser(policy=HTTP).parsebytes(
        f"Content-Type: {headers['content-type']}\r\n\r\n".encode() + body
    )
    parts = [(p["Content-Range"], p.get_payload(decode=True)) for p in message.iter_parts()]
    blob = bytes(range(256)) * 40
    assert parts == [
        ("bytes 0-9/10240", blob[0:10]),
        ("bytes 5000-5009/10240", blob[5000:5010]),
        ("bytes 10236-10239/10240", blob[-4:]),
    ]


async def test_invalid_range_is_ignored_and_unsatisfiable_is_416(host: Host) -> None:
    status, _, body = await get("-H", "Range: bytes=50-10", url(host, "site", "/blob.bin"))
    assert (status, len(body)) == (200, 10240)
    status, _, body = await get("-H", "Range: pages=1-2", url(host, "site", "/blob.bin"))
    assert (status, len(body)) == (200, 10240)
    status, headers, _ = await get("-H", "Range: bytes=20000-", url(host, "site", "/blob.bin"))
    assert status == 416
    assert headers["content-range"] == "bytes */10240"


async def test_if_range_with_a_stale_validator_gets_the_whole_file(host: Host) -> None:
    status, _, body = await get(
        "-H", "Range: bytes=0-9", "-H", 'If-Range: "stale"', url(host, "site", "/blob.bin")
    )
    assert (status, len(body)) == (200, 10240)


async def test_listing_off_by_default_on_when_configured(host: Host) -> None:
    status, _, _ = await get(url(host, "site", "/docs/"))
    assert status == 403
    status, _headers, body = await get(url(host, "listed", "/docs/"))
    assert status == 200
    page = body.decode()
    assert "&lt;b&gt;&amp;.txt" in page
    assert 'href="%3Cb%3E%26.txt"' in page
    assert "inside.css" in page
    assert "leak.txt" not in page  # a symlink out of the root is not offered
    assert ".hidden" not in page
    for alias in ("env_alias", "repo", "gitconfig.txt"):  # links to dot-files are not offered
        assert alias not in page


async def test_directory_without_slash_redirects(host: Host) -> None:
    status, headers, _ = await get(url(host, "listed", "/docs"))
    assert status == 301
    assert headers["location"] == "/docs/"


async def test_head_and_methods(host: Host) -> None:
    status, headers, body = await get("-I", url(host, "site", "/blob.bin"))
    assert (status, headers["content-length"], body) == (200, "10240", b"")
    status, headers, _ = await get("-X", "POST", "-d", "x", url(host, "site", "/"))
    assert status == 405
    assert "GET" in headers["allow"]


TRAVERSALS = [
    "/../secret.txt",
    "/../../../../etc/passwd",
    "/%2e%2e/secret.txt",
    "/%2E%2E/%2E%2E/etc/passwd",
    "/docs/..%2f..%2fsecret.txt",
    "/docs/%2e%2e%2f%2e%2e%2fsecret.txt",
    "/..%5c..%5csecret.txt",
    "/docs/leak.txt",  # symlink to a file outside
    "/etc/passwd",  # symlink to a directory outside
    "//etc/passwd",
    "/index.html%00.txt",
    "/%00",
    "/.hidden",
    "/docs/%2e%2e/%2e%2e/secret.txt",
    "/docs/env_alias",  # symlink to a dot-file inside the root
    "/docs/repo/config",  # through a symlink to a dot-directory
    "/docs/repo/",
    "/docs/gitconfig.txt",  # symlink to a file inside a dot-directory
]


@pytest.mark.parametrize("path", TRAVERSALS)
async def test_traversal_attempts_fail(host: Host, path: str) -> None:
    for app in ("site", "listed"):
        rc, out, err = await curl("-i", "--path-as-is", url(host, app, path))
        assert rc == 0, err
        status, _, body = parse_head(out)
        assert status in (400, 403, 404), (path, status)
        assert SECRET not in body
        assert DOT_SECRET not in body
        assert b"root:" not in body


async def test_raw_request_targets_cannot_escape(host: Host) -> None:
    address, port = host.bound("site")[0]
    for target in (
        b"/../secret.txt",
        b"../secret.txt",
        b"/..\\secret.txt",
        b"http://x/../secret.txt",
    ):
        reader, writer = await asyncio.open_connection(address, port)
        writer.write(b"GET " + target + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        response = await reader.read()
        writer.close()
        await writer.wait_closed()
        assert re.match(rb"HTTP/1.[01] (400|403|404) ", response), (target, response[:80])
        assert SECRET not in response


async def test_access_log_and_counters(host: Host, tmp_path: Path) -> None:
    await get(url(host, "site", "/index.html"))
    await get(url(host, "site", "/nope"))
    log = tmp_path / "logs" / "site.log"
    # A line is written once its response is sent: the client may have it a moment before.
    await eventually(lambda: log.read_text().count("\n") >= 2, "two access-log lines")
    lines = log.read_text().splitlines()
    assert any('"GET /index.html HTTP/1.1" 200' in line for line in lines)
    assert any('"GET /nope HTTP/1.1" 404' in line for line in lines)
    snap = host.apps["site"].counters.snapshot()
    assert snap.connections_total >= 2
    assert snap.bytes_out >= len("<h1>portkit</h1>\n")


async def test_https_self_signed_and_configured(tmp_path: Path) -> None:
    make_site(tmp_path)
    cert, key = self_signed_pem(("127.0.0.1",))
    (tmp_path / "cert.pem").write_bytes(cert)
    (tmp_path / "key.pem").write_bytes(key)
    text = (
        '[apps.auto]\nkind = "web"\nlisten = "127.0.0.1:0"\nroot = "public"\ntls = true\n'
        '[apps.mine]\nkind = "web"\nlisten = "127.0.0.1:0"\nroot = "public"\ntls = true\n'
        'cert = "cert.pem"\nkey = "key.pem"\n'
    )
    async with running_host(text, tmp_path) as host:
        rc, _, err = await curl(url(host, "auto", "/", "https"))
        assert rc == 60, err  # self-signed: not trusted without -k
        rc, out, err = await curl("-k", url(host, "auto", "/", "https"))
        assert (rc, out) == (0, b"<h1>portkit</h1>\n"), err
        rc, out, err = await curl(
            "--cacert", str(tmp_path / "cert.pem"), url(host, "mine", "/", "https")
        )
        assert (rc, out) == (0, b"<h1>portkit</h1>\n"), err


async def test_a_long_download_is_not_taken_for_a_slow_client(tmp_path: Path) -> None:
    """The request-head clock restarts when a response ends, not when it begins."""
    root = make_site(tmp_path)
    big = bytes(range(256)) * (32 * 1024)  # 8 MiB: more than the socket buffers hold
    (root / "big.bin").write_bytes(big)
    text = (
        '[apps.site]\nkind = "web"\nlisten = "127.0.0.1:0"\nroot = "public"\nheader_timeout = 0.2\n'
    )
    async with running_host(text, tmp_path) as host:
        reader, writer = await asyncio.open_connection(*host.bound("site")[0])
        writer.write(b"GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n")
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200")
        body = await reader.readexactly(65536)
        # Stall for several header timeouts while the response is still being sent.
        await asyncio.sleep(1.0)
        body += await reader.readexactly(len(big) - len(body))
        assert body == big
        # Then, idle without a new request head: that is what gets cut.
        assert await reader.read() == b""
        writer.close()
        await writer.wait_closed()


@pytest.mark.parametrize("path", [b"/index.html", b"/nope"])
async def test_transfer_encoding_in_http_1_0_closes_after_the_response(
    tmp_path: Path, path: bytes
) -> None:
    # RFC 9112 section 6.1: the framing of such a message is faulty; close after answering,
    # even though the client asked to keep the connection alive.
    make_site(tmp_path)
    text = '[apps.site]\nkind = "web"\nlisten = "127.0.0.1:0"\nroot = "public"\n'
    async with running_host(text + "keepalive_timeout = 300\n", tmp_path) as host:
        reader, writer = await asyncio.open_connection(*host.bound("site")[0])
        writer.write(
            b"GET " + path + b" HTTP/1.0\r\nHost: x\r\nConnection: keep-alive\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
        )
        async with asyncio.timeout(20):  # kept alive, it would wait the 300 s
            response = await reader.read()
        writer.close()
        await writer.wait_closed()
    assert re.match(rb"HTTP/1.[01] (200|404) ", response), response[:80]
    assert b"Connection: close" in response or b"keep-alive" not in response.lower()
    # A plain HTTP/1.0 keep-alive request is still kept alive (the rule is about the framing).
    async with running_host(text, tmp_path) as host:
        reader, writer = await asyncio.open_connection(*host.bound("site")[0])
        for _ in range(2):
            writer.write(b"GET /style.css HTTP/1.0\r\nHost: x\r\nConnection: keep-alive\r\n\r\n")
            head = await reader.readuntil(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.0 200 "), head
            await reader.readexactly(5)  # "h1{}\n"
        writer.close()
        await writer.wait_closed()


async def test_every_500_is_logged_with_its_cause(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import portkit.host.apps.web as web_module

    def broken(*args: object, **kwargs: object) -> None:
        raise OSError(5, "Input/output error (injected)")

    make_site(tmp_path)
    caplog.set_level(logging.ERROR, logger="portkit.host.app.site")
    # One process: the fault is injected into, and the log read from, this process.
    text = '[apps.site]\nkind = "web"\nlisten = "127.0.0.1:0"\nroot = "public"\nworkers = 1\n'
    async with running_host(text, tmp_path) as host:
        monkeypatch.setattr(web_module, "lookup", broken)
        status, _, _ = await get(url(host, "site", "/index.html"))
        assert status == 500
        assert host.apps["site"].counters.errors == 1
    lines = [r for r in caplog.records if r.name == "portkit.host.app.site"]
    assert len(lines) == 1
    assert "GET /index.html: 500" in lines[0].getMessage()
    assert "Input/output error (injected)" in lines[0].getMessage()


async def test_keep_alive_ends_after_max_requests(tmp_path: Path) -> None:
    make_site(tmp_path)
    text = '[apps.site]\nkind = "web"\nlisten = "127.0.0.1:0"\nroot = "public"\nmax_requests = 3\n'
    async with running_host(text, tmp_path) as host:
        reader, writer = await asyncio.open_connection(*host.bound("site")[0])
        heads = []
        for path in (b"/style.css", b"/nope", b"/style.css"):
            writer.write(b"GET " + path + b" HTTP/1.1\r\nHost: x\r\n\r\n")
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(re.search(rb"Content-Length: (\d+)", head, re.I).group(1))  # type: ignore[union-attr]
            await reader.readexactly(length)
            heads.append(head)
        assert [b"Connection: close" in head for head in heads] == [False, False, True]
        async with asyncio.timeout(20):
            assert await reader.read() == b""  # closed by the server
        writer.close()
        await writer.wait_closed()


async def _half_closed_exchange(host: Host, request: bytes) -> bytes:
    """Send ``request``, shut our sending side (a FIN), read until the server closes."""
    address, port = host.bound("site")[0]
    reader, writer = await asyncio.open_connection(address, port)
    writer.write(request)
    await writer.drain()
    writer.write_eof()  # shutdown(SHUT_WR)
    async with asyncio.timeout(20):  # kept alive, it would wait 60 s or more
        response = await reader.read()
    writer.close()
    await writer.wait_closed()
    return response


# Long keep-alive and header clocks: only the FIN can end these connections in time.
HALF_CLOSE_SITE = (
    '[apps.site]\nkind = "web"\nlisten = "127.0.0.1:0"\nroot = "public"\n'
    "keepalive_timeout = 300\nheader_timeout = 60\n"
)


async def test_a_half_closed_client_gets_its_answers_then_the_connection_closes(
    tmp_path: Path,
) -> None:
    make_site(tmp_path)
    async with running_host(HALF_CLOSE_SITE, tmp_path) as host:
        response = await _half_closed_exchange(host, b"HEAD / HTTP/1.0\r\n\r\n")
        assert response.startswith(b"HTTP/1.0 200 OK\r\n"), response
        # HTTP/1.1 asks for keep-alive, and two requests are pipelined before the FIN:
        # both are answered, in order, and the FIN ends the keep-alive.
        response = await _half_closed_exchange(
            host,
            b"GET /style.css HTTP/1.1\r\nHost: x\r\n\r\nGET /nope HTTP/1.1\r\nHost: x\r\n\r\n",
        )
        first, _, rest = response.partition(b"h1{}\n")
        assert first.startswith(b"HTTP/1.1 200 OK\r\n"), response
        assert rest.startswith(b"HTTP/1.1 404 "), response
        # A FIN in the middle of a request head: nothing to answer, the connection closes.
        assert await _half_closed_exchange(host, b"GET / HT") == b""
        app = host.apps["site"]
        await eventually(lambda: app.counters.connections_open == 0, "every connection closed")


def test_a_client_that_closes_after_its_answer_holds_no_connection(tmp_path: Path) -> None:
    # curl asks with keep-alive, reads the answer and closes. Its FIN may come while the
    # host is still finishing the response: the connection must close then, not wait
    # half-closed for the keep-alive timeout (holding a per-source slot all that time).
    # `portkit serve` itself, on uvloop, where the FIN often comes in that moment.
    make_site(tmp_path)
    config = tmp_path / "serve.toml"
    config.write_text(
        '[apps.site]\nkind = "web"\nlisten = "127.0.0.1:0"\nroot = "public"\n'
        "keepalive_timeout = 120.0\nheader_timeout = 120.0\n"
    )
    with ServeProcess(config, tmp_path) as serve:
        host, port = addresses(serve.start(), "site")[0]
        for _ in range(20):
            done = subprocess.run(
                ["curl", "-sS", "--max-time", "20", "-o", os.devnull, f"http://{host}:{port}/"],
                check=False,
            )
            assert done.returncode == 0
        counters = poll_status(
            tmp_path / "status.json",
            "site",
            lambda c: c["connections_total"] == 20 and c["connections_open"] == 0,
        )
        assert (counters["connections_total"], counters["connections_open"]) == (20, 0)


async def test_portkit_connect_reads_the_answer_to_a_half_closed_request(
    tmp_path: Path,
) -> None:
    # The README's example: stdin ends after the request, connect half-closes.
    make_site(tmp_path)
    async with running_host(HALF_CLOSE_SITE, tmp_path) as host:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "portkit",
            "connect",
            url(host, "site", "/"),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": str(SRC)},
        )
        async with asyncio.timeout(30):
            out, err = await proc.communicate(b"HEAD / HTTP/1.0\r\n\r\n")
    assert proc.returncode == 0, err
    assert out.startswith(b"HTTP/1.0 200 OK\r\n"), (out, err)


async def test_counters_hold_every_byte_of_requests_and_responses(tmp_path: Path) -> None:
    make_site(tmp_path)
    async with running_host(HALF_CLOSE_SITE, tmp_path) as host:
        request = (
            b"GET /blob.bin HTTP/1.1\r\nHost: x\r\nUser-Agent: counted\r\n\r\n"
            b"POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
            b"HEAD / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        response = await _half_closed_exchange(host, request)
        assert response.count(b"HTTP/1.1 ") == 3, response
        app = host.apps["site"]
        # Counted when the connection is gone, which the client may see a moment before.
        await eventually(lambda: app.counters.connections_open == 0, "the connection counted")
        snap = app.counters.snapshot()
    assert snap.bytes_in == len(request)
    assert snap.bytes_out == len(response)


async def test_combined_log_format_is_read_by_standard_tools(tmp_path: Path) -> None:
    make_site(tmp_path)
    text = HALF_CLOSE_SITE + 'access_log = "site.log"\naccess-log-format = "combined"\n'
    async with running_host(text, tmp_path) as host:
        await get("-A", 'agent "quoted" \\ end', "-e", "http://ref.example/", url(host, "site"))
        await get("-I", url(host, "site", "/blob.bin?x=1"))
        await get(url(host, "site", "/nope"))
    lines = (tmp_path / "site.log").read_text().splitlines()
    clf = re.compile(
        r"^(?P<host>\S+) - - \[(?P<time>\d\d/[A-Z][a-z]{2}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4})\] "
        r'"(?P<request>(?:[^"\\]|\\.)*)" (?P<status>\d{3}) (?P<bytes>\d+|-) '
        r'"(?P<referer>(?:[^"\\]|\\.)*)" "(?P<agent>(?:[^"\\]|\\.)*)"$'
    )
    fields = [clf.match(line) for line in lines]
    assert all(fields), lines
    first, head, missing = (m.groupdict() for m in fields if m is not None)
    assert first["host"] == "127.0.0.1"
    assert (first["request"], first["status"]) == ("GET / HTTP/1.1", "200")
    assert first["bytes"] == str(len("<h1>portkit</h1>\n"))  # the body only
    assert first["referer"] == "http://ref.example/"
    assert first["agent"] == 'agent \\"quoted\\" \\\\ end'
    assert (head["request"], head["bytes"]) == ("HEAD /blob.bin?x=1 HTTP/1.1", "-")
    assert missing["status"] == "404"
    # GoAccess, reading the file as COMBINED, counts the three requests, none invalid.
    if shutil.which("goaccess") is None:
        pytest.skip("needs goaccess (apt-get install goaccess) to read the log back")
    report = tmp_path / "report.json"
    proc = await asyncio.create_subprocess_exec(
        "goaccess", str(tmp_path / "site.log"), "--log-format=COMBINED", "-o", str(report)
    )
    assert await proc.wait() == 0
    general = json.loads(report.read_text())["general"]
    assert (general["total_requests"], general["failed_requests"]) == (3, 0)


def test_combined_format_is_for_http_kinds_only(tmp_path: Path) -> None:
    from portkit._errors import ConfigError
    from portkit.host._config import parse_config

    text = '[apps.e]\nkind = "echo"\nlisten = "127.0.0.1:0"\naccess_log_format = "combined"\n'
    with pytest.raises(ConfigError, match="combined is a format of HTTP requests"):
        parse_config(text, base_dir=tmp_path)
    with pytest.raises(ConfigError, match="must be one of portkit, combined, not 'apache'"):
        parse_config(
            '[host]\naccess_log_format = "apache"\n' + text.replace("combined", "portkit"),
            base_dir=tmp_path,
        )


async def test_an_edited_file_is_served_anew(host: Host, tmp_path: Path) -> None:
    """Small files are answered from memory; a change to the file shows at once, with the
    same validators the streaming path sends (a range request takes that path)."""
    path = tmp_path / "public" / "style.css"
    status, first, body = await get(url(host, "site", "/style.css"))
    assert (status, body) == (200, b"h1{}\n")
    path.write_bytes(b"h2{}\n")  # same size, new content
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 2_000_000_000))
    status, headers, body = await get(url(host, "site", "/style.css"))
    assert (status, body) == (200, b"h2{}\n")
    assert headers["etag"] != first["etag"]
    status, ranged, body = await get("-r", "0-1", url(host, "site", "/style.css"))
    assert (status, body) == (206, b"h2")
    assert (ranged["etag"], ranged["last-modified"]) == (headers["etag"], headers["last-modified"])
    assert headers["content-type"] == ranged["content-type"] == "text/css; charset=utf-8"
    path.unlink()
    status, _, _ = await get(url(host, "site", "/style.css"))
    assert status == 404


async def test_a_precompressed_sibling_still_reaches_clients_that_accept_it(
    host: Host, tmp_path: Path
) -> None:
    """A file answered from memory once is still answered from its ``.gz`` sibling for a
    client that accepts gzip (aiohttp's FileResponse picks it), and plainly for others."""
    import gzip

    root = tmp_path / "public"
    (root / "page.txt").write_bytes(b"plain text\n")
    (root / "page.txt.gz").write_bytes(gzip.compress(b"plain text\n"))
    status, headers, body = await get(url(host, "site", "/page.txt"))
    assert (status, body) == (200, b"plain text\n")
    assert "content-encoding" not in headers
    status, headers, body = await get("-H", "Accept-Encoding: gzip", url(host, "site", "/page.txt"))
    assert (status, headers.get("content-encoding")) == (200, "gzip")
    assert gzip.decompress(body) == b"plain text\n"


async def test_connections_queued_when_the_application_stops_are_answered(
    tmp_path: Path,
) -> None:
    # The kernel completes a connection before the server accepts it; closing the
    # listener would reset those still queued, so clients that had connected would lose
    # their request. Here the event loop does not run between the connects and the stop:
    # all five are still in the queue when the application stops.
    import socket

    make_site(tmp_path)
    text = '[apps.site]\nkind = "web"\nlisten = "127.0.0.1:0"\nroot = "public"\nworkers = 1\n'
    async with running_host(text, tmp_path) as host:
        address = host.bound("site")[0]
        clients = []
        for _ in range(5):
            client = socket.create_connection(address, timeout=10)
            client.sendall(b"GET /style.css HTTP/1.1\r\nHost: x\r\n\r\n")
            clients.append(client)

        def answer(client: socket.socket) -> bytes:
            received = b""
            try:
                while chunk := client.recv(65536):
                    received += chunk
            except OSError as exc:
                return repr(exc).encode()
            finally:
                client.close()
            return received

        answers = [asyncio.ensure_future(asyncio.to_thread(answer, c)) for c in clients]
        await host._running["site"].app.stop(5.0)
        got = await asyncio.gather(*answers)
    assert [a.split(b"\r\n", 1)[0] for a in got] == [b"HTTP/1.1 200 OK"] * 5
    assert all(a.endswith(b"h1{}\n") for a in got)


async def test_requests_of_one_turn_share_one_lookup_and_the_next_turn_looks_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Requests the event loop takes up together share one look at the file system (their
    answers are those of one instant); a request after a change sees the change."""
    from portkit.host.apps import _files
    from portkit.host.apps import web as web_kind

    calls: list[str] = []
    real_lookup = _files.lookup

    def counting(root: Path, url_path: str, **kwargs: object) -> object:
        calls.append(url_path)
        return real_lookup(root, url_path, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(web_kind, "lookup", counting)
    make_site(tmp_path)
    text = '[apps.site]\nkind = "web"\nlisten = "127.0.0.1:0"\nroot = "public"\nworkers = 1\n'
    async with running_host(text, tmp_path) as host:
        address = host.bound("site")[0]
        clients = []
        for _ in range(20):
            reader, writer = await asyncio.open_connection(*address)
            clients.append((reader, writer))
        counters = host.apps["site"].counters
        await eventually(lambda: counters.connections_open == 20, "every client is admitted")
        request = b"GET /style.css HTTP/1.1\r\nHost: x\r\n\r\n"
        for _, writer in clients:  # all written before the server's loop runs again
            writer.write(request)  # sent at once: asyncio tries the socket before buffering

        async def answer(reader: asyncio.StreamReader) -> bytes:
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(re.search(rb"Content-Length: (\d+)", head, re.I).group(1))  # type: ignore[union-attr]
            return await reader.readexactly(length)

        async with asyncio.timeout(20):
            bodies = [await answer(reader) for reader, _ in clients]
        assert bodies == [b"h1{}\n"] * 20
        # One lookup for the twenty, as they all arrive before the server's next turn; a
        # kernel that delivered some of them a turn late would make it two or three.
        assert 1 <= len(calls) <= 3, calls
        looked = len(calls)
        path = tmp_path / "public" / "style.css"
        path.write_bytes(b"h2{}\n")
        os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 2_000_000_000))
        clients[0][1].write(request)
        async with asyncio.timeout(20):
            assert await answer(clients[0][0]) == b"h2{}\n"
        assert len(calls) == looked + 1  # the next turn looked again
        for _, writer in clients:
            writer.close()
