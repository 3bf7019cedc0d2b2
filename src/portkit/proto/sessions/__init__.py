"""Server sessions: the protocol state machines ``portkit serve`` runs, sans-io.

- ``pop3``: the POP3 session (RFC 1939, RFC 2449, RFC 2595, RFC 5034).
- ``imap``: the IMAP4rev1 session (RFC 3501), a package.
- ``_line``: what both share: events, line framing, the receive loop, table rows.

Recognisers (the probes and matchers identification uses) live beside this package in
``portkit.proto`` and never import a session; a session may use their shared parts.
"""
