"""The host: run any number of server applications, each on its own ports (``portkit serve``).

See :mod:`portkit.host._app` for the application interface a kind implements.
"""

from portkit.host._app import (
    AppContext,
    Application,
    Counters,
    CountersSnapshot,
    Kind,
    Listener,
    StreamApplication,
    Where,
    parse_options,
)

__all__ = [
    "AppContext",
    "Application",
    "Counters",
    "CountersSnapshot",
    "Kind",
    "Listener",
    "StreamApplication",
    "Where",
    "parse_options",
]
