"""OS errors met while reaching a peer land on one branch of the error tree, everywhere.

``connect``, ``resolve`` and ``scan`` share :func:`portkit.endpoint.network_error`; the
command-line test runs all three against one unresolvable name and wants one exit code.
"""

from __future__ import annotations

import errno
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from bench._netns import namespace

from portkit._errors import (
    EXIT_FAILURE,
    ConnectionRefused,
    ConnectTimeout,
    NetworkError,
    ResolveError,
)
from portkit.endpoint import network_error


def test_unresolvable_name_is_a_resolve_error() -> None:
    exc = socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    err = network_error(exc, "nosuch.example", 80)
    assert type(err) is ResolveError
    assert err.exit_code == EXIT_FAILURE
    assert str(err) == "cannot resolve 'nosuch.example': name or service not known"


def test_refused_and_timeout_keep_their_exit_codes() -> None:
    refused = network_error(ConnectionRefusedError(errno.ECONNREFUSED, "Refused"), "::1", 9)
    assert type(refused) is ConnectionRefused
    assert str(refused) == "connection to [::1]:9 refused: nothing listens there"
    late = network_error(TimeoutError(), "127.0.0.1", 9, timeout=0.25)
    assert type(late) is ConnectTimeout
    assert str(late) == "no answer from 127.0.0.1:9 within 0.25 s"


def test_no_route_says_so_and_other_errors_keep_the_system_reason() -> None:
    unreach = OSError(errno.ENETUNREACH, "Network is unreachable")
    err = network_error(unreach, "127.0.0.1", 80)
    assert type(err) is NetworkError
    assert str(err) == (
        "cannot connect to 127.0.0.1:80: network is unreachable (no route to it from this machine)"
    )
    other = network_error(OSError(errno.EPERM, "Operation not permitted"), "h", 1, action="send to")
    assert str(other) == "cannot send to h:1: operation not permitted"


@pytest.mark.root
@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to create a network namespace")
def test_connect_resolve_and_scan_agree_on_an_unresolvable_name() -> None:
    # A fresh namespace with loopback down whose resolv.conf names only 127.0.0.1: the
    # query cannot leave, so the name fails to resolve without any traffic.
    commands = [
        ["connect", "-q", "nosuch.portkit.test:80"],
        ["resolve", "nosuch.portkit.test:80", "--addresses"],
        ["scan", "nosuch.portkit.test", "-p", "80"],
    ]
    with namespace("pk-oserr-", loopback=False) as name:
        etc = Path("/etc/netns") / name  # `ip netns exec` bind-mounts files found here
        etc.mkdir(parents=True)
        try:
            (etc / "resolv.conf").write_text("nameserver 127.0.0.1\n", encoding="ascii")
            runs = [
                subprocess.run(
                    ["ip", "netns", "exec", name, sys.executable, "-m", "portkit", *argv],
                    stdin=subprocess.DEVNULL,
                    capture_output=True,
                    text=True,
                    timeout=60,
                    check=False,
                )
                for argv in commands
            ]
        finally:
            shutil.rmtree(etc)
    for argv, proc in zip(commands, runs, strict=True):
        assert (proc.returncode, proc.stdout) == (EXIT_FAILURE, ""), (argv, proc.stderr)
        assert proc.stderr.startswith("portkit: cannot resolve 'nosuch.portkit.test': "), argv
        assert proc.stderr.count("\n") == 1, (argv, proc.stderr)
