"""Matchers on answers no captured daemon gives: refusals, variants, other products,
and protocols without a Debian 12 server (MongoDB, RTSP, SIP).

The bytes below are built from the protocol specifications cited in each module (they are
what such a server sends by the spec); the real-server captures are in test_fixtures.py.
"""

from __future__ import annotations

import json
import struct

import dns.message
import dns.rcode
import dns.rrset
import pytest

from portkit.proto import (
    MATCHERS,
    Match,
    NeedMore,
    NoMatch,
    Reader,
    Verdict,
    amqp,
    ldap,
    mongodb,
    mqtt,
    ntp,
    postgresql,
    rdp,
    smb,
    snmp,
)
from portkit.proto._ber import children, decode_int, read_tlv


def judge(name: str, data: bytes) -> Verdict:
    """All at once and byte by byte must agree; return the verdict."""
    matcher = MATCHERS[name]
    whole = matcher(data, True)
    if name in ("dns-udp", "ntp", "snmp"):
        return whole  # a datagram arrives whole
    reader = Reader((matcher,))
    found = None
    for i in range(len(data)):
        found = reader.feed(data[i : i + 1])
        if found is not None:
            break
    found = found or reader.finish()
    assert found == (whole if isinstance(whole, Match) else None)
    return whole


def test_ssh_tolerates_text_before_the_identification_string() -> None:
    # RFC 4253 §4.2: other lines may come first.
    verdict = judge("ssh", b"Welcome\r\nSSH-2.0-dropbear_2022.83\r\n")
    assert verdict == Match(service="ssh", product="Dropbear sshd", version="2022.83",
                            extra="protocol 2.0")  # fmt: skip


@pytest.mark.parametrize(
    ("banner", "version", "extra"),
    [
        # nmap -sV's spelling: the distribution's package revision is part of the version.
        (
            b"SSH-2.0-OpenSSH_9.6p1 Ubuntu-3ubuntu13.5\r\n",
            "9.6p1 Ubuntu 3ubuntu13.5",
            "protocol 2.0",
        ),
        (
            b"SSH-2.0-OpenSSH_8.4p1 Raspbian-5+deb11u3\r\n",
            "8.4p1 Raspbian 5+deb11u3",
            "protocol 2.0",
        ),
        # Anything else in the comment stays a comment.
        (
            b"SSH-2.0-OpenSSH_9.8 FreeBSD-openssh-portable\r\n",
            "9.8 FreeBSD openssh-portable",
            "protocol 2.0",
        ),
        (b"SSH-2.0-OpenSSH_9.7 hello-world\r\n", "9.7", "protocol 2.0; hello-world"),
        (b"SSH-1.99-OpenSSH_3.9p1\r\n", "3.9p1", "protocol 1.99"),
    ],
)
def test_ssh_version_as_nmap_writes_it(banner: bytes, version: str, extra: str) -> None:
    verdict = judge("ssh", banner)
    assert verdict == Match(service="ssh", product="OpenSSH", version=version, extra=extra)


def test_ssh_rejects_an_http_answer() -> None:
    assert isinstance(judge("ssh", b"HTTP/1.1 400 Bad Request\r\n\r\n"), NoMatch)


def test_http_elasticsearch_json_banner() -> None:
    body = json.dumps({"name": "n1", "cluster_name": "c", "version": {"number": "8.11.1"},
                       "tagline": "You Know, for Search"}).encode()  # fmt: skip
    data = (b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: "
            + str(len(body)).encode() + b"\r\n\r\n" + body)  # fmt: skip
    verdict = judge("http", data)
    assert isinstance(verdict, Match)
    assert (verdict.service, verdict.product, verdict.version) == (
        "http",
        "Elasticsearch",
        "8.11.1",
    )


