"""Accounts: password hashes, recipient routing, the brute-force guard, configuration errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from portkit._errors import ConfigError
from portkit.cli import main
from portkit.host.apps.mail import LoginGuard, MailAccounts, hash_password, verify_password
from portkit.host.apps.mail._auth import shown

FAST = {"n": 16, "r": 1, "p": 1}


def test_hash_is_salted_and_verifies() -> None:
    first, second = hash_password("pw", **FAST), hash_password("pw", **FAST)
    assert first != second  # a fresh salt each time
    assert first.startswith("scrypt$16$1$1$")
    assert verify_password("pw", first)
    assert not verify_password("pW", first)


@pytest.mark.parametrize(
    "bad", ["plain", "scrypt$x$8$1$AA==$AA==", "scrypt$15$8$1$AA==$AA==", "md5$1$2$3$4$5"]
)
def test_bad_hashes_are_config_errors(bad: str) -> None:
    with pytest.raises(ConfigError, match="password hash"):
        MailAccounts(users={"alice": bad})


def test_routing_local_unknown_and_catch_all() -> None:
    accounts = MailAccounts(
        users={"alice": hash_password("x", **FAST)}, domains=frozenset({"Example.TEST."})
    )
    assert accounts.route("Alice@example.test") == "alice"
    assert accounts.route("bob@example.test") is None  # local domain, no such user
    assert accounts.route("alice@elsewhere.test") is None  # relaying
    dev = MailAccounts(users={"alice": hash_password("x", **FAST)}, catch_all="alice")
    assert dev.route("anyone@anywhere.example") == "alice"
    with pytest.raises(ConfigError, match="catch_all user 'bob'"):
        MailAccounts(users={"alice": hash_password("x", **FAST)}, catch_all="bob")


def _fail(guard: LoginGuard, source: str, user: str) -> float:
    attempt = guard.attempt(source, user)
    assert attempt is not None
    return guard.finish(attempt, ok=False)


def test_guard_delays_then_locks_out_per_address_and_account() -> None:
    now = [0.0]
    guard = LoginGuard(
        free_failures=2, lockout_after=4, lockout=60, base_delay=1, clock=lambda: now[0]
    )
    # Answers to one address are spaced out: the third failure waits 1 s, the fourth 2 s
    # after that, as if one client had tried them one after the other.
    assert [_fail(guard, "10.0.0.1", "alice") for _ in range(3)] == [0.0, 0.0, 1.0]
    assert not guard.locked("10.0.0.1", "alice")
    assert _fail(guard, "10.0.0.1", "alice") == 3.0
    assert guard.locked("10.0.0.1", "alice")
    assert guard.attempt("10.0.0.1", "Alice") is None  # even the right password is not checked
    assert guard.attempt("10.0.0.1", "bob") is not None  # other accounts are not locked
    assert guard.attempt("10.0.0.2", "alice") is not None  # nor other addresses
    now[0] = 61
    assert not guard.locked("10.0.0.1", "alice")
    assert guard.attempt("10.0.0.1", "alice") is not None


def test_guard_reserves_before_the_check() -> None:
    guard = LoginGuard(lockout_after=5, base_delay=0)
    reserved = [guard.attempt("10.0.0.1", "alice") for _ in range(39)]
    assert sum(a is not None for a in reserved) == 5  # the other 34 are never checked
    for attempt in reserved:
        if attempt is not None:
            guard.finish(attempt, ok=False)
    assert guard.attempt("10.0.0.1", "alice") is None


def test_guard_success_resets_only_its_own_account() -> None:
    guard = LoginGuard(lockout_after=10, address_lockout_after=100, base_delay=0)
    for _round in range(4):
        for _ in range(9):
            if (attempt := guard.attempt("10.0.0.1", "alice")) is not None:
                guard.finish(attempt, ok=False)
        own = guard.attempt("10.0.0.1", "mallory")
        assert own is not None
        guard.finish(own, ok=True)  # the attacker's own account
    assert guard.locked("10.0.0.1", "alice")


def test_guard_counts_every_account_of_an_address() -> None:
    guard = LoginGuard(lockout_after=10, address_lockout_after=6, base_delay=0)
    for n in range(6):
        _fail(guard, "2001:db8::1", f"user{n}")
    assert guard.locked("2001:db8::1")
    assert guard.attempt("2001:db8::2", "alice") is None  # the same /64
    assert guard.attempt("2001:db8:0:1::1", "alice") is not None


def test_shown_escapes_and_cuts_client_values() -> None:
    assert shown("alice") == "'alice'"
    text = shown("a\r\nb" + "x" * 1_000_000)
    assert "\n" not in text
    assert "\r" not in text
    assert len(text) < 200
    assert text.endswith("(1000004 characters)")


def test_hash_password_helper_reads_stdin() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "portkit.host.apps.mail", "hash-password"],
        input=b"s3cret\n",
        capture_output=True,
        timeout=60,
        check=True,
    )
    encoded = result.stdout.decode().strip()
    assert verify_password("s3cret", encoded)


def test_bad_mail_config_is_one_line_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "serve.toml"
    config.write_text(
        '[apps.mail]\nkind = "pop3"\nlisten = ["127.0.0.1:0"]\nusers = ["alice:plaintext"]\n'
    )
    assert main(["serve", "--check", str(config)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err
    assert "users" in err
    assert "password hash" in err
    config.write_text('[apps.mail]\nkind = "imap"\nlisten = ["127.0.0.1:0"]\ncert = "nope.pem"\n')
    assert main(["serve", "--check", str(config)]) == 2
    assert "cert: needs tls = starttls or implicit" in capsys.readouterr().err
    config.write_text('[apps.mail]\nkind = "imap"\nlisten = ["127.0.0.1:0"]\ntls = "sometimes"\n')
    assert main(["serve", "--check", str(config)]) == 2
    assert "tls: must be one of none, starttls, implicit" in capsys.readouterr().err


def test_postmaster_without_domain_is_routed() -> None:
    users = {"alice": hash_password("x", **FAST), "postmaster": hash_password("x", **FAST)}
    accounts = MailAccounts(users=users, domains=frozenset({"example.test"}))
    assert accounts.route("Postmaster") == "postmaster"  # RFC 5321 4.5.1: no domain
    assert accounts.route("POSTMASTER@example.test") == "postmaster"
    assert accounts.route("postmaster@elsewhere.test") is None  # still no relaying
    assert accounts.route("alice") is None  # only postmaster may come without a domain
    alone = MailAccounts(users={"alice": users["alice"]}, domains=frozenset({"example.test"}))
    assert alone.route("Postmaster") == "alice"  # no postmaster user: the first user
    chosen = MailAccounts(users=users, postmaster="alice")
    assert chosen.route("postmaster") == "alice"
    with pytest.raises(ConfigError, match="postmaster user 'bob'"):
        MailAccounts(users=users, postmaster="bob")


def test_unknown_postmaster_names_its_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "serve.toml"
    config.write_text(
        '[apps.mail]\nkind = "smtp"\nlisten = ["127.0.0.1:0"]\n'
        f'users = ["alice:{hash_password("x", **FAST)}"]\npostmaster = "bob"\n'
    )
    assert main(["serve", "--check", str(config)]) == 2
    assert "postmaster: 'bob' is not a configured user" in capsys.readouterr().err
