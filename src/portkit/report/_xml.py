"""nmap's XML output format (``-oX``), so tools that read nmap XML read portkit's.

Elements and attributes follow nmap's DTD (nmap.dtd, xmloutputversion 1.05): nmaprun,
scaninfo, verbose, debugging, host, status, address, hostnames, ports, extraports,
extrareasons, port, state, service, runstats, finished, hosts. portkit does no host
discovery, so every host is "up" with reason "user-set", as with nmap's ``-Pn``.

The head is written at ``begin``, each host as it is done (as nmap writes a host when
its scan finishes; a scan in one process has them all at the end), and runstats at
``end``, which also runs on Ctrl-C (then with ``exit="error"``), so the document is
always well-formed.
"""

from __future__ import annotations

import re
import time
from html import escape

from portkit.report._base import (
    CollectingReport,
    HostTable,
    ScanInfo,
    ScanSummary,
    expected_of,
    port_ranges,
)
from portkit.results import PortResult, nmap_service

__all__ = ["STYLESHEET", "NmapXmlReport"]

# Where Debian's nmap package (and nmap's own installer) puts the stylesheet.
STYLESHEET = "file:///usr/share/nmap/nmap.xsl"
XML_OUTPUT_VERSION = "1.05"


# Characters an XML attribute value must not hold literally (XML 1.0 section 3.3.3:
# whitespace would be normalised to spaces). html.escape does & < > " and '.
_ATTR_WHITESPACE = str.maketrans({"\n": "&#10;", "\r": "&#13;", "\t": "&#9;"})
# XML 1.0 section 2.2: characters outside Char may not appear at all, not even as a
# character reference (C0 controls other than tab, LF and CR; surrogates; U+FFFE and
# U+FFFF). A server's banner may hold them: they are written as \xNN / \uNNNN text.
_NOT_XML = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _not_xml(found: re.Match[str]) -> str:
    code = ord(found.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def _attr(value: object) -> str:
    text = _NOT_XML.sub(_not_xml, str(value))
    return '"' + escape(text, quote=True).translate(_ATTR_WHITESPACE) + '"'


def _attrs(**values: object) -> str:
    return "".join(
        f" {key.rstrip('_')}={_attr(value)}" for key, value in values.items() if value is not None
    )


def _timestr(epoch: float) -> str:
    return time.strftime("%a %b %d %H:%M:%S %Y", time.localtime(epoch))


def _service(result: PortResult) -> str:
    return "<service" + _attrs(**nmap_service(result.identified, expected_of(result))) + "/>"


class NmapXmlReport(CollectingReport):
    """Writes an nmap-compatible XML document, host by host."""

    def _w(self, text: str) -> None:
        self.out.write(text)

    def begin(self, info: ScanInfo) -> None:
        super().begin(info)
        self._w('<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE nmaprun>\n')
        self._w(f'<?xml-stylesheet href="{STYLESHEET}" type="text/xsl"?>\n')
        self._w(f"<!-- portkit {info.version} scan initiated {_timestr(info.start)} -->\n")
        self._w(
            "<nmaprun"
            + _attrs(
                scanner="portkit",
                args=info.args,
                start=int(info.start),
                startstr=_timestr(info.start),
                version=info.version,
                xmloutputversion=XML_OUTPUT_VERSION,
            )
            + ">\n"
        )
        for protocol, ports in (("tcp", info.tcp_ports), ("udp", info.udp_ports)):
            if ports:
                kind = "udp" if protocol == "udp" else info.scan_type
                self._w(
                    "<scaninfo"
                    + _attrs(
                        type=kind,
                        protocol=protocol,
                        numservices=len(ports),
                        services=port_ranges(ports),
                    )
                    + "/>\n"
                )
        self._w('<verbose level="0"/>\n<debugging level="0"/>\n')
        self.out.flush()

    def write_host(self, table: HostTable, done: float) -> None:
        assert self.info is not None
        start, end = int(self.info.start), int(done)  # nmap's: when the host's scan ended
        family = "ipv6" if ":" in table.address else "ipv4"
        self._w(f'<host starttime="{start}" endtime="{end}">')
        self._w('<status state="up" reason="user-set" reason_ttl="0"/>\n')
        self._w("<address" + _attrs(addr=table.address, addrtype=family) + "/>\n<hostnames>\n")
        if table.hostname:
            self._w("<hostname" + _attrs(name=table.hostname, type="user") + "/>\n")
        self._w("</hostnames>\n<ports>")
        for transport, state, count in table.extra():
            self._w("<extraports" + _attrs(state=state.value, count=count) + ">\n")
            for reason, n in table.extra_reasons(transport, state):
                self._w("<extrareasons" + _attrs(reason=reason, count=n, proto=transport) + "/>\n")
            self._w("</extraports>\n")
        for r in table.ports():
            self._w(
                "<port"
                + _attrs(protocol=r.transport, portid=r.port)
                + "><state"
                + _attrs(state=r.state.value, reason=r.reason, reason_ttl=0)
                + "/>"
                + _service(r)
                + "</port>\n"
            )
        self._w("</ports>\n</host>\n")

    def finish(self, summary: ScanSummary) -> None:
        end = int(summary.end)
        count = self.totals.hosts
        noun = "IP address" if count == 1 else "IP addresses"
        text = (
            f"portkit done at {_timestr(summary.end)}; {count} {noun} ({count} host"
            f"{'s' if count != 1 else ''} up) scanned in {summary.elapsed:.2f} seconds"
        )
        self._w(
            "<runstats><finished"
            + _attrs(
                time=end,
                timestr=_timestr(summary.end),
                summary=text,
                elapsed=f"{summary.elapsed:.2f}",
                exit="error" if summary.interrupted else "success",
                errormsg="interrupted" if summary.interrupted else None,
            )
            + "/>"
            + "<hosts"
            + _attrs(up=count, down=0, total=count)
            + "/>\n</runstats>\n</nmaprun>\n"
        )
