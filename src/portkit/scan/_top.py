"""The ``--top N`` ordering: ports most likely to have an application listening, first.

portkit compiles this ordering itself, in three tiers (see docs/scan.md, "--top"):

1. Ports ranked by the number of IPv4 hosts Rapid7's Project Sonar found answering on
   them in 2018 (80: 144 million, 443: 88 million, 8080: 28 million, 8443: 8 million;
   Rapid7 blog, "Happy HaXmas: Year-End Internet Scanning Observations", 2019-01-04).
2. The services Rapid7's National Exposure Index (2016, 2017) chose as the most
   prevalent TCP services on the internet, in portkit's own order: remote access and
   mail first, then file sharing, databases and caches, then the rest.
3. Development servers' default ports, in the order of their frameworks' usage in the
   Stack Overflow Developer Survey 2023 ("Web frameworks and technologies"; the
   survey's data is published under the Open Database License): Node.js, React,
   Express and Next.js serve on 3000, Angular on 4200, ASP.NET Core on 5000/5001, Vue.js
   (through Vite) on 5173, Flask on 5000, Spring Boot on 8080, Django on 8000.
4. The remaining ports of the registry's "usually" notes (registry/_conventional.py,
   COMMON_USE), in port order: Hugo's 1313, Backstage's 7007, a third HTTP alternate
   8082, ...
5. Every other port in ascending order: first the well-known range 1-1023, then
   1024-65535. So ``--top 65535`` is every port, and every N is reproducible.

The UDP ordering is tier 2 only (DNS, NTP, SNMP, ... as the NEI and common practice list
them), followed by the same ascending fill. No figures here come from nmap's data files.
"""

from __future__ import annotations

from functools import cache

__all__ = ["TOP_TCP_HEAD", "TOP_UDP_HEAD", "top_ports"]

# Tier 1 (measured counts, Rapid7 2018), tier 2 (NEI service list), tier 3 (development
# servers). A port listed in an earlier tier keeps that place.
_TCP_TIERS: tuple[int, ...] = (
    # tier 1
    80, 443, 8080, 8443,
    # tier 2: remote access
    22, 23, 3389, 5900, 2222, 2323,
    # mail (SMTP, submission, POP3, IMAP and their TLS ports)
    25, 587, 465, 110, 995, 143, 993,
    # file transfer and sharing, name services, Microsoft RPC
    21, 53, 445, 139, 135, 111, 2049, 389, 636,
    # databases, caches and queues
    3306, 1433, 1521, 5432, 27017, 6379, 11211, 9200, 5984, 5672, 9092,
    # VPN, VoIP, printing, network management, directory, web alternatives
    1723, 5060, 5061, 631, 9100, 161, 179, 88, 464, 119, 563, 873, 8000, 8008, 8081,
    8888, 8880, 3000, 5000, 7547, 1900, 5353, 9000, 9090, 10000, 49152,
    # tier 3: development servers, by their frameworks' usage (Stack Overflow 2023)
    3000, 4200, 5000, 5001, 5173, 8080, 8000,
)  # fmt: skip
TOP_TCP_HEAD: tuple[int, ...] = tuple(dict.fromkeys(_TCP_TIERS))

TOP_UDP_HEAD: tuple[int, ...] = (
    53, 123, 161, 137, 138, 67, 68, 69, 500, 4500, 1900, 5353, 514, 520, 1812, 1813,
    5060, 11211, 111, 2049, 162, 389, 1434, 19, 17, 7,
)  # fmt: skip


@cache
def _ordering(transport: str) -> tuple[int, ...]:
    if transport == "tcp":
        from portkit.registry._conventional import COMMON_USE

        # tier 4: what the "usually" notes name, in port order
        noted = sorted(port for port, proto, _what in COMMON_USE if proto == "tcp")
        listed = TOP_TCP_HEAD + tuple(noted)
    else:
        listed = TOP_UDP_HEAD
    head = tuple(dict.fromkeys(listed))  # a port listed twice keeps its first place
    seen = set(head)
    rest = [p for p in range(1, 65536) if p not in seen]
    return head + tuple(rest)


def top_ports(n: int, transport: str = "tcp") -> tuple[int, ...]:
    """Return the first ``n`` ports of the ``--top`` ordering for ``transport``.

    The ordering holds each of 1-65535 exactly once; ``n`` above 65535 gives them all.
    """
    if n < 1:
        from portkit._errors import PortSpecError

        raise PortSpecError(f"--top must be at least 1, not {n}")
    return _ordering("udp" if transport == "udp" else "tcp")[:n]
