"""Discovery: which applications a computer runs, on which ports, and what answers."""
