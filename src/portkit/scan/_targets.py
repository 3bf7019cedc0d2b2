"""Scan targets: addresses, CIDR blocks, octet ranges, host names, target files.

Parsing (:func:`parse_target`) is pure and checks everything it can without the
network; host names are resolved afterwards by :func:`resolve_targets`, and
:func:`iter_targets` then expands the specs lazily, so a /16 costs no memory up front.

Accepted forms, one per argument (or per whitespace-separated word of a ``-iL`` file):

- ``127.0.0.1``, ``::1``, ``[::1]``                 one address
- ``10.0.0.0/24``, ``fd00::/120``                   a CIDR block (host bits may be set)
- ``127.0.0.1-20``, ``10.0-3.1.*``                  IPv4 octet ranges (``*`` is 0-255)
- ``localhost``, ``db.example.com``                 a host name, resolved to its addresses
"""

from __future__ import annotations

import bisect
import ipaddress
import itertools
import re
import socket
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

from portkit._errors import TargetError
from portkit.scan._loopless import running_loop

__all__ = [
    "MAX_ADDRESSES",
    "Target",
    "TargetSpec",
    "TargetTable",
    "iter_targets",
    "parse_target",
    "parse_targets",
    "read_target_file",
    "resolve_targets",
]

# One spec may expand to at most this many addresses (a /16, or 16 hosts x a /12 of v6
# would be absurd on one machine); larger scans are partitioned, see ARCHITECTURE.md.
MAX_ADDRESSES = 1 << 24
_DEDUPE_LIMIT = 1 << 16

_IPV4_RANGE_OCTET = re.compile(r"\*|\d{1,3}(?:-\d{1,3})?")
_HOSTNAME = re.compile(
    r"(?=.{1,253}\.?$)(?:[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?\.)*"
    r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?\.?"
)

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True, kw_only=True)
class Target:
    """One address to scan, with the name the user gave for it, if any."""

    address: str
    hostname: str | None = None

    @property
    def family(self) -> int:
        """``socket.AF_INET`` or ``socket.AF_INET6``."""
        return socket.AF_INET6 if ":" in self.address else socket.AF_INET


@dataclass(frozen=True, slots=True, kw_only=True)
class TargetSpec:
    """One parsed target argument; exactly one of its forms is set."""

    text: str
    network: Network | None = None
    octets: tuple[tuple[int, int], ...] | None = None  # IPv4 octet ranges, inclusive
    hostname: str | None = None
    addresses: tuple[str, ...] = field(default=())  # a host name's, once resolved

    @property
    def size(self) -> int:
        """How many addresses this spec expands to (a name: its resolved addresses)."""
        if self.network is not None:
            return self.network.num_addresses
        if self.octets is not None:
            total = 1
            for low, high in self.octets:
                total *= high - low + 1
            return total
        return len(self.addresses)

    def __contains__(self, address: object) -> bool:
        if not isinstance(address, str):
            return False
        ip = ipaddress.ip_address(address)
        if self.network is not None:
            return ip.version == self.network.version and ip in self.network
        if self.octets is not None:
            if ip.version != 4:
                return False
            parts = ip.packed
            return all(low <= b <= high for b, (low, high) in zip(parts, self.octets, strict=True))
        return str(ip) in self.addresses

    def addresses_iter(self) -> Iterator[str]:
        """Yield this spec's addresses in ascending order (a name: in resolver order)."""
        if self.network is not None:
            net = self.network
            if net.num_addresses == 1:
                yield str(net.network_address)
                return
            # Every address of the block, network and broadcast included, as nmap does.
            base = int(net.network_address)
            cls = type(net.network_address)
            for offset in range(net.num_addresses):
                yield str(cls(base + offset))
        elif self.octets is not None:
            ranges = [range(low, high + 1) for low, high in self.octets]
            for a, b, c, d in itertools.product(*ranges):
                yield f"{a}.{b}.{c}.{d}"
        else:
            yield from self.addresses

    def address_at(self, offset: int) -> str:
        """The address :meth:`addresses_iter` yields at ``offset`` (0 <= offset < size)."""
        if self.network is not None:
            return str(
                type(self.network.network_address)(int(self.network.network_address) + offset)
            )
        if self.octets is not None:
            parts: list[int] = []
            for low, high in reversed(self.octets):  # mixed radix, the last octet fastest
                offset, digit = divmod(offset, high - low + 1)
                parts.append(low + digit)
            return ".".join(str(p) for p in reversed(parts))
        return self.addresses[offset]


