"""HTTP servers that are more than web servers: forward proxies, IPP printers, and the
HTTP APIs of infrastructure daemons, told apart by their headers and JSON shapes.

The :mod:`portkit.proto.http` matcher parses the response; :func:`classify` then decides
whether the server is better named by another service than ``http``:

- ``http-proxy``: RFC 9110 §15.5.8 reserves status 407 (with ``Proxy-Authenticate``) for
  proxies, and forward proxies (Squid, Tinyproxy, ...) name themselves in ``Server``.
- ``ipp``: RFC 8010 §4 carries IPP over HTTP ``POST``; CUPS says ``IPP/2.1`` in ``Server``.
- etcd, Docker, Kubernetes answer ``GET /version`` (``http.HTTP_GET_VERSION``) with a JSON
  object of their own shape; InfluxDB adds ``X-Influxdb-Version`` to every response.
- ``consul``: HashiCorp Consul's HTTP API adds ``X-Consul-*`` headers (``X-Consul-Index``,
  ``X-Consul-Knownleader``, ``X-Consul-Default-Acl-Policy``) to its answers, and
  ``/v1/agent/self`` holds ``{"Config": {"Version": ...}}`` (with ``Datacenter`` and
  ``NodeName``, the agent's description); with its web UI turned off the agent answers
  ``GET /`` with a text page that begins "Consul Agent", with it on a redirect to ``/ui/``.
- Prometheus exporters title their page "... Exporter" and link ``/metrics``; the
  metrics, in Prometheus's text exposition format (``text/plain; version=0.0.4``),
  carry ``<exporter>_build_info{...,version="1.5.0"} 1``, which the exporter library
  adds to every exporter.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from portkit.proto._text import Head, split_product

__all__ = ["Classified", "classify", "is_exposition"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Classified:
    """A more specific name for an HTTP server."""

    service: str
    product: str | None = None
    version: str | None = None


# Server-header product -> (service, product as people know it).
_SERVERS = {
    "squid": ("http-proxy", "Squid http proxy"),
    "tinyproxy": ("http-proxy", "Tinyproxy"),
    "privoxy": ("http-proxy", "Privoxy http proxy"),
    "polipo": ("http-proxy", "Polipo"),
    "apache-traffic-server": ("http-proxy", "Apache Traffic Server"),
    "ats": ("http-proxy", "Apache Traffic Server"),
    "cups": ("ipp", "CUPS"),
}

# "CUPS/2.4 IPP/2.1": any server announcing an IPP version speaks IPP (RFC 8011 §4.1).
_IPP_TOKEN = re.compile(r"(?:^|\s)IPP/\d+\.\d+(?:\s|$)")
_CUPS_TITLE = re.compile(rb"<title>[^<]{0,80}CUPS v(\d[\w.]*)</title>", re.IGNORECASE)
# Prometheus exporters link their metrics from a page titled after the exporter.
_EXPORTER = re.compile(rb"<title>([\w .-]{1,60} Exporter)</title>", re.IGNORECASE)
# node_exporter_build_info{branch="...",...,version="1.5.0"} 1 (go_build_info's version is
# the Go module's, often "(devel)": only an exporter's own counts).
_BUILD_INFO = re.compile(
    rb"^([a-z][a-z0-9_]{0,40}_exporter)_build_info\{[^}\n]{0,400}?\bversion=\"([^\"\n]{1,40})\"",
    re.MULTILINE,
)
_ERROR_PAGE_BY = re.compile(rb"Generated .{0,120}? by \S+ \((squid)/([\w.]+)\)", re.IGNORECASE)


def classify(head: Head, body: bytes) -> Classified | None:
    """Return a more specific service for this HTTP response, or ``None`` for plain HTTP."""
    headers = head.headers
    server = headers.get("server", "")
    name, version, _ = split_product(server) if server else ("", None, None)
    known = _SERVERS.get(name.lower())
    if known is not None:
        if known[1] == "CUPS":
            # "CUPS/2.4" in Server, the whole version in its pages' titles.
            full = _CUPS_TITLE.search(body)
            version = full.group(1).decode("ascii") if full else version
        return Classified(service=known[0], product=known[1], version=version)
    if server and _IPP_TOKEN.search(server):
        return Classified(service="ipp", product=name or None, version=version)
    if "x-squid-error" in headers:
        found = _ERROR_PAGE_BY.search(body)
        return Classified(
            service="http-proxy",
            product="Squid http proxy",
            version=found.group(2).decode("ascii") if found else None,
        )
    if head.start_line.split(" ")[1:2] == ["407"] and "proxy-authenticate" in headers:
        return Classified(service="http-proxy")
    if any(key.startswith("x-consul-") for key in headers) or body.startswith(b"Consul Agent"):
        return Classified(service="consul", product="Consul", version=_consul_version(body))
    influx = headers.get("x-influxdb-version")
    if influx is not None:
        return Classified(service="http", product="InfluxDB http admin", version=influx or None)
    if "json" in headers.get("content-type", ""):
        return _json_shape(body)
    if is_exposition(headers.get("content-type", "")):
        built = _BUILD_INFO.search(body)
        if built is not None:
            name = built.group(1).decode("ascii").replace("_", " ").title()
            return Classified(
                service="http", product=f"Prometheus {name}", version=built.group(2).decode()
            )
    exporter = _EXPORTER.search(body)
    if exporter is not None and b'href="/metrics"' in body:
        return Classified(service="http", product=f"Prometheus {exporter.group(1).decode()}")
    return None


def is_exposition(content_type: str) -> bool:
    """Whether ``content_type`` is Prometheus's text exposition format (version 0.0.4)."""
    kind, _, parameters = content_type.partition(";")
    return kind.strip().lower() == "text/plain" and "version=0.0.4" in parameters


def _json_shape(body: bytes) -> Classified | None:
    try:
        doc = json.loads(body.decode("utf-8"))
    except ValueError:
        return None
    if not isinstance(doc, dict):
        return None

    def text(key: str) -> str | None:
        value = doc.get(key)
        return value if isinstance(value, str) and value else None

    # etcd's /version: {"etcdserver":"3.4.23","etcdcluster":"3.4.0"}
    if "etcdserver" in doc and "etcdcluster" in doc:
        return Classified(service="etcd-client", product="etcd", version=text("etcdserver"))
    # Docker Engine API /version: ApiVersion, Version, GoVersion, ...
    if "ApiVersion" in doc and "GoVersion" in doc:
        return Classified(service="docker", product="Docker", version=text("Version"))
    # Consul's /v1/agent/self: the agent's configuration, its Member and its version.
    config = doc.get("Config")
    if isinstance(config, dict) and "Datacenter" in config and "NodeName" in config:
        return Classified(service="consul", product="Consul", version=_consul_version(body))
    # Kubernetes API server /version: major, minor, gitVersion, platform.
    if "gitVersion" in doc and "major" in doc and "platform" in doc:
        version = text("gitVersion")
        return Classified(
            service="kubernetes",
            product="Kubernetes API server",
            version=version.lstrip("v") if version else None,
        )
    return None


def _consul_version(body: bytes) -> str | None:
    try:
        doc = json.loads(body.decode("utf-8"))
    except ValueError:
        return None
    config = doc.get("Config") if isinstance(doc, dict) else None
    version = config.get("Version") if isinstance(config, dict) else None
    return version if isinstance(version, str) and version else None
