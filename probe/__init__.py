"""What the kernel shows, and verified echo sessions: one core for check, view, tests, bench.

Standard library only: it ships in the lab image and runs where no test dependency exists.

Reading the kernel:

* ``probe.procfs``: processes, states, socket inodes and memory, parsed from ``/proc`` text.
* ``probe.footprint``: what a process tree costs: CPU, RSS/PSS, descriptors, zombies.

Driving a server (every byte verified as it arrives):

* ``probe.sockets``: one blocking connection: connect, read exactly, read to EOF, echo.
* ``probe.sessions``: many sessions on one epoll loop; crowds; one long stream.
* ``probe.peers``: peers that misbehave: resets, vanishing, slow or stalled readers.
* ``probe.load``: the multi-process load generator of the benchmark (rr, rate, hold, stream).

And: ``probe.compare`` (where two byte strings differ), ``probe.limits`` (RLIMIT_NOFILE),
``probe.exits`` (how a waited-for process ended), ``probe.addresses`` (which targets the lab
may send traffic to). The servers and the client import these three too.
"""
