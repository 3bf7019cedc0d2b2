"""Fixtures shared by every test directory: the lab of real daemons (see tests/_lab.py)."""

from tests._lab import lab

__all__ = ["lab"]
