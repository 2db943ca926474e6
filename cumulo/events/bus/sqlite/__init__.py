"""The SQLite bus: the embedded, durable default backend.

One file holds the event log, the dedup keys, the consumer groups and the
deliveries in flight. It runs in WAL mode with ``synchronous=FULL`` by default,
so a ``publish`` that has returned survives ``kill -9`` (and power loss).

Group commit (:mod:`.writer`): one thread owns the write connection. Every write
(publish, taking a fetch's leases, settle, ...) is queued to it, and everything
queued while one transaction was committing runs in the next one: one fsync for
all of them. Reads (:mod:`.connections`: ``read``, ``topics``, ``groups``, and
planning fetches) use a second connection on its own thread and never wait for
the writer.

Fetch (:mod:`.leases`): the reader plans it (reads the candidates, decodes them,
runs the trigger's filter); the writer only checks that the plan still holds and
takes the leases, so JSON and filters stay out of the transaction publishers
wait on.

Ownership (:mod:`.ownership`): the process holding an ``flock`` on
``<file>.lock`` owns the leases. The platform takes it on ``start()`` and, as
owner, makes the leases a previous (killed) owner left behind due at once.
Other processes on the same file (the CLI publishing an event) do not get the
lock and leave leases alone; they publish and read, but must not consume the
platform's groups.

The other parts: :mod:`.settings` (the URL and its options), :mod:`.errors`
(sqlite3's errors in Cumulo's terms), :mod:`.wakeups` (doorbells that wake
waiters on any event loop), :mod:`.schema` (the tables), :mod:`.log`
(publishing with dedup, reading, retention), :mod:`.groups` (subscribe, settle,
replay) and :mod:`.bus` (:class:`SqliteBus`, putting them together).
"""

from __future__ import annotations

from cumulo.events.bus.sqlite.bus import SqliteBus
from cumulo.events.bus.sqlite.settings import SqliteSettings

__all__ = ["SqliteBus", "SqliteSettings"]
