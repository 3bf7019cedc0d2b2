"""``portkit registry update``: from a local HTTP server and from a file, atomically."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest

from portkit import NetworkError, RegistryFileError
from portkit.cli import main
from portkit.registry import (
    cache_path,
    default_registry,
    import_file,
    reset_cache,
    reset_default_registry,
    update_from_url,
)

FIXTURE = Path(__file__).with_name("fixtures.csv")


@pytest.fixture(autouse=True)
def private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("PORTKIT_CACHE_DIR", str(tmp_path / "cache"))
    reset_default_registry()
    yield tmp_path / "cache"
    reset_default_registry()


class _Handler(http.server.BaseHTTPRequestHandler):
    routes: ClassVar[dict[str, bytes]] = {}

    def do_GET(self) -> None:
        body = self.routes.get(self.path)
        if body is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/csv")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    _Handler.routes = {
        "/registry.csv": FIXTURE.read_bytes(),
        "/not-a-registry.csv": b"a,b\n1,2\n",
    }
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


def test_update_from_url_takes_precedence(server: str, private_cache: Path) -> None:
    info = update_from_url(f"{server}/registry.csv")
    assert Path(info.path) == cache_path()
    assert cache_path().parent == private_cache
    assert info.source.endswith("/registry.csv")
    registry = default_registry()
    assert registry.service_name(4242) == "fixture-only"  # only the fixture has it
    assert reset_cache() is True
    assert default_registry().service_name(4242) != "fixture-only"


def test_bad_download_keeps_the_old_cache(server: str) -> None:
    update_from_url(f"{server}/registry.csv")
    before = cache_path().read_bytes()
    with pytest.raises(RegistryFileError, match="missing column"):
        update_from_url(f"{server}/not-a-registry.csv")
    with pytest.raises(NetworkError, match="HTTP 404"):
        update_from_url(f"{server}/missing.csv")
    assert cache_path().read_bytes() == before
    # no temp files: only the data and the lookup index built from it
    names = {p.name for p in cache_path().parent.iterdir()}
    assert "services.tsv" in names
    assert names <= {"services.tsv", "services.idx", "shipped.idx"}


def test_refused_download_is_a_network_error(server: str) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(NetworkError, match="failed"):
        update_from_url(f"http://127.0.0.1:{port}/registry.csv")
    assert not cache_path().exists()


def test_import_file(tmp_path: Path) -> None:
    info = import_file(FIXTURE)
    assert info.entries > 20
    with pytest.raises(RegistryFileError, match="cannot read"):
        import_file(tmp_path / "absent.csv")


def test_cli_update_info_reset(server: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["registry", "update", "--url", f"{server}/registry.csv"]) == 0
    assert "registry updated" in capsys.readouterr().out
    assert main(["registry", "info", "--json"]) == 0
    assert '"source": "http://127.0.0.1' in capsys.readouterr().out
    assert main(["registry", "reset"]) == 0
    assert "removed" in capsys.readouterr().out


def test_cli_bad_file_is_one_line_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("not,a,registry\n")
    assert main(["registry", "update", "--from", str(bad)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    assert "missing column" in err
    assert not cache_path().exists()


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ("# source: x\nhttp\t80\n", "has 2 fields"),
        ("http\tx\t80\ttcp\t\t\t\tWWW\n", "bad port"),
    ],
)
def test_corrupt_cache_names_the_file_and_the_way_out(
    content: str, fragment: str, capsys: pytest.CaptureFixture[str]
) -> None:
    cache_path().parent.mkdir(parents=True)
    cache_path().write_text(content)
    assert main(["lookup", "443"]) == 1
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    assert fragment in err
    assert str(cache_path()) in err
    assert "portkit registry reset" in err
