"""The STARTTLS client dialogue, fed whole and one byte at a time, and fuzzed."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from portkit import RemoteProtocolError, UsageError
from portkit.proto.starttls import STARTTLS_PROTOCOLS, StartTlsClient

# (protocol, [(server's bytes, what the client must send after them)])
DIALOGUES = {
    "smtp": [
        (b"220-mail.example ESMTP\r\n220 more greeting\r\n", b"EHLO localhost\r\n"),
        (b"250-mail.example\r\n250-SIZE 1000\r\n250-STARTTLS\r\n250 8BITMIME\r\n", b"STARTTLS\r\n"),
        (b"220 2.0.0 Ready to start TLS\r\n", b""),
    ],
    "imap": [
        (b"* OK [CAPABILITY IMAP4rev1 STARTTLS] ready\r\n", b"pk1 STARTTLS\r\n"),
        (b"* CAPABILITY IMAP4rev1\r\npk1 OK Begin TLS negotiation now.\r\n", b""),
    ],
    "pop3": [(b"+OK Dovecot ready.\r\n", b"STLS\r\n"), (b"+OK Begin TLS negotiation\r\n", b"")],
    "ftp": [
        (b"220-Welcome\r\n free text inside\r\n220 (vsFTPd 3.0.3)\r\n", b"AUTH TLS\r\n"),
        (b"234 Proceed with negotiation.\r\n", b""),
    ],
}


def _run(protocol: str, *, one_byte: bool) -> StartTlsClient:
    dialogue = StartTlsClient(protocol)
    assert dialogue.data_to_send() == b""  # every protocol here lets the server speak first
    for server_bytes, expected in DIALOGUES[protocol]:
        pieces = (
            [server_bytes[i : i + 1] for i in range(len(server_bytes))]
            if one_byte
            else [server_bytes]
        )
        results = [dialogue.receive(piece) for piece in pieces]
        assert results[:-1] == [False] * (len(results) - 1)  # nothing early
        assert dialogue.data_to_send() == expected
    assert dialogue.ready
    return dialogue


@pytest.mark.parametrize("protocol", STARTTLS_PROTOCOLS)
@pytest.mark.parametrize("one_byte", [False, True])
def test_dialogue_reaches_the_handshake(protocol: str, one_byte: bool) -> None:
    dialogue = _run(protocol, one_byte=one_byte)
    last = DIALOGUES[protocol][-1][0].decode().splitlines()[-1]
    assert dialogue.transcript[-1] == last


@pytest.mark.parametrize(
    ("protocol", "server_bytes", "message"),
    [
        ("smtp", b"554 no service\r\n", "answered the greeting with '554 no service', not 220"),
        ("smtp", b"SSH-2.0-x\r\n", "sent 'SSH-2.0-x', not a smtp reply"),
        ("pop3", b"-ERR go away\r\n", "answered the greeting with '-ERR go away'"),
        ("imap", b"* BYE busy\r\n", "greeted with '* BYE busy'"),
        ("ftp", b"421 too many\r\n", "answered the greeting with '421 too many', not 220"),
        ("smtp", b"x" * 9000, "longer than 8192 bytes"),
        ("pop3", b"", "closed the connection before its greeting"),
    ],
)
def test_refusals_name_the_reply(protocol: str, server_bytes: bytes, message: str) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        StartTlsClient(protocol).receive(server_bytes)
    assert message in str(info.value)
    assert str(info.value).startswith(f"{protocol} starttls: the server ")


def test_smtp_without_starttls_in_ehlo() -> None:
    dialogue = StartTlsClient("smtp")
    dialogue.receive(b"220 hi\r\n")
    with pytest.raises(RemoteProtocolError, match="does not offer STARTTLS"):
        dialogue.receive(b"250-mail.example\r\n250 SIZE 10\r\n")


def test_imap_tagged_no_is_a_refusal() -> None:
    dialogue = StartTlsClient("imap")
    dialogue.receive(b"* OK hi\r\n")
    with pytest.raises(RemoteProtocolError, match="refused STARTTLS: 'pk1 NO not now'"):
        dialogue.receive(b"pk1 NO not now\r\n")


@pytest.mark.parametrize("protocol", STARTTLS_PROTOCOLS)
def test_bytes_after_the_go_ahead_are_refused(protocol: str) -> None:
    # Plain text injected after "go ahead" would be read as if it came over TLS.
    dialogue = StartTlsClient(protocol)
    steps = DIALOGUES[protocol]
    for server_bytes, _ in steps[:-1]:
        dialogue.receive(server_bytes)
        dialogue.data_to_send()
    with pytest.raises(RemoteProtocolError, match="sent data after agreeing to start TLS"):
        dialogue.receive(steps[-1][0] + b"250 injected\r\n")


def test_unknown_protocol_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="'nntp'"):
        StartTlsClient("nntp")


@pytest.mark.parametrize("protocol", STARTTLS_PROTOCOLS)
@given(data=st.lists(st.binary(max_size=200), max_size=20))
def test_arbitrary_bytes_raise_only_our_error(protocol: str, data: list[bytes]) -> None:
    dialogue = StartTlsClient(protocol)
    try:
        for chunk in data:
            if dialogue.receive(chunk):
                break
            dialogue.data_to_send()
    except RemoteProtocolError:
        pass
