"""Import IANA's Service Name and Transport Protocol Port Number Registry (CSV).

IANA publishes the registry as CSV with twelve columns; the importer needs four
(Service Name, Port Number, Transport Protocol, Description) and copes with what the
real file contains: several names for one port, port ranges, names without a port,
rows without a transport, multi-line quoted notes, and "Reserved"/"Unassigned" rows.
"""

from __future__ import annotations

import csv
import io
import os
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from portkit._errors import NetworkError, RegistryError, RegistryFileError
from portkit.registry._build import RawRow, apply_conventions, dump, group_rows, parse_port_field
from portkit.registry._model import Service

__all__ = ["IANA_CSV_URL", "download", "import_csv_text", "parse_csv", "write_data_file"]

IANA_CSV_URL = (
    "https://www.iana.org/assignments/service-names-port-numbers/service-names-port-numbers.csv"
)
DOWNLOAD_TIMEOUT = 60.0  # seconds, for the whole transfer
MAX_DOWNLOAD_BYTES = 64 * 1024 * 1024  # the real file is about 4 MB

_REQUIRED = ("Service Name", "Port Number", "Transport Protocol", "Description")


def parse_csv(text: str) -> Iterator[RawRow]:
    """Yield the rows of an IANA registry CSV; raise RegistryError if it is not one."""
    reader = csv.DictReader(io.StringIO(text, newline=""))
    try:
        fields = reader.fieldnames or []
    except csv.Error as exc:
        raise RegistryFileError(f"not a readable CSV file: {exc}") from None
    missing = [column for column in _REQUIRED if column not in fields]
    if missing:
        raise RegistryFileError(
            f"not an IANA port registry CSV: missing column(s) {', '.join(map(repr, missing))}"
        )
    rows = iter(reader)
    while True:
        try:
            row = next(rows)
        except StopIteration:
            return
        except csv.Error as exc:
            raise RegistryFileError(f"line {reader.line_num}: not readable CSV: {exc}") from None
        line = reader.line_num
        try:
            port, port_end = parse_port_field(row["Port Number"] or "")
        except RegistryError as exc:
            raise RegistryFileError(f"line {line}: {exc}") from None
        yield RawRow(
            name=row["Service Name"] or "",
            port=port,
            port_end=port_end,
            transport=(row["Transport Protocol"] or "").strip() or None,
            description=row["Description"] or "",
        )


def import_csv_text(text: str) -> list[Service]:
    """Parse an IANA CSV and return registry entries with the conventions applied."""
    try:
        grouped = group_rows(parse_csv(text))
    except RegistryFileError:
        raise
    except RegistryError as exc:
        raise RegistryFileError(str(exc)) from None
    # Every real edition of the registry assigns 80/tcp; a file without it is not one.
    if not any(s.port == 80 and s.transport == "tcp" and "http" in s.names for s in grouped):
        raise RegistryFileError("not the IANA port registry: it has no http entry for 80/tcp")
    return apply_conventions(grouped)


def write_data_file(path: Path, services: list[Service], *, source: str) -> None:
    """Write the data file atomically: a reader sees the old file or the new, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    date = datetime.now(UTC).strftime("%Y-%m-%d")
    fd, tmp_name = tempfile.mkstemp(prefix=".services-", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as out:
            for line in dump(services, source=source, date=date):
                out.write(line + "\n")
            out.flush()
            os.fchmod(out.fileno(), 0o644)
            os.fsync(out.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def download(url: str = IANA_CSV_URL, *, timeout: float = DOWNLOAD_TIMEOUT) -> str:
    """Fetch the registry CSV from ``url`` and return its text."""
    request = urllib.request.Request(url, headers={"User-Agent": "portkit registry update"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body: bytes = response.read(MAX_DOWNLOAD_BYTES + 1)
    except urllib.error.HTTPError as exc:
        raise NetworkError(f"downloading {url} failed: HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise NetworkError(f"downloading {url} failed: {reason}") from None
    if len(body) > MAX_DOWNLOAD_BYTES:
        raise RegistryFileError(f"{url} is larger than {MAX_DOWNLOAD_BYTES} bytes; refusing it")
    try:
        return body.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise RegistryFileError(f"{url} is not UTF-8 text") from None
