"""Endpoint parsing cost next to the parsers it is compared with.

Runs, in the same process and on the same URLs:

- ``portkit``: ``parse_endpoint`` (WHATWG parse, host normalisation, registry default,
  TLS derivation, a frozen Endpoint);
- ``ada-url``: ``ada_url.parse_url`` alone, the WHATWG parser portkit builds on;
- ``urllib``: the standard library's ``urlsplit`` plus ``.port`` (not WHATWG-conformant),
  with its result cache bypassed.

Prints microseconds per parse (best of several rounds) and portkit's ratio to each peer.
No network traffic. Usage: ``python bench/endpoint_parse.py [--rounds 5] [--number 2000]``.
"""

from __future__ import annotations

import argparse
import timeit
import urllib.parse

import ada_url

from portkit.endpoint import parse_endpoint
from portkit.registry import default_registry

URLS = [
    "http://testing.example.com:8080/login",
    "https://example.com/",
    "https://user@bücher.example:8443/a?b#c",
    "http://[::1]:8080/",
    "ssh://user@host:2222",
    "imaps://mail.example.com",
    "postgres://db.example.com/app",
    "ws://h:80/chat",
]


def _portkit() -> None:
    for url in URLS:
        parse_endpoint(url)


def _ada() -> None:
    for url in URLS:
        ada_url.parse_url(url)


# urlsplit memoises its results (functools.lru_cache); time the parse, not the cache.
_urlsplit = getattr(urllib.parse.urlsplit, "__wrapped__", urllib.parse.urlsplit)


def _urllib() -> None:
    for url in URLS:
        _ = _urlsplit(url).port


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--number", type=int, default=2000)
    args = parser.parse_args()
    default_registry()  # load the index before timing
    _portkit()  # and warm the lazy imports
    results = {}
    for name, func in (("portkit", _portkit), ("ada-url", _ada), ("urllib", _urllib)):
        best = min(timeit.repeat(func, number=args.number, repeat=args.rounds))
        results[name] = best / (args.number * len(URLS)) * 1e6
    print(f"{len(URLS)} URLs x {args.number} x best of {args.rounds} rounds")
    print(f"{'parser':10} {'us/parse':>9} {'portkit / peer':>15}")
    for name, micros in results.items():
        ratio = results["portkit"] / micros
        print(f"{name:10} {micros:9.2f} {ratio:15.2f}")


if __name__ == "__main__":
    main()
