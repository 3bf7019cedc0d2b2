"""The computer of the ports description: what ``portkit serve`` hosts with no configuration.

One address, several server applications, each on its port: a web site (with the
``/login`` page of ``http://testing.example.com:8080/login``), a video site, and mail
(SMTP in, POP3 and IMAP out) when the mail kinds are installed. On the well-known ports
when the process may bind them (root), else on the development alternates:

=========  ==========  ==========
app        root        otherwise
=========  ==========  ==========
web        80          8080
video      8081        8081
smtp       25          2525
pop3       110         1110
imap       143         1143
console    8025        8025
=========  ==========  ==========

(A video site has no well-known port of its own; it is HTTP, on 8081 either way. The console,
the web view of this computer and its mail, takes Mailpit's 8025, else the next free port.)
A port another program already holds is replaced by the development alternate, and that
by a free port the kernel picks, so the demo computer starts whatever else runs here.
Everything listens on 127.0.0.1. The content is written into a fresh directory: a small
site, a 4-second test video (shipped with portkit; ``scripts/make-testcard.sh`` makes
it), an empty Maildir with one account (``demo``/``demo``) that receives every recipient.
"""

from __future__ import annotations

import errno
import importlib
import importlib.util
import json
import logging
import os
import shutil
import socket
import tempfile
from pathlib import Path

from portkit.host._config import HostConfig, parse_config

__all__ = ["DEFAULT_PORTS", "default_config", "default_ports", "make_default_content"]

log = logging.getLogger("portkit.host")

#: The test video shipped with portkit (see scripts/make-testcard.sh).
TESTCARD = Path(__file__).with_name("data") / "testcard.webm"

#: app -> (port as root, port otherwise)
DEFAULT_PORTS: dict[str, tuple[int, int]] = {
    "web": (80, 8080),
    "video": (8081, 8081),
    "smtp": (25, 2525),
    "pop3": (110, 1110),
    "imap": (143, 1143),
    "console": (8025, 8025),
}
#: Where the console looks next when 8025 is taken.
CONSOLE_NEXT = range(8026, 8035)

_INDEX = """<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>portkit: one computer, many ports</title></head>
<body>
<h1>One address, many applications</h1>
<p>This page comes from the <b>web</b> application on port {web}. The same computer runs
a video site on port {video}{mail}.
A client picks the application by port: <code>http://127.0.0.1:{web}/login</code> speaks
HTTP to port {web}.</p>
<ul>
<li><a href="/login/">/login</a>: the login page</li>
<li><a href="http://127.0.0.1:{video}/">the video site</a> (port {video})</li>
</ul>
</body></html>
"""

_LOGIN = """<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Log in</title></head>
<body>
<h1>Log in</h1>
<form method="post" action="/login/">
<label>User <input name="user" autocomplete="username"></label>
<label>Password <input name="password" type="password" autocomplete="current-password"></label>
<button type="submit">Log in</button>
</form>
<p>A static page: the web application serves files; it does not check passwords.</p>
</body></html>
"""


def _mail_available() -> bool:
    return importlib.util.find_spec("portkit.host.apps.mail") is not None


def make_default_content(base: Path, ports: dict[str, int], *, mail: bool) -> None:
    """Write the demo site, the test video and the mail store under base."""
    site = base / "site"
    (site / "login").mkdir(parents=True)
    mail_text = (
        f", and mail: SMTP on {ports['smtp']}, POP3 on {ports['pop3']}, IMAP on {ports['imap']}"
        if mail
        else ""
    )
    (site / "index.html").write_text(
        _INDEX.format(web=ports["web"], video=ports["video"], mail=mail_text), encoding="utf-8"
    )
    (site / "login" / "index.html").write_text(_LOGIN, encoding="utf-8")
    videos = base / "videos"
    videos.mkdir()
    shutil.copyfile(TESTCARD, videos / "testcard.webm")
    if mail:
        (base / "mail").mkdir()


def _can_bind(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return False
            raise
        return True


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def default_ports() -> dict[str, int]:
    """The demo's ports: well-known ones as root, development alternates otherwise.

    A port that is already taken (nginx on 80, postfix on 25) gives way to the alternate,
    and a taken alternate to a free port, so the demo starts beside other servers.
    """
    root_user = os.geteuid() == 0
    chosen: dict[str, int] = {}
    for app, (well_known, alternate) in DEFAULT_PORTS.items():
        candidates = [well_known, alternate] if root_user else [alternate]
        if app == "console":
            candidates = [alternate, *CONSOLE_NEXT]
        port = next((p for p in candidates if p not in chosen.values() and _can_bind(p)), None)
        if port is None:
            port = _free_port()
            log.warning("%s: ports %s are taken; using %d", app, candidates, port)
        elif port != candidates[0]:
            log.warning("%s: port %d is taken; using %d", app, candidates[0], port)
        chosen[app] = port
    return chosen


def default_config(base: Path | None = None, ports: dict[str, int] | None = None) -> HostConfig:
    """Generate the demo content in ``base`` (a new temporary directory by default).

    ``ports`` overrides :func:`default_ports` (tests use port 0 everywhere).
    """
    ports = ports or default_ports()
    mail = _mail_available()
    base = base or Path(tempfile.mkdtemp(prefix="portkit-demo-"))
    make_default_content(base, ports, mail=mail)
    console = f'[apps.console]\nkind = "console"\nlisten = "127.0.0.1:{ports["console"]}"\n'
    lines = [
        "[host]\ngrace = 5\n",
        f'[apps.web]\nkind = "web"\nlisten = "127.0.0.1:{ports["web"]}"\nroot = "site"\n',
        f'[apps.video]\nkind = "video"\nlisten = "127.0.0.1:{ports["video"]}"\nroot = "videos"\n',
    ]
    if mail:
        mail_kinds = importlib.import_module("portkit.host.apps.mail")
        users = json.dumps([f"demo:{mail_kinds.hash_password('demo')}"])
        lines.extend(
            f'[apps.{kind}]\nkind = "{kind}"\nlisten = "127.0.0.1:{ports[kind]}"\n'
            f'maildir = "mail"\nusers = {users}\ncatch_all = "demo"\n'
            for kind in ("smtp", "pop3", "imap")
        )
    lines.append(console + ('maildir = "mail"\n' if mail else ""))
    text = "\n".join(lines)
    (base / "serve.toml").write_text(text, encoding="utf-8")
    log.info("demo content and configuration in %s", base)
    return parse_config(text, file=str(base / "serve.toml"), base_dir=base)
