"""Mail accounts: hashed passwords, address routing, and the brute-force guard.

Passwords are never stored in the clear: the configuration holds
``scrypt$<n>$<r>$<p>$<salt>$<hash>`` strings made by :func:`hash_password` (salted scrypt,
RFC 7914), so a leaked configuration does not leak passwords. This rules out APOP (RFC 1939
section 7), which needs the plain secret on the server; POP3 offers SASL PLAIN instead.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from portkit._errors import ConfigError

__all__ = [
    "LOG_VALUE_MAX",
    "Attempt",
    "LoginGuard",
    "MailAccounts",
    "hash_password",
    "shown",
    "verify_password",
]

_SCRYPT_N = 2**14
_SCRYPT_R = 8
_SCRYPT_P = 1
_SALT_BYTES = 16
_HASH_BYTES = 32


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def hash_password(
    password: str, *, n: int = _SCRYPT_N, r: int = _SCRYPT_R, p: int = _SCRYPT_P
) -> str:
    """Hash ``password`` with a fresh salt for the mail configuration.

    Returns:
        ``scrypt$<n>$<r>$<p>$<salt base64>$<hash base64>``.
    """
    salt = secrets.token_bytes(_SALT_BYTES)
    digest = hashlib.scrypt(
        password.encode("utf-8"), salt=salt, n=n, r=r, p=p, dklen=_HASH_BYTES, maxmem=2**26
    )
    return f"scrypt${n}${r}${p}${_b64(salt)}${_b64(digest)}"


def _parse_hash(encoded: str) -> tuple[int, int, int, bytes, bytes]:
    parts = encoded.split("$")
    if len(parts) != 6 or parts[0] != "scrypt":
        raise ConfigError(f"password hash must look like 'scrypt$n$r$p$salt$hash', not {encoded!r}")
    try:
        n, r, p = int(parts[1]), int(parts[2]), int(parts[3])
        salt = base64.b64decode(parts[4], validate=True)
        digest = base64.b64decode(parts[5], validate=True)
    except ValueError:
        raise ConfigError(f"password hash has a bad number or base64 field: {encoded!r}") from None
    if n < 2 or n & (n - 1) or not 1 <= r <= 64 or not 1 <= p <= 16 or not digest:
        raise ConfigError(f"password hash has out-of-range scrypt parameters: {encoded!r}")
    return n, r, p, salt, digest


def verify_password(password: str, encoded: str) -> bool:
    """Whether ``password`` matches a hash made by :func:`hash_password` (constant time)."""
    n, r, p, salt, digest = _parse_hash(encoded)
    candidate = hashlib.scrypt(
        password.encode("utf-8"), salt=salt, n=n, r=r, p=p, dklen=len(digest), maxmem=2**26
    )
    return hmac.compare_digest(candidate, digest)


@dataclass(frozen=True, slots=True, kw_only=True)
class MailAccounts:
    """Who may log in, and which recipient addresses are delivered to whom.

    Args:
        users: user name -> password hash (from :func:`hash_password`).
        domains: the domains this server receives mail for; ``alice@<domain>`` goes to user
            ``alice``. Mail for any other domain is relaying and refused.
        catch_all: for development (the MailHog/Mailpit role): every recipient, whatever the
            domain, is delivered to this user, and nothing is ever relayed onwards.
        postmaster: the user who receives mail for ``<Postmaster>`` and
            ``postmaster@<domain>`` (RFC 5321 4.5.1); by default a user named
            ``postmaster``, else the first user configured.
    """

    users: Mapping[str, str]
    domains: frozenset[str] = frozenset({"localhost"})
    catch_all: str | None = None
    postmaster: str | None = None

    def __post_init__(self) -> None:
        for name, encoded in self.users.items():
            _parse_hash(encoded)
            if name != name.lower():
                raise ConfigError(f"mail user names are lower case, not {name!r}")
        if self.catch_all is not None and self.catch_all not in self.users:
            raise ConfigError(f"catch_all user {self.catch_all!r} is not a configured user")
        if self.postmaster is not None and self.postmaster not in self.users:
            raise ConfigError(f"postmaster user {self.postmaster!r} is not a configured user")
        object.__setattr__(self, "domains", frozenset(d.lower().rstrip(".") for d in self.domains))

    def check(self, user: str, password: str) -> bool:
        """Whether ``user``/``password`` is a valid login (unknown users cost the same time)."""
        encoded = self.users.get(user.lower())
        if encoded is None:
            verify_password(password, _DUMMY_HASH)
            return False
        return verify_password(password, encoded)

    def postmaster_user(self) -> str | None:
        """The user who receives postmaster mail (``None`` only when there are no users)."""
        if self.postmaster is not None:
            return self.postmaster
        if "postmaster" in self.users:
            return "postmaster"
        return next(iter(self.users), None)

    def is_local_domain(self, domain: str) -> bool:
        """Whether mail for ``domain`` is delivered here (not relayed)."""
        return domain.lower().rstrip(".") in self.domains

    def route(self, address: str) -> str | None:
        """The local user for a recipient address, or ``None`` if nobody here receives it."""
        local, at, domain = address.rpartition("@")
        if not at:
            local, domain = address, ""
        if self.catch_all is not None:
            return self.catch_all
        # RFC 5321 4.5.1: "Postmaster" (any case) must be accepted without a domain, and
        # at every domain served here.
        if local.lower() == "postmaster" and (not at or self.is_local_domain(domain)):
            return self.postmaster_user()
        if not self.is_local_domain(domain):
            return None
        user = local.lower()
        return user if user in self.users else None


# Verifying against a fixed hash for unknown users keeps the timing of "no such user" and
# "wrong password" alike.
_DUMMY_HASH = (
    "scrypt$16384$8$1$AAAAAAAAAAAAAAAAAAAAAA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
)


#: Longest user name (or other client-chosen value) written to the log, in characters.
LOG_VALUE_MAX = 64


def shown(value: str, limit: int = LOG_VALUE_MAX) -> str:
    """``value`` fit for one log line: escaped (no CR/LF/controls) and cut to ``limit``.

    A client chooses its user name: a 1 MB name, or one with a line break, must not become
    a 1 MB or forged log line.
    """
    if len(value) <= limit:
        return repr(value)
    return f"{value[:limit]!r}... ({len(value)} characters)"


def _address_key(source: str) -> str:
    """The unit a guard counts: an IPv4 address, or the /64 of an IPv6 address.

    One IPv6 host usually holds a whole /64: counting single addresses would give it 2**64
    fresh counters.
    """
    try:
        address = ipaddress.ip_address(source)
    except ValueError:
        return source
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


@dataclass(slots=True)
class _Counter:
    """Failures (times, and for an address which account each was for) and reservations."""

    failures: deque[tuple[float, str]] = field(default_factory=deque)
    in_flight: int = 0
    locked_until: float = 0.0

    def load(self) -> int:
        return len(self.failures) + self.in_flight


@dataclass(frozen=True, slots=True)
class Attempt:
    """A login attempt reserved by :meth:`LoginGuard.attempt`; give it back to ``finish``."""

    address: str
    account: str


class LoginGuard:
    """Counts failed logins per (address, account) and per address; slows, then locks out.

    - An attempt is reserved with :meth:`attempt` *before* the slow password check and
      given back with :meth:`finish`: at most ``lockout_after`` guesses for one account
      (``address_lockout_after`` for all accounts) from one address are ever in flight or
      recorded together, however many connections send them at once.
    - After ``lockout_after`` failures for one account within ``window`` seconds, that
      address may not log in to that account for ``lockout`` seconds, even with the right
      password; after ``address_lockout_after`` failures for any accounts, to none.
    - A success proves the password of one account only: it forgets that account's
      failures from that address, nothing else.
    - After ``free_failures`` failures from an address, each failure is answered after a
      delay that doubles up to ``max_delay``. Answers to one address are spaced out in
      turn: parallel connections wait as long as one connection trying serially.

    Thread-safe: the pop3 and imap sessions check passwords in worker threads.
    Shared by every session of one application.
    """

    #: Addresses and (address, account) pairs remembered at most (bounded memory).
    MAX_RECORDS = 10_000

    def __init__(
        self,
        *,
        free_failures: int = 3,
        lockout_after: int = 10,
        address_lockout_after: int | None = None,
        window: float = 600.0,
        lockout: float = 900.0,
        base_delay: float = 0.5,
        max_delay: float = 8.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.free_failures = free_failures
        self.lockout_after = lockout_after
        self.address_lockout_after = (
            address_lockout_after if address_lockout_after is not None else 3 * lockout_after
        )
        self.window = window
        self.lockout = lockout
        self.base_delay = base_delay
        self.max_delay = max_delay
        self._clock = clock
        self._lock = threading.Lock()
        self._pairs: dict[tuple[str, str], _Counter] = {}
        self._addresses: dict[str, _Counter] = {}
        self._answer_at: dict[str, float] = {}  # when the next failure may be answered

    def _counter(self, table: dict[Any, _Counter], key: Any, now: float) -> _Counter:
        counter = table.get(key)
        if counter is None:
            if len(table) >= self.MAX_RECORDS:
                self._forget(table, now)
            counter = table[key] = _Counter()
        if counter.locked_until and now >= counter.locked_until:
            counter.locked_until = 0.0
            counter.failures.clear()  # the lockout was served: start afresh
        while counter.failures and now - counter.failures[0][0] >= self.window:
            counter.failures.popleft()
        return counter

    def _forget(self, table: dict[Any, _Counter], now: float) -> None:
        for key in [
            k
            for k, c in table.items()
            if not c.in_flight
            and now >= c.locked_until
            and (not c.failures or now - c.failures[-1][0] >= self.window)
        ]:
            del table[key]
        # Still full (many addresses failing at once): the oldest unlocked entries go first.
        for locked in (False, True):
            for key in [k for k, c in table.items() if not c.in_flight]:
                if len(table) < self.MAX_RECORDS:
                    return
                if (now < table[key].locked_until) == locked:
                    del table[key]

    def attempt(self, source: str, user: str) -> Attempt | None:
        """Reserve a login attempt, or ``None``: refused without checking the password."""
        address, account = _address_key(source), user.lower()[:256]
        now = self._clock()
        with self._lock:
            whole = self._counter(self._addresses, address, now)
            if now < whole.locked_until or whole.load() >= self.address_lockout_after:
                return None
            pair = self._counter(self._pairs, (address, account), now)
            if now < pair.locked_until or pair.load() >= self.lockout_after:
                return None
            pair.in_flight += 1
            whole.in_flight += 1
            return Attempt(address, account)

    def finish(self, attempt: Attempt, *, ok: bool) -> float:
        """Record how a reserved attempt ended; return the delay (s) before answering."""
        now = self._clock()
        with self._lock:
            pair = self._counter(self._pairs, (attempt.address, attempt.account), now)
            whole = self._counter(self._addresses, attempt.address, now)
            pair.in_flight = max(0, pair.in_flight - 1)
            whole.in_flight = max(0, whole.in_flight - 1)
            if ok:
                pair.failures.clear()
                kept = [f for f in whole.failures if f[1] != attempt.account]
                whole.failures = deque(kept)
                return 0.0
            pair.failures.append((now, attempt.account))
            whole.failures.append((now, attempt.account))
            if len(pair.failures) >= self.lockout_after:
                pair.locked_until = now + self.lockout
            if len(whole.failures) >= self.address_lockout_after:
                whole.locked_until = now + self.lockout
            return self._delay(attempt.address, len(whole.failures), now)

    def refused(self, source: str) -> float:
        """The delay before answering an attempt :meth:`attempt` refused."""
        now = self._clock()
        with self._lock:
            return max(0.0, self._answer_at.get(_address_key(source), now) - now)

    def _delay(self, address: str, failures: int, now: float) -> float:
        extra = failures - self.free_failures
        delay = 0.0 if extra <= 0 else min(self.max_delay, self.base_delay * 2 ** (extra - 1))
        # Space the answers to one address out: each waits for the one before it.
        answer_at = max(now, self._answer_at.get(address, now)) + delay
        if answer_at > now:
            if len(self._answer_at) >= self.MAX_RECORDS:
                for key in [k for k, t in self._answer_at.items() if t <= now]:
                    del self._answer_at[key]
            self._answer_at[address] = answer_at
        return answer_at - now

    def locked(self, source: str, user: str | None = None) -> bool:
        """Whether ``source`` is locked out now (of ``user``'s account, or of every one)."""
        address = _address_key(source)
        now = self._clock()
        with self._lock:
            if now < self._counter(self._addresses, address, now).locked_until:
                return True
            if user is None:
                return False
            return now < self._counter(self._pairs, (address, user.lower()[:256]), now).locked_until

    def sources(self) -> Iterable[str]:
        """The addresses with recorded failures (for status output)."""
        with self._lock:
            return [k for k, c in self._addresses.items() if c.failures]
