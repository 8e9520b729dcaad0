"""Split-I/O echo client (see client/__main__.py)."""
