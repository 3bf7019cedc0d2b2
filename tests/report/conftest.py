"""The namespace fixture of the scan tests, for the nmap comparisons here."""

from tests.scan.conftest import netns

__all__ = ["netns"]
