"""Property tests: any text gives an Endpoint or an EndpointError, nothing else."""

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from portkit import EndpointError
from portkit.endpoint import Endpoint, parse_endpoint, parse_host_service

MAX_PORT = 65535

# Text biased towards the characters that matter to endpoint syntax.
_SYNTAX = st.sampled_from([*":/[]@?#%.\\-09azAZ \t\x00ü８", "://", "http", "ssh", "xn--"])
endpointish = st.lists(_SYNTAX, max_size=30).map("".join)
schemes = st.one_of(st.none(), st.sampled_from(["http", "https", "ssh", "imaps", "ftp", "x"]))


def _check(result: Endpoint) -> None:
    assert 0 <= result.port <= MAX_PORT
    assert result.host
    assert result.port_source in {"explicit", "scheme-default", "registry"}
    if result.port_source == "explicit":
        assert result.explicit_port == result.port
    else:
        assert result.explicit_port is None
        assert result.default_port == result.port
    assert "\n" not in result.explain()


@given(text=st.text(max_size=60), scheme=schemes)
@example(text="http://[", scheme=None)
@example(text="[]:1", scheme=None)
@example(text="a:" + "9" * 5000, scheme=None)
@example(text="\x00", scheme="http")
def test_arbitrary_text_raises_only_endpoint_error(text: str, scheme: str | None) -> None:
    try:
        result = parse_endpoint(text, default_scheme=scheme)
    except EndpointError as exc:
        message = str(exc)
    else:
        _check(result)
        return
    assert "\n" not in message


@given(text=endpointish, scheme=schemes)
def test_endpoint_like_text_raises_only_endpoint_error(text: str, scheme: str | None) -> None:
    try:
        result = parse_endpoint(text, default_scheme=scheme)
    except EndpointError:
        pass
    else:
        _check(result)


@given(host=st.text(max_size=20), service=st.text(max_size=12))
def test_two_argument_form_raises_only_endpoint_error(host: str, service: str) -> None:
    try:
        result = parse_host_service(host, service)
    except EndpointError:
        pass
    else:
        _check(result)


@given(port=st.integers(min_value=0, max_value=MAX_PORT), zeros=st.integers(0, 3))
def test_any_valid_port_parses_in_every_form(port: int, zeros: int) -> None:
    written = "0" * zeros + str(port)
    assert parse_endpoint(f"example.com:{written}").port == port
    assert parse_endpoint(f"[::1]:{written}").port == port
    assert parse_host_service("example.com", written).port == port
    url = parse_endpoint(f"http://example.com:{written}/")
    assert url.port == port
    assert url.explicit_port == (None if port == 80 else port)


@given(port=st.integers(min_value=MAX_PORT + 1, max_value=10**30))
def test_any_port_above_65535_fails_in_every_form(port: int) -> None:
    for text in (f"example.com:{port}", f"http://example.com:{port}/", f"ssh://h:{port}"):
        with pytest.raises(EndpointError, match="port must be 0-65535"):
            parse_endpoint(text)