def _parse_network(text: str) -> Network:
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        address, _, prefix = text.partition("/")
        try:
            ip = ipaddress.ip_address(address.strip("[]"))
        except ValueError:
            raise TargetError(f"not an address in CIDR block {text!r}") from None
        raise TargetError(
            f"prefix length must be 0-{ip.max_prefixlen}, not {prefix!r} in {text!r}"
        ) from None


def _parse_octets(text: str) -> tuple[tuple[int, int], ...] | None:
    parts = text.split(".")
    if len(parts) != 4 or not all(_IPV4_RANGE_OCTET.fullmatch(p) for p in parts):
        return None
    octets: list[tuple[int, int]] = []
    for part in parts:
        if part == "*":
            octets.append((0, 255))
            continue
        low_text, _, high_text = part.partition("-")
        low, high = int(low_text), int(high_text or low_text)
        if low > 255 or high > 255:
            raise TargetError(f"address octet must be 0-255, not {part!r} in {text!r}")
        if low > high:
            raise TargetError(f"octet range {part!r} is reversed (start > end) in {text!r}")
        octets.append((low, high))
    return tuple(octets)


def parse_target(text: str) -> TargetSpec:
    """Parse one target argument without touching the network.

    Raises:
        TargetError: the text is no address, block, range or valid host name, or it
            expands to more than :data:`MAX_ADDRESSES` addresses.
    """
    stripped = text.strip()
    if not stripped:
        raise TargetError("empty target")
    spec: TargetSpec
    if "/" in stripped:
        spec = TargetSpec(text=stripped, network=_parse_network(stripped))
    else:
        bare = stripped[1:-1] if stripped.startswith("[") and stripped.endswith("]") else stripped
        try:
            ip = ipaddress.ip_address(bare)
        except ValueError:
            octets = _parse_octets(stripped)
            if octets is not None:
                spec = TargetSpec(text=stripped, octets=octets)
            elif ":" in bare or re.fullmatch(r"[\d.]+", bare):
                raise TargetError(f"not a valid IP address: {stripped!r}") from None
            elif _HOSTNAME.fullmatch(bare):
                spec = TargetSpec(text=stripped, hostname=bare.rstrip(".").lower())
            else:
                raise TargetError(
                    f"not an address, CIDR block, range or host name: {stripped!r}"
                ) from None
        else:
            spec = TargetSpec(text=stripped, network=ipaddress.ip_network(ip))
    if spec.size > MAX_ADDRESSES:
        raise TargetError(
            f"target {stripped!r} has {spec.size} addresses, more than {MAX_ADDRESSES}"
        )
    return spec


def parse_targets(texts: Iterable[str]) -> tuple[TargetSpec, ...]:
    """Parse every target argument; an empty list is an error."""
    specs = tuple(parse_target(t) for t in texts)
    if not specs:
        raise TargetError("no targets given (name at least one address, block or host)")
    return specs


def read_target_file(path: str) -> list[str]:
    """Return the targets listed in ``path`` (``-`` is stdin): words, ``#`` comments."""
    try:
        if path == "-":
            import sys

            content = sys.stdin.read()
        else:
            with open(path, encoding="utf-8") as handle:
                content = handle.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise TargetError(f"cannot read target file {path!r}: {exc}") from None
    words: list[str] = []
    for line in content.splitlines():
        words.extend(line.partition("#")[0].split())
    return words


