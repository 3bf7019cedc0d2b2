"""kill -9 during a burst of deliveries: every 250-acknowledged message survives, complete.

The server is a real ``portkit serve`` subprocess; four clients deliver as fast as they can
until SIGKILL hits it in the middle. Afterwards every message acknowledged with 250 is in
``new/`` byte for byte, and no visible file is partial (``tmp/`` may hold the interrupted
ones: that is what it is for).
"""

from __future__ import annotations

import re
import signal
import smtplib
import threading
from pathlib import Path

from portkit.host.apps.mail import MaildirStore, hash_password
from tests.host._helpers import ServeProcess, addresses

SENDERS = 4
KILL_AFTER = 60  # acknowledged messages before the kill
MAX_PER_SENDER = 2000  # bound on the burst, whatever happens


def message(sender: int, n: int) -> bytes:
    body = b"".join(
        b"line %d of message %d from sender %d\r\n" % (i, n, sender) for i in range(200)
    )
    return (
        b"From: burst@elsewhere.test\r\nTo: alice@example.test\r\n"
        b"Message-ID: <%d.%d@burst.test>\r\nSubject: burst\r\n\r\n" % (sender, n) + body
    )


def test_kill_9_during_burst_loses_no_acknowledged_message(tmp_path: Path) -> None:
    config = tmp_path / "serve.toml"
    config.write_text(
        "[apps.mail-in]\n"
        'kind = "smtp"\n'
        'listen = ["127.0.0.1:0"]\n'
        'maildir = "mail"\n'
        'domains = ["example.test"]\n'
        f'users = ["alice:{hash_password("x", n=16, r=1, p=1)}"]\n'
    )
    with ServeProcess(config, tmp_path) as serve:
        [(_, port)] = addresses(serve.start(), "mail-in")

        acked: dict[bytes, bytes] = {}
        lock = threading.Condition()

        def sender(index: int) -> None:
            try:
                with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
                    for n in range(MAX_PER_SENDER):
                        data = message(index, n)
                        client.sendmail("burst@elsewhere.test", ["alice@example.test"], data)
                        with lock:
                            acked[b"<%d.%d@burst.test>" % (index, n)] = data
                            lock.notify_all()
            except (OSError, smtplib.SMTPException):
                return  # the server died under us: expected

        threads = [threading.Thread(target=sender, args=(i,)) for i in range(SENDERS)]
        for thread in threads:
            thread.start()
        with lock:
            assert lock.wait_for(lambda: len(acked) >= KILL_AFTER, timeout=90)
        serve.signal(signal.SIGKILL)
        for thread in threads:
            thread.join(60)
        with lock:
            survivors = dict(acked)

    box = MaildirStore(tmp_path / "mail").maildir("alice")
    stored: dict[bytes, bytes] = {}
    for entry in box.scan():
        data = entry.path.read_bytes()
        found = re.search(rb"Message-ID: (<[^>]+>)", data)
        assert found, f"visible message without its header: {entry.path.name}"
        stored[found.group(1)] = data
    assert len(survivors) >= KILL_AFTER
    print(f"acked {len(survivors)}, visible {len(stored)}, in tmp {len(list(box.tmp.iterdir()))}")
    missing = [mid for mid in survivors if mid not in stored]
    assert not missing, f"acknowledged but lost: {missing[:5]}"
    for mid, data in stored.items():
        sender_index, n = (int(x) for x in mid[1:].split(b"@")[0].split(b"."))
        assert data.endswith(message(sender_index, n)), f"partial or altered message {mid!r}"