def test_http_opensearch_and_couchdb() -> None:
    os_body = b'{"cluster_name":"c","version":{"distribution":"opensearch","number":"2.11.0"}}'
    couch = b'{"couchdb":"Welcome","version":"3.3.2"}'
    for body, product, version in ((os_body, "OpenSearch", "2.11.0"), (couch, "CouchDB", "3.3.2")):
        data = b"HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n" + body
        verdict = judge("http", data)
        assert isinstance(verdict, Match)
        assert (verdict.product, verdict.version) == (product, version)


def test_http_plain_request_to_a_tls_port_names_https() -> None:
    data = (b"HTTP/1.1 400 Bad Request\r\nServer: nginx\r\nContent-Length: 60\r\n\r\n"
            b"<html>The plain HTTP request was sent to HTTPS port</html>\r\n")  # fmt: skip
    verdict = judge("http", data)
    assert isinstance(verdict, Match)
    assert verdict.service == "https"


def test_http_mongodb_answering_http() -> None:
    body = b"It looks like you are trying to access MongoDB over HTTP on the native driver port.\n"
    data = b"HTTP/1.0 200 OK\r\nContent-Length: %d\r\n\r\n%b" % (len(body), body)
    verdict = judge("http", data)
    assert isinstance(verdict, Match)
    assert verdict.service == "mongodb"


@pytest.mark.parametrize(
    ("server", "product", "version"),
    [
        ("Apache/2.4.57 (Debian)", "Apache httpd", "2.4.57"),
        ("Python/3.11 aiohttp/3.9.1", "aiohttp", "3.9.1"),
        ("Microsoft-IIS/10.0", "Microsoft IIS httpd", "10.0"),
    ],
)
def test_http_server_header_products(server: str, product: str, version: str) -> None:
    data = f"HTTP/1.1 404 Not Found\r\nServer: {server}\r\nContent-Length: 0\r\n\r\n".encode()
    verdict = judge("http", data)
    assert isinstance(verdict, Match)
    assert (verdict.product, verdict.version) == (product, version)


def test_smtp_and_ftp_tell_220_greetings_apart() -> None:
    exim = b"220 mx.example ESMTP Exim 4.96 Thu, 26 Nov 2026 04:00:00 +0000\r\n"
    pure = b"220---------- Welcome to Pure-FTPd [privsep] [TLS] ----------\r\n220 You are user number 1.\r\n"
    assert judge("smtp", exim) == Match(service="smtp", product="Exim smtpd", version="4.96")
    assert isinstance(judge("ftp", exim), NoMatch)
    assert isinstance(judge("smtp", pure), NoMatch)
    verdict = judge("ftp", pure)
    assert isinstance(verdict, Match)
    assert verdict.product == "Pure-FTPd"


def test_a_bare_220_is_settled_by_ehlo_or_syst() -> None:
    bare = b"220 ready\r\n"
    assert isinstance(MATCHERS["smtp"](bare, False), NeedMore)
    assert isinstance(MATCHERS["smtp"](bare, True), NoMatch)
    ehlo = bare + b"250-host\r\n250-PIPELINING\r\n250 8BITMIME\r\n"
    assert judge("smtp", ehlo) == Match(service="smtp")
    syst = bare + b"215 UNIX Type: L8\r\n"
    verdict = judge("ftp", syst)
    assert isinstance(verdict, Match)
    assert verdict.service == "ftp"
    assert isinstance(judge("smtp", syst), NoMatch)


def test_mail_refusals_are_still_identified() -> None:
    verdict = judge("smtp", b"554 5.7.1 mail.example ESMTP not accepting connections\r\n")
    assert isinstance(verdict, Match)
    assert verdict.extra == "refuses with 554"
    assert judge("imap", b"* BYE Too many connections\r\n") == Match(
        service="imap", extra="refuses"
    )


def test_telnet_needs_well_formed_negotiation() -> None:
    assert isinstance(judge("telnet", b"\xff\xfd\x18\xff\xfd \xff\xfd#\xff\xfd'"), Match)
    assert isinstance(judge("telnet", b"\xff\x00garbage"), NoMatch)
    assert isinstance(judge("telnet", b"login: "), NoMatch)


