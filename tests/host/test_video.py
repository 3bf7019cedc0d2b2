"""The video kind: media types, ranges for seeking, the player page, HLS; a real browser."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from portkit.host._host import Host
from tests.host._helpers import curl, parse_head, running_host, url

FFMPEG = shutil.which("ffmpeg")
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

pytestmark = pytest.mark.skipif(FFMPEG is None, reason="needs ffmpeg to make the test videos")


def make_videos(root: Path) -> None:
    """A 6 s VP8 WebM (keyframe every second, so seeking lands), an MP4, an HLS stream."""
    assert FFMPEG is not None
    root.mkdir()
    quiet = [FFMPEG, "-nostdin", "-loglevel", "error", "-y"]
    source = ["-f", "lavfi", "-i", "testsrc=duration=6:size=160x120:rate=10"]
    subprocess.run(
        [*quiet, *source, "-c:v", "libvpx", "-b:v", "200k", "-g", "10", str(root / "clip.webm")],
        check=True,
    )
    subprocess.run(
        [*quiet, *source, "-c:v", "mpeg4", "-g", "10", str(root / "clip.mp4")], check=True
    )
    hls = root / "live"
    hls.mkdir()
    subprocess.run(
        [
            *quiet,
            *source,
            "-c:v",
            "mpeg2video",
            "-f",
            "hls",
            "-hls_time",
            "2",
            "-hls_list_size",
            "0",
            str(hls / "index.m3u8"),
        ],
        check=True,
    )


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("video")
    make_videos(base / "media")
    return base


@pytest.fixture
async def host(videos: Path) -> AsyncIterator[Host]:
    text = (
        '[apps.tv]\nkind = "video"\nlisten = "127.0.0.1:0"\nroot = "media"\naccess_log = "tv.log"\n'
    )
    (videos / "tv.log").unlink(missing_ok=True)
    async with running_host(text, videos) as running:
        yield running


async def fetch(*args: str) -> bytes:
    rc, out, err = await curl(*args)
    assert rc == 0, err
    return out


@pytest.mark.parametrize(
    ("path", "media"),
    [
        ("/clip.webm", "video/webm"),
        ("/clip.mp4", "video/mp4"),
        ("/live/index.m3u8", "application/vnd.apple.mpegurl"),
        ("/live/index0.ts", "video/mp2t"),
    ],
)
async def test_media_types(host: Host, path: str, media: str) -> None:
    rc, out, err = await curl("-I", url(host, "tv", path))
    assert rc == 0, err
    status, headers, _ = parse_head(out)
    assert (status, headers["content-type"], headers["accept-ranges"]) == (200, media, "bytes")


async def test_seek_style_ranges(host: Host, videos: Path) -> None:
    data = (videos / "media" / "clip.webm").read_bytes()
    size = len(data)
    out = await fetch("-i", "-H", "Range: bytes=0-", url(host, "tv", "/clip.webm"))
    status, headers, body = parse_head(out)
    assert (status, headers["content-range"], body) == (206, f"bytes 0-{size - 1}/{size}", data)
    middle = size // 2
    out = await fetch("-i", "-H", f"Range: bytes={middle}-", url(host, "tv", "/clip.webm"))
    status, headers, body = parse_head(out)
    assert (status, headers["content-range"], body) == (
        206,
        f"bytes {middle}-{size - 1}/{size}",
        data[middle:],
    )
    out = await fetch("-i", "-H", "Range: bytes=0-99,-100", url(host, "tv", "/clip.webm"))
    status, headers, body = parse_head(out)
    assert status == 206
    assert headers["content-type"].startswith("multipart/byteranges")
    assert data[:100] in body
    assert data[-100:] in body
    out = await fetch("-i", "-H", f"Range: bytes={size}-", url(host, "tv", "/clip.webm"))
    status, headers, _ = parse_head(out)
    assert (status, headers["content-range"]) == (416, f"bytes */{size}")
    out = await fetch("-i", "-H", "Range: bytes=oops", url(host, "tv", "/clip.webm"))
    status, _, body = parse_head(out)
    assert (status, body) == (200, data)


async def test_player_page(host: Host) -> None:
    out = await fetch(url(host, "tv", "/"))
    page = out.decode()
    assert '<video controls preload="metadata" src="clip.webm"' in page
    assert 'src="clip.mp4"' in page
    assert 'href="live/"' in page
    out = await fetch(url(host, "tv", "/live/"))
    page = out.decode()
    assert 'src="index.m3u8"' in page
    assert "index0.ts" not in page.split("<ul>")[0]  # segments are parts, not players


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Chromium at /usr/bin/chromium")
async def test_headless_chromium_plays_and_seeks(host: Host, videos: Path) -> None:
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page()
            statuses: list[int] = []
            page.on(
                "response",
                lambda response: (
                    statuses.append(response.status) if response.url.endswith("clip.webm") else None
                ),
            )
            response = await page.goto(url(host, "tv", "/"))
            assert response is not None
            assert response.status == 200
            video = page.locator('video[src="clip.webm"]')
            await video.wait_for()
            played = await video.evaluate(
                """async (v) => {
                    v.muted = true;
                    await v.play();
                    await new Promise((resolve) => {
                        const check = () => v.currentTime > 0.3 ? resolve() : requestAnimationFrame(check);
                        check();
                    });
                    return v.currentTime;
                }"""
            )
            assert played > 0.3  # it played
            seeked = await video.evaluate(
                """async (v) => {
                    const done = new Promise((resolve) => v.addEventListener('seeked', resolve, {once: true}));
                    v.currentTime = 4.0;
                    await done;
                    return [v.currentTime, v.readyState, v.error ? v.error.code : 0];
                }"""
            )
            current, ready_state, error = seeked
            assert abs(current - 4.0) < 0.5
            assert ready_state >= 1
            assert error == 0
        finally:
            await browser.close()
    assert 206 in statuses  # the browser asked for ranges and got them
    log = (videos / "tv.log").read_text()
    assert '"GET /clip.webm HTTP/1.1" 206' in log


async def test_symlinks_to_dot_files_are_neither_played_nor_served(tmp_path: Path) -> None:
    secret = b"DOTSECRET-video in a dot-directory inside the root"
    media = tmp_path / "media"
    (media / ".private").mkdir(parents=True)
    (media / ".private" / "home.webm").write_bytes(secret)
    (media / "shown.webm").write_bytes(b"not a real video")
    os.symlink(".private/home.webm", media / "holiday.webm")  # an innocent name
    os.symlink(".private", media / "archive")
    text = '[apps.tv]\nkind = "video"\nlisten = "127.0.0.1:0"\nroot = "media"\n'
    async with running_host(text, tmp_path) as host:
        page = (await fetch(url(host, "tv", "/"))).decode()
        assert 'src="shown.webm"' in page
        assert "holiday" not in page
        assert "archive" not in page
        for path in ("/holiday.webm", "/archive/home.webm", "/archive/"):
            out = await fetch("-i", url(host, "tv", path))
            status, _, body = parse_head(out)
            assert status == 404, path
            assert secret not in body
