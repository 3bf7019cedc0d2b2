"""Static files over HTTP on aiohttp: the shared core of the ``web`` and ``video`` kinds.

aiohttp's :class:`~aiohttp.web.FileResponse` does the heavy lifting (sendfile, ETag and
Last-Modified, conditional requests, If-Range, a single byte range). This module adds what
it lacks:

- a document root no request can leave (:func:`resolve_path`);
- content types from one deterministic table (not the machine's ``/etc/mime.types``),
  including video and HLS types;
- multiple byte ranges as ``multipart/byteranges`` and RFC 9110 handling of invalid ranges
  (:mod:`portkit.host.apps._ranges` decides, this module answers);
- a directory listing (off unless configured);
- a fast path for the common request (a whole small file, no precondition, no range):
  the body and response head come from memory (:class:`SmallFiles`), with no thread hop
  and no file opened, which is most of the difference between aiohttp's FileResponse and
  a plain in-memory response.
"""

from __future__ import annotations

import asyncio
import dataclasses
import email.utils
import html
import math
import mimetypes
import os
import secrets
import stat
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote

from aiohttp import hdrs, web
from aiohttp.abc import AbstractStreamWriter
from multidict import CIMultiDict

from portkit.host.apps._ranges import IGNORE, UNSATISFIABLE, ByteRange, parse_range

__all__ = [
    "Found",
    "SmallFiles",
    "content_type",
    "directory_listing",
    "lookup",
    "resolve_path",
    "serve_file",
    "visible_entries",
]

_TYPES = mimetypes.MimeTypes()  # the built-in table only: same answers on every machine
for _ext, _type in {
    ".ts": "video/mp2t",  # HLS segments (RFC 8216 section 3)
    ".m3u8": "application/vnd.apple.mpegurl",  # HLS playlists (RFC 8216 section 4)
    ".m4s": "video/iso.segment",
    ".mpd": "application/dash+xml",
    ".mkv": "video/x-matroska",
    ".m4v": "video/mp4",
    ".ogv": "video/ogg",
    ".oga": "audio/ogg",
    ".opus": "audio/ogg",
    ".webp": "image/webp",
    ".avif": "image/avif",
    ".woff2": "font/woff2",
    ".woff": "font/woff",
    ".js": "text/javascript",  # RFC 9239
    ".mjs": "text/javascript",
    ".md": "text/markdown",
}.items():
    _TYPES.add_type(_type, _ext)

FALLBACK_TYPE = "application/octet-stream"
CHUNK = 256 * 1024

#: Files up to this size are answered from memory; larger ones stream with FileResponse.
SMALL_FILE = 256 * 1024
#: The most bytes of file bodies kept in memory (oldest entries go first).
SMALL_FILES_BYTES = 32 * 1024 * 1024

#: Request fields that need aiohttp's FileResponse (ranges and preconditions).
_SLOW_FIELDS = (
    hdrs.RANGE,
    hdrs.IF_RANGE,
    hdrs.IF_MATCH,
    hdrs.IF_NONE_MATCH,
    hdrs.IF_MODIFIED_SINCE,
    hdrs.IF_UNMODIFIED_SINCE,
)


def content_type(path: Path) -> str:
    """The media type to send for ``path`` (text types with ``charset=utf-8``)."""
    guessed, _encoding = _TYPES.guess_type(path.name, strict=False)
    media = guessed or FALLBACK_TYPE
    if media.startswith("text/") or media in ("application/javascript", "image/svg+xml"):
        return f"{media}; charset=utf-8"
    return media


def resolve_path(root: Path, url_path: str, *, hidden: bool = False) -> Path | None:
    """The file under ``root`` (already resolved) that ``url_path`` names, or None.

    ``url_path`` is the percent-decoded request path. Refused: NUL bytes and backslashes,
    ``.``/``..`` segments (encoded or not: the path is decoded already), anything whose
    real path (symlinks followed) is outside ``root``, and, unless ``hidden``, dot-files:
    both in the name asked for and in the real path, so that a symlink with an innocent
    name (``env_alias -> .env``, ``repo -> .git``) does not reach what its target's name
    would not.
    """
    resolved = _resolve(root, url_path, hidden=hidden)
    return None if resolved is None else Path(resolved[0])


