"""--open and the conventional service names, in every format (known results, no network)."""

from __future__ import annotations

import dataclasses
import json
import xml.etree.ElementTree as ET

import pytest

from portkit.report._read import parse_scan
from portkit.results import PortState
from tests.report.test_reports import INFO, RESULTS, render, result

OPEN_ONLY = dataclasses.replace(INFO, open_only=True)


def test_open_only_lists_open_ports_and_counts_the_rest_in_json() -> None:
    doc = json.loads(render("json", RESULTS, OPEN_ONLY))
    first = doc["hosts"][0]
    assert [p["port"] for p in first["ports"]] == [22, 443]
    assert {(n["state"], n["count"]) for n in first["not_shown"]} == {
        ("closed", 30),
        ("filtered", 1),
    }
    assert first["counts"]["tcp/closed"] == 30  # every port still counted


def test_open_only_in_xml_and_jsonl() -> None:
    root = ET.fromstring(render("xml", RESULTS, OPEN_ONLY))
    assert {p.attrib["portid"] for p in root.iter("port")} == {"22", "443", "80"}
    lines = [json.loads(x) for x in render("jsonl", RESULTS, OPEN_ONLY).splitlines()]
    assert {x["port"] for x in lines if x["type"] == "port"} == {22, 443, 80}


def test_without_open_only_filtered_ports_are_listed() -> None:
    root = ET.fromstring(render("xml", RESULTS))
    assert "9" in {p.attrib["portid"] for p in root.iter("port")}


@pytest.mark.parametrize("fmt", ["table", "grep", "xml"])
def test_conventional_name_is_shown_for_an_obscure_iana_one(fmt: str) -> None:
    text = render(fmt, [result(8000, PortState.OPEN, expected="irdmi")])
    assert "http-alt" in text
    assert "irdmi" not in text


def test_json_keeps_both_names_and_reads_back_the_iana_one() -> None:
    text = render("json", [result(8000, PortState.OPEN, expected="irdmi")])
    port = json.loads(text)["hosts"][0]["ports"][0]
    assert (port["expected"], port["expected_iana"]) == ("http-alt", "irdmi")
    (again,) = parse_scan(text, "scan.json").results
    assert again.expected == "irdmi"