def test_mysql_error_packet_names_mariadb() -> None:
    message = b"Host '10.0.0.9' is not allowed to connect to this MariaDB server"
    payload = b"\xff" + struct.pack("<H", 1130) + message
    data = len(payload).to_bytes(3, "little") + b"\x00" + payload
    verdict = judge("mysql", data)
    assert isinstance(verdict, Match)
    assert (verdict.service, verdict.product) == ("mysql", "MariaDB")


def test_mysql_handshake_of_mysql8() -> None:
    payload = b"\x0a8.0.35\x00" + bytes(40)
    data = len(payload).to_bytes(3, "little") + b"\x00" + payload
    assert judge("mysql", data) == Match(service="mysql", product="MySQL", version="8.0.35",
                                         extra="8.0.35")  # fmt: skip


def test_vnc_protocol_version() -> None:
    assert judge("vnc", b"RFB 003.008\n") == Match(service="rfb", extra="protocol 3.8")
    assert isinstance(judge("vnc", b"RFB 3.8\n\x00\x00\x00\x00"), NoMatch)


def test_redis_requiring_a_password() -> None:
    verdict = judge(
        "redis", b"-NOAUTH Authentication required.\r\n-NOAUTH Authentication required.\r\n"
    )
    assert verdict == Match(service="redis", product="Redis", extra="authentication required")


def test_redis_error_without_info_is_not_redis() -> None:
    assert isinstance(judge("redis", b"-ERR unknown command\r\n"), NoMatch)


def test_tls_alert_and_server_hello() -> None:
    alert = bytes([21, 3, 3, 0, 2, 2, 70])
    assert judge("tls", alert) == Match(service="tls", extra="alert protocol_version",
                                        confidence=8)  # fmt: skip
    hello = bytes([22, 3, 3, 0, 0x40, 2]) + bytes(0x3F)
    verdict = judge("tls", hello)
    assert isinstance(verdict, Match)
    assert isinstance(judge("tls", b"HTTP/1.1 400 Bad Request\r\n"), NoMatch)


def test_postgresql_error_response() -> None:
    fields = b"SFATAL\x00VFATAL\x00C28000\x00Mno pg_hba.conf entry for host\x00\x00"
    data = b"E" + struct.pack("!I", len(fields) + 4) + fields
    verdict = judge("postgresql", data)
    assert isinstance(verdict, Match)
    assert verdict.extra == "no pg_hba.conf entry for host"


def test_postgresql_startup_message_layout() -> None:
    message = postgresql.startup_message()
    length, version = struct.unpack("!II", message[:8])
    assert length == len(message)
    assert version == postgresql.PROTOCOL_3_0
    assert message.endswith(b"\x00\x00")


def _op_msg(response_to: int, doc: bytes) -> bytes:
    body = struct.pack("<I", 0) + b"\x00" + doc
    return struct.pack("<iiii", 16 + len(body), 99, response_to, mongodb.OP_MSG) + body


def _bson_doc(items: list[tuple[int, bytes, bytes]]) -> bytes:
    body = b"".join(bytes([k]) + n + b"\x00" + v for k, n, v in items)
    return struct.pack("<i", len(body) + 5) + body + b"\x00"


def test_mongodb_hello_and_buildinfo() -> None:
    hello = _bson_doc(
        [(0x08, b"ismaster", b"\x01"), (0x10, b"maxWireVersion", struct.pack("<i", 21))]
    )
    version = b"7.0.4"
    info = _bson_doc([(0x02, b"version", struct.pack("<i", len(version) + 1) + version + b"\x00")])
    data = _op_msg(mongodb.ISMASTER_ID, hello) + _op_msg(mongodb.BUILDINFO_ID, info)
    assert judge("mongodb", data) == Match(service="mongodb", product="MongoDB", version="7.0.4",
                                           extra="wire version 21")  # fmt: skip


