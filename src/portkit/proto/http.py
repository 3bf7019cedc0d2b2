"""HTTP/1.x servers, and the JSON APIs (Elasticsearch, OpenSearch, CouchDB) served over it;
servers that speak only HTTP/2.

The probe is a minimal HTTP/1.0 GET (RFC 9112 §3): HTTP/1.0 makes the server close the
connection after the response, so the end of the stream marks the end of the body.

A server that speaks only HTTP/2 (cleartext "prior knowledge", or inside TLS) answers
the same GET with its connection preface instead (RFC 9113 §3.4: a SETTINGS frame
first), usually followed by GOAWAY: :data:`HTTP2` recognises that preface.
"""

from __future__ import annotations

import json
import re

from portkit.endpoint._authority import bracket_host
from portkit.proto._match import NEED_MORE, Match, Matcher, NoMatch, Probe, Verdict, expect_prefix
from portkit.proto._text import parse_head, split_product
from portkit.proto.httpapps import classify, is_exposition

__all__ = [
    "HTTP",
    "HTTP2",
    "HTTP_GET",
    "HTTP_GET_CONSUL_SELF",
    "HTTP_GET_METRICS",
    "HTTP_GET_VERSION",
    "http_get_request",
]

USER_AGENT = "portkit"
MAX_BODY_BYTES = 8192
_MAX_BYTES = 8192 + MAX_BODY_BYTES  # a head and a body

_STATUS_LINE = re.compile(r"^HTTP/(\d)\.(\d) (\d{3})(?: |$)")

# Server header product names, as people know them.
_PRODUCTS = {
    "apache": "Apache httpd",
    "nginx": "nginx",
    "openresty": "OpenResty",
    "lighttpd": "lighttpd",
    "microsoft-iis": "Microsoft IIS httpd",
    "caddy": "Caddy",
    "gunicorn": "gunicorn",
    "uvicorn": "uvicorn",
    "werkzeug": "Werkzeug httpd",
    "jetty": "Jetty",
    "envoy": "envoy",
    "tornadoserver": "TornadoServer",
    "twistedweb": "TwistedWeb httpd",
    "cherrypy": "CherryPy httpd",
    "simplehttp": "SimpleHTTPServer",
    "basehttp": "BaseHTTPServer",
    "hypercorn": "hypercorn",
    "mini_httpd": "mini_httpd",
    "thttpd": "thttpd",
    "boa": "Boa httpd",
}


def http_get_request(host: str, path: str = "/") -> bytes:
    """Return the bytes of the GET probe for ``host``."""
    host_field = bracket_host(host)
    return (
        f"GET {path} HTTP/1.0\r\nHost: {host_field}\r\nUser-Agent: {USER_AGENT}\r\n"
        "Accept: */*\r\n\r\n"
    ).encode("ascii", "replace")


def _server_product(server: str) -> tuple[str | None, str | None, str | None]:
    if not server:
        return None, None, None
    # "Python/3.11 aiohttp/3.9.1": the framework, not the language, is the product.
    for token in server.split():
        framework, _, number = token.partition("/")
        if framework.lower() == "aiohttp":
            return "aiohttp", number or None, None
    name, version, rest = split_product(server)
    return _PRODUCTS.get(name.lower(), name), version, rest


def _json_api(body: bytes) -> tuple[str, str | None] | None:
    """Recognise the JSON banners of search and document stores at ``/``."""
    try:
        doc = json.loads(body.decode("utf-8"))
    except ValueError:
        return None
    if not isinstance(doc, dict):
        return None
    version = doc.get("version")
    if isinstance(version, dict) and "cluster_name" in doc:
        found = version.get("number")
        number = found if isinstance(found, str) else None
        if version.get("distribution") == "opensearch":
            return "OpenSearch", number
        return "Elasticsearch", number
    if doc.get("couchdb") == "Welcome":
        return "CouchDB", version if isinstance(version, str) else None
    # Elasticsearch 8 with its security on (the default) answers an anonymous GET / with
    # 401 and this error document, which names no version.
    error = doc.get("error")
    if isinstance(error, dict) and error.get("type") == "security_exception":
        return "Elasticsearch", None
    return None


