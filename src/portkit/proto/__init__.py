"""Protocol knowledge without I/O: matchers that recognise servers, and the probes that
make client-first servers talk.

Each family has its own module (``ssh``, ``http``, ``mail``, ...). This package joins
them into the catalogue the identification ladder walks: which matchers judge a banner,
which probe to try first for a registry service, and the generic probe order.
"""

from __future__ import annotations

import functools

from portkit.proto._match import (
    MAX_RESPONSE_BYTES,
    Match,
    Matcher,
    NeedMore,
    NoMatch,
    Probe,
    Reader,
    Verdict,
)
from portkit.proto.amqp import AMQP, AMQP_HEADER
from portkit.proto.beanstalkd import BEANSTALKD, BEANSTALKD_STATS
from portkit.proto.cassandra import CASSANDRA, CQL_OPTIONS
from portkit.proto.coap import COAP, COAP_DISCOVER
from portkit.proto.dict import DICT
from portkit.proto.dns import DNS_TCP, DNS_UDP, DNS_VERSION_TCP, DNS_VERSION_UDP
from portkit.proto.dtls import DTLS, DTLS_CLIENT_HELLO
from portkit.proto.epmd import EPMD, EPMD_PORT_PLEASE
from portkit.proto.finger import FINGER, FINGER_LIST
from portkit.proto.ftp import FTP, FTP_SYST
from portkit.proto.git import GIT, GIT_UPLOAD_PACK
from portkit.proto.http import (
    HTTP,
    HTTP2,
    HTTP_GET,
    HTTP_GET_CONSUL_SELF,
    HTTP_GET_METRICS,
    HTTP_GET_VERSION,
)
from portkit.proto.ident import IDENT, IDENT_QUERY
from portkit.proto.ike import IKE, IKE_SA_INIT
from portkit.proto.irc import IRC, IRC_REGISTER
from portkit.proto.jetdirect import JETDIRECT, PJL_INFO_ID
from portkit.proto.kafka import KAFKA, KAFKA_API_VERSIONS
from portkit.proto.ldap import LDAP, LDAP_ROOTDSE
from portkit.proto.lpd import LPD, LPD_QUEUE_STATE
from portkit.proto.mail import IMAP, POP3, SMTP, SMTP_EHLO
from portkit.proto.mdns import LLMNR, LLMNR_QUERY, MDNS, MDNS_QUERY
from portkit.proto.memcached import (
    MEMCACHED,
    MEMCACHED_UDP,
    MEMCACHED_VERSION,
    MEMCACHED_VERSION_UDP,
)
from portkit.proto.mongodb import MONGODB, MONGODB_HELLO
from portkit.proto.mqtt import MQTT, MQTT_CONNECT
from portkit.proto.mssql import MSSQL, MSSQL_PRELOGIN
from portkit.proto.mysql import MYSQL
from portkit.proto.netbios import NETBIOS_NBSTAT, NETBIOS_NS
from portkit.proto.nntp import NNTP, NNTP_CAPABILITIES
from portkit.proto.ntp import NTP, NTP_CLIENT
from portkit.proto.openvpn import OPENVPN, OPENVPN_RESET
from portkit.proto.postgresql import POSTGRESQL, POSTGRESQL_STARTUP
from portkit.proto.quic import QUIC, QUIC_VERSION_PROBE
from portkit.proto.radius import RADIUS, RADIUS_ACCESS_REQUEST
from portkit.proto.rdp import RDP, RDP_NEGOTIATE
from portkit.proto.redis import REDIS, REDIS_PING
from portkit.proto.relp import RELP, RELP_OPEN
from portkit.proto.rpc import RPCBIND_DUMP_TCP, RPCBIND_DUMP_UDP, RPCBIND_TCP, RPCBIND_UDP
from portkit.proto.rsync import RSYNC
from portkit.proto.rtsp import RTSP, RTSP_OPTIONS
from portkit.proto.sip import SIP, SIP_OPTIONS_TCP, SIP_OPTIONS_UDP
from portkit.proto.smb import SMB, SMB_NEGOTIATE
from portkit.proto.snmp import SNMP, SNMP_V2C_SYSDESCR, SNMP_V3_DISCOVERY
from portkit.proto.socks import SOCKS4, SOCKS4_CONNECT, SOCKS5, SOCKS5_GREETING
from portkit.proto.ssdp import SSDP, SSDP_SEARCH
from portkit.proto.ssh import SSH
from portkit.proto.stun import STUN, STUN_BINDING
from portkit.proto.svn import SVN
from portkit.proto.telnet import TELNET
from portkit.proto.tftp import TFTP, TFTP_READ
from portkit.proto.tls import TLS_RECORDS
from portkit.proto.tns import TNS, TNS_CONNECT
from portkit.proto.vnc import VNC
from portkit.proto.x11 import X11, X11_SETUP
from portkit.proto.xmpp import XMPP, XMPP_STREAM
from portkit.proto.zookeeper import ZOOKEEPER, ZOOKEEPER_SRVR

