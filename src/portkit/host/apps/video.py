"""video: video files for playback and seeking in a browser.

Everything the ``web`` kind does (byte ranges are what seeking uses: a browser asks for
``Range: bytes=N-`` and expects 206 with ``Content-Range``), with media types for video
containers and HLS (``.m3u8`` playlists, ``.ts`` segments, RFC 8216), and, for a directory
without an ``index.html``, a page with a ``<video>`` player per file.
"""

from __future__ import annotations

import asyncio
import dataclasses
import html
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote

from aiohttp import web

from portkit.host._app import AppContext, Application, Kind, Where, option
from portkit.host.apps._files import Found, content_type, visible_entries
from portkit.host.apps.web import WebApp, WebOptions, check_root, check_tls

__all__ = ["KINDS", "VideoApp", "VideoKind", "VideoOptions"]

#: Media types a ``<video>`` element is offered (HLS segments are parts, not videos).
PLAYABLE_EXCLUDE = ("video/mp2t", "video/iso.segment")
PLAYLIST = "application/vnd.apple.mpegurl"


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class VideoOptions(WebOptions):
    """Options of a ``video`` application: those of ``web``, with the player page on."""

    listing: bool = option(True, help="a player page for directories without index.html")


def player_page(root: Path, directory: Path, url_path: str, *, hidden: bool) -> web.Response:
    """An HTML page with a ``<video>`` element per video file of ``directory``."""
    base = url_path if url_path.endswith("/") else url_path + "/"
    title = html.escape(f"Videos in {base}")
    players, links = [], []
    if base != "/":
        links.append('<li><a href="../">../</a></li>')
    for entry in visible_entries(root, directory, hidden=hidden):
        name, href = html.escape(entry.name), quote(entry.name)
        if entry.is_dir():
            links.append(f'<li><a href="{href}/">{name}/</a></li>')
            continue
        media = content_type(entry)
        if (media.startswith("video/") and media not in PLAYABLE_EXCLUDE) or media == PLAYLIST:
            players.append(
                f'<figure><video controls preload="metadata" src="{href}" '
                f'type="{html.escape(media)}"></video>'
                f'<figcaption><a href="{href}">{name}</a></figcaption></figure>'
            )
    body = (
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8">'
        f"<title>{title}</title>\n"
        "<style>body{font-family:sans-serif}video{max-width:640px;width:100%}</style>"
        f"</head>\n<body><h1>{title}</h1>\n"
        + ("\n".join(players) or "<p>no videos here</p>")
        + ("\n<ul>\n" + "\n".join(links) + "\n</ul>" if links else "")
        + "\n</body></html>\n"
    )
    return web.Response(text=body, content_type="text/html", charset="utf-8")


class VideoApp(WebApp):
    """A web application whose directory pages are video players."""

    async def directory(self, request: web.Request, found: Found) -> web.StreamResponse:
        if not self.options.listing:
            raise web.HTTPForbidden(text="403: the player page is off\n")
        return await asyncio.to_thread(
            player_page, self.root, found.path, request.path, hidden=self.options.hidden
        )


@dataclasses.dataclass(frozen=True, slots=True)
class VideoKind:
    """The ``video`` kind."""

    name: str = "video"
    options: type[VideoOptions] = VideoOptions

    def check(self, options: VideoOptions, where: Where) -> None:
        check_root(options.root, where)
        check_tls(options, where)

    def create(self, options: VideoOptions, ctx: AppContext) -> Application:
        return VideoApp(options, ctx)


KINDS: Mapping[str, Kind[Any]] = {"video": VideoKind()}
