"""python3 -m check: the lab's checks, for anyone's echo server (see check/__main__.py).

* ``target``: what is checked (a command the checker starts, or a server it attaches to).
* ``registry``: the checks' public ids, order and model; ``run``: runs them, bounded.
* ``echo``, ``robustness``, ``fork``, ``multiplexing``, ``stop``: one module per family.
* ``results``, ``report``: what a run found, and how it is shown (terminal, JSON, JUnit).
"""