__all__ = [
    "API_DOCUMENTS",
    "BANNER_MATCHERS",
    "FOLLOW_UP_PROBES",
    "MATCHERS",
    "MAX_RESPONSE_BYTES",
    "SPEAKS_FIRST",
    "TCP_PROBES",
    "TLS_SERVICES",
    "UDP_PROBES",
    "Match",
    "Matcher",
    "NeedMore",
    "NoMatch",
    "Probe",
    "Reader",
    "Verdict",
    "matchers_for",
    "plain_name",
    "probes_for",
    "tls_name",
    "udp_payload",
    "wants_tls_first",
]

MATCHERS: dict[str, Matcher] = {
    m.name: m
    for m in (
        SSH, SMTP, FTP, POP3, IMAP, TELNET, MYSQL, VNC, HTTP, TLS_RECORDS, DNS_TCP, DNS_UDP,
        REDIS, MEMCACHED, POSTGRESQL, MONGODB, MQTT, AMQP, LDAP, RTSP, SIP, RDP, SMB, NTP, SNMP,
        MEMCACHED_UDP, HTTP2,
        IRC, RSYNC, SVN, NNTP, XMPP, IDENT, EPMD, BEANSTALKD, X11, SOCKS5,
        TFTP, STUN, COAP, NETBIOS_NS, GIT, OPENVPN, RADIUS, MDNS, IKE,
        ZOOKEEPER, MSSQL, KAFKA, CASSANDRA, SSDP, QUIC, FINGER, DTLS,
        SOCKS4, LPD, TNS, JETDIRECT, LLMNR, RELP, RPCBIND_TCP, RPCBIND_UDP, DICT,
    )
}  # fmt: skip

# Servers that speak first; their greetings are judged by these, whatever was sent.
# An HTTP/2-only server sends its SETTINGS preface first too (RFC 9113 §3.4).
BANNER_MATCHERS: tuple[Matcher, ...] = (
    SSH, SMTP, FTP, POP3, IMAP, TELNET, MYSQL, VNC, IRC, RSYNC, SVN, NNTP, HTTP2, DICT,
)  # fmt: skip

# Registry names of services whose servers greet first: worth listening longer for.
SPEAKS_FIRST = frozenset(
    {"ssh", "smtp", "submission", "ftp", "pop3", "imap", "telnet", "mysql", "rfb", "lmtp",
     "pop2", "rsync", "svn", "nntp", "dict"}
)  # fmt: skip

# The generic ladder for a TCP port that stays silent, most common first. TLS is tried
# by the ladder itself (a handshake with :mod:`ssl`) right after the first of these.
TCP_PROBES: tuple[Probe, ...] = (
    HTTP_GET,
    REDIS_PING,
    MEMCACHED_VERSION,
    DNS_VERSION_TCP,
    POSTGRESQL_STARTUP,
    MONGODB_HELLO,
    MQTT_CONNECT,
    AMQP_HEADER,
    LDAP_ROOTDSE,
    RDP_NEGOTIATE,
    SMB_NEGOTIATE,
    RTSP_OPTIONS,
    SIP_OPTIONS_TCP,
    SMTP_EHLO,
    FTP_SYST,
    # Less common servers, most used first; the ladder sends them a few at a time.
    SOCKS5_GREETING,
    XMPP_STREAM,
    IRC_REGISTER,
    X11_SETUP,
    NNTP_CAPABILITIES,
    IDENT_QUERY,
    EPMD_PORT_PLEASE,
    BEANSTALKD_STATS,
    MSSQL_PRELOGIN,
    TNS_CONNECT,
    ZOOKEEPER_SRVR,
    KAFKA_API_VERSIONS,
    CQL_OPTIONS,
    RPCBIND_DUMP_TCP,
    GIT_UPLOAD_PACK,
    OPENVPN_RESET,
    FINGER_LIST,
    LPD_QUEUE_STATE,
    PJL_INFO_ID,
    RELP_OPEN,
    # After SOCKS 5, in a later batch: a proxy that speaks both (Dante) is named socks5.
    SOCKS4_CONNECT,
    # Only worth sending where the registry expects etcd, Docker, Kubernetes or Consul:
    # anywhere else the GET above has already answered (and an answer without a product
    # is followed by these documents).
    HTTP_GET_VERSION,
    HTTP_GET_CONSUL_SELF,
)
# The documents that name HTTP API servers (see above).
API_DOCUMENTS: tuple[Probe, ...] = (HTTP_GET_VERSION, HTTP_GET_CONSUL_SELF)
# Probes sent only to complete a match: the API documents, and a Prometheus exporter's
# metrics (its page names it, its metrics its version).
FOLLOW_UP_PROBES: tuple[Probe, ...] = (*API_DOCUMENTS, HTTP_GET_METRICS)
UDP_PROBES: tuple[Probe, ...] = (
    DNS_VERSION_UDP,
    NTP_CLIENT,
    SNMP_V3_DISCOVERY,
    SNMP_V2C_SYSDESCR,
    SIP_OPTIONS_UDP,
    MEMCACHED_VERSION_UDP,
    TFTP_READ,
    STUN_BINDING,
    NETBIOS_NBSTAT,
    RPCBIND_DUMP_UDP,
    COAP_DISCOVER,
    MDNS_QUERY,
    LLMNR_QUERY,
    IKE_SA_INIT,
    RADIUS_ACCESS_REQUEST,
    SSDP_SEARCH,
    QUIC_VERSION_PROBE,
    DTLS_CLIENT_HELLO,
)

