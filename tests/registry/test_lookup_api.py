"""``Registry.lookup``: the same answers from Python as ``portkit lookup`` prints."""

import pytest

from portkit import LookupNotFound
from portkit.registry import default_registry


def test_port_range_and_name_answers() -> None:
    reg = default_registry()
    port = reg.lookup("443/tcp")
    assert port.kind == "port"
    assert [s.name for s in port.matches] == ["https"]
    ranged = reg.lookup("20-25", "tcp")
    assert ranged.kind == "range"
    assert {"ftp", "ssh", "telnet", "smtp"} <= {s.name for s in ranged.matches}
    named = reg.lookup("imap")
    assert [(s.name, s.port) for s in named.matches] == [("imap", 143)]
    assert 993 in {s.port for s in named.related}


@pytest.mark.parametrize(
    ("query", "quoted"),
    [("70000", "70000"), ("25-20", "'25-20'"), ("no-such-service-x", "no-such-service-x")],
)
def test_bad_queries_raise_lookup_not_found(query: str, quoted: str) -> None:
    with pytest.raises(LookupNotFound, match=quoted):
        default_registry().lookup(query)
