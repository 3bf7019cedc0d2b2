"""The less common families, on answers built from their specifications.

The fixtures (tests/proto/fixtures, captured from Debian's daemons) show what one server
of each family says; these cases cover the other answers each specification allows and
the near misses that must not be claimed.
"""

from __future__ import annotations

import struct

import dns.message
import dns.rrset
import pytest

from portkit.proto import (
    MATCHERS,
    TCP_PROBES,
    UDP_PROBES,
    Match,
    NeedMore,
    NoMatch,
    Reader,
    probes_for,
    tls_name,
)
from portkit.proto.cassandra import STREAM as CQL_STREAM
from portkit.proto.coap import MESSAGE_ID
from portkit.proto.dtls import DTLS_CLIENT_HELLO
from portkit.proto.epmd import EPMD_PORT_PLEASE
from portkit.proto.ike import IKE_SA_INIT, SPI
from portkit.proto.jetdirect import PJL_INFO_ID
from portkit.proto.mdns import LLMNR_QUERY, MDNS_QUERY
from portkit.proto.mssql import MSSQL_PRELOGIN
from portkit.proto.netbios import TRANSACTION, WILDCARD
from portkit.proto.openvpn import SESSION
from portkit.proto.quic import QUIC_VERSION_PROBE
from portkit.proto.relp import RELP_OPEN
from portkit.proto.socks import SOCKS4_CONNECT
from portkit.proto.stun import MAGIC
from portkit.proto.stun import TRANSACTION as STUN_ID
from portkit.proto.tns import TNS_CONNECT


def judge(name: str, data: bytes, final: bool = True) -> Match | NoMatch | NeedMore:
    return MATCHERS[name](data, final)


def drip(name: str, data: bytes) -> Match | None:
    """Feed ``data`` one byte at a time, then finish: the verdict a slow server gets."""
    reader = Reader((MATCHERS[name],))
    for i in range(len(data)):
        found = reader.feed(data[i : i + 1])
        if found is not None:
            return found
    return reader.finish()


# ---- IRC (RFC 2812) -------------------------------------------------------------------


def test_irc_notices_alone_wait_for_more_then_name_irc() -> None:
    notice = b":irc.example.net NOTICE AUTH :*** Looking up your hostname\r\n"
    assert isinstance(judge("irc", notice, final=False), NeedMore)
    found = judge("irc", notice)
    assert isinstance(found, Match)
    assert (found.service, found.product) == ("irc", None)


def test_irc_welcome_names_the_server_software() -> None:
    welcome = (
        b":irc.example.net 001 pk7probe :Welcome\r\n"
        b":irc.example.net 002 pk7probe :Your host is irc.example.net, running version "
        b"UnrealIRCd-6.1.2\r\n"
        b":irc.example.net 004 pk7probe irc.example.net UnrealIRCd-6.1.2 iowrsxzdHtIDRqpWGTSB\r\n"
    )
    found = drip("irc", welcome)
    assert isinstance(found, Match)
    assert (found.product, found.version) == ("UnrealIRCd", "6.1.2")


@pytest.mark.parametrize(
    "data",
    [
        b"220 mail.example.net ESMTP Postfix\r\n",  # numeric without a server prefix
        b"001 pk7probe :Welcome\r\n",
        b":server FROBNICATE x\r\n",  # a command no server sends first
        b"ERROR\r\nERROR\r\n",  # memcached's answer to lines it does not know
        b"HTTP/1.1 400 Bad Request\r\n\r\n",
    ],
)
def test_irc_does_not_claim_other_line_protocols(data: bytes) -> None:
    assert isinstance(judge("irc", data), NoMatch)


def test_irc_refused_registration_is_still_irc() -> None:
    found = judge("irc", b":irc.example.net 433 * pk7probe :Nickname is already in use\r\n")
    assert isinstance(found, Match)
    assert found.service == "irc"


# ---- rsync, svnserve, NNTP (greetings) ------------------------------------------------


def test_rsync_error_greeting_is_rsync() -> None:
    found = judge("rsync", b"@ERROR: access denied to pub from unknown (127.0.0.1)\n")
    assert isinstance(found, Match)
    assert found.service == "rsync"
    assert isinstance(judge("rsync", b"@RSYNCD: x\n"), NoMatch)


def test_svn_greeting_must_be_a_whole_list() -> None:
    half = b"( success ( 2 2 ( ) ( edit-pipeline svndiff1 "
    assert isinstance(judge("svn", half, final=False), NeedMore)
    assert isinstance(judge("svn", half), NoMatch)
    assert isinstance(judge("svn", b"( failure ( ( 210005 11:bad 0: 0 ) ) ) "), NoMatch)


def test_nntp_greeting_that_says_news_names_the_product() -> None:
    found = judge("nntp", b"200 news.example.com InterNetNews NNRP server INN 2.7.1 ready\r\n")
    assert isinstance(found, Match)
    assert (found.service, found.product, found.version) == ("nntp", "INN", "2.7.1")