# The plain protocol's name -> its name over implicit TLS (RFC 8314 and the registry).
TLS_SERVICES = {
    "http": "https",
    "imap": "imaps",
    "pop3": "pop3s",
    "smtp": "submissions",
    "ftp": "ftps",
    "ldap": "ldaps",
    "telnet": "telnets",
    "sip": "sips",
    "mqtt": "secure-mqtt",
    "amqp": "amqps",
    "rtsp": "rtsps",
    "domain": "domain-s",
    "irc": "ircs",
    "nntp": "nntps",
    "ipp": "ipps",
}

# Services whose well-known ports are TLS from the first byte: try TLS first there.
_TLS_FIRST = frozenset(
    {*TLS_SERVICES.values(), "ircs", "nntps", "https-alt", "ftps-data", "imap4-ssl",
     "pop3-ssl", "ssl", "tls", "smtps", "mqtts", "pcsync-https"}
)  # fmt: skip


# Other registry spellings of implicit-TLS services, and the plain protocol inside.
_TLS_ALIASES = {
    "smtps": "smtp",
    "https-alt": "http",
    "imap4-ssl": "imap",
    "pop3-ssl": "pop3",
    "mqtts": "mqtt",
    "pcsync-https": "http",
}
_PLAIN = {tls: plain for plain, tls in TLS_SERVICES.items()} | _TLS_ALIASES


def tls_name(service: str) -> str:
    """Return the name of ``service`` when it runs inside implicit TLS."""
    return TLS_SERVICES.get(service, service)


def plain_name(service: str) -> str | None:
    """The plain protocol an implicit-TLS service wraps (``imaps`` -> ``imap``), else None."""
    return _PLAIN.get(service.lower())


def wants_tls_first(service: str | None) -> bool:
    """Whether the registry's ``service`` is conventionally TLS from the first byte."""
    return service is not None and service.lower() in _TLS_FIRST


def probes_for(service: str | None, transport: str = "tcp") -> tuple[Probe, ...]:
    """Return every probe for ``transport``, those for ``service`` first."""
    pool = TCP_PROBES if transport == "tcp" else UDP_PROBES
    if service is None:
        return pool
    wanted = service.lower()
    plain = next((p for p, s in TLS_SERVICES.items() if s == wanted), wanted)
    first = tuple(p for p in pool if wanted in p.services or plain in p.services)
    return first + tuple(p for p in pool if p not in first)


@functools.cache
def _udp_order(service: str | None) -> tuple[Probe, ...]:
    return probes_for(service, "udp")


def udp_payload(service: str | None, attempt: int, host: str) -> bytes:
    """The datagram a UDP port scan sends on ``attempt`` (0, 1, ...) to a ``service`` port.

    A UDP server answers only a request it understands, and silence reads as
    open|filtered. The first datagram is the request likely for the port (the registry's
    ``service``), each re-send the next of :data:`UDP_PROBES`: a DNS server on a port the
    registry knows nothing of answers the first one, an NTP server the second.
    """
    order = _udp_order(service and service.lower())
    return order[attempt % len(order)].build(host)


def matchers_for(probe: Probe) -> tuple[Matcher, ...]:
    """Return the matchers that judge ``probe``'s answer: its own, then the greetings."""
    own = tuple(MATCHERS[name] for name in probe.matchers)
    if probe.transport != "tcp":
        return own
    return own + tuple(m for m in BANNER_MATCHERS if m not in own)
