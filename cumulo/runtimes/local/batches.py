"""Deliveries that become ready together go to a worker together.

A dispatcher starts the deliveries of everything one fetch returned in the
same turn of the event loop. :class:`Coalescer` collects what is handed to it
during one turn and, at the end of it, hands the lot on in chunks of at most
``most`` — one request per chunk instead of one per event
(:mod:`cumulo.runtimes.worker.deliveries`). Each caller still awaits its own
event's outcome; nothing waits for a batch to fill.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

import orjson

from cumulo.events.outcome import Outcome
from cumulo.runtimes.local.faults import Lost
from cumulo.runtimes.worker.outcome import outcome_from_dict

Item = TypeVar("Item")
Result = TypeVar("Result")


class Coalescer(Generic[Item, Result]):
    """Gathers the items of one event-loop turn; ``send`` answers each chunk in order."""

    def __init__(self, send: Callable[[Sequence[Item]], Awaitable[Sequence[Result]]], *, most: int):
        self.send = send
        self.most = max(1, most)
        self._waiting: list[tuple[Item, asyncio.Future[Result]]] = []
        self._sending: set[asyncio.Task[None]] = set()

    async def submit(self, item: Item) -> Result:
        """``item``'s result, once its chunk has been sent and answered."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Result] = loop.create_future()
        if not self._waiting:
            loop.call_soon(self._flush)  # after every task already ready in this turn
        self._waiting.append((item, future))
        return await future

    def _flush(self) -> None:
        waiting, self._waiting = self._waiting, []
        for start in range(0, len(waiting), self.most):
            task = asyncio.create_task(self._send(waiting[start : start + self.most]))
            self._sending.add(task)
            task.add_done_callback(self._sending.discard)

    async def _send(self, chunk: list[tuple[Item, asyncio.Future[Result]]]) -> None:
        try:
            results = await self.send([item for item, _ in chunk])
        except BaseException as error:  # every caller of the chunk learns of it
            for _, future in chunk:
                if not future.done():
                    future.set_exception(error)
            if not isinstance(error, Exception):
                raise
            return
        for (_, future), result in zip(chunk, results, strict=True):
            if not future.done():  # a caller that was cancelled meanwhile
                future.set_result(result)


class OutcomeLines:
    """A worker's streamed answer to a batch (one JSON line per event as it finishes),
    read into ``answered`` by event index as the lines arrive."""

    def __init__(self, answered: dict[int, Outcome | Lost]):
        self.answered = answered
        self._partial = b""

    def feed(self, chunk: bytes) -> None:
        *lines, self._partial = (self._partial + chunk).split(b"\n")
        for line in lines:
            if line:
                document = orjson.loads(line)
                self.answered[int(document["index"])] = outcome_from_dict(document)