def test_nntp_plain_greeting_needs_the_capability_list() -> None:
    # RFC 3977 section 5.2.3's example, after a greeting that names nothing.
    greeting = b"201 ready\r\n"
    caps = b"101 Capability list:\r\nVERSION 2\r\nIMPLEMENTATION ExampleNews 1.0\r\nREADER\r\n.\r\n"
    assert isinstance(judge("nntp", greeting), NoMatch)
    assert isinstance(judge("nntp", greeting, final=False), NeedMore)
    found = drip("nntp", greeting + caps)
    assert isinstance(found, Match)
    assert found.product == "ExampleNews 1.0"
    assert isinstance(judge("nntp", greeting + b"500 What?\r\n"), NoMatch)
    # section 5.2.2: the list starts with VERSION; without it this is not NNTP.
    assert isinstance(judge("nntp", greeting + b"101 list\r\nREADER\r\n.\r\n"), NoMatch)


# ---- XMPP (RFC 6120) ------------------------------------------------------------------


def test_xmpp_server_to_server_stream_is_xmpp_server() -> None:
    header = (
        b"<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams'"
        b" from='example.org' version='1.0'>"
    )
    found = drip("xmpp", header)
    assert isinstance(found, Match)
    assert found.service == "xmpp-server"
    assert found.extra is not None
    assert "example.org" in found.extra


def test_xmpp_needs_the_streams_namespace() -> None:
    other = b"<stream:stream xmlns='jabber:client' xmlns:stream='urn:example'>"
    assert isinstance(judge("xmpp", other), NoMatch)
    assert isinstance(judge("xmpp", b"<html><body>"), NoMatch)


# ---- ident, epmd, beanstalkd, X11, SOCKS ----------------------------------------------


def test_ident_userid_reply() -> None:
    found = drip("ident", b"6193, 23 : USERID : UNIX : stjohns\r\n")  # RFC 1413 section 7
    assert isinstance(found, Match)
    assert found.extra == "USERID UNIX"
    assert isinstance(judge("ident", b"6193, 23 : MAYBE : x\r\n"), NoMatch)


def test_epmd_answers_a_lookup_with_two_bytes_then_closes() -> None:
    assert EPMD_PORT_PLEASE.build("x") == b"\x00\x0ezportkit-probe"
    assert isinstance(judge("epmd", b"w\x01", final=False), NeedMore)  # epmd closes to end
    found = drip("epmd", b"w\x01")
    assert isinstance(found, Match)
    assert (found.extra, found.confidence) == ("node not registered", 8)
    assert isinstance(judge("epmd", b"w\x01more"), NoMatch)
    assert isinstance(judge("epmd", b"\x00\x00\x11\x11"), NoMatch)


def test_epmd_registered_node_gives_its_port() -> None:
    # PORT2_RESP: result 0, port 25672, type 77, protocol 0, versions 6 and 5, the name.
    reply = b"w\x00" + (25672).to_bytes(2, "big") + b"M\x00\x00\x06\x00\x05"
    reply += len(b"portkit-probe").to_bytes(2, "big") + b"portkit-probe\x00\x00"
    found = drip("epmd", reply)
    assert isinstance(found, Match)
    assert found.extra == "node port 25672"


def test_beanstalkd_needs_its_own_stats_keys() -> None:
    body = b"---\ncurrent-jobs-ready: 0\nversion: 1.13\n"
    reply = b"OK %d\r\n" % len(body) + body + b"\r\n"
    found = drip("beanstalkd", reply)
    assert isinstance(found, Match)
    assert found.version == "1.13"
    other = b"---\nfoo: 1\n"
    assert isinstance(judge("beanstalkd", b"OK %d\r\n" % len(other) + other), NoMatch)


