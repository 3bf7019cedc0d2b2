"""``python -m portkit``."""

from portkit.cli import console_main

console_main()
