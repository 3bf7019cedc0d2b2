"""Any bytes as a stored message: the index and the message view never raise."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import example, given, settings
from hypothesis import strategies as st

from portkit.host.apps.console._mailindex import MailIndex
from portkit.host.apps.console._message import parse_message
from portkit.host.apps.mail import Maildir

_HEADERS = st.sampled_from(
    [
        b"Subject: =?utf-8?q?=FF=FE?=\r\n",
        b'From: "unclosed <a@\r\n',
        b'Content-Type: multipart/mixed; boundary="b"\r\n',
        b"Content-Type: text/html; charset=no-such\r\n",
        b"Content-Transfer-Encoding: base64\r\n",
        b"Date: not a date\r\n",
        b"To: , ,,, <>\r\n",
        b"\r\n--b\r\nContent-Type: message/rfc822\r\n\r\n",
    ]
)
_MESSAGES = st.lists(_HEADERS | st.binary(max_size=200), max_size=12).map(b"".join)


@settings(max_examples=150, deadline=None)
@given(raw=_MESSAGES)
@example(raw=b"Date: not a date\r\n \x80")  # a header value with non-ASCII bytes
def test_any_message_is_listed_and_shown(raw: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        Maildir(root / "demo").deliver(raw)
        index = MailIndex(root)
        index.refresh()
        [meta] = index.page(0, 10)[1]
        assert meta.as_json()["Size"] == len(raw)
        parsed = parse_message(meta.path)
        assert parsed.raw_preview == raw.decode("utf-8", "replace")
        index.search("from:x anything", 0, 10)
