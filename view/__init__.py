"""The live view: what the kernel shows for the lab's servers, on one page, a few times a second.

* ``view.sources``: where snapshots come from: this /proc (servers by port) or an agent.
* ``view.agent``: ``python3 -m view.agent``: one server container's snapshots over HTTP.
* ``view.caps``: how many clients a select or epoll server may hold.
* ``view.timeline``: the events between two snapshots, in a bounded history.
* ``view.collector``: polls the sources, keeps the latest document and the timeline.
* ``view.web``: the page, ``/api/snapshot`` and the ``/api/events`` stream (Server-Sent Events).

Standard library only, no asset from elsewhere: it runs in air-gapped classrooms.
"""
