"""Benchmark the mail applications against Debian's mail servers, side by side, on loopback.

1. SMTP intake: messages/s accepted with ``250`` by portkit's ``smtp`` (which answers only
   after the Maildir file is fsynced and renamed into ``new/``) vs postfix (which answers
   after its queue file is fsynced, then delivers to a Maildir with ``virtual``). For
   postfix the time until every message is in the Maildir is reported too.
2. Retrieval: messages/s read by POP3 (USER/PASS, RETR every message, QUIT) and by IMAP
   (LOGIN, SELECT, one ``FETCH 1:* BODY.PEEK[]``) from portkit's ``pop3``/``imap`` vs dovecot,
   both serving a Maildir holding the same messages.

The same Python clients (smtplib, poplib, imaplib) drive both sides. Every server is a
private instance bound to 127.0.0.1 on a free port, in a temporary directory removed
afterwards; every load is a fixed number of messages. Each round runs portkit and then
the peer, so both see the same machine load; a figure is the median over the rounds, and
a ratio the median of the rounds' own ratios (paired). Retrieval starts with one untimed
session per side (the first IMAP session moves every message from new/ to cur/, on both),
then waits 1.5 s, so that the mailbox is read as mail usually is: not changed in the last
second (both servers rescan a directory whose mtime is that young).
Needs root (postfix and dovecot drop privileges) and the Debian packages postfix,
dovecot-imapd, dovecot-pop3d. Run from the repository root:

    PYTHONPATH=src python bench/mail.py [--messages 500] [--clients 4] [--rounds 7]
        [--only smtp,pop3,imap]

Figures go in docs/benchmarks.md ("## Mail").
"""

from __future__ import annotations

import argparse
import contextlib
import imaplib
import json
import os
import poplib
import shutil
import signal
import smtplib
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from statistics import median

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from portkit.host.apps.mail import hash_password  # noqa: E402