def _lookup(name: str, family: int) -> tuple[str, ...]:
    """The addresses ``name`` resolves to, deduplicated (blocking: run it in a thread
    when anything else should go on meanwhile)."""
    try:
        infos = socket.getaddrinfo(name, None, family=family, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        # Only here: portkit.endpoint is a start-up cost a scan of addresses never needs.
        from portkit.endpoint import network_error

        raise network_error(exc, name) from None
    seen: dict[str, None] = {}
    for info in infos:
        seen[str(ipaddress.ip_address(str(info[4][0]).partition("%")[0]))] = None
    return tuple(seen)


async def resolve_targets(
    specs: Sequence[TargetSpec], *, family: int = socket.AF_UNSPEC
) -> tuple[TargetSpec, ...]:
    """Return ``specs`` with every host name resolved (all its addresses, deduplicated).

    The names are looked up at once, each in a thread (the event loop's executor, as
    ``loop.getaddrinfo`` does; under :func:`~portkit.scan._loopless.run_loopless`, a
    pool of this call's own when there are several).

    Raises:
        ResolveError: a name does not resolve.
    """
    names = list({s.hostname for s in specs if s.hostname is not None and not s.addresses})
    families = itertools.repeat(family)
    loop = running_loop()
    if loop is not None and names:
        import asyncio

        lookups = (loop.run_in_executor(None, _lookup, n, family) for n in names)
        found = dict(zip(names, await asyncio.gather(*lookups), strict=True))
    elif len(names) > 1:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor() as pool:  # the loop's default executor's size
            found = dict(zip(names, pool.map(_lookup, names, families), strict=True))
    else:
        found = dict(zip(names, map(_lookup, names, families), strict=True))
    out = []
    for spec in specs:
        if spec.hostname is not None and not spec.addresses:
            spec = TargetSpec(
                text=spec.text, hostname=spec.hostname, addresses=found[spec.hostname]
            )
        out.append(spec)
    return tuple(out)


def iter_targets(
    specs: Sequence[TargetSpec], *, exclude: Sequence[TargetSpec] = ()
) -> Iterator[Target]:
    """Yield each address of ``specs`` once, in the order given, minus ``exclude``.

    Names must be resolved first (:func:`resolve_targets`).
    """
    # Duplicates are dropped while remembering them stays cheap (65,536 addresses);
    # beyond that an address named twice is scanned twice, as with nmap.
    dedupe = sum(s.size for s in specs) <= _DEDUPE_LIMIT
    seen: set[str] = set()
    for spec in specs:
        for address in spec.addresses_iter():
            if (dedupe and address in seen) or any(address in ex for ex in exclude):
                continue
            if dedupe:
                seen.add(address)
            yield Target(address=address, hostname=spec.hostname)


class TargetTable:
    """The addresses of a scan by index, in :func:`iter_targets` order, without a list.

    A /8 is 16.7 million addresses: as :class:`Target` objects that is gigabytes, so the
    table computes the address at an index from the specs instead (a bisection over
    their sizes). Small scans (where :func:`iter_targets` drops duplicates) are listed.
    An excluded address keeps its index: :meth:`at` gives ``None`` for it, so a scan's
    indices, and the shards cut from them, do not depend on what is excluded.
    """

    def __init__(self, specs: Sequence[TargetSpec], *, exclude: Sequence[TargetSpec] = ()) -> None:
        self._specs = tuple(specs)
        self._exclude = tuple(exclude)
        total = sum(s.size for s in self._specs)
        self._listed: tuple[Target, ...] | None = None
        if total <= _DEDUPE_LIMIT:
            self._listed = tuple(iter_targets(self._specs, exclude=self._exclude))
            total = len(self._listed)
        self._starts = list(itertools.accumulate((s.size for s in self._specs), initial=0))
        self._len = total

    def __len__(self) -> int:
        return self._len

    def at(self, index: int) -> Target | None:
        """The target at ``index``; ``None`` when that address is excluded."""
        if self._listed is not None:
            return self._listed[index]
        if not 0 <= index < self._len:
            raise IndexError(index)
        which = bisect.bisect_right(self._starts, index) - 1
        spec = self._specs[which]
        address = spec.address_at(index - self._starts[which])
        if any(address in ex for ex in self._exclude):
            return None
        return Target(address=address, hostname=spec.hostname)
