"""Port specifications: lists, ranges, all, names, transport prefixes, --top."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from portkit._errors import PortSpecError
from portkit.scan._ports import PortSet, parse_ports, port_set_from_top
from portkit.scan._top import TOP_TCP_HEAD, top_ports


def test_list_and_range() -> None:
    assert parse_ports("22,80,443") == PortSet(tcp=(22, 80, 443))
    assert parse_ports("8000-8003, 22") == PortSet(tcp=(22, 8000, 8001, 8002, 8003))


def test_duplicates_and_order_are_normalised() -> None:
    assert parse_ports("443,22,443,20-23").tcp == (20, 21, 22, 23, 443)


def test_dash_alone_is_every_port() -> None:
    ports = parse_ports("-").tcp
    assert ports[0] == 1
    assert ports[-1] == 65535
    assert len(ports) == 65535


def test_open_ended_ranges() -> None:
    assert parse_ports("65530-").tcp == (65530, 65531, 65532, 65533, 65534, 65535)
    assert parse_ports("-3").tcp == (1, 2, 3)


def test_prefixes_are_sticky() -> None:
    got = parse_ports("T:80,443,U:53,161,T:22")
    assert got.tcp == (22, 80, 443)
    assert got.udp == (53, 161)


def test_unprefixed_items_go_to_every_default_transport() -> None:
    got = parse_ports("53", transports=("tcp", "udp"))
    assert got == PortSet(tcp=(53,), udp=(53,))


@pytest.mark.parametrize(
    ("spec", "quoted"),
    [
        ("70000", "70000"),
        ("5-1", "5-1"),
        ("1-70000", "70000"),
        ("22,,80", "22,,80"),
        ("", "empty"),
        ("X:80", "X:"),
        ("8o", "8o"),
        ("1.5", "1.5"),
    ],
)
def test_bad_specs_quote_the_input(spec: str, quoted: str) -> None:
    with pytest.raises(PortSpecError, match=r"^[a-z-]") as info:
        parse_ports(spec)
    assert quoted in str(info.value)
    assert "\n" not in str(info.value)


def test_top_ordering_starts_with_measured_tier_and_covers_all() -> None:
    assert top_ports(4) == (80, 443, 8080, 8443)
    every = top_ports(65535)
    assert sorted(every) == list(range(1, 65536))
    assert top_ports(len(TOP_TCP_HEAD)) == TOP_TCP_HEAD


def test_top_port_set_is_sorted_per_transport() -> None:
    got = port_set_from_top(10, transports=("tcp", "udp"))
    assert got.tcp == tuple(sorted(top_ports(10)))
    assert 53 in got.udp
    assert len(got) == 20


def test_top_zero_is_an_error() -> None:
    with pytest.raises(PortSpecError, match="--top must be at least 1, not 0"):
        top_ports(0)


@given(st.lists(st.integers(0, 65535), min_size=1, max_size=30))
def test_any_list_of_valid_ports_round_trips(ports: list[int]) -> None:
    assert parse_ports(",".join(map(str, ports))).tcp == tuple(sorted(set(ports)))


@given(st.integers(0, 65535), st.integers(0, 65535))
def test_ranges_are_inclusive_or_rejected(a: int, b: int) -> None:
    spec = f"{a}-{b}"
    if a > b:
        with pytest.raises(PortSpecError, match="reversed"):
            parse_ports(spec)
    else:
        got = parse_ports(spec).tcp
        # "0-N" includes 0 when written explicitly.
        assert got == tuple(range(a, b + 1))


@given(st.text(max_size=40))
def test_arbitrary_text_parses_or_raises_port_spec_error(text: str) -> None:
    try:
        got = parse_ports(text)
    except PortSpecError:
        return
    except Exception as exc:  # the registry may reject a name only with our error
        pytest.fail(f"unexpected {type(exc).__name__}: {exc}")
    assert all(0 <= p <= 65535 for p in got.tcp + got.udp)


def test_service_names_come_from_the_registry() -> None:
    assert parse_ports("http,ssh,imaps").tcp == (22, 80, 993)
    assert parse_ports("U:domain").udp == (53,)


def test_unknown_service_name_is_an_error() -> None:
    with pytest.raises(PortSpecError, match="unknown service 'nosuchservice'"):
        parse_ports("nosuchservice")
