"""Accounts: password hashes, recipient routing, the brute-force guard, configuration errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from portkit._errors import ConfigError
from portkit.cli import main
from portkit.host.apps.mail import LoginGuard, MailAccounts, hash_password, verify_password

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


def test_guard_delays_then_locks_out_per_source() -> None:
    now = [0.0]
    guard = LoginGuard(
        free_failures=2, lockout_after=4, lockout=60, base_delay=1, clock=lambda: now[0]
    )
    assert [guard.failed("10.0.0.1") for _ in range(3)] == [0.0, 0.0, 1.0]
    assert not guard.locked("10.0.0.1")
    assert guard.failed("10.0.0.1") == 2.0
    assert guard.locked("10.0.0.1")
    assert not guard.locked("10.0.0.2")  # other sources are not affected
    now[0] = 61
    assert not guard.locked("10.0.0.1")


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
