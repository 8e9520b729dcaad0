"""Multi-client TCP echo servers: forking and select-based (see server/__main__.py)."""
