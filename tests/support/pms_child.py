"""A front desk in a process of its own, for tests that SIGKILL it (`tests/client`).

    python -m tests.support.pms_child publish DIR CLIENT_ID START COUNT
        publishes room events START..COUNT-1 through a HubClient whose outbox is in DIR,
        printing `accepted <index> <event_id>` once each publish returned;
    python -m tests.support.pms_child sync DIR CLIENT_ID
        starts the client and waits until its outbox is empty, printing `pending <n>`
        while it syncs, `committed <seq>` after each Kafka transaction (then pausing before
        the outbox records it: `widen_the_window`) and `synced` at the end.

Settings come from the environment (`tests.support.gateway.child_environment`).
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path

from streams.client.client import HubClient
from streams.client.outbox import Entry
from streams.client.transports import KafkaTransport, Sent
from streams.core.kinds import EventKind, System
from tests.support.events import status_change

ROOMS = 50
SYNC_TIMEOUT_S = 120.0


async def publish(directory: Path, client_id: str, start: int, count: int) -> None:
    client = HubClient(System.HOTEL_PMS, directory=directory, client_id=client_id,
                       subscribe=False)
    await client.start()
    for index in range(start, count):
        document = status_change(index, rooms=ROOMS)
        entry = client.publish(EventKind.ROOM, str(document["action"]),
                               document["data"])  # type: ignore[arg-type]
        print(f"accepted {index} {entry.event_id}", flush=True)
        await asyncio.sleep(0)
    print(f"done online={client.online}", flush=True)
    await client.stop()


COMMIT_TO_MARK_S = 0.05
"""How long the sync pauses between Kafka's commit of a round and the outbox marking it sent,
to make the worst moment for a SIGKILL wide enough to hit on purpose."""


def widen_the_window() -> None:
    """Print `committed <seq>` after each round Kafka committed, then pause before the
    client marks it in the outbox: a kill then leaves the outbox behind Kafka."""
    send = KafkaTransport.send

    async def send_and_pause(self: KafkaTransport, entries: Sequence[Entry]) -> Sent:
        done = await send(self, entries)
        print(f"committed {entries[-1].seq}", flush=True)
        await asyncio.sleep(COMMIT_TO_MARK_S)
        return done

    KafkaTransport.send = send_and_pause  # type: ignore[method-assign]


async def sync(directory: Path, client_id: str) -> None:
    widen_the_window()
    client = HubClient(System.HOTEL_PMS, directory=directory, client_id=client_id,
                       subscribe=False)
    await client.start()

    async def report() -> None:
        while True:
            print(f"pending {client.outbox.counts().pending}", flush=True)
            await asyncio.sleep(0.02)

    reporter = asyncio.create_task(report())
    await client.flush(SYNC_TIMEOUT_S)
    reporter.cancel()
    print(f"synced {client.status()}", flush=True)
    await client.stop()


def main(argv: list[str]) -> None:
    mode, directory, client_id = argv[0], Path(argv[1]), argv[2]
    if mode == "publish":
        asyncio.run(publish(directory, client_id, int(argv[3]), int(argv[4])))
    else:
        asyncio.run(sync(directory, client_id))


if __name__ == "__main__":
    main(sys.argv[1:])
