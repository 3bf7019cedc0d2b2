"""Real clients the lab tests run inside the namespace: `python _inside.py CLIENT ARGS...`.

Each client talks to one lab port on 127.0.0.1 with a well-kept client (smtplib, dnspython)
or, for telnet and the line protocols of redis and memcached, a plain socket with bounded
reads, then prints one JSON object on stdout for the test to check.
"""

from __future__ import annotations

import json
import os
import smtplib
import socket
import ssl
import sys
import time
from typing import Any

HOST = os.environ.get("PORTKIT_LAB_HOST", "127.0.0.1")
TIMEOUT = 10.0
MAX_READ = 64 * 1024

# Telnet commands and the option-negotiation replies that refuse everything (RFC 854, RFC 855).
IAC, DONT, DO, WONT, WILL, SB, SE = 255, 254, 253, 252, 251, 250, 240


def smtp(port: int, mode: str) -> dict[str, Any]:
    """Greeting, EHLO and NOOP through smtplib; MODE is plain, starttls or tls (implicit TLS).

    With starttls, the EHLO before STARTTLS and the reply to a MAIL sent before it are
    reported too (RFC 3207 section 4: a server may require TLS first).
    """
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # the lab's certificate is self-signed
    client: smtplib.SMTP
    if mode == "tls":
        client = smtplib.SMTP_SSL(timeout=TIMEOUT, context=context)
    else:
        client = smtplib.SMTP(timeout=TIMEOUT)
    # smtplib takes the TLS server name from the constructor's host only; connect() is called
    # separately here to keep the greeting, so set it the way the constructor would.
    client._host = HOST  # type: ignore[attr-defined]  # not in the typeshed stub
    result: dict[str, Any] = {}
    try:
        code, greeting = client.connect(HOST, port)
        result["greeting"] = [code, greeting.decode()]
        if mode == "starttls":
            before_code, before = client.ehlo("client.lab.portkit.test")
            result["ehlo_before_tls"] = [before_code, before.decode()]
            mail_code, mail = client.docmd("MAIL", "FROM:<labuser@lab.portkit.test>")
            result["mail_before_tls"] = [mail_code, mail.decode()]
            tls_code, _ = client.starttls(context=context)
            result["starttls"] = tls_code
        ehlo_code, ehlo = client.ehlo("client.lab.portkit.test")
        result["ehlo"] = [ehlo_code, ehlo.decode()]
        result["noop"] = client.noop()[0]
        result["tls_version"] = (
            client.sock.version() if isinstance(client.sock, ssl.SSLSocket) else None
        )
        client.quit()
    finally:
        client.close()
    return result


def dns(port: int, transport: str, qname: str, rdtype: str, rdclass: str) -> dict[str, Any]:
    """One DNS query over udp or tcp, through dnspython."""
    import dns.flags
    import dns.message
    import dns.query
    import dns.rcode

    query = dns.message.make_query(qname, rdtype, rdclass=rdclass)
    if transport == "udp":
        reply = dns.query.udp(query, HOST, port=port, timeout=TIMEOUT)
    else:
        reply = dns.query.tcp(query, HOST, port=port, timeout=TIMEOUT)
    return {
        "rcode": dns.rcode.to_text(reply.rcode()),
        "aa": bool(reply.flags & dns.flags.AA),
        "answers": [rd.to_text() for rrset in reply.answer for rd in rrset],
    }


def telnet(port: int) -> dict[str, Any]:
    """Refuse every option the server proposes until it prints text ending in a login prompt."""
    first = b""
    text = bytearray()
    deadline = time.monotonic() + TIMEOUT
    with socket.create_connection((HOST, port), timeout=TIMEOUT) as sock:
        buf = b""
        total = 0
        while b"login:" not in text and time.monotonic() < deadline and total < MAX_READ:
            chunk = sock.recv(4096)
            if not chunk:
                break
            total += len(chunk)
            if not first:
                first = chunk[:16]
            buf += chunk
            replies = bytearray()
            i = 0
            while i < len(buf):
                b = buf[i]
                if b != IAC:
                    text.append(b)
                    i += 1
                    continue
                if i + 1 >= len(buf):
                    break
                cmd = buf[i + 1]
                if cmd in (DO, DONT, WILL, WONT):
                    if i + 2 >= len(buf):
                        break
                    opt = buf[i + 2]
                    if cmd == DO:
                        replies += bytes([IAC, WONT, opt])
                    elif cmd == WILL:
                        replies += bytes([IAC, DONT, opt])
                    i += 3
                elif cmd == SB:
                    end = buf.find(bytes([IAC, SE]), i + 2)
                    if end < 0:
                        break
                    i = end + 2
                else:
                    if cmd == IAC:
                        text.append(IAC)
                    i += 2
            buf = buf[i:]
            if replies:
                sock.sendall(bytes(replies))
    return {"first": first.hex(), "text": text.decode("utf-8", "replace")}


def command(port: int, payload: str, until: str) -> dict[str, Any]:
    """Send PAYLOAD (with \\r\\n escapes) and read until UNTIL appears (bounded)."""
    data = payload.encode().decode("unicode_escape").encode("latin-1")
    got = bytearray()
    deadline = time.monotonic() + TIMEOUT
    with socket.create_connection((HOST, port), timeout=TIMEOUT) as sock:
        sock.sendall(data)
        while until.encode() not in got and time.monotonic() < deadline and len(got) < MAX_READ:
            chunk = sock.recv(4096)
            if not chunk:
                break
            got += chunk
    return {"reply": got.decode("utf-8", "replace")}


def main(argv: list[str]) -> int:
    """Run the client named by argv[0] and print its JSON result."""
    client, *args = argv
    if client == "smtp":
        result = smtp(int(args[0]), args[1])
    elif client == "dns":
        result = dns(int(args[0]), args[1], args[2], args[3], args[4])
    elif client == "telnet":
        result = telnet(int(args[0]))
    elif client == "command":
        result = command(int(args[0]), args[1], args[2])
    else:
        print(f"unknown client {client!r}", file=sys.stderr)
        return 2
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
