"""The sync checkpoint: which outbox entries a client's Kafka transactions have committed.

Each transaction that sends outbox entries also writes `{"through_seq": n}` under the
client's id to `hotel.outbox.<system>` (compacted). A client that restarts after a crash,
or loses the broker while a commit is in flight, cannot know from its own SQLite file
whether its last transaction landed; the checkpoint, read with read_committed after the
restarted producer has fenced and finished its predecessor, says exactly that. So a sync
interrupted at any point and repeated sends each event once.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from datetime import UTC, datetime

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from streams.core.exceptions import BrokerUnavailable
from streams.settings import HubSettings

WINDOW = 1000
"""Records read per step backwards from the end: a client's newest checkpoint is usually
among the last few, whatever the topic holds of other installations."""


@dataclass(frozen=True)
class Checkpoint:
    client_id: str
    through_seq: int
    at: datetime

    def record(self, topic: str) -> tuple[str, bytes, bytes]:
        """(topic, key, value), as `HotelEventPublisher.publish_atomically` takes it."""
        value = {"client_id": self.client_id, "through_seq": self.through_seq,
                 "at": self.at.isoformat()}
        return topic, self.client_id.encode(), json.dumps(value).encode()

    @classmethod
    def parse(cls, value: bytes) -> Checkpoint:
        document = json.loads(value)
        return cls(str(document["client_id"]), int(document["through_seq"]),
                   datetime.fromisoformat(document["at"]))


def checkpoint(client_id: str, through_seq: int) -> Checkpoint:
    return Checkpoint(client_id, through_seq, datetime.now(UTC))


async def last_checkpoint(settings: HubSettings, topic: str, client_id: str, *,
                          timeout_s: float | None = None) -> Checkpoint | None:
    """The newest committed checkpoint of `client_id`, or None when it never synced.

    Reads backwards from the end in windows of `WINDOW` records (no consumer group), so it
    costs the same however old the topic is.
    """
    timeout_s = timeout_s or settings.publish_timeout_s
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.bootstrap_servers, **settings.kafka_auth(),
        group_id=None, enable_auto_commit=False, isolation_level="read_committed",
        client_id=f"hotelhub-checkpoint-{client_id}")
    key = client_id.encode()
    try:
        async with asyncio.timeout(timeout_s):
            await consumer.start()
            tp = TopicPartition(topic, 0)
            consumer.assign([tp])
            begin = (await consumer.beginning_offsets([tp]))[tp]
            upper = (await consumer.end_offsets([tp]))[tp]
            while upper > begin:
                lower = max(begin, upper - WINDOW)
                consumer.seek(tp, lower)
                found: bytes | None = None
                while await consumer.position(tp) < upper:
                    batch = await consumer.getmany(tp, timeout_ms=200)
                    for record in batch.get(tp, []):
                        if record.offset < upper and record.key == key and record.value:
                            found = record.value
                if found is not None:
                    return Checkpoint.parse(found)
                upper = lower
            return None
    except (TimeoutError, KafkaError, OSError) as exc:
        raise BrokerUnavailable(f"cannot read the sync checkpoint of {client_id} from "
                                f"{topic}: {exc!r}") from exc
    finally:
        await consumer.stop()
