"""Resource attacks on the mail applications, portkit and Debian's servers side by side.

Each attack runs against ``portkit serve`` (smtp, pop3 and imap in one process) and, where
one exists, the peer that does the same job: dovecot for chained IMAP literals before
login and for deeply nested MIME, postfix for a bare CR in EHLO. Reported per (attack,
target): the peak memory of the server's processes while it runs (every process of the
server, sampled from ``/proc``), and how many legitimate requests made during or after it
were served.

Everything runs inside a fresh network namespace (only its own loopback; the second source
address 127.0.0.2 is loopback too) that is deleted afterwards; every attack is a fixed
number of connections and bytes with a deadline. Needs root (namespaces; postfix and
dovecot drop privileges) and the Debian packages postfix, dovecot-imapd, dovecot-pop3d.

    python bench/_attack_mail.py [--rounds 1]      # prints a table
    python bench/_attack_mail.py --json

``run_mail_attacks(rounds)`` returns the rows (keys: attack, target, peak_rss_mb, legit_ok,
legit_total, note), for a report that puts them next to other applications' attacks.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import email
import imaplib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench._netns import namespace  # noqa: E402
from bench.mail import NOBODY, PASSWORD, dovecot, portkit_serve, postfix  # noqa: E402

__all__ = ["run_mail_attacks"]

LITERAL = 1_000_000  # octets per chained literal (each under the usual 1 MiB literal cap)
CHAINED = 300  # literals chained into one command before login
GUESSES = 39  # wrong passwords sent at once before the right one
DEPTHS = (500, 3000)  # MIME nesting levels of the hostile message
LEGIT = 5  # legitimate requests per measure
DEADLINE = 60.0  # seconds any one attack may take
SAMPLE = 0.05  # seconds between memory samples

Row = dict[str, object]


# -- measuring -------------------------------------------------------------------------------


def _listener_pid(port: int) -> int:
    """The process holding the TCP listener on ``port`` (this namespace's /proc/net/tcp)."""
    inodes = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
            inodes.add(f"socket:[{fields[9]}]")
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            for fd in (proc / "fd").iterdir():
                with contextlib.suppress(OSError):
                    if os.readlink(fd) in inodes:
                        return int(proc.name)
    raise RuntimeError(f"no process listens on port {port}")


def _tree_rss_kib(root: int) -> int:
    """Resident memory of ``root`` and every process below it, in KiB."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            stat = (proc / "stat").read_text()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(proc.name))
            for line in (proc / "status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    rss[int(proc.name)] = int(line.split()[1])
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        total += rss.get(pid, 0)
        todo += children.get(pid, [])
    return total


class _Memory:
    """The memory (MB) of a process tree when measuring began, and its peak since."""

    def __init__(self, root: int) -> None:
        self.root = root
        self.base = round(_tree_rss_kib(root) / 1024, 1)
        self.peak = self.base

    def sample(self) -> None:
        self.peak = max(self.peak, round(_tree_rss_kib(self.root) / 1024, 1))


@contextlib.contextmanager
def _measure(root: int) -> Iterator[_Memory]:
    """Sample the memory of ``root``'s process tree every SAMPLE seconds while the block runs."""
    memory = _Memory(root)
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(SAMPLE):
            memory.sample()

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield memory
    finally:
        stop.set()
        thread.join(5)
        memory.sample()


# -- attacks ---------------------------------------------------------------------------------


def _recv_all(sock: socket.socket, sink: bytearray) -> threading.Thread:
    def run() -> None:
        with contextlib.suppress(OSError):
            while chunk := sock.recv(65536):
                sink.extend(chunk)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def _imap_login_ok(port: int) -> bool:
    """A legitimate IMAP client: LOGIN, SELECT, LOGOUT, all answered OK."""
    try:
        with imaplib.IMAP4("127.0.0.1", port, timeout=20) as client:
            client.login("alice", PASSWORD)
            return client.select("INBOX")[0] == "OK"
    except (OSError, imaplib.IMAP4.error, EOFError):
        return False


def chained_literals(port: int, pid: int, target: str) -> Row:
    """``c NOSUCHCMD {1000000}`` and 300 chained 1 MB literals, sent without waiting."""
    replies = bytearray()
    note = ""
    legit: list[bool] = []
    with _measure(pid) as memory:
        sock = socket.create_connection(("127.0.0.1", port), 20)
        with sock:
            reader = _recv_all(sock, replies)
            deadline = time.monotonic() + DEADLINE
            payload = b"x" * LITERAL + b" {%d}\r\n" % LITERAL
            try:
                sock.sendall(b"c NOSUCHCMD {%d}\r\n" % LITERAL)
                for n in range(CHAINED):
                    if time.monotonic() > deadline:
                        note = f"deadline after {n} literals; "
                        break
                    sock.sendall(payload)
                    if n % 60 == 30:  # legitimate clients during the attack
                        legit.append(_imap_login_ok(port))
                sock.sendall(b"x" * LITERAL + b"\r\nd NOOP\r\n")
            except OSError as exc:
                note = f"server closed after {len(replies)} reply octets ({exc.strerror}); "
            legit += [_imap_login_ok(port) for _ in range(LEGIT - len(legit))]
            with contextlib.suppress(OSError):  # the peer may have closed already
                sock.shutdown(socket.SHUT_WR)
            reader.join(10)
    first = bytes(replies).split(b"\r\n")[1:2]
    note += "first reply: " + (first[0][:80].decode("ascii", "replace") if first else "none")
    return _row("chained-literals", target, memory, legit, note)


def _nested(depth: int) -> bytes:
    body = b"Content-Type: text/plain\r\n\r\ninnermost\r\n"
    for level in range(depth, 0, -1):
        body = (
            b'Content-Type: multipart/mixed; boundary="b%d"\r\n\r\n--b%d\r\n' % (level, level)
            + body
            + b"--b%d--\r\n" % level
        )
    return (
        b"From: mallory@elsewhere.test\r\nTo: alice@example.test\r\nSubject: deep %d\r\n"
        b"MIME-Version: 1.0\r\n" % depth + body
    )


def _sync_fetch_ok(port: int) -> bool:
    """What a mail client does when it syncs: FLAGS and BODYSTRUCTURE, then ENVELOPE."""
    try:
        with imaplib.IMAP4("127.0.0.1", port, timeout=30) as client:
            client.login("alice", PASSWORD)
            client.select("INBOX")
            ok = client.fetch("1:*", "(FLAGS BODYSTRUCTURE)")[0] == "OK"
            return ok and client.fetch("1:*", "(ENVELOPE)")[0] == "OK"
    except (OSError, imaplib.IMAP4.error, EOFError):
        return False


def nesting(port: int, pid: int, target: str, maildir: Path, depth: int) -> Row:
    for old in (maildir / "new").iterdir():
        old.unlink()
    for old in (maildir / "cur").iterdir():
        old.unlink()
    path = maildir / "new" / f"{int(time.time())}.M{depth}P1.attack"
    path.write_bytes(_nested(depth))
    shutil.chown(path, NOBODY, NOBODY)
    with _measure(pid) as memory:
        legit = [_sync_fetch_ok(port) for _ in range(LEGIT)]
    return _row(f"nesting-{depth}", target, memory, legit, f"{len(_nested(depth))} octets")


def parallel_guesses(port: int, pid: int, target: str) -> Row:
    """39 wrong AUTH PLAIN at once from one address, then the right password."""

    def connect() -> socket.socket:
        # Failures from one address are answered one after another, each after its delay
        # (0.5 s doubling to 8 s): the last of them comes about half a minute later.
        sock = socket.create_connection(("127.0.0.1", port), DEADLINE)
        sock.recv(4096)
        sock.sendall(b"EHLO attacker.test\r\n")
        data = b""
        while b"250 " not in data:
            data += sock.recv(4096)
        return sock

    def auth(password: str) -> bytes:
        return b"AUTH PLAIN " + base64.b64encode(f"\0alice\0{password}".encode()) + b"\r\n"

    with _measure(pid) as memory, ThreadPoolExecutor(GUESSES + 1) as pool:
        socks = list(pool.map(lambda _: connect(), range(GUESSES + 1)))
        try:
            for n, sock in enumerate(socks):
                sock.sendall(auth(PASSWORD if n == GUESSES else f"wrong{n}"))
            answers = list(pool.map(lambda s: s.recv(4096)[:3], socks))
        finally:
            for sock in socks:
                sock.close()
    accepted = answers.count(b"235")
    note = f"right password after {GUESSES} parallel guesses: " + (
        "accepted" if answers[-1] == b"235" else "refused"
    )
    # Legitimate: alice from another address is not locked out by the attacker's guesses.
    legit = []
    for _ in range(LEGIT):
        with socket.create_connection(
            ("127.0.0.1", port), 20, source_address=("127.0.0.2", 0)
        ) as sock:
            sock.recv(4096)
            sock.sendall(b"EHLO client.test\r\n")
            data = b""
            while b"250 " not in data:
                data += sock.recv(4096)
            sock.sendall(auth(PASSWORD))
            legit.append(sock.recv(4096)[:3] == b"235")
    return _row("parallel-guesses", target, memory, legit, note + f"; {accepted} accepted")


def ehlo_cr(port: int, pid: int, target: str, maildir: Path) -> Row:
    """A bare CR in EHLO, then a message: does the stored copy have the forged header?"""
    new = maildir / "new"  # postfix creates it with the first delivery
    for old in new.iterdir() if new.exists() else ():
        old.unlink()
    replies = []
    with _measure(pid) as memory, socket.create_connection(("127.0.0.1", port), 20) as sock:
        sock.recv(4096)
        for line in (
            b"EHLO x\rX-Injected: yes",
            b"EHLO client.test",
            b"MAIL FROM:<mallory@elsewhere.test>",
            b"RCPT TO:<alice@example.test>",
            b"DATA",
            b"Subject: hello\r\n\r\nhi\r\n.",
            b"QUIT",
        ):
            sock.sendall(line + b"\r\n")
            data = b""
            while not data.endswith(b"\r\n") or data.split(b"\r\n")[-2][3:4] == b"-":
                chunk = sock.recv(4096)
                if not chunk:
                    break
                data += chunk
            replies.append(data[:3].decode("ascii", "replace"))
    deadline = time.monotonic() + 30  # postfix delivers after its 250
    while not (new.exists() and any(new.iterdir())) and time.monotonic() < deadline:
        time.sleep(0.05)
    stored = [email.message_from_bytes(p.read_bytes()) for p in new.iterdir()]
    injected = any("X-Injected" in m for m in stored)
    note = (
        f"EHLO with CR answered {replies[0]}; forged header stored: {'yes' if injected else 'no'}"
    )
    return _row("ehlo-cr", target, memory, [len(stored) == 1 and not injected], note)


def _row(attack: str, target: str, memory: _Memory, legit: list[bool], note: str) -> Row:
    return {
        "attack": attack,
        "target": target,
        "peak_rss_mb": memory.peak,
        "legit_ok": sum(legit),
        "legit_total": len(legit),
        "note": f"{note} (memory before: {memory.base} MB)",
    }


# -- running ---------------------------------------------------------------------------------


def _attack_inside(rounds: int) -> list[Row]:
    """Run every attack; called inside the namespace (everything is on its loopback)."""
    rows: list[Row] = []
    work = Path(tempfile.mkdtemp(prefix="pk-mail-attack-"))
    work.chmod(0o755)  # the daemons' unprivileged users must reach their directories
    try:
        with (
            portkit_serve(work) as pk,
            postfix(work) as (pf_port, pf_maildir),
            dovecot(work) as (dv, dv_maildir),
        ):
            pk_pid = _listener_pid(pk["imap"])
            dv_pid = _listener_pid(dv["imap"])
            pf_pid = _listener_pid(pf_port)
            pk_maildir = work / "portkit-mail" / "alice"
            for box in (pk_maildir, dv_maildir):
                for sub in ("cur", "new", "tmp"):
                    (box / sub).mkdir(parents=True, exist_ok=True)
            for path in [dv_maildir, *dv_maildir.rglob("*")]:
                shutil.chown(path, NOBODY, NOBODY)
            for _ in range(rounds):
                rows.append(chained_literals(pk["imap"], pk_pid, "portkit"))
                rows.append(chained_literals(dv["imap"], dv_pid, "dovecot"))
                for depth in DEPTHS:
                    rows.append(nesting(pk["imap"], pk_pid, "portkit", pk_maildir, depth))
                    rows.append(nesting(dv["imap"], dv_pid, "dovecot", dv_maildir, depth))
                rows.append(ehlo_cr(pk["smtp"], pk_pid, "portkit", pk_maildir))
                rows.append(ehlo_cr(pf_port, pf_pid, "postfix", pf_maildir))
                # Last: it locks alice out from 127.0.0.1 for the lockout period.
                rows.append(parallel_guesses(pk["smtp"], pk_pid, "portkit"))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return rows


def run_mail_attacks(rounds: int = 1) -> list[Row]:
    """Run the mail attacks in a fresh namespace; one row per (attack, target, round)."""
    if not 1 <= rounds <= 5:
        raise ValueError(f"rounds must be 1-5, not {rounds}")
    with namespace("pk-mailatk-") as ns:
        result = subprocess.run(
            ["ip", "netns", "exec", ns, sys.executable, __file__, "--inside", str(rounds)],
            capture_output=True,
            text=True,
            timeout=DEADLINE * 20 * rounds,
            check=False,
        )
    if result.returncode != 0:
        raise RuntimeError(f"mail attacks failed: {result.stderr[-2000:]}")
    rows: list[Row] = json.loads(result.stdout)
    return rows


def _table(rows: list[Row]) -> str:
    lines = [
        "| attack | target | peak RSS MB | legitimate served | note |",
        "|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['attack']} | {r['target']} | {r['peak_rss_mb']} | "
        f"{r['legit_ok']}/{r['legit_total']} | {r['note']} |"
        for r in rows
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=1, help="times each attack runs (1-5)")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON")
    parser.add_argument("--inside", type=int, metavar="ROUNDS", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.inside is not None:
        print(json.dumps(_attack_inside(args.inside)))
        return 0
    if os.geteuid() != 0:
        print("bench/_attack_mail.py: needs root (namespaces, postfix, dovecot)", file=sys.stderr)
        return 5
    if not 1 <= args.rounds <= 5:
        parser.error(f"--rounds must be 1-5, not {args.rounds}")
    rows = run_mail_attacks(args.rounds)
    print(json.dumps(rows, indent=2) if args.json else _table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
