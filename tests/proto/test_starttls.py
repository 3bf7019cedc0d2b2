"""The upgrade dialogues into TLS: each judge, on real servers' replies, whole and in pieces."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from portkit.proto.starttls import MAX_REPLY_BYTES, UPGRADES

# What the lab's Postfix, Dovecot and vsftpd said (and what they say when they refuse).
REPLIES = {
    ("smtp", 0): b"220 mail.lab.portkit.test ESMTP Postfix (Debian/GNU)\r\n",
    ("smtp", 1): b"250-mail.lab.portkit.test\r\n250-PIPELINING\r\n250-STARTTLS\r\n250 CHUNKING\r\n",
    ("smtp", 2): b"220 2.0.0 Ready to start TLS\r\n",
    ("imap", 0): b"* OK [CAPABILITY IMAP4rev1 SASL-IR STARTTLS] Dovecot (Debian) ready.\r\n",
    ("imap", 1): b"* CAPABILITY IMAP4rev1\r\npk1 OK Begin TLS negotiation now.\r\n",
    ("pop3", 0): b"+OK Dovecot (Debian) ready.\r\n",
    ("pop3", 1): b"+OK Begin TLS negotiation now.\r\n",
    ("ftp", 0): b"220 (vsFTPd 3.0.3)\r\n",
    ("ftp", 1): b"234 Proceed with negotiation.\r\n",
}
REFUSALS = {
    ("smtp", 1): b"250-mail.lab.portkit.test\r\n250-PIPELINING\r\n250 CHUNKING\r\n",  # not offered
    ("smtp", 2): b"454 4.7.0 TLS not available due to local problem\r\n",
    ("imap", 1): b"pk1 BAD Unknown command.\r\n",
    ("pop3", 1): b"-ERR Unknown command: STLS\r\n",
    ("ftp", 1): b"530 Please login with USER and PASS.\r\n",
    ("imap", 0): b"* BYE Too many connections\r\n",
}


@pytest.mark.parametrize(("key", "reply"), sorted(REPLIES.items()))
def test_a_real_reply_goes_on_and_not_before_it_is_complete(
    key: tuple[str, int], reply: bytes
) -> None:
    service, index = key
    judge = UPGRADES[service].steps[index].judge
    assert judge(reply) is True
    for cut in range(len(reply)):  # a byte at a time: undecided until the reply is whole
        assert judge(reply[:cut]) is None, reply[:cut]


@pytest.mark.parametrize(("key", "reply"), sorted(REFUSALS.items()))
def test_a_refusal_stops(key: tuple[str, int], reply: bytes) -> None:
    service, index = key
    assert UPGRADES[service].steps[index].judge(reply) is False


def test_every_dialogue_starts_with_the_greeting_and_asks_in_the_end() -> None:
    for upgrade in UPGRADES.values():
        assert upgrade.steps[0].send == b""
        assert all(step.send.endswith(b"\r\n") for step in upgrade.steps[1:])
    assert UPGRADES["smtp"].steps[1].send.startswith(b"EHLO ")  # RFC 3207: EHLO first


@given(st.binary(max_size=MAX_REPLY_BYTES + 64))
def test_any_bytes_give_a_verdict_or_need_more(data: bytes) -> None:
    for upgrade in UPGRADES.values():
        for step in upgrade.steps:
            assert step.judge(data) in (True, False, None)
    flood = b"250-" + b"x" * MAX_REPLY_BYTES
    assert UPGRADES["smtp"].steps[1].judge(flood) is False  # bounded: a flood is refused