PASSWORD = "bench-password"
POSTFIX_MASTER = "/usr/lib/postfix/sbin/master"
POSTFIX_MANIFEST = Path("/etc/postfix/postfix-files")
NOBODY = 65534
SETTLE_SECONDS = 1.5


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_banner(port: int, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    """Wait until the server on 127.0.0.1:port sends its greeting (bounded)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args!r} exited with {proc.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1) as s:
            s.settimeout(5)
            if s.recv(100):
                return
        time.sleep(0.05)
    raise RuntimeError(f"no greeting on port {port} after {timeout}s")


def message(n: int, size: int) -> bytes:
    head = (
        b"From: bench@sender.test\r\nTo: alice@example.test\r\n"
        b"Subject: bench message %d\r\nMessage-ID: <%d@bench.test>\r\n\r\n" % (n, n)
    )
    line = b"The quick brown fox jumps over the lazy dog, message %08d.\r\n" % n
    return head + line * max(1, (size - len(head)) // len(line))


# -- servers ---------------------------------------------------------------------------------


@contextlib.contextmanager
def portkit_serve(work: Path) -> Iterator[dict[str, int]]:
    ports = {"smtp": free_port(), "pop3": free_port(), "imap": free_port()}
    user = f"alice:{hash_password(PASSWORD)}"
    config = work / "serve.toml"
    config.write_text(
        "".join(
            f'[apps.{kind}]\nkind = "{kind}"\nlisten = ["127.0.0.1:{port}"]\n'
            f'maildir = "portkit-mail"\ndomains = ["example.test"]\nusers = ["{user}"]\n'
            # every bench client comes from 127.0.0.1: allow all of them at once (postfix
            # has no such per-address cap by default)
            + (
                "max-message-size = 52428800\nmax-transfers-per-address = 64\nmax-transfers = 64\n"
                if kind == "smtp"
                else ""
            )
            for kind, port in ports.items()
        )
    )
    ready = work / "ready.json"
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "portkit",
            "serve",
            str(config),
            "--ready-file",
            str(ready),
            "--status-file",
            str(work / "status.json"),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while not ready.exists():  # portkit serve's explicit ready signal
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("portkit serve did not become ready")
            time.sleep(0.02)
        yield ports
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)


def _postfix_dirs(pf: Path) -> None:
    """Create the queue and data directories with the owners/modes of postfix's manifest."""
    for line in POSTFIX_MANIFEST.read_text().splitlines():
        if line.startswith("#") or line.count(":") < 4:
            continue
        path, kind, owner, group, mode = line.split(":")[:5]
        if kind != "d":
            continue
        if path.startswith("$queue_directory"):
            target = pf / "queue" / path.removeprefix("$queue_directory").lstrip("/")
        elif path == "$data_directory":
            target = pf / "data"
        else:
            continue
        target.mkdir(parents=True, exist_ok=True)
        os.chmod(target, int(mode, 8))
        owner = owner.replace("$mail_owner", "postfix")
        group = group.replace("$setgid_group", "postdrop")
        shutil.chown(target, owner, None if group == "-" else group)


@contextlib.contextmanager
def postfix(work: Path) -> Iterator[tuple[int, Path]]:
    port = free_port()
    pf = work / "postfix"
    conf = pf / "conf"
    conf.mkdir(parents=True)
    maildir_base = work / "postfix-mail"
    (maildir_base / "alice").mkdir(parents=True)
    shutil.chown(maildir_base / "alice", NOBODY, NOBODY)
    (conf / "main.cf").write_text(
        f"""compatibility_level = 3.6
queue_directory = {pf}/queue
data_directory = {pf}/data
mail_owner = postfix
setgid_group = postdrop
myhostname = bench.portkit.test
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_peername_lookup = no
smtp_dns_support_level = disabled
alias_maps =
alias_database =
local_recipient_maps =
biff = no
virtual_mailbox_domains = example.test
virtual_mailbox_base = {maildir_base}
virtual_mailbox_maps = static:alice/
virtual_uid_maps = static:{NOBODY}
virtual_gid_maps = static:{NOBODY}
virtual_destination_concurrency_limit = 4
message_size_limit = 52428800
virtual_mailbox_limit = 0
maillog_file_prefixes = {work}
maillog_file = {work}/postfix.log
"""
    )
    (conf / "master.cf").write_text(
        f"""127.0.0.1:{port} inet n - n - - smtpd
pickup unix n - n 60 1 pickup
cleanup unix n - n - 0 cleanup
qmgr unix n - n 300 1 qmgr
rewrite unix - - n - - trivial-rewrite
bounce unix - - n - 0 bounce
defer unix - - n - 0 bounce
trace unix - - n - 0 bounce
verify unix - - n - 1 verify
flush unix n - n 1000? 0 flush
proxymap unix - - n - - proxymap
showq unix n - n - - showq
error unix - - n - - error
retry unix - - n - - error
discard unix - - n - - discard
virtual unix - n n - - virtual
anvil unix - - n - 1 anvil
scache unix - - n - 1 scache
postlog unix-dgram n - n - 1 postlogd
"""
    )
    old = time.time() - 60  # postfix waits on configuration files younger than a second
    for name in ("main.cf", "master.cf"):
        os.utime(conf / name, (old, old))
    _postfix_dirs(pf)
    proc = subprocess.Popen(
        [POSTFIX_MASTER, "-c", str(conf), "-d"],
        stdout=subprocess.DEVNULL,
        stderr=(work / "postfix-master.err").open("wb"),
        env={**os.environ, "MAIL_CONFIG": str(conf)},
    )
    try:
        wait_banner(port, proc)
        yield port, maildir_base / "alice"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)


@contextlib.contextmanager
def dovecot(work: Path) -> Iterator[tuple[dict[str, int], Path]]:
    ports = {"pop3": free_port(), "imap": free_port()}
    dv = work / "dovecot"
    (dv / "run").mkdir(parents=True)
    (dv / "state").mkdir()
    home = work / "dovecot-mail" / "alice"
    maildir = home / "Maildir"
    for sub in ("cur", "new", "tmp"):
        (maildir / sub).mkdir(parents=True)
    users = dv / "users"
    users.write_text(f"alice:{{PLAIN}}{PASSWORD}::::::\n")
    users.chmod(0o640)
    shutil.chown(users, None, "dovecot")
    (dv / "dovecot.conf").write_text(
        f"""protocols = imap pop3
listen = 127.0.0.1
base_dir = {dv}/run
state_dir = {dv}/state
instance_name = portkit-bench-{os.getpid()}
log_path = {work}/dovecot.log
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
mail_location = maildir:~/Maildir
default_login_user = dovenull
default_internal_user = dovecot
passdb {{
  driver = passwd-file
  args = scheme=PLAIN {users}
}}
userdb {{
  driver = static
  args = uid={NOBODY} gid={NOBODY} home={work}/dovecot-mail/%n
}}
service imap-login {{
  inet_listener imap {{
    port = {ports["imap"]}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service pop3-login {{
  inet_listener pop3 {{
    port = {ports["pop3"]}
  }}
  inet_listener pop3s {{
    port = 0
  }}
}}
"""
    )
    proc = subprocess.Popen(
        ["dovecot", "-F", "-c", str(dv / "dovecot.conf")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_banner(ports["imap"], proc)
        wait_banner(ports["pop3"], proc)
        yield ports, maildir
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)


# -- loads -----------------------------------------------------------------------------------


def smtp_burst(port: int, messages: list[bytes], clients: int) -> float:
    """Send every message (``clients`` connections in parallel); seconds until all 250s."""
    errors: list[BaseException] = []
    parts = [messages[i::clients] for i in range(clients)]

    def run(part: list[bytes]) -> None:
        try:
            with smtplib.SMTP("127.0.0.1", port, timeout=120) as client:
                for data in part:
                    client.sendmail("bench@sender.test", ["alice@example.test"], data)
        except (OSError, smtplib.SMTPException) as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(p,)) for p in parts]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join(600)
    elapsed = time.perf_counter() - start
    if errors:
        raise RuntimeError(f"smtp errors: {errors[:3]}")
    return elapsed