def test_x11_refusal_names_x11() -> None:
    reason = b"No protocol specified\n"
    pad = (4 - len(reason) % 4) % 4
    reply = (
        bytes([0, len(reason)])
        + b"\x0b\x00\x00\x00"
        + ((len(reason) + pad) // 4).to_bytes(2, "little")
    )
    found = drip("x11", reply + reason + bytes(pad))
    assert isinstance(found, Match)
    assert (found.service, found.extra) == ("X11", "access denied: No protocol specified")
    # Version 10 is not the protocol we asked for.
    assert isinstance(judge("x11", b"\x00\x00\x0a\x00\x00\x00\x00\x00"), NoMatch)


def test_socks5_is_two_bytes_then_silence() -> None:
    assert isinstance(judge("socks5", b"\x05\x00", final=False), NeedMore)
    found = judge("socks5", b"\x05\x02")
    assert isinstance(found, Match)
    assert found.extra == "username/password"
    assert isinstance(judge("socks5", b"\x05\x00\x00"), NoMatch)
    assert isinstance(judge("socks5", b"\x04\x5a"), NoMatch)


# ---- HTTP-based: proxies, IPP, APIs ---------------------------------------------------


def _http(head: str, body: bytes = b"") -> bytes:
    return head.replace("\n", "\r\n").encode() + b"\r\n" + body


def test_a_407_with_proxy_authenticate_is_a_proxy() -> None:
    found = judge(
        "http", _http('HTTP/1.1 407 Proxy Authentication Required\nProxy-Authenticate: Basic realm="x"\nContent-Length: 0\n')
    )  # fmt: skip
    assert isinstance(found, Match)
    assert found.service == "http-proxy"
    plain = judge(
        "http", _http("HTTP/1.1 401 Unauthorized\nWWW-Authenticate: Basic\nContent-Length: 0\n")
    )
    assert isinstance(plain, Match)
    assert plain.service == "http"


def test_any_server_announcing_ipp_is_ipp() -> None:
    found = judge(
        "http", _http("HTTP/1.1 200 OK\nServer: PrinterCo/3.1 IPP/2.0\nContent-Length: 0\n")
    )
    assert isinstance(found, Match)
    assert (found.service, found.product, found.version) == ("ipp", "PrinterCo", "3.1")


@pytest.mark.parametrize(
    ("body", "service", "product", "version"),
    [
        (b'{"Platform":{"Name":""},"Version":"20.10.24","ApiVersion":"1.41","GoVersion":"go1.19"}',
         "docker", "Docker", "20.10.24"),
        (b'{"major":"1","minor":"28","gitVersion":"v1.28.2","platform":"linux/amd64"}',
         "kubernetes", "Kubernetes API server", "1.28.2"),
        (b'{"etcdserver":"3.5.9","etcdcluster":"3.5.0"}', "etcd-client", "etcd", "3.5.9"),
    ],
)  # fmt: skip
def test_version_documents_name_the_api(
    body: bytes, service: str, product: str, version: str
) -> None:
    head = f"HTTP/1.1 200 OK\nContent-Type: application/json\nContent-Length: {len(body)}\n"
    found = drip("http", _http(head, body))
    assert isinstance(found, Match)
    assert (found.service, found.product, found.version) == (service, product, version)


# ---- UDP: TFTP, STUN, CoAP, NetBIOS ---------------------------------------------------


def test_tftp_first_data_block_and_errors() -> None:
    data = judge("tftp", b"\x00\x03\x00\x01hello")
    assert isinstance(data, Match)
    assert isinstance(judge("tftp", b"\x00\x03\x00\x02hello"), NoMatch)  # not block 1
    assert isinstance(judge("tftp", b"\x00\x04\x00\x01"), NoMatch)  # an ACK is no answer
    error = judge("tftp", b"\x00\x05\x00\x02\x00")
    assert isinstance(error, Match)
    assert error.extra == "error 2: access violation"
    assert isinstance(judge("tftp", b"\x00\x05\x00\x02no terminator"), NoMatch)


def test_stun_answer_must_be_to_our_transaction() -> None:
    software = b"\x80\x22\x00\x0bExample 2.0\x00"
    ours = b"\x01\x01" + len(software).to_bytes(2, "big") + MAGIC + STUN_ID + software
    found = judge("stun", ours)
    assert isinstance(found, Match)
    assert (found.product, found.version) == ("Example", "2.0")
    theirs = ours[:8] + b"x" * 12 + ours[20:]
    assert isinstance(judge("stun", theirs), NoMatch)
    assert isinstance(judge("stun", ours[:-1]), NoMatch)  # length disagrees


def test_coap_reset_and_foreign_messages() -> None:
    reset = judge("coap", b"\x70\x00" + MESSAGE_ID)
    assert isinstance(reset, Match)
    assert reset.extra == "reset"
    assert isinstance(judge("coap", b"\x60\x45\x00\x01"), NoMatch)  # another message ID
    not_found = judge("coap", b"\x60\x84" + MESSAGE_ID)
    assert isinstance(not_found, Match)
    assert not_found.extra == "4.04 client error"


def test_netbios_node_status_lists_names() -> None:
    names = b"HOST1          \x00\x04\x00" + b"WORKGRP        \x00\x84\x00"
    rdata = bytes([2]) + names + bytes(46)
    reply = (
        TRANSACTION + b"\x84\x00\x00\x00\x00\x01\x00\x00\x00\x00" + WILDCARD
        + b"\x00\x21\x00\x01\x00\x00\x00\x00" + len(rdata).to_bytes(2, "big") + rdata
    )  # fmt: skip
    found = judge("netbios-ns", reply)
    assert isinstance(found, Match)
    assert found.extra == "name HOST1; workgroup WORKGRP"
    assert isinstance(judge("netbios-ns", reply[:-10]), NoMatch)  # truncated record


# ---- the catalogue --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("service", "transport", "probe"),
    [
        ("ircu", "tcp", "irc-register"),
        ("xmpp-client", "tcp", "xmpp-stream"),
        ("auth", "tcp", "ident-query"),
        ("finger", "tcp", "finger-list"),
        ("epmd", "tcp", "epmd-port-please"),
        ("x11", "tcp", "x11-setup"),
        ("socks", "tcp", "socks5-greeting"),
        ("etcd-client", "tcp", "http-get-version"),
        ("nntp", "tcp", "nntp-capabilities"),
        ("tftp", "udp", "tftp-read"),
        ("stun", "udp", "stun-binding"),
        ("coap", "udp", "coap-discover"),
        ("netbios-ns", "udp", "netbios-nbstat"),
    ],
)
def test_the_registry_service_gets_its_own_probe_first(
    service: str, transport: str, probe: str
) -> None:
    assert probes_for(service, transport)[0].name == probe


