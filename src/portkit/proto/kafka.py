"""Apache Kafka brokers, via an ApiVersions request (Kafka protocol guide).

Every request is a 32-bit size, then the request header (API key, API version,
correlation ID, client ID as a 16-bit-length string) and body. ApiVersions (key 18)
version 0 has an empty body; the answer is a size, our correlation ID, an error code and
the array of (API key, min version, max version) the broker supports -- one of them
ApiVersions itself.
"""

from __future__ import annotations

from portkit.proto._match import NEED_MORE, Match, Matcher, NoMatch, Probe, Verdict

__all__ = ["KAFKA", "KAFKA_API_VERSIONS"]

CORRELATION = b"pkka"
_API_VERSIONS = 18
_CLIENT = b"portkit"


def _request(host: str) -> bytes:
    header = (_API_VERSIONS.to_bytes(2, "big") + (0).to_bytes(2, "big") + CORRELATION
              + len(_CLIENT).to_bytes(2, "big") + _CLIENT)  # fmt: skip
    return len(header).to_bytes(4, "big") + header


def _judge(data: bytes, final: bool) -> Verdict:
    if len(data) >= 8 and data[4:8] != CORRELATION:
        return NoMatch(reason="not our correlation ID")
    if len(data) < 4:
        return NoMatch(reason="short") if final else NEED_MORE
    size = int.from_bytes(data[:4], "big")
    if not 10 <= size <= 16384:
        return NoMatch(reason="bad size")
    if len(data) < 4 + size:
        return NoMatch(reason="short response") if final else NEED_MORE
    body = data[8 : 4 + size]
    error = int.from_bytes(body[:2], "big")
    count = int.from_bytes(body[2:6], "big")
    if count * 6 != len(body) - 6:
        return NoMatch(reason="API list does not fill the response")
    keys = {int.from_bytes(body[6 + 6 * i : 8 + 6 * i], "big") for i in range(count)}
    if _API_VERSIONS not in keys:
        return NoMatch(reason="ApiVersions missing from its own answer")
    extra = f"{count} APIs" + (f"; error {error}" if error else "")
    return Match(service="kafka", product="Apache Kafka", extra=extra)


KAFKA = Matcher(name="kafka", judge=_judge, max_bytes=16388)

KAFKA_API_VERSIONS = Probe(
    name="kafka-api-versions",
    build=_request,
    matchers=("kafka",),
    services=("kafka", "xmlipcregsvc"),
)