def wait_count(directory: Path, count: int, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while sum(1 for _ in directory.iterdir()) < count:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{directory} has fewer than {count} messages after {timeout}s")
        time.sleep(0.01)


def pop3_read_all(port: int) -> tuple[float, float, int]:
    """(login seconds, retrieval seconds, messages) for one POP3 session."""
    start = time.perf_counter()
    client = poplib.POP3("127.0.0.1", port, timeout=120)
    client.user("alice")
    client.pass_(PASSWORD)
    logged_in = time.perf_counter()
    count, _ = client.stat()
    for n in range(1, count + 1):
        client.retr(n)
    client.quit()
    return logged_in - start, time.perf_counter() - logged_in, count


def imap_read_all(port: int) -> tuple[float, float, int]:
    """(login seconds, retrieval seconds, messages) for one IMAP session."""
    start = time.perf_counter()
    client = imaplib.IMAP4("127.0.0.1", port, timeout=120)
    client.login("alice", PASSWORD)
    logged_in = time.perf_counter()
    _, data = client.select("INBOX")
    count = int(data[0] or 0)
    _, fetched = client.fetch("1:*", "(BODY.PEEK[])")
    got = sum(1 for item in fetched if isinstance(item, tuple))
    client.logout()
    if got != count:
        raise RuntimeError(f"imap fetched {got} of {count}")
    return logged_in - start, time.perf_counter() - logged_in, count


# -- main ------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=500, help="messages per run")
    parser.add_argument("--size", type=int, default=4096, help="octets per message")
    parser.add_argument("--clients", type=int, default=4, help="parallel SMTP connections")
    parser.add_argument("--rounds", type=int, default=7, help="paired runs per figure (median)")
    parser.add_argument(
        "--only", default="smtp,pop3,imap", help="comma-separated: smtp, pop3, imap"
    )
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    if not 1 <= args.messages <= 20000 or not 1 <= args.clients <= 64:
        parser.error("--messages must be 1-20000 and --clients 1-64")
    if not 1 <= args.rounds <= 50:
        parser.error(f"--rounds must be 1-50, not {args.rounds}")
    only = [part.strip() for part in args.only.split(",") if part.strip()]
    unknown = sorted(set(only) - {"smtp", "pop3", "imap"})
    if unknown or not only:
        parser.error(f"--only takes smtp, pop3 and imap, not {args.only!r}")
    if os.geteuid() != 0:
        print("bench/mail.py: needs root (postfix and dovecot drop privileges)", file=sys.stderr)
        return 5
    for binary in (POSTFIX_MASTER, "/usr/sbin/dovecot"):
        if not Path(binary).exists():
            print(
                f"bench/mail.py: {binary} missing (scripts/install-system-deps.sh)", file=sys.stderr
            )
            return 3

    messages = [message(n, args.size) for n in range(args.messages)]
    work = Path(tempfile.mkdtemp(prefix="pk-mail-bench-"))
    work.chmod(0o755)  # the daemons' unprivileged users must reach their directories
    results: dict[str, dict[str, float]] = {}
    try:
        with (
            portkit_serve(work) as pk_ports,
            postfix(work) as (pf_port, pf_maildir),
            dovecot(work) as (dv_ports, dv_maildir),
        ):
            pk_new = work / "portkit-mail" / "alice" / "new"

            # 1. SMTP intake, alternating so both see the same machine load.
            pk_times, pf_times, pf_delivered = [], [], []
            for _ in range(args.rounds if "smtp" in only else 0):
                for d in (pk_new, pf_maildir / "new"):
                    if d.exists():
                        for f in d.iterdir():
                            f.unlink()
                pk_times.append(smtp_burst(pk_ports["smtp"], messages, args.clients))
                wait_count(pk_new, args.messages, timeout=5)  # already there: 250 came after
                start = time.perf_counter()
                pf_times.append(smtp_burst(pf_port, messages, args.clients))
                wait_count(pf_maildir / "new", args.messages)
                pf_delivered.append(time.perf_counter() - start)
            n = args.messages
            if pk_times:
                results["smtp"] = {
                    "portkit": n / median(pk_times),
                    "postfix": n / median(pf_times),
                    "postfix_delivered": n / median(pf_delivered),
                    "ratio": median([p / k for k, p in zip(pk_times, pf_times, strict=True)]),
                    "ratio_delivered": median(
                        [p / k for k, p in zip(pk_times, pf_delivered, strict=True)]
                    ),
                }

            # 2. Retrieval from the same messages in both Maildirs.
            pk_new.mkdir(parents=True, exist_ok=True)
            for f in pk_new.iterdir():
                f.unlink()
            for i, data in enumerate(messages):
                for box in (pk_new, dv_maildir / "new"):
                    (box / f"{1700000000 + i}.M{i}P1.bench").write_bytes(data)
            for path in dv_maildir.rglob("*"):
                shutil.chown(path, NOBODY, NOBODY)
            shutil.chown(dv_maildir, NOBODY, NOBODY)
            for proto, reader in (("pop3", pop3_read_all), ("imap", imap_read_all)):
                if proto not in only:
                    continue
                pk: list[tuple[float, float]] = []
                dv: list[tuple[float, float]] = []
                for warm_up in [True] + [False] * args.rounds:
                    for port, runs in ((pk_ports[proto], pk), (dv_ports[proto], dv)):
                        login, retrieval, count = reader(port)
                        if count != n:
                            raise RuntimeError(f"{proto} on {port} saw {count} of {n} messages")
                        if not warm_up:
                            runs.append((login, retrieval))
                    if warm_up:
                        # Mail is read some time after it arrived: let the warm-up's moves
                        # to cur/ age past the one-second granularity both servers allow
                        # directory mtimes before they trust what they listed.
                        time.sleep(SETTLE_SECONDS)
                results[proto] = {
                    "portkit": n / median([r for _, r in pk]),
                    "dovecot": n / median([r for _, r in dv]),
                    "ratio": median([d[1] / p[1] for p, d in zip(pk, dv, strict=True)]),
                    "portkit_login_ms": 1000 * median([lg for lg, _ in pk]),
                    "dovecot_login_ms": 1000 * median([lg for lg, _ in dv]),
                }
    except BaseException:
        for log in ("postfix-master.err", "postfix.log", "dovecot.log"):
            with contextlib.suppress(OSError):
                print(f"--- {log}:\n" + (work / log).read_text()[-20000:], file=sys.stderr)
        raise
    finally:
        shutil.rmtree(work, ignore_errors=True)

    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    load = os.getloadavg()[0]
    print(
        f"{args.messages} messages of {args.size} octets, {args.clients} SMTP clients, "
        f"medians of {args.rounds} paired rounds; load average {load:.1f}"
    )
    print("| measure | portkit msg/s | peer | peer msg/s | ratio portkit/peer (paired) |")
    print("|---|---|---|---|---|")
    if "smtp" in results:
        smtp = results["smtp"]
        print(
            f"| SMTP accepted (250, durable) | {smtp['portkit']:.0f} | postfix (queued) | "
            f"{smtp['postfix']:.0f} | {smtp['ratio']:.2f}x |"
        )
        print(
            f"| SMTP accepted and in the Maildir | {smtp['portkit']:.0f} | postfix (delivered) "
            f"| {smtp['postfix_delivered']:.0f} | {smtp['ratio_delivered']:.2f}x |"
        )
    labels = {"pop3": "POP3 RETR all", "imap": "IMAP SELECT + FETCH 1:* BODY.PEEK[]"}
    for proto in ("pop3", "imap"):
        if proto in results:
            r = results[proto]
            print(
                f"| {labels[proto]} | {r['portkit']:.0f} | dovecot | {r['dovecot']:.0f} | "
                f"{r['ratio']:.2f}x |"
            )
    for proto in ("pop3", "imap"):
        if proto not in results:
            continue
        r = results[proto]
        print(
            f"{proto} login: portkit {r['portkit_login_ms']:.1f} ms (salted scrypt, n=2^14), "
            f"dovecot {r['dovecot_login_ms']:.1f} ms ({{PLAIN}} passwd-file)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