def test_new_tls_names_and_probe_names_are_unique() -> None:
    assert tls_name("irc") == "ircs"
    assert tls_name("nntp") == "nntps"
    assert tls_name("ipp") == "ipps"
    names = [p.name for p in (*TCP_PROBES, *UDP_PROBES)]
    assert len(names) == len(set(names))


# ---- git, OpenVPN, RADIUS, mDNS, IKE --------------------------------------------------


def test_git_advertisement_names_the_version_and_a_lone_flush_is_weak() -> None:
    line = b"a" * 40 + b" HEAD\x00multi_ack side-band-64k agent=git/2.39.5\n"
    found = drip("git", f"{len(line) + 4:04x}".encode() + line + b"0000")
    assert isinstance(found, Match)
    assert (found.product, found.version) == ("git", "2.39.5")
    flush = judge("git", b"0000")
    assert isinstance(flush, Match)
    assert flush.confidence < 8
    assert isinstance(judge("git", b"0000", final=False), NeedMore)
    assert isinstance(judge("git", b"HTTP/1.1 400"), NoMatch)


def test_openvpn_must_acknowledge_our_session() -> None:
    reply = b"\x00\x1a\x40" + b"S" * 8 + b"\x01" + bytes(4) + SESSION + bytes(4)
    found = drip("openvpn", reply)
    assert isinstance(found, Match)
    assert found.service == "openvpn"
    other = b"\x00\x1a\x40" + b"S" * 8 + b"\x01" + bytes(4) + b"someone!" + bytes(4)
    assert isinstance(judge("openvpn", other), NoMatch)
    assert isinstance(judge("openvpn", b"\x00\x0e\x38" + bytes(13)), NoMatch)  # a client reset


def test_radius_answer_must_carry_our_identifier() -> None:
    reject = b"\x03\x70\x00\x14" + bytes(16)
    assert isinstance(judge("radius", reject), Match)
    assert isinstance(judge("radius", b"\x03\x71\x00\x14" + bytes(16)), NoMatch)
    assert isinstance(judge("radius", b"\x03\x70\x00\x18" + bytes(16)), NoMatch)  # length
    broken = b"\x02\x70\x00\x17" + bytes(16) + b"\x01\x09x"  # attribute runs past the end
    assert isinstance(judge("radius", broken), NoMatch)


def test_mdns_without_answers_is_not_claimed() -> None:
    query = MDNS_QUERY.build("192.0.2.1")
    empty = query[:2] + b"\x84\x00" + query[4:]
    assert isinstance(judge("mdns", empty), NoMatch)
    assert isinstance(judge("mdns", query), NoMatch)  # our own query, echoed
    assert b"\x011\x012\x010\x03192\x07in-addr\x04arpa\x00" in query
    assert b"_services\x07_dns-sd" in MDNS_QUERY.build("printer.local")


def test_ike_response_must_use_our_spi_and_be_a_response() -> None:
    notify = b"\x00\x00\x00\x08\x00\x00\x00\x0e"
    header = SPI + b"R" * 8 + b"\x29\x20\x22\x20" + bytes(4) + (28 + 8).to_bytes(4, "big")
    found = judge("ike", header + notify)
    assert isinstance(found, Match)
    assert found.extra == "IKEv2; NO_PROPOSAL_CHOSEN"
    request = header[:19] + b"\x08" + header[20:]
    assert isinstance(judge("ike", request + notify), NoMatch)
    assert isinstance(judge("ike", b"x" * 8 + header[8:] + notify), NoMatch)
    request_bytes = IKE_SA_INIT.build("192.0.2.1")
    assert int.from_bytes(request_bytes[24:28], "big") == len(request_bytes)


# ---- ZooKeeper, SQL Server, Kafka, Cassandra, SSDP, QUIC ------------------------------


