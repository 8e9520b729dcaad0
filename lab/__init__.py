"""Lesson tools: the delay proxy, the latency experiment and the select() primer."""
