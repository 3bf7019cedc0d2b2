"""Target parsing: addresses, CIDR, octet ranges, names, files, exclusions."""

import contextlib
import ipaddress
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from portkit._errors import TargetError
from portkit.scan._targets import (
    Target,
    iter_targets,
    parse_target,
    parse_targets,
    read_target_file,
    resolve_targets,
)


def addresses(*texts: str, exclude: tuple[str, ...] = ()) -> list[str]:
    specs = parse_targets(texts)
    return [t.address for t in iter_targets(specs, exclude=[parse_target(e) for e in exclude])]


def test_single_addresses() -> None:
    assert addresses("127.0.0.1", "::1", "[::2]") == ["127.0.0.1", "::1", "::2"]


def test_cidr_includes_every_address() -> None:
    got = addresses("10.1.2.0/30")
    assert got == ["10.1.2.0", "10.1.2.1", "10.1.2.2", "10.1.2.3"]
    assert addresses("10.1.2.77/32") == ["10.1.2.77"]
    assert addresses("fd00::/126") == ["fd00::", "fd00::1", "fd00::2", "fd00::3"]


def test_cidr_with_host_bits_is_accepted() -> None:
    assert addresses("10.1.2.3/31") == ["10.1.2.2", "10.1.2.3"]


def test_octet_ranges() -> None:
    assert addresses("127.0.0.1-3") == ["127.0.0.1", "127.0.0.2", "127.0.0.3"]
    assert addresses("10.0-1.5.7") == ["10.0.5.7", "10.1.5.7"]
    assert len(addresses("10.0.0.*")) == 256


def test_exclusions_and_duplicates() -> None:
    got = addresses("127.0.0.1-6", "127.0.0.2", exclude=("127.0.0.3", "127.0.0.4/31"))
    assert got == ["127.0.0.1", "127.0.0.2", "127.0.0.6"]
    assert addresses("127.0.0.1-4", exclude=("127.0.0.2-3",)) == ["127.0.0.1", "127.0.0.4"]


def test_expansion_is_lazy() -> None:
    it = iter_targets(parse_targets(["10.0.0.0/8"]))
    assert next(it) == Target(address="10.0.0.0")
    assert next(it) == Target(address="10.0.0.1")


@pytest.mark.parametrize(
    ("text", "quoted"),
    [
        ("10.0.0.0/33", "'33'"),
        ("::1/129", "'129'"),
        ("10.0.0.300", "10.0.0.300"),
        ("10.0.0.5-1", "5-1"),
        ("300.1.1.1", "300.1.1.1"),
        ("no spaces allowed", "no spaces allowed"),
        ("1::2::3", "1::2::3"),
        ("bad_name!", "bad_name!"),
    ],
)
def test_bad_targets_quote_the_input(text: str, quoted: str) -> None:
    with pytest.raises(TargetError) as info:
        parse_target(text)
    assert quoted in str(info.value)
    assert str(info.value)[0].islower()


def test_empty_target_list_is_an_error() -> None:
    with pytest.raises(TargetError, match="no targets"):
        parse_targets([])


def test_too_large_is_an_error() -> None:
    with pytest.raises(TargetError, match="more than"):
        parse_target("10.0.0.0/7")


def test_target_file(tmp_path: Path) -> None:
    path = tmp_path / "targets.txt"
    path.write_text("# lab hosts\n127.0.0.1 127.0.0.2  # two\n\n::1\n", encoding="utf-8")
    assert read_target_file(str(path)) == ["127.0.0.1", "127.0.0.2", "::1"]


def test_missing_target_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(TargetError, match="cannot read target file"):
        read_target_file(str(tmp_path / "absent"))


async def test_names_resolve_to_addresses() -> None:
    specs = await resolve_targets(parse_targets(["localhost", "127.0.0.9"]))
    got = list(iter_targets(specs))
    assert Target(address="127.0.0.1", hostname="localhost") in got
    assert got[-1] == Target(address="127.0.0.9")


# An unresolvable name: tests/test_network_errors.py (inside a namespace, no DNS traffic).


@given(st.ip_addresses())
def test_any_address_parses_to_itself(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> None:
    assert addresses(str(ip)) == [str(ip)]


@given(st.integers(0, 32), st.ip_addresses(v=4))
def test_cidr_size_matches_prefix(prefix: int, ip: ipaddress.IPv4Address) -> None:
    text = f"{ip}/{prefix}"
    if 1 << (32 - prefix) > (1 << 24):
        with pytest.raises(TargetError):
            parse_target(text)
    else:
        spec = parse_target(text)
        assert spec.size == 1 << (32 - prefix)
        assert str(ip) in spec


@given(st.text(max_size=40))
def test_arbitrary_text_parses_or_raises_target_error(text: str) -> None:
    with contextlib.suppress(TargetError):
        parse_target(text)