def _resolve(
    root: Path, url_path: str, *, hidden: bool
) -> tuple[str, os.stat_result | None] | None:
    """:func:`resolve_path`'s answer as a string, with the entry's ``stat`` when the walk
    already made it (no symlink on the way), else None in its place."""
    if "\x00" in url_path or "\\" in url_path:
        return None
    parts = [part for part in url_path.split("/") if part]
    for part in parts:
        if part in (".", "..") or (part.startswith(".") and not hidden):
            return None
    # Strings and os.path rather than pathlib: this runs for every request, and pathlib's
    # object juggling cost more than the system calls.
    base = str(root)
    plain = _plain(base, parts)
    if plain is not None:
        return plain  # under the root by construction, and every segment was checked above
    try:  # Path.resolve is this same call
        real = os.path.realpath(os.path.join(base, *parts), strict=True)
    except (OSError, RuntimeError):  # missing, a symlink loop, a name too long
        return None
    if real != base:
        prefix = base if base.endswith("/") else base + "/"
        if not real.startswith(prefix):
            return None
        if not hidden and any(part.startswith(".") for part in real[len(prefix) :].split("/")):
            return None
    return real, None


def _plain(base: str, parts: list[str]) -> tuple[str, os.stat_result | None] | None:
    """``base`` (a real path) joined with ``parts`` if that names an existing entry through
    no symlink, with the entry's ``lstat`` (its ``stat`` too, as it is no symlink; None for
    the root itself), else None (missing, or a symlink on the way: realpath decides then).

    The common case in one ``lstat`` per segment, where ``realpath`` walks every segment
    from ``/`` in Python: with no symlink below the root and no ``.``/``..`` segments
    (refused before), the joined path is its own real path.
    """
    path = base
    st = None
    for part in parts:
        path = os.path.join(path, part)
        try:
            st = os.lstat(path)
        except (OSError, ValueError):
            return None
        if stat.S_ISLNK(st.st_mode):
            return None
    return path, st


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Found:
    """What a request path names under the root: a file, or a directory (with its index)."""

    path: Path
    st: os.stat_result
    is_dir: bool
    index: Path | None = None  # the directory's index file, if it has one
    index_st: os.stat_result | None = None


def lookup(
    root: Path, url_path: str, *, hidden: bool, index_names: tuple[str, ...]
) -> Found | None:
    """Resolve ``url_path`` under ``root`` and stat it (blocking: run it in a thread)."""
    resolved = _resolve(root, url_path, hidden=hidden)
    if resolved is None:
        return None
    real, st = resolved
    if st is None:
        try:
            st = os.stat(real)
        except OSError:
            return None
    path = Path(real)
    if stat.S_ISREG(st.st_mode):
        return Found(path=path, st=st, is_dir=False)
    if not stat.S_ISDIR(st.st_mode):
        return None  # devices, sockets, fifos are never served
    for name in index_names:
        candidate = _resolve(root, f"{url_path}/{name}", hidden=hidden)
        if candidate is not None:
            index, index_st = candidate
            if index_st is None:
                try:
                    index_st = os.stat(index)
                except OSError:
                    continue
            if stat.S_ISREG(index_st.st_mode):
                return Found(path=path, st=st, is_dir=True, index=Path(index), index_st=index_st)
    return Found(path=path, st=st, is_dir=True)


@dataclasses.dataclass(frozen=True, slots=True)
class _Entry:
    identity: tuple[int, int, int, int, int]  # device, inode, size, mtime_ns, ctime_ns
    head: tuple[tuple[str, str], ...]  # the response fields, as FileResponse sends them
    body: bytes
    encoded: bool  # a precompressed sibling (.gz, .br) exists: FileResponse may pick it


def _identity(st: os.stat_result) -> tuple[int, int, int, int, int]:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


class SmallFiles:
    """Bodies and response heads of small files, for whole-file GET/HEAD answers.

    An entry is used only while the file's identity (device, inode, size, modification
    and change times, from the ``stat`` every request makes anyway) is unchanged, so an
    edited or replaced file is read again on its next request. Reads are blocking but
    bounded by :data:`SMALL_FILE` and happen once per file version.
    """

    def __init__(self, limit: int = SMALL_FILES_BYTES) -> None:
        self.limit = limit
        self._entries: dict[Path, _Entry] = {}
        self._bytes = 0

    def response(
        self, request: web.BaseRequest, path: Path, st: os.stat_result
    ) -> web.Response | None:
        """The answer from memory, or None when FileResponse must answer."""
        headers = request.headers
        if st.st_size > SMALL_FILE or any(name in headers for name in _SLOW_FIELDS):
            return None
        entry = self._entries.get(path)
        if entry is None or entry.identity != _identity(st):
            entry = self._fill(path, st)
            if entry is None:
                return None
        if entry.encoded:
            accepted = headers.get(hdrs.ACCEPT_ENCODING, "").lower()
            if "gzip" in accepted or "br" in accepted:
                return None
        return web.Response(body=entry.body, headers=entry.head)

    def _fill(self, path: Path, st: os.stat_result) -> _Entry | None:
        old = self._entries.pop(path, None)
        if old is not None:
            self._bytes -= len(old.body)
        try:
            with path.open("rb") as fh:
                now = os.fstat(fh.fileno())
                if _identity(now) != _identity(st):
                    return None  # changed since the lookup: let FileResponse look again
                body = fh.read(SMALL_FILE + 1)
        except OSError:
            return None
        if len(body) != st.st_size:
            return None  # written to while read
        encoded = any(path.with_name(path.name + suffix).exists() for suffix in (".gz", ".br"))
        head = (
            (hdrs.CONTENT_TYPE, content_type(path)),
            (hdrs.ETAG, _etag(st)),
            # Rounded up, as aiohttp's FileResponse does: If-Modified-Since with this date
            # must match the file (a 304), whatever the fraction of its second.
            (hdrs.LAST_MODIFIED, email.utils.formatdate(math.ceil(st.st_mtime), usegmt=True)),
            (hdrs.ACCEPT_RANGES, "bytes"),
        )
        entry = _Entry(_identity(st), head, body, encoded)
        while self._entries and self._bytes + len(body) > self.limit:
            _path, evicted = next(iter(self._entries.items()))
            del self._entries[_path]
            self._bytes -= len(evicted.body)
        if len(body) <= self.limit:
            self._entries[path] = entry
            self._bytes += len(body)
        return entry


