"""What the kernel shows, and verified echo sessions: one core for check, view, tests, bench.

Standard library only: it ships in the lab image and runs where no test dependency exists.

* ``probe.procfs``: processes, states, socket inodes and memory, parsed from ``/proc`` text.
* ``probe.sessions``: echo sessions over raw sockets, every byte verified as it arrives.
"""
