"""The console over real HTTP (curl): the Mailpit-shaped API, the pages, the guards."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from portkit._errors import ConfigError
from portkit.host._host import Host
from tests.host._helpers import curl, parse_head, running_host, url
from tests.host.console.conftest import api, config_text, message, send


async def http(*args: str) -> bytes:
    """curl ``args``; the response (with ``-i``, head and body)."""
    rc, out, err = await curl(*args)
    assert rc == 0, err
    return out


def _messages(doc: object) -> list[dict[str, Any]]:
    assert isinstance(doc, dict)
    messages = doc["messages"]
    assert isinstance(messages, list)
    return messages


async def test_a_message_sent_with_smtplib_is_listed_shaped_like_mailpit(host: Host) -> None:
    await send(host, message("First", text="the first body\n"))
    await send(host, message("Second", sender="Carol <carol@example.test>"))
    doc = await api(host, "/api/v1/messages")
    assert isinstance(doc, dict)
    assert doc["total"] == 2
    assert doc["unread"] == 2
    listed = _messages(doc)
    assert [m["Subject"] for m in listed] == ["Second", "First"]  # newest first
    first = listed[1]
    assert first["From"] == {"Name": "Alice", "Address": "alice@example.test"}
    assert first["To"] == [{"Name": "", "Address": "bob@example.test"}]
    assert first["Read"] is False
    assert first["Size"] > 0
    assert first["Created"].endswith("Z")
    page = await api(host, "/api/v1/messages?start=1&limit=1")
    assert [m["Subject"] for m in _messages(page)] == ["First"]

    detail = await api(host, f"/api/v1/message/{first['ID']}")
    assert isinstance(detail, dict)
    assert detail["Text"] == "the first body\n"
    assert detail["Read"] is True  # reading a message marks it read, as Mailpit does
    rc, raw, _ = await curl(url(host, "console", f"/api/v1/message/{first['ID']}/raw"))
    assert rc == 0
    assert b"Subject: First" in raw
    assert b"the first body" in raw
    after = await api(host, "/api/v1/messages")
    assert isinstance(after, dict)
    assert after["unread"] == 1


async def test_search_by_field_and_by_body(host: Host) -> None:
    await send(host, message("Invoice 7", text="please pay the zebra fee\n"))
    await send(host, message("Lunch", sender="Carol <carol@example.test>", to="dan@example.test"))
    for query, expected in [
        ("from:carol", ["Lunch"]),
        ("to:dan", ["Lunch"]),
        ("subject:invoice", ["Invoice 7"]),
        ("zebra", ["Invoice 7"]),  # in the body only
        ("zebra from:carol", []),
        ('"invoice 7"', ["Invoice 7"]),
    ]:
        doc = await api(host, "/api/v1/search?query=" + query.replace(" ", "%20"))
        assert [m["Subject"] for m in _messages(doc)] == expected, query


async def test_delete_one_by_id_then_all(host: Host) -> None:
    for n in range(3):
        await send(host, message(f"m{n}"))
    listed = _messages(await api(host, "/api/v1/messages"))
    victim = listed[0]["ID"]
    body = json.dumps({"IDs": [victim]})
    doc = await api(
        host,
        "/api/v1/messages",
        "-X",
        "DELETE",
        "-H",
        "Content-Type: application/json",
        "--data",
        body,
    )
    assert doc == {"deleted": 1}
    remaining = _messages(await api(host, "/api/v1/messages"))
    assert victim not in [m["ID"] for m in remaining]
    assert len(remaining) == 2
    assert await api(host, "/api/v1/messages", "-X", "DELETE") == {"deleted": 2}
    assert _messages(await api(host, "/api/v1/messages")) == []
    assert list((host.config.app("mail").options.maildir / "demo" / "new").iterdir()) == []


async def test_read_and_unread_change_the_maildir_flag(host: Host) -> None:
    await send(host, message("flag me"))
    ident = _messages(await api(host, "/api/v1/messages"))[0]["ID"]
    args = ("-X", "PUT", "-H", "Content-Type: application/json", "--data")
    await api(host, "/api/v1/messages", *args, json.dumps({"IDs": [ident], "Read": True}))
    box = host.config.app("mail").options.maildir / "demo"
    assert [p.name.endswith(":2,S") for p in (box / "cur").iterdir()] == [True]
    assert _messages(await api(host, "/api/v1/messages"))[0]["Read"] is True
    await api(host, "/api/v1/messages", *args, json.dumps({"IDs": [ident], "Read": False}))
    assert _messages(await api(host, "/api/v1/messages"))[0]["Read"] is False
    assert [p.name.endswith(":2,") for p in (box / "cur").iterdir()] == [True]


@pytest.mark.parametrize(
    "header",
    ["Origin: http://evil.example", "Sec-Fetch-Site: cross-site", "Sec-Fetch-Site: same-site"],
)
async def test_changes_from_another_site_are_refused(host: Host, header: str) -> None:
    await send(host, message("keep me"))
    out = await http("-i", "-X", "DELETE", "-H", header, url(host, "console", "/api/v1/messages"))
    status, _, _ = parse_head(out)
    assert status == 403
    assert len(_messages(await api(host, "/api/v1/messages"))) == 1


async def test_a_foreign_host_name_is_refused_against_dns_rebinding(host: Host) -> None:
    target = url(host, "console", "/api/v1/messages")
    out = await http("-i", "-H", "Host: attacker.example", target)
    assert parse_head(out)[0] == 421
    out = await http("-i", "-H", "Host: localhost", target)
    assert parse_head(out)[0] == 200


async def test_pages_escape_hostile_strings_and_carry_a_strict_policy(host: Host) -> None:
    hostile = '<img src=x onerror="alert(1)">'
    await send(host, message(hostile, sender=f'"{hostile}" <x@example.test>', html="<p>hi</p>"))
    out = await http("-i", url(host, "console", "/mail"))
    status, headers, body = parse_head(out)
    assert status == 200
    assert b"<img src=x" not in body
    assert b"&lt;img src=x onerror=" in body
    assert "script-src 'self'" in headers["content-security-policy"]
    assert "'unsafe-inline'" not in headers["content-security-policy"]
    ident = _messages(await api(host, "/api/v1/messages"))[0]["ID"]
    out = await http("-i", url(host, "console", f"/mail/view/{ident}"))
    assert b"<img src=x" not in parse_head(out)[2]
    out = await http("-i", url(host, "console", f"/mail/view/{ident}/html"))
    status, headers, body = parse_head(out)
    assert body == b"<p>hi</p>\n"
    policy = headers["content-security-policy"]
    assert policy.startswith("sandbox;")
    assert "script-src" not in policy  # default-src 'none' then forbids every script
    assert "default-src 'none'" in policy
    assert "http:" not in policy  # no remote loads until asked
    out = await http("-i", url(host, "console", f"/mail/view/{ident}/html?remote=1"))
    assert "img-src data: http: https:" in parse_head(out)[1]["content-security-policy"]


async def test_attachments_download_and_never_render(host: Host) -> None:
    msg = message("with a file")
    msg.add_attachment(
        b"<script>alert(1)</script>", maintype="text", subtype="html", filename="../../x.html"
    )
    await send(host, msg)
    ident = _messages(await api(host, "/api/v1/messages"))[0]["ID"]
    detail = await api(host, f"/api/v1/message/{ident}")
    assert isinstance(detail, dict)
    [attachment] = detail["Attachments"]
    assert attachment["FileName"] == "x.html"
    out = await http("-i", url(host, "console", f"/mail/view/{ident}/part/{attachment['PartID']}"))
    status, headers, body = parse_head(out)
    assert status == 200
    assert body == b"<script>alert(1)</script>"
    assert headers["content-type"] == "application/octet-stream"
    assert headers["content-disposition"] == "attachment; filename*=UTF-8''x.html"


async def test_malformed_mime_is_shown_not_a_server_error(host: Host) -> None:
    raw = (
        b"From: a@example.test\r\nTo: b@example.test\r\nSubject: broken\r\n"
        b'Content-Type: multipart/mixed; boundary="never"\r\n\r\n'
        b"--never\r\nContent-Type: text/plain; charset=no-such-charset\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\n!!!not base64!!!\r\n"
    )
    maildir = host.config.app("mail").options.maildir / "demo"
    from portkit.host.apps.mail import Maildir

    Maildir(maildir).deliver(raw)
    ident = _messages(await api(host, "/api/v1/messages"))[0]["ID"]
    out = await http("-i", url(host, "console", f"/mail/view/{ident}"))
    status, _, body = parse_head(out)
    assert status == 200
    assert b"!!!not base64!!!" in body  # the raw source, at least
    detail = await api(host, f"/api/v1/message/{ident}")
    assert isinstance(detail, dict)
    assert detail["Subject"] == "broken"


async def test_api_host_names_the_apps_their_ports_and_counters(host: Host) -> None:
    rc, _, _ = await curl(url(host, "site", "/"))
    assert rc == 0
    doc = await api(host, "/api/host")
    assert isinstance(doc, dict)
    apps = {a["name"]: a for a in doc["apps"]}
    assert set(apps) == {"site", "mail", "console"}
    assert apps["site"]["kind"] == "web"
    assert apps["site"]["counters"]["connections_total"] >= 1
    [port] = apps["mail"]["ports"]
    assert port["service"] == "smtp"
    assert port["well_known"] == 25
    assert port["standard"] is False
    assert "smtp is registered on 25" in port["reason"]


async def test_beyond_loopback_needs_a_token(tmp_path: Path) -> None:
    (tmp_path / "site").mkdir()
    text = config_text().replace(
        'kind = "console"\nlisten = "127.0.0.1:0"', 'kind = "console"\nlisten = "0.0.0.0:0"'
    )
    with pytest.raises(ConfigError, match="beyond loopback: set token"):
        async with running_host(text, tmp_path):
            pass


async def test_a_token_is_required_when_set(tmp_path: Path) -> None:
    (tmp_path / "site").mkdir()
    token = "s3cret-token-0123456789"
    async with running_host(config_text(f'token = "{token}"\n'), tmp_path) as host:
        target = url(host, "console", "/api/v1/messages")
        out = await http("-i", target)
        assert parse_head(out)[0] == 401
        out = await http("-i", "-H", "Authorization: Bearer wrong-token-000000", target)
        assert parse_head(out)[0] == 401
        out = await http("-i", "-H", f"Authorization: Bearer {token}", target)
        assert parse_head(out)[0] == 200
        out = await http("-i", url(host, "console", f"/mail?token={token}"))
        status, headers, _ = parse_head(out)
        assert status == 303
        assert headers["location"] == "/mail"
        assert "HttpOnly" in headers["set-cookie"]
        assert "SameSite=Strict" in headers["set-cookie"]
        out = await http("-i", "--cookie", f"portkit_console={token}", target)
        assert parse_head(out)[0] == 200


async def test_a_huge_message_is_shown_in_part(host: Host) -> None:
    line = "x" * 70 + "\n"
    await send(host, message("huge", text=line * 60_000))  # about 4 MB
    ident = _messages(await api(host, "/api/v1/messages"))[0]["ID"]
    _, _, body = parse_head(await http("-i", url(host, "console", f"/mail/view/{ident}")))
    assert b"Only the start is shown" in body
    assert b"The text is longer than the page shows" in body
    assert len(body) < 1_500_000  # 1 MiB of the text part, 256 KiB of the raw source
    raw = await http(url(host, "console", f"/api/v1/message/{ident}/raw"))
    assert len(raw) > 4_000_000
