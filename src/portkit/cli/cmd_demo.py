"""``portkit demo``: the whole system of ports working end to end on this machine."""

from __future__ import annotations

import argparse

SUMMARY = "show the whole system end to end: a server computer, its clients, its directory"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.epilog = (
        "examples:\n"
        "  portkit demo          about ten seconds, loopback only, no configuration\n\n"
        "Starts `portkit serve` (web, video and mail applications), acts as a web, mail\n"
        "and video client, scans the ports it serves, and prints what to try next.\n"
        "Everything it starts is stopped and its files removed before it exits.\n"
        "exit status: 0 when every part worked, 1 when a part could not be shown."
    )


def run(args: argparse.Namespace) -> int:
    from portkit.demo import run_demo

    return run_demo()
