"""The bus of an embedded ``dapr://`` URL: publishes through the platform's sidecar.

Imported only when a project uses one, since :mod:`cumulo.events.bus.dapr`
needs the ``dapr`` extra (gRPC): ``pip install cumulo`` with no extras runs
every other project.
"""

from __future__ import annotations

from typing import Any

from cumulo.events.bus import Bus, BusSettings
from cumulo.events.bus.dapr import DaprBus


class EmbeddedDaprBus(DaprBus):
    """Publishes through the platform's sidecar; lists topics through the broker's bus."""

    def __init__(self, url: str, settings: BusSettings, reader: Bus | None):
        super().__init__(url, bus_settings=settings)
        self.reader = reader

    async def start(self) -> None:
        await super().start()
        if self.reader is not None:
            await self.reader.start()

    async def close(self) -> None:
        await super().close()
        if self.reader is not None:
            await self.reader.close()

    async def read(self, topic: str, **options: Any) -> Any:
        if self.reader is None:
            return await super().read(topic, **options)
        return await self.reader.read(topic, **options)

    async def topics(self) -> list[str]:
        if self.reader is None:
            return await super().topics()
        return await self.reader.topics()

    async def groups(self) -> list[Any]:
        return []  # Dapr's consumer groups are the sidecars'

    async def trim(self) -> int:
        return 0  # retention is the broker's