def test_zookeeper_refusal_still_names_it() -> None:
    found = judge("zookeeper", b"srvr is not executed because it is not in the whitelist.\n")
    assert isinstance(found, Match)
    assert found.service == "zookeeper"
    srvr = b"Zookeeper version: 3.9.1-abc, built on 2023-10-05 10:34 UTC\nMode: leader\n"
    assert isinstance(judge("zookeeper", srvr, final=False), NeedMore)  # it closes to end
    stats = drip("zookeeper", srvr)
    assert isinstance(stats, Match)
    assert (stats.version, stats.extra) == ("3.9.1", "mode leader")


def _prelogin_answer(version: bytes, encryption: int) -> bytes:
    tokens = b"\x00\x00\x0b\x00\x06" + b"\x01\x00\x11\x00\x01" + b"\xff"
    payload = tokens + version + bytes([encryption])
    return b"\x04\x01" + (8 + len(payload)).to_bytes(2, "big") + bytes(4) + payload


def test_mssql_prelogin_answer_names_the_release() -> None:
    # [MS-TDS] 2.2.6.5: VERSION 15.0.2000 (SQL Server 2019), sub-build 0; ENCRYPT_OFF.
    answer = _prelogin_answer(b"\x0f\x00\x07\xd0\x00\x00", 0)
    found = drip("ms-sql-s", answer)
    assert isinstance(found, Match)
    assert (found.product, found.version, found.extra) == (
        "Microsoft SQL Server 2019",
        "15.0.2000",
        "encryption off",
    )
    assert isinstance(judge("ms-sql-s", answer[:-3]), NoMatch)  # cut short
    assert isinstance(judge("ms-sql-s", b"\x12" + answer[1:]), NoMatch)  # our own request
    assert MSSQL_PRELOGIN.build("x")[0] == 0x12


def test_kafka_api_versions_must_list_itself() -> None:
    apis = [(0, 0, 9), (3, 0, 12), (18, 0, 3)]
    body = b"\x00\x00" + len(apis).to_bytes(4, "big")
    body += b"".join(k.to_bytes(2, "big") + lo.to_bytes(2, "big") + hi.to_bytes(2, "big")
                     for k, lo, hi in apis)  # fmt: skip
    answer = (4 + len(body)).to_bytes(4, "big") + b"pkka" + body
    found = drip("kafka", answer)
    assert isinstance(found, Match)
    assert found.extra == "3 APIs"
    cut = answer[:-6]  # the same answer without ApiVersions (key 18) in its list
    without = (len(cut) - 4).to_bytes(4, "big") + cut[4:10] + (2).to_bytes(4, "big") + cut[14:]
    assert isinstance(judge("kafka", without), NoMatch)
    assert isinstance(judge("kafka", answer[:4] + b"xxxx" + answer[8:]), NoMatch)


def test_cql_supported_names_cassandra_and_its_cql_version() -> None:
    def string(text: bytes) -> bytes:
        return len(text).to_bytes(2, "big") + text

    body = b"\x00\x02" + string(b"CQL_VERSION") + b"\x00\x01" + string(b"3.4.5")
    body += string(b"COMPRESSION") + b"\x00\x02" + string(b"snappy") + string(b"lz4")
    frame = b"\x84\x00" + CQL_STREAM + b"\x06" + len(body).to_bytes(4, "big") + body
    found = drip("cassandra", frame)
    assert isinstance(found, Match)
    assert (found.service, found.extra) == ("cassandra", "CQL 3.4.5")
    assert isinstance(judge("cassandra", b"\x04" + frame[1:]), NoMatch)  # a request
    error = (
        b"\x83\x00\x00\x00\x00" + (12).to_bytes(4, "big") + b"\x00\x00\x00\x0a" + string(b"v4?!!!")
    )
    old = judge("cassandra", error)
    assert isinstance(old, Match)
    assert old.extra == "native protocol v3; error"


def test_ssdp_answer_names_the_upnp_product() -> None:
    answer = (
        b"HTTP/1.1 200 OK\r\nCACHE-CONTROL: max-age=1800\r\nST: upnp:rootdevice\r\n"
        b"USN: uuid:4d696e69-444c-164e-9d41-b827eb000000::upnp:rootdevice\r\n"
        b"LOCATION: http://192.0.2.1:8200/rootDesc.xml\r\n"
        b"SERVER: Debian/12 DLNADOC/1.50 UPnP/1.0 MiniDLNA/1.3.0\r\n\r\n"
    )
    found = judge("ssdp", answer)
    assert isinstance(found, Match)
    assert (found.service, found.product, found.version) == ("upnp", "MiniDLNA", "1.3.0")
    assert isinstance(judge("ssdp", b"HTTP/1.1 200 OK\r\nServer: nginx\r\n\r\n"), NoMatch)