def _judge(data: bytes, final: bool) -> Verdict:
    early = expect_prefix(data, [b"HTTP/"])
    if early is not None:
        return early
    line_end = data.find(b"\n")
    if line_end < 0:
        return NoMatch(reason="status line too long") if len(data) > 256 else NEED_MORE
    status = _STATUS_LINE.match(data[:line_end].decode("latin-1").rstrip("\r"))
    if status is None:
        return NoMatch(reason="not an HTTP status line")
    head = parse_head(data)
    if head is None:
        return NoMatch(reason="header too long") if final or len(data) > 8192 else NEED_MORE
    product, version, extra = _server_product(head.headers.get("server", ""))
    if product is None and head.headers.get("x-powered-by"):
        # No Server header (Express, Next.js, PHP apps): the framework may say who it is.
        product, version, _ = split_product(head.headers["x-powered-by"])
    if product in (None, "Varnish"):
        # Varnish answers for itself as "Server: Varnish" (or not at all) and names its
        # version in the comment of its Via entry (RFC 9110 §7.6.3): "1.1 varnish
        # (Varnish/7.1)". A Via entry behind another Server names a cache in the path,
        # not what answers, so only then.
        via = _VARNISH_VIA.search(head.headers.get("via", ""))
        if via is not None:
            product, version = "Varnish http accelerator", via.group(1)
    body = data[head.body_offset :]
    length = head.headers.get("content-length", "")
    wanted = min(int(length), MAX_BODY_BYTES) if length.isdigit() else None
    content_type = head.headers.get("content-type", "")
    if wanted is None and "json" in content_type:
        wanted = MAX_BODY_BYTES  # no length: the end of the stream ends the body
    if is_exposition(content_type):
        # Prometheus metrics name the exporter's version far into the text: as much of
        # it as the matcher may keep (its length is no help, it has none).
        wanted = max(_MAX_BYTES - head.body_offset, 0)
    if wanted is not None and len(body) < wanted and not final:
        return NEED_MORE  # the whole (bounded) body may name the product
    # Judge the declared body only: bytes after it must not change the verdict.
    body = body[: MAX_BODY_BYTES if wanted is None else wanted]
    if head.headers.get("x-elastic-product") == "Elasticsearch":
        product = "Elasticsearch"
    if "json" in content_type:
        api = _json_api(body)
        if api is not None:
            product, version = api
            extra = None
    code = status.group(3)
    extra = f"status {code}" + (f"; {extra}" if extra else "")
    if wanted is not None:
        # Only from a body we waited for: a title must not depend on how bytes arrived.
        title = _TITLE.search(body)
        if title:
            text = " ".join(title.group(1).decode("utf-8", "replace").split())[:80]
            extra += f'; title "{text}"'

    if _MONGODB_OVER_HTTP in body:
        return Match(service="mongodb", product="MongoDB", extra="answered an HTTP request")
    special = classify(head, body)
    if special is not None:
        return Match(
            service=special.service,
            product=special.product or product,
            version=special.version if special.product else version,
            extra=extra,
        )
    if _PLAIN_TO_TLS.search(body):
        # nginx, Apache and others say so when plain HTTP reaches their TLS port.
        return Match(
            service="https", product=product, version=version, extra=f"{extra}; plain HTTP refused"
        )
    return Match(service="http", product=product, version=version, extra=extra)


_VARNISH_VIA = re.compile(r"\(Varnish/(\d[\w.]*)\)")
_TITLE = re.compile(rb"<title[^>]*>([^<]{1,300})</title>", re.IGNORECASE)

# What mongod sends back to an HTTP request on its native port.
_MONGODB_OVER_HTTP = b"trying to access MongoDB over HTTP"
_PLAIN_TO_TLS = re.compile(
    rb"plain HTTP request was sent to HTTPS port|speaking plain HTTP to an SSL-enabled"
    rb"|Client sent an HTTP request to an HTTPS server"
)


HTTP = Matcher(name="http", judge=_judge, max_bytes=_MAX_BYTES)

# RFC 9113 §4.1: a frame header is Length (24 bits), Type (8), Flags (8), a reserved
# bit and the Stream Identifier (31). §6.5: SETTINGS is type 0x4, on stream 0, its
# payload a multiple of 6 octets (identifier 16 bits, value 32 bits).
_FRAME_HEADER = 9
_SETTINGS = 0x4
_MAX_SETTINGS = 16  # more parameters than any server sends: not a preface


def _judge_http2(data: bytes, final: bool) -> Verdict:
    if len(data) < _FRAME_HEADER:
        # The first byte of a preface is the top of a small length: always zero.
        if data and data[0] != 0:
            return NoMatch(reason="not an HTTP/2 frame")
        return NoMatch(reason="shorter than a frame header") if final else NEED_MORE
    length = int.from_bytes(data[:3], "big")
    kind, flags, stream = data[3], data[4], int.from_bytes(data[5:9], "big") & 0x7FFFFFFF
    if kind != _SETTINGS or flags != 0 or stream != 0:
        return NoMatch(reason="the first frame is not SETTINGS")
    if length % 6 or length > 6 * _MAX_SETTINGS:
        return NoMatch(reason="a SETTINGS payload of the wrong size")
    if len(data) < _FRAME_HEADER + length:
        return NoMatch(reason="SETTINGS frame cut short") if final else NEED_MORE
    # An HTTP/1 answer never starts with these bytes; only the frame's own shape is
    # asked for, so no settings value makes a server unrecognisable.
    return Match(service="http", extra="HTTP/2 only", confidence=8)


HTTP2 = Matcher(name="http2", judge=_judge_http2, max_bytes=_FRAME_HEADER + 6 * _MAX_SETTINGS)

HTTP_GET = Probe(
    name="http-get",
    build=http_get_request,
    matchers=("http", "rtsp", "sip", "amqp"),
    services=("http", "http-alt", "http-proxy", "www", "www-http", "webcache", "elasticsearch"),
)

# etcd, Docker and Kubernetes answer GET / with a bare 404; their /version documents name
# them (see :mod:`portkit.proto.httpapps`).
HTTP_GET_VERSION = Probe(
    name="http-get-version",
    build=lambda host: http_get_request(host, "/version"),
    matchers=("http",),
    services=("etcd-client", "docker", "kubernetes"),
)

# Consul with its web UI on redirects / to /ui/; the agent's own description names its
# version in Config.Version (see :mod:`portkit.proto.httpapps`).
HTTP_GET_CONSUL_SELF = Probe(
    name="http-get-consul-self",
    build=lambda host: http_get_request(host, "/v1/agent/self"),
    matchers=("http",),
    services=("consul",),
)

# A Prometheus exporter's metrics carry its version (see :mod:`portkit.proto.httpapps`).
HTTP_GET_METRICS = Probe(
    name="http-get-metrics",
    build=lambda host: http_get_request(host, "/metrics"),
    matchers=("http",),
)