def test_mongodb_probe_is_two_well_formed_messages() -> None:
    wire = mongodb.hello_messages()
    first = struct.unpack_from("<iiii", wire, 0)
    second = struct.unpack_from("<iiii", wire, first[0])
    assert first[0] + second[0] == len(wire)
    assert (first[3], second[3]) == (mongodb.OP_QUERY, mongodb.OP_MSG)


def test_mqtt_connack_and_connect_layout() -> None:
    assert judge("mqtt", b"\x20\x02\x00\x05") == Match(
        service="mqtt", extra="connection not authorized"
    )
    assert isinstance(judge("mqtt", b"\x20\x03\x00\x00"), NoMatch)
    packet = mqtt.connect_packet()
    assert packet[1] == len(packet) - 2


def test_amqp_connection_start_names_rabbitmq() -> None:
    def longstr(name: bytes, value: bytes) -> bytes:
        return bytes([len(name)]) + name + b"S" + struct.pack(">I", len(value)) + value

    table = longstr(b"product", b"RabbitMQ") + longstr(b"version", b"3.12.10")
    table += bytes([4]) + b"caps" + b"t" + b"\x01"
    payload = b"\x00\x0a\x00\x0a\x00\x09" + struct.pack(">I", len(table)) + table
    payload += struct.pack(">I", 5) + b"PLAIN" + struct.pack(">I", 5) + b"en_US"
    frame = b"\x01\x00\x00" + struct.pack(">I", len(payload)) + payload + b"\xce"
    verdict = judge("amqp", frame)
    assert verdict == Match(
        service="amqp", product="RabbitMQ", version="3.12.10", extra="AMQP 0-9-1"
    )
    assert amqp.field_table(table) == {"product": "RabbitMQ", "version": "3.12.10"}


def test_amqp_version_mismatch_header() -> None:
    verdict = judge("amqp", b"AMQP\x00\x01\x00\x00")
    assert isinstance(verdict, Match)
    assert verdict.extra == "speaks AMQP 1.0.0"


def test_rtsp_and_sip_status_lines() -> None:
    rtsp = b"RTSP/1.0 200 OK\r\nCSeq: 1\r\nServer: GStreamer RTSP server\r\nPublic: OPTIONS\r\n\r\n"
    verdict = judge("rtsp", rtsp)
    assert isinstance(verdict, Match)
    assert verdict.product == "GStreamer"
    sip = b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP x\r\nServer: Asterisk PBX 20.5.0\r\nContent-Length: 0\r\n\r\n"
    verdict = judge("sip", sip)
    assert isinstance(verdict, Match)
    assert (verdict.service, verdict.product) == ("sip", "Asterisk")
    assert isinstance(judge("sip", rtsp), NoMatch)


def test_rdp_connection_confirm() -> None:
    confirm = bytes([3, 0, 0, 19, 14, 0xD0, 0, 0, 0x12, 0x34, 0, 2, 0, 8, 0]) + (1).to_bytes(
        4, "little"
    )
    assert judge("rdp", confirm) == Match(service="ms-wbt-server", extra="selected TLS")
    request = rdp.connection_request()
    assert int.from_bytes(request[2:4], "big") == len(request) == 19


def test_smb2_negotiate_response() -> None:
    # StructureSize 64, status 0, command NEGOTIATE, flags SERVER_TO_REDIR (a response).
    header = b"\xfeSMB" + struct.pack("<HHIHHI", 64, 0, 0, 0, 1, 1) + bytes(44)
    body = struct.pack("<HHH", 65, 1, 0x0302) + bytes(58)
    message = header + body
    data = b"\x00" + len(message).to_bytes(3, "big") + message
    assert judge("smb", data) == Match(service="microsoft-ds", extra="SMB 3.0.2")
    request = smb.negotiate_request()
    assert int.from_bytes(request[1:4], "big") == len(request) - 4


