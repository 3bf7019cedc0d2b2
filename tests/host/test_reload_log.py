"""What a reload logs: each application started, stopped or restarted, and what moved."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from portkit.host._config import parse_config
from tests.host._helpers import running_host
from tests.host.test_lifecycle import free_port


def _config(port: int, *, extra: str = "") -> str:
    return (
        f'[apps.site]\nkind = "web"\nlisten = "127.0.0.1:{port}"\nroot = "."\n{extra}'
        '[apps.echo]\nkind = "echo"\nlisten = "127.0.0.1:0"\n'
    )


async def test_an_address_change_is_logged_as_a_restart_with_both_addresses(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    first, second = free_port(), free_port()
    while second == first:
        second = free_port()
    async with running_host(_config(first), tmp_path) as host:
        caplog.set_level(logging.INFO, logger="portkit.host")
        new = parse_config(_config(second, extra="listing = true\n"), base_dir=tmp_path)
        assert await host.reload(new)
        assert host.bound("site") == [("127.0.0.1", second)]
    lines = [r.getMessage() for r in caplog.records if r.name == "portkit.host"]
    assert (
        f"reload: [apps.site] restarted: listen 127.0.0.1:{first} -> 127.0.0.1:{second}; "
        "options listing"
    ) in lines
    assert "reloaded: 0 started, 0 stopped, 1 restarted, 1 unchanged" in lines
