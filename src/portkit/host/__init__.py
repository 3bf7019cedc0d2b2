"""The host: run any number of server applications, each on its own ports (``portkit serve``).

- :mod:`portkit.host._app`: the application interface a kind implements (options schema,
  listeners, start/stop with grace, counters, access log);
- :mod:`portkit.host.apps`: the kind registry (``web``, ``video``, ``forward``, ``exec``,
  ``echo``, and the mail kinds), modules imported when a configuration uses them;
- :func:`load_config`: the TOML configuration, validated whole;
- :class:`Host`: bind, drop privileges, start, announce ready, reload, stop.
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
from portkit.host._config import AppConfig, HostConfig, ListenAddress, load_config, parse_config
from portkit.host._host import BindError, Host, read_status

__all__ = [
    "AppConfig",
    "AppContext",
    "Application",
    "BindError",
    "Counters",
    "CountersSnapshot",
    "Host",
    "HostConfig",
    "Kind",
    "ListenAddress",
    "Listener",
    "StreamApplication",
    "Where",
    "load_config",
    "parse_config",
    "parse_options",
    "read_status",
]