def test_ldap_search_request_is_valid_ber() -> None:
    wire = ldap.rootdse_search()
    outer = read_tlv(wire, 0)
    assert isinstance(outer, tuple)
    assert outer[2] == len(wire)
    parts = children(wire, outer[1], outer[2])
    assert parts is not None
    assert decode_int(wire, parts[0]) == ldap.MESSAGE_ID
    assert parts[1][0] == ldap.SEARCH_REQUEST


def test_ldap_unsolicited_notice_is_ldap() -> None:
    # RFC 4511 §4.4.1: notice of disconnection, messageID 0, extendedResp.
    notice = bytes(
        [0x30, 0x0C, 0x02, 0x01, 0x00, 0x78, 0x07, 0x0A, 0x01, 0x02, 0x04, 0x00, 0x04, 0x00]
    )
    verdict = judge("ldap", notice)
    assert isinstance(verdict, Match)
    assert verdict.service == "ldap"


def test_snmp_v2c_response_with_sysdescr() -> None:
    from portkit.proto._ber import OCTET_STRING, SEQUENCE, encode, encode_int

    varbind = encode(SEQUENCE, encode(0x06, snmp.SYSDESCR_OID) + encode(OCTET_STRING, b"Linux lab"))
    pdu = encode(snmp.RESPONSE, encode_int(snmp.REQUEST_ID) + encode_int(0) + encode_int(0)
                 + encode(SEQUENCE, varbind))  # fmt: skip
    data = encode(SEQUENCE, encode_int(1) + encode(OCTET_STRING, b"public") + pdu)
    assert judge("snmp", data) == Match(service="snmp", extra="SNMPv2c; sysDescr: Linux lab")


def test_snmp_probe_decodes() -> None:
    for wire in (snmp.v3_discovery(), snmp.v2c_sysdescr()):
        outer = read_tlv(wire, 0)
        assert isinstance(outer, tuple)
        assert outer[2] == len(wire)


def test_ntp_reply_must_echo_our_timestamp() -> None:
    reply = bytearray(48)
    reply[0] = (4 << 3) | 4
    reply[1] = 2
    reply[24:32] = ntp.TRANSMIT
    assert judge("ntp", bytes(reply)) == Match(service="ntp", extra="NTPv4, stratum 2")
    reply[24:32] = bytes(8)
    assert isinstance(judge("ntp", bytes(reply)), NoMatch)


def test_dns_probe_is_a_version_bind_query() -> None:
    from portkit.proto import dns as pk_dns

    query = dns.message.from_wire(pk_dns.version_query())
    assert query.id == pk_dns.QUERY_ID
    assert query.question[0].to_text() == "version.bind. CH TXT"


def test_dns_refused_is_still_dns() -> None:
    from portkit.proto import dns as pk_dns

    reply = dns.message.make_response(dns.message.from_wire(pk_dns.version_query()))
    reply.set_rcode(dns.rcode.REFUSED)
    wire = reply.to_wire()
    verdict = judge("dns-tcp", len(wire).to_bytes(2, "big") + wire)
    assert verdict == Match(service="domain", extra="rcode REFUSED")


@pytest.mark.parametrize(
    ("text", "product", "version", "extra"),
    [
        ("9.18.49-1~deb12u1-Debian", "ISC BIND", "9.18.49-1~deb12u1", "Debian Linux"),
        ("9.16.1", "ISC BIND", "9.16.1", None),
        ("NSD 4.6.1", "NLnet Labs NSD", "4.6.1", None),
        ("unbound 1.17.1", "Unbound", "1.17.1", None),
    ],
)
def test_dns_version_strings_as_nmap_names_them(
    text: str, product: str, version: str, extra: str | None
) -> None:
    from portkit.proto import dns as pk_dns

    reply = dns.message.make_response(dns.message.from_wire(pk_dns.version_query()))
    reply.answer.append(dns.rrset.from_text("version.bind.", 0, "CH", "TXT", f'"{text}"'))
    verdict = judge("dns-udp", reply.to_wire())
    assert verdict == Match(service="domain", product=product, version=version, extra=extra)


