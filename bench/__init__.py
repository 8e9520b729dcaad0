"""The benchmark: our servers and the standard library's peers, side by side (python -m bench)."""