async def serve_file(
    request: web.Request, path: Path, st: os.stat_result, small: SmallFiles | None = None
) -> web.StreamResponse:
    """Answer GET/HEAD for the regular file ``path``, with ranges per RFC 9110.

    With ``small``, a whole small file with no precondition is answered from memory.
    """
    if small is not None:
        fast = small.response(request, path, st)
        if fast is not None:
            return fast
    media = content_type(path)
    header = request.headers.get(hdrs.RANGE)
    if_range = request.headers.get(hdrs.IF_RANGE)
    if if_range is not None:
        # RFC 9110 section 13.1.5, evaluated here (aiohttp only understands dates): a
        # validator that does not match means the Range is ignored.
        headers = _without(request, hdrs.IF_RANGE)
        if header is not None and not _if_range_matches(if_range, st):
            headers.popall(hdrs.RANGE, None)
            header = None
        request = request.clone(headers=headers)
    if header is not None:
        verdict = parse_range(header, st.st_size)
        conditional = any(
            h in request.headers
            for h in (
                hdrs.IF_MATCH,
                hdrs.IF_NONE_MATCH,
                hdrs.IF_MODIFIED_SINCE,
                hdrs.IF_UNMODIFIED_SINCE,
            )
        )
        if verdict is IGNORE or (conditional and not _single(verdict)):
            # A 200 with the whole file is always a correct answer (RFC 9110 section 14.2);
            # aiohttp then evaluates the preconditions (section 13.2.2).
            request = request.clone(headers=_without_range(request))
        elif verdict is UNSATISFIABLE:
            if conditional:  # preconditions come first (section 13.2.2): let aiohttp decide
                request = request.clone(headers=_without_range(request))
            else:
                raise web.HTTPRequestRangeNotSatisfiable(
                    headers={
                        hdrs.CONTENT_RANGE: f"bytes */{st.st_size}",
                        hdrs.ACCEPT_RANGES: "bytes",
                    }
                )
        elif isinstance(verdict, tuple) and len(verdict) == 1:
            one = verdict[0]
            headers = _without_range(request)
            headers[hdrs.RANGE] = f"bytes={one.first}-{one.last}"
            request = request.clone(headers=headers)
        elif isinstance(verdict, tuple) and request.method == hdrs.METH_GET:
            return await _multipart(request, path, st, media, verdict)
        else:  # HEAD with several ranges: describe the whole
            request = request.clone(headers=_without_range(request))
    return _FileResponse(path, request, headers={hdrs.CONTENT_TYPE: media})


class _FileResponse(web.FileResponse):
    """A FileResponse prepared against ``effective`` (the request with its Range rewritten).

    aiohttp prepares the returned response with the original request; the rewritten clone
    must be used instead, and only once.
    """

    def __init__(self, path: Path, effective: web.BaseRequest, *, headers: dict[str, str]) -> None:
        super().__init__(path, headers=headers)
        self._effective = effective

    async def prepare(self, request: web.BaseRequest) -> AbstractStreamWriter | None:
        if self.prepared:
            return None
        return await super().prepare(self._effective)

    async def _sendfile(
        self, request: web.BaseRequest, fobj: IO[Any], offset: int, count: int
    ) -> AbstractStreamWriter:
        # Always through the transport, in chunks, as under uvloop (which has no
        # loop.sendfile): the send timeout aborts transports mid-response, and asyncio's
        # own sendfile path does not survive that (Python 3.11: InvalidStateError in
        # connection_lost, and the socket is left open).
        writer = await web.StreamResponse.prepare(self, request)
        assert writer is not None
        return await self._sendfile_fallback(writer, fobj, offset, count)


