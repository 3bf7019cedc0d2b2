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
import secrets
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from portkit._errors import ConfigError

__all__ = [
    "LoginGuard",
    "MailAccounts",
    "hash_password",
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
    """

    users: Mapping[str, str]
    domains: frozenset[str] = frozenset({"localhost"})
    catch_all: str | None = None

    def __post_init__(self) -> None:
        for name, encoded in self.users.items():
            _parse_hash(encoded)
            if name != name.lower():
                raise ConfigError(f"mail user names are lower case, not {name!r}")
        if self.catch_all is not None and self.catch_all not in self.users:
            raise ConfigError(f"catch_all user {self.catch_all!r} is not a configured user")
        object.__setattr__(self, "domains", frozenset(d.lower().rstrip(".") for d in self.domains))

    def check(self, user: str, password: str) -> bool:
        """Whether ``user``/``password`` is a valid login (unknown users cost the same time)."""
        encoded = self.users.get(user.lower())
        if encoded is None:
            verify_password(password, _DUMMY_HASH)
            return False
        return verify_password(password, encoded)

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
        if not self.is_local_domain(domain):
            return None
        user = local.lower()
        return user if user in self.users else None


# Verifying against a fixed hash for unknown users keeps the timing of "no such user" and
# "wrong password" alike.
_DUMMY_HASH = (
    "scrypt$16384$8$1$AAAAAAAAAAAAAAAAAAAAAA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
)


@dataclass(slots=True)
class _Record:
    failures: list[float] = field(default_factory=list)
    locked_until: float = 0.0


class LoginGuard:
    """Slows down and then locks out login attempts from one source address.

    After ``free_failures`` failures within ``window`` seconds each further failure is
    answered after a delay that doubles up to ``max_delay``; after ``lockout_after`` failures
    the source is locked out for ``lockout`` seconds: even a correct password fails.
    Shared by every session of one application, keyed by the peer's IP address.
    """

    def __init__(
        self,
        *,
        free_failures: int = 3,
        lockout_after: int = 10,
        window: float = 600.0,
        lockout: float = 900.0,
        base_delay: float = 0.5,
        max_delay: float = 8.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.free_failures = free_failures
        self.lockout_after = lockout_after
        self.window = window
        self.lockout = lockout
        self.base_delay = base_delay
        self.max_delay = max_delay
        self._clock = clock
        self._records: dict[str, _Record] = {}

    def _record(self, source: str) -> _Record:
        now = self._clock()
        rec = self._records.setdefault(source, _Record())
        rec.failures = [t for t in rec.failures if now - t < self.window]
        if len(self._records) > 10_000:  # bounded memory: forget sources with nothing recent
            for key in [k for k, v in self._records.items() if not v.failures and k != source]:
                del self._records[key]
        return rec

    def locked(self, source: str) -> bool:
        """Whether ``source`` is locked out right now."""
        return self._clock() < self._record(source).locked_until

    def failed(self, source: str) -> float:
        """Record a failed login; return the delay (seconds) before answering it."""
        rec = self._record(source)
        now = self._clock()
        rec.failures.append(now)
        count = len(rec.failures)
        if count >= self.lockout_after:
            rec.locked_until = now + self.lockout
        extra = count - self.free_failures
        if extra <= 0:
            return 0.0
        return float(min(self.max_delay, self.base_delay * 2 ** (extra - 1)))

    def succeeded(self, source: str) -> None:
        """Forget the failures of ``source`` after a good login."""
        self._records.pop(source, None)

    def sources(self) -> Iterable[str]:
        """The sources with recorded failures (for status output)."""
        return [k for k, v in self._records.items() if v.failures]