def test_quic_version_negotiation_swaps_our_connection_ids() -> None:
    probe = QUIC_VERSION_PROBE.build("x")
    assert len(probe) == 1200
    vn = b"\x80" + bytes(4) + bytes([12]) + b"portkit-scid" + bytes([12]) + b"portkit-dcid"
    found = judge("quic", vn + b"\x00\x00\x00\x01\xff\x00\x00\x1d\x0a\x1a\x2a\x3a")
    assert isinstance(found, Match)
    assert found.extra == "versions v1, draft-29"
    swapped = b"\x80" + bytes(4) + bytes([12]) + b"portkit-dcid" + bytes([12]) + b"portkit-scid"
    assert isinstance(judge("quic", swapped + b"\x00\x00\x00\x01"), NoMatch)
    assert isinstance(judge("quic", vn), NoMatch)  # no versions listed


def test_finger_answers_are_named_only_in_known_forms() -> None:
    table = b"Login     Name       Tty      Idle  Login Time   Office     Office Phone\r\n"
    table += b"alice     Alice      pts/0       1  Dec  5 00:10\r\n"
    assert isinstance(judge("finger", table, final=False), NeedMore)  # it closes to end
    found = drip("finger", table)
    assert isinstance(found, Match)
    assert found.service == "finger"
    assert isinstance(judge("finger", b"500 5.5.2 Error: bad syntax\r\n"), NoMatch)
    assert isinstance(judge("finger", b"-ERR unknown command\r\n"), NoMatch)


def test_dtls_records_only() -> None:
    hello = DTLS_CLIENT_HELLO.build("x")
    assert hello[:3] == b"\x16\xfe\xff"
    assert int.from_bytes(hello[11:13], "big") == len(hello) - 13
    assert isinstance(judge("dtls", hello), NoMatch)  # a ClientHello is not an answer
    alert = b"\x15\xfe\xfd" + bytes(8) + b"\x00\x02\x02\x28"  # fatal handshake_failure
    found = judge("dtls", alert)
    assert isinstance(found, Match)
    assert found.extra == "DTLS 1.2; alert 40"
    tls = b"\x15\x03\x03" + bytes(8) + b"\x00\x02\x02\x28"  # TLS's version, not DTLS's
    assert isinstance(judge("dtls", tls), NoMatch)


# ---- SOCKS 4, LPD, Oracle TNS, JetDirect, Consul: answers built from the documents ------
#
# None of these has a second server in Debian (Oracle, HP printers, Consul, CouchDB and
# Elasticsearch have none at all): each answer below is what the protocol's document
# says the server sends, checked like a fixture: all at once and byte by byte, and
# claimed by exactly one matcher.

_TNS_REFUSE_DATA = (
    b"(DESCRIPTION=(TMP=)(VSNNUM=318767104)(ERR=12514)(ERROR_STACK=(ERROR=(CODE=12514)(EMFI=4))))"
)
_TNS_REFUSE = (
    (8 + 4 + len(_TNS_REFUSE_DATA)).to_bytes(2, "big") + b"\x00\x00\x04\x00\x00\x00"
    + b"\x22\x00" + len(_TNS_REFUSE_DATA).to_bytes(2, "big") + _TNS_REFUSE_DATA
)  # fmt: skip
_COUCH_BODY = (
    b'{"couchdb":"Welcome","version":"3.3.2","git_sha":"11a234070","uuid":"0f4d0a0b",'
    b'"features":["access-ready","partitioned","reshard","scheduler"],'
    b'"vendor":{"name":"The Apache Software Foundation"}}\n'
)
_ES_BODY = (
    b'{\n  "name" : "node-1",\n  "cluster_name" : "elasticsearch",\n  "cluster_uuid" : "x",\n'
    b'  "version" : {\n    "number" : "8.11.1",\n    "build_flavor" : "default",\n'
    b'    "lucene_version" : "9.8.0"\n  },\n  "tagline" : "You Know, for Search"\n}\n'
)
_OS_BODY = (
    b'{"name":"n1","cluster_name":"docker-cluster","version":{"distribution":"opensearch",'
    b'"number":"2.11.0","lucene_version":"9.7.0"},'
    b'"tagline":"The OpenSearch Project: https://opensearch.org/"}'
)
_CONSUL_SELF = b'{"Config":{"Datacenter":"dc1","NodeName":"n1","Server":true,"Version":"1.16.1"}}'


def _json_response(body: bytes, headers: bytes = b"") -> bytes:
    return (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n" + headers
            + b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)  # fmt: skip


def _rpc_record(after_reply_stat: bytes) -> bytes:
    """An RPC reply to our call, MSG_ACCEPTED, in one last fragment (RFC 5531 §9, §11)."""
    message = b"pkrp" + struct.pack(">II", 1, 0) + after_reply_stat
    return struct.pack(">I", 0x80000000 | len(message)) + message