def test_portkits_own_mail_servers_are_named() -> None:
    assert judge("smtp", b"220 mail.example portkit ESMTP\r\n") == Match(
        service="smtp", product="portkit smtpd"
    )
    assert judge("pop3", b"+OK portkit POP3 server ready\r\n") == Match(
        service="pop3", product="portkit pop3d"
    )
    greeting = b"* OK [CAPABILITY IMAP4rev1 IDLE] portkit IMAP4rev1 server ready\r\n"
    assert judge("imap", greeting) == Match(service="imap", product="portkit imapd")


def test_a_host_name_is_not_a_product() -> None:
    # The lab's host name contains "portkit": only a server's own words name a product.
    verdict = judge("smtp", b"220 lab.portkit.test ESMTP Postfix (Debian/GNU)\r\n")
    assert verdict == Match(service="smtp", product="Postfix smtpd")
    assert isinstance(judge("ftp", b"220 lab.portkit.test ESMTP Postfix (Debian/GNU)\r\n"), NoMatch)


def test_what_follows_a_complete_greeting_cannot_undo_it() -> None:
    # Found by Hypothesis: a malformed line after a complete greeting once turned a
    # byte-at-a-time match into a no-match when the same bytes came at once.
    assert isinstance(judge("ftp", b"120 FTP\n\n"), Match)


def test_http_without_server_header_names_the_framework_and_title() -> None:
    body = b"<!doctype html><html><head><title>\n  Grafana </title></head></html>"
    data = (b"HTTP/1.1 200 OK\r\nX-Powered-By: Express\r\nContent-Type: text/html\r\n"
            b"Content-Length: %d\r\n\r\n%b") % (len(body), body)  # fmt: skip
    verdict = judge("http", data)
    assert verdict == Match(service="http", product="Express", extra='status 200; title "Grafana"')


def test_http_title_only_from_a_body_of_known_length() -> None:
    # Without Content-Length the body's end is unknown when the head completes, so the
    # verdict (and its extra) cannot depend on how much of it had arrived.
    data = b"HTTP/1.1 200 OK\r\nServer: nginx\r\n\r\n<title>partial</title>"
    verdict = judge("http", data)
    assert isinstance(verdict, Match)
    assert verdict.extra == "status 200"


def test_a_bad_command_after_negotiations_cannot_undo_them() -> None:
    # Found by Hypothesis: all at once this was "malformed", a byte at a time a match.
    verdict = judge("telnet", b"\xff\xfd\x18\xff\xfd\x18\xff\xfd\x18\xff\xfd\x18\xff\r\n")
    assert isinstance(verdict, Match)


def test_our_own_requests_echoed_back_are_not_answers() -> None:
    assert isinstance(judge("smb", smb.negotiate_request()), NoMatch)
    assert isinstance(judge("snmp", snmp.v3_discovery()), NoMatch)
    assert isinstance(judge("snmp", snmp.v2c_sysdescr()), NoMatch)
    assert isinstance(judge("ntp", ntp.client_request()), NoMatch)
    assert isinstance(judge("mqtt", mqtt.connect_packet()), NoMatch)
    assert isinstance(judge("ldap", ldap.rootdse_search()), NoMatch)
    assert isinstance(judge("rdp", rdp.connection_request()), NoMatch)
    assert isinstance(judge("mongodb", mongodb.hello_messages()), NoMatch)
    assert isinstance(judge("postgresql", postgresql.startup_message()), NoMatch)


def test_only_the_reply_after_the_greeting_settles_a_bare_220() -> None:
    later_ehlo = b"220 ready\r\n500 what\r\n250-x\r\n250 PIPELINING\r\n"
    assert isinstance(judge("smtp", later_ehlo), NoMatch)
    later_syst = b"220 ready\r\n500 what\r\n215 UNIX Type: L8\r\n"
    assert isinstance(judge("ftp", later_syst), NoMatch)
