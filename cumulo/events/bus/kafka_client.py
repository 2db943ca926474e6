"""Blocking calls to Kafka (confluent-kafka / librdkafka) for the Kafka bus.

Every call here blocks and is run in a thread by :mod:`.kafka`; every
confluent-kafka error is translated here, where it enters: a broker that cannot
be reached is :class:`~cumulo.errors.BusUnavailableError` (with its address),
anything else :class:`~cumulo.errors.BusError`.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any, TypeVar

from cumulo.extras import from_extra

with from_extra("kafka", needed_by="kafka://"):
    from confluent_kafka import (
        OFFSET_END,
        Consumer,
        KafkaError,
        KafkaException,
        Producer,
        TopicPartition,
    )
    from confluent_kafka.admin import AdminClient, NewTopic

from cumulo.errors import BusError, BusUnavailableError

T = TypeVar("T")
Record = tuple[bytes | None, bytes, list[tuple[str, bytes]], int]  # key, value, headers, ms
UNREACHABLE = {
    KafkaError._TRANSPORT,
    KafkaError._TIMED_OUT,
    KafkaError._MSG_TIMED_OUT,
    KafkaError._ALL_BROKERS_DOWN,
    KafkaError._PURGE_QUEUE,
    KafkaError._PURGE_INFLIGHT,
    KafkaError.REQUEST_TIMED_OUT,
    KafkaError.NOT_COORDINATOR,
    KafkaError.COORDINATOR_NOT_AVAILABLE,
    KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
    KafkaError.LEADER_NOT_AVAILABLE,
    KafkaError.NOT_LEADER_FOR_PARTITION,
}


class KafkaClient:
    """One producer and one admin client per bus; consumers made on demand."""

    def __init__(self, bootstrap: str, timeout: float = 5.0):
        self.bootstrap = bootstrap
        self.timeout = timeout
        self.common: dict[str, Any] = {
            "bootstrap.servers": bootstrap,
            "log.connection.close": False,
        }
        self.admin = AdminClient(dict(self.common))
        self.producer = self._new_producer()

    def _new_producer(self) -> Producer:
        return Producer(
            {
                **self.common,
                "enable.idempotence": True,
                "acks": "all",
                "linger.ms": 0,
                "message.timeout.ms": int(self.timeout * 1000),
            }
        )

    def unavailable(self, why: object) -> BusUnavailableError:
        return BusUnavailableError(f"kafka is unavailable: {why}", address=self.bootstrap)

    @contextlib.contextmanager
    def translated(self) -> Iterator[None]:
        try:
            yield
        except KafkaException as e:
            raise self.error(e.args[0] if e.args else e) from e
        except FutureTimeout as e:
            raise self.unavailable("no answer in time") from e

    def error(self, err: Any) -> BusError:
        if isinstance(err, KafkaError) and (err.code() in UNREACHABLE or err.retriable()):
            return self.unavailable(err.str())
        return BusError(f"kafka: {err.str() if isinstance(err, KafkaError) else err}")

    def _result(self, future: Any) -> Any:
        with self.translated():
            return future.result(timeout=self.timeout)

    # --- topics ---------------------------------------------------------------------

    def ensure_topic(self, topic: str) -> None:
        futures = self.admin.create_topics([NewTopic(topic, 1)], request_timeout=self.timeout)
        try:
            self._result(futures[topic])
        except BusError as e:
            if "already exists" not in str(e).lower():
                raise

    def topics(self, prefix: str) -> list[str]:
        with self.translated():
            found = self.admin.list_topics(timeout=self.timeout).topics
        return sorted(name for name in found if name.startswith(prefix))

    def watermarks(self, consumer: Consumer, topic: str) -> tuple[int, int]:
        """(low, high) of the topic's partition; waits a moment for a topic just made."""
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                low, high = consumer.get_watermark_offsets(
                    TopicPartition(topic, 0), timeout=self.timeout, cached=False
                )
                return int(low), int(high)
            except KafkaException as e:
                if not _unknown(e) or time.monotonic() > deadline:
                    raise self.error(e.args[0] if e.args else e) from e
                time.sleep(0.05)
                consumer.list_topics(topic, timeout=self.timeout)  # refresh its metadata

    def offset_at(self, consumer: Consumer, topic: str, at: float) -> int:
        """The first offset stamped at or after ``at`` (the end when none is)."""
        with self.translated():
            (found,) = consumer.offsets_for_times(
                [TopicPartition(topic, 0, int(at * 1000))], timeout=self.timeout
            )
        if found.offset < 0:
            return self.watermarks(consumer, topic)[1]
        return int(found.offset)

    def delete_before(self, topic: str, offset: int) -> None:
        futures = self.admin.delete_records([TopicPartition(topic, 0, offset)])
        for future in futures.values():
            self._result(future)

    # --- producing ------------------------------------------------------------------

    def produce(self, topic: str, records: Sequence[Record]) -> list[int]:
        """Write and wait until every record is acknowledged; their offsets."""
        offsets: list[int | None] = [None] * len(records)
        errors: list[Any] = []
        for n, (key, value, headers, ms) in enumerate(records):
            self._produce_one(topic, key, value, headers, ms, self._on_delivery(n, offsets, errors))
        left = self.producer.flush(self.timeout + 1)
        if left or errors or None in offsets:
            self._abandon()
            raise self.error(errors[0]) if errors else self.unavailable("produce timed out")
        return [int(offset) for offset in offsets if offset is not None]

    def _produce_one(
        self, topic: str, key: Any, value: bytes, headers: Any, ms: int, cb: Any
    ) -> None:
        with self.translated():
            self.producer.produce(topic, value, key, headers=headers, timestamp=ms, on_delivery=cb)

    @staticmethod
    def _on_delivery(n: int, offsets: list[int | None], errors: list[Any]) -> Callable[..., None]:
        def delivered(err: Any, msg: Any) -> None:
            if err is not None:
                errors.append(err)
            else:
                offsets[n] = msg.offset()

        return delivered

    def _abandon(self) -> None:
        """Drop what is still queued (it must not land later) and start a fresh producer."""
        with contextlib.suppress(Exception):
            self.producer.purge()
            self.producer.flush(0)
        self.producer = self._new_producer()

    # --- consumers and group offsets ---------------------------------------------------

    def consumer(self, group: str) -> Consumer:
        return Consumer(
            {
                **self.common,
                "group.id": group,
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                "auto.offset.reset": "earliest",
                "enable.partition.eof": False,
            }
        )

    def assign(self, consumer: Consumer, topic: str, offset: int) -> None:
        with self.translated():
            consumer.assign([TopicPartition(topic, 0, offset if offset >= 0 else OFFSET_END)])

    def poll(self, consumer: Consumer, count: int, timeout: float) -> list[Any]:
        with self.translated():
            found = consumer.consume(count, timeout)
        for message in found:
            if message.error():
                raise self.error(message.error())
        return list(found)

    def commit(self, consumer: Consumer, topic: str, offset: int) -> None:
        with self.translated():
            consumer.commit(offsets=[TopicPartition(topic, 0, offset)], asynchronous=False)

    def committed(self, consumer: Consumer, topic: str) -> int | None:
        """The group's committed offset on the topic's partition, if any."""
        with self.translated():
            (found,) = consumer.committed([TopicPartition(topic, 0)], timeout=self.timeout)
        return int(found.offset) if found.offset >= 0 else None

    def read_all(self, consumer: Consumer, meta: Consumer, topic: str) -> list[Any]:
        """Every record of a (small) topic, for the group registry."""
        low, high = self.watermarks(meta, topic)
        self.assign(consumer, topic, low)
        found: list[Any] = []
        deadline = time.monotonic() + self.timeout
        while low + len(found) < high and time.monotonic() < deadline:
            found += self.poll(consumer, high - low, 0.2)
        return found


def _unknown(e: KafkaException) -> bool:
    err = e.args[0] if e.args else None
    codes = (
        KafkaError._UNKNOWN_PARTITION,
        KafkaError.UNKNOWN_TOPIC_OR_PART,
        KafkaError.NOT_LEADER_FOR_PARTITION,
        KafkaError.LEADER_NOT_AVAILABLE,
    )
    return isinstance(err, KafkaError) and err.code() in codes  # a topic just made


def now_ms() -> int:
    return int(time.time() * 1000)