SPEC_ANSWERS = {
    "socks4-granted": ("socks4", b"\x00\x5a\x00\x00\x00\x00\x00\x00", "socks4", None, None),
    "socks4-identd": ("socks4", b"\x00\x5c\x00\x00\x00\x00\x00\x00", "socks4", None, None),
    "lpd-no-entries": ("lpd", b"no entries\n", "printer", None, None),
    "lpd-unknown": ("lpd", b"lpd: lp: unknown printer\n", "printer", "BSD lpd", None),
    "lpd-lprng": (
        "lpd",
        b"Printer: lp@print1 'Laser'\n Queue: no printable jobs in queue\n",
        "printer",
        "LPRng",
        None,
    ),
    "tns-refuse": (
        "oracle-tns",
        _TNS_REFUSE,
        "oracle-tns",
        "Oracle TNS listener",
        "19.0.0.0.0",
    ),
    "tns-resend": (
        "oracle-tns",
        b"\x00\x08\x00\x00\x0b\x00\x00\x00",
        "oracle-tns",
        "Oracle TNS listener",
        None,
    ),
    "pjl-info-id": (
        "jetdirect",
        b'@PJL INFO ID\r\n"HP LaserJet 4250"\r\n\x0c',
        "jetdirect",
        "HP LaserJet 4250",
        None,
    ),
    "couchdb": (
        "http",
        _json_response(_COUCH_BODY, b"Server: CouchDB/3.3.2 (Erlang OTP/25)\r\n"),
        "http",
        "CouchDB",
        "3.3.2",
    ),
    "elasticsearch": (
        "http",
        _json_response(_ES_BODY, b"X-elastic-product: Elasticsearch\r\n"),
        "http",
        "Elasticsearch",
        "8.11.1",
    ),
    "opensearch": ("http", _json_response(_OS_BODY), "http", "OpenSearch", "2.11.0"),
    "elasticsearch-secured": (
        "http",
        b'HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm="security" '
        b'charset="UTF-8"\r\nWWW-Authenticate: ApiKey\r\n'
        b"content-type: application/json\r\ncontent-length: 164\r\n\r\n"
        b'{"error":{"root_cause":[{"type":"security_exception","reason":"missing '
        b'authentication credentials for REST request [/]"}],"type":"security_exception"},'
        b'"status":401}',
        "http",
        "Elasticsearch",
        None,
    ),
    "consul-agent-self": (
        "http",
        _json_response(
            _CONSUL_SELF, b"Vary: Accept-Encoding\r\nX-Consul-Default-Acl-Policy: allow\r\n"
        ),
        "consul",
        "Consul",
        "1.16.1",
    ),
    # RFC 5531 replies over TCP (record marking, §11) to our DUMP call (XID "pkrp").
    "rpcbind-portmap-v2": (
        "rpcbind-tcp",
        _rpc_record(
            struct.pack(">III", 0, 0, 0)  # AUTH_NONE verifier, SUCCESS
            + struct.pack(">IIIII", 1, 100000, 2, 6, 111)
            + struct.pack(">I", 0)
        ),
        "rpcbind",
        None,  # only version 2: the older portmap or rpcbind, not told apart
        "2",
    ),
    "rpcbind-program-unavailable": (
        "rpcbind-tcp",
        _rpc_record(struct.pack(">III", 0, 0, 1)),  # PROG_UNAVAIL (an NFS server, say)
        "rpcbind",
        None,
        None,
    ),
    # RFC 2229 §3.1: another DICT server's banner, no product named, empty capabilities.
    "dict-other-server": (
        "dict",
        b"220 dict.example.net JDict server <> <17.2@dict.example.net>\r\n",
        "dict",
        None,
        None,
    ),
    "consul-ui-disabled": (
        "http",
        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8"
        b"\r\nContent-Length: 24\r\n\r\nConsul Agent: UI disabled",
        "consul",
        "Consul",
        None,
    ),
}


@pytest.mark.parametrize("name", sorted(SPEC_ANSWERS))
def test_documented_answers_are_named_by_exactly_one_matcher(name: str) -> None:
    matcher, data, service, product, version = SPEC_ANSWERS[name]
    found = judge(matcher, data)
    assert isinstance(found, Match), found
    assert (found.service, found.product, found.version) == (service, product, version)
    assert drip(matcher, data) == found
    udp = {p.matchers[0] for p in UDP_PROBES}
    claims = [m for m in MATCHERS if m not in udp and isinstance(judge(m, data), Match)]
    assert claims == [matcher]