def _single(verdict: object) -> bool:
    return isinstance(verdict, tuple) and len(verdict) == 1


def _without(request: web.Request, name: str) -> CIMultiDict[str]:
    headers = CIMultiDict(request.headers)
    headers.popall(name, None)
    return headers


def _without_range(request: web.Request) -> CIMultiDict[str]:
    return _without(request, hdrs.RANGE)


def _if_range_matches(value: str, st: os.stat_result) -> bool:
    """Whether an If-Range validator matches the file (section 13.1.5)."""
    value = value.strip()
    if value.startswith(('"', "W/")):
        return value == _etag(st)  # weak tags never match (strong comparison)
    try:
        date = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return False
    return int(date.timestamp()) == int(st.st_mtime)


def _etag(st: os.stat_result) -> str:
    # The same validator aiohttp's FileResponse sends, so a client sees one ETag per file.
    return f'"{st.st_mtime_ns:x}-{st.st_size:x}"'


async def _multipart(
    request: web.Request,
    path: Path,
    st: os.stat_result,
    media: str,
    ranges: tuple[ByteRange, ...],
) -> web.StreamResponse:
    """206 with ``multipart/byteranges`` (RFC 9110 section 14.6)."""
    boundary = secrets.token_hex(16)
    heads = [
        (
            f"--{boundary}\r\n{hdrs.CONTENT_TYPE}: {media}\r\n"
            f"{hdrs.CONTENT_RANGE}: {r.content_range()}\r\n\r\n"
        ).encode("ascii")
        for r in ranges
    ]
    tail = f"--{boundary}--\r\n".encode("ascii")
    # Each part: head, data, CRLF (the CRLF before the next delimiter belongs to it).
    length = sum(len(h) + r.size + 2 for h, r in zip(heads, ranges, strict=True)) + len(tail)
    response = web.StreamResponse(status=206)
    response.content_type = "multipart/byteranges"
    response.headers[hdrs.CONTENT_TYPE] = f"multipart/byteranges; boundary={boundary}"
    response.headers[hdrs.ACCEPT_RANGES] = "bytes"
    response.headers[hdrs.ETAG] = _etag(st)
    response.last_modified = st.st_mtime
    response.content_length = length
    await response.prepare(request)
    with path.open("rb") as fh:
        for head, r in zip(heads, ranges, strict=True):
            await response.write(head)
            remaining = r.size
            fh.seek(r.first)
            while remaining:
                data = await asyncio.to_thread(fh.read, min(CHUNK, remaining))
                if not data:  # the file shrank under us: the length promise cannot be kept
                    raise ConnectionResetError(f"{path.name} changed while being sent")
                remaining -= len(data)
                await response.write(data)
            await response.write(b"\r\n")
    await response.write(tail)
    await response.write_eof()
    return response


def visible_entries(root: Path, directory: Path, *, hidden: bool) -> list[Path]:
    """The entries of ``directory`` a request may reach (dirs first, then by name).

    Blocking: run it in a thread. Left out: what a request could not reach (symlinks
    leading out of ``root`` or to dot-files, names that are not UTF-8 text).
    """
    entries = []
    for entry in directory.iterdir():
        if entry.name.startswith(".") and not hidden:
            continue
        if not entry.name.isprintable() or _undecodable(entry.name):
            # Bytes that are not UTF-8 (or control characters) in a name: no URL this
            # server decodes can name it, and quoting it for a link would fail.
            continue
        real = resolve_path(root, str(entry.relative_to(root)), hidden=hidden)
        if real is not None:
            entries.append(entry)
    return sorted(entries, key=lambda p: (not p.is_dir(), p.name))


def _undecodable(name: str) -> bool:
    """Whether ``name`` held bytes that are not UTF-8 (``os.fsdecode`` surrogates)."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def directory_listing(
    root: Path, directory: Path, url_path: str, *, hidden: bool = False
) -> web.Response:
    """A plain HTML index of ``directory`` (names escaped, links percent-encoded)."""
    base = url_path if url_path.endswith("/") else url_path + "/"
    rows = []
    if base != "/":
        rows.append('<li><a href="../">../</a></li>')
    for entry in visible_entries(root, directory, hidden=hidden):
        name = entry.name + ("/" if entry.is_dir() else "")
        rows.append(f'<li><a href="{quote(name)}">{html.escape(name)}</a></li>')
    title = html.escape(f"Index of {base}")
    body = (
        f'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>{title}</title></head>\n'
        f"<body><h1>{title}</h1>\n<ul>\n" + "\n".join(rows) + "\n</ul></body></html>\n"
    )
    return web.Response(text=body, content_type="text/html", charset="utf-8")