def test_socks4_reply_is_eight_bytes_then_silence() -> None:
    reply = b"\x00\x5b\x00\x00\x00\x00\x00\x00"
    assert isinstance(judge("socks4", reply, final=False), NeedMore)
    assert isinstance(judge("socks4", reply + b"\x00"), NoMatch)  # not a SOCKS 4 reply
    assert isinstance(judge("socks4", b"\x00\x5b\x00\x00"), NoMatch)  # cut short
    assert isinstance(judge("socks4", b"\x00\x00\x00\x00\x00\x00\x00\x00"), NoMatch)
    probe = SOCKS4_CONNECT.build("x")
    assert probe[:8] == b"\x04\x01\x00\x00\x7f\x00\x00\x01"  # port 0 on the proxy's loopback
    assert isinstance(judge("socks4", probe), NoMatch)  # an echo is not a reply


def test_lpd_does_not_claim_other_text() -> None:
    for data in (b"-ERR unknown\r\n", b"No one logged on.\r\n", b"\x03lp\n", b"lp\n"):
        assert isinstance(judge("lpd", data), NoMatch), data


def test_tns_connect_is_a_well_formed_packet_and_not_an_answer() -> None:
    connect = TNS_CONNECT.build("x")
    assert int.from_bytes(connect[:2], "big") == len(connect)
    assert connect[4] == 1  # CONNECT
    offset = int.from_bytes(connect[26:28], "big")
    size = int.from_bytes(connect[24:26], "big")
    assert connect[offset : offset + size] == b"(CONNECT_DATA=(COMMAND=version))"
    assert isinstance(judge("oracle-tns", connect), NoMatch)  # an echo is not an answer
    # A REFUSE without a descriptor, or with a checksum, is not a listener's.
    bare = b"\x00\x0c\x00\x00\x04\x00\x00\x00\x00\x00\x00\x00"
    assert isinstance(judge("oracle-tns", bare), NoMatch)
    assert isinstance(judge("oracle-tns", _TNS_REFUSE[:6] + b"\x12\x34" + _TNS_REFUSE[8:]), NoMatch)
    accept = b"\x00\x20\x00\x00\x02\x00\x00\x00\x01\x3a" + bytes(22)
    found = judge("oracle-tns", accept)
    assert isinstance(found, Match)
    assert found.extra == "accepted, protocol version 314"


def test_pjl_needs_the_echoed_command_and_a_model() -> None:
    assert isinstance(judge("jetdirect", PJL_INFO_ID.build("x")), NoMatch)  # an echo
    assert isinstance(judge("jetdirect", b"@PJL INFO ID\r\n", final=False), NeedMore)
    assert isinstance(judge("jetdirect", b"@PJL INFO ID\r\n"), NoMatch)
    assert isinstance(judge("jetdirect", b"@PJL INFO STATUS\r\nCODE=10001\r\n"), NoMatch)


def test_llmnr_answer_to_our_query_only() -> None:
    query = dns.message.from_wire(LLMNR_QUERY.build("192.0.2.1"))
    assert str(query.question[0].name) == "1.2.0.192.in-addr.arpa."
    answer = dns.message.make_response(query)
    answer.answer.append(dns.rrset.from_text(query.question[0].name, 30, "IN", "PTR", "labhost."))
    wire = answer.to_wire()
    found = judge("llmnr", wire)
    assert isinstance(found, Match)
    assert (found.service, found.extra) == ("llmnr", "name labhost.")
    udp = [p.matchers[0] for p in UDP_PROBES]
    assert [m for m in udp if isinstance(judge(m, wire), Match)] == ["llmnr"]
    mdns = dns.message.from_wire(MDNS_QUERY.build("192.0.2.1"))
    other = dns.message.make_response(mdns)
    other.answer.append(dns.rrset.from_text(mdns.question[0].name, 30, "IN", "PTR", "labhost."))
    assert isinstance(judge("llmnr", other.to_wire()), NoMatch)  # the mDNS probe's answer
    assert isinstance(judge("llmnr", dns.message.make_response(query).to_wire()), NoMatch)
    status = bytearray(wire)
    status[2] |= 0x10  # opcode 2 (STATUS): not an LLMNR response
    assert isinstance(judge("llmnr", bytes(status)), NoMatch)


def test_relp_response_must_answer_transaction_one_and_end_with_its_trailer() -> None:
    fixture = b"1 rsp 21 200 OK\nrelp_version=0\n"
    found = drip("relp", fixture)
    assert isinstance(found, Match)
    assert (found.service, found.product, found.extra) == ("relp", None, "syslog; 200 OK")
    assert isinstance(judge("relp", fixture[:-1] + b"x"), NoMatch)  # no LF trailer
    assert isinstance(judge("relp", b"2" + fixture[1:]), NoMatch)  # not our transaction
    assert isinstance(judge("relp", b"1 rsp 9x3 200 OK\n"), NoMatch)
    assert isinstance(judge("relp", b"1 rsp 0\n"), NoMatch)  # a rsp carries a status
    assert isinstance(judge("relp", b"1 rsp 12", final=False), NeedMore)
    assert isinstance(judge("relp", RELP_OPEN.build("x")), NoMatch)  # an echo
