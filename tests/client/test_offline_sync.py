"""A front desk that works through a broker outage and SIGKILLs loses nothing and sends
nothing twice (issue 11).

On a Kafka node of the test's own (`private_hub`), stopped: a PMS process publishes 1,000
room events through its client and is SIGKILLed at random points, then started again where
it stopped, until all are accepted. The node comes back; a PMS process syncs its outbox and
is SIGKILLed at random points of the sync, then started again, until the outbox is empty:
every other kill lands right after Kafka committed a round and before the outbox recorded
it (`tests.support.pms_child.widen_the_window`), the moment only the sync checkpoint can
tell apart; the others wherever the sync is, often inside a transaction. Then every
accepted event is in the room topic exactly once (read_committed), nothing is there that
the outbox does not hold, and each room's events are in the order they were accepted.
"""

from __future__ import annotations

import asyncio
import os
import queue
import random
import signal
import subprocess
import sys
import threading
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path

import pytest

from streams.client.outbox import Outbox
from streams.core.kinds import POLICIES, EventKind
from streams.settings import HubSettings
from tests.support.eos import read_topic
from tests.support.gateway import child_environment
from tests.support.private_hub import PrivateHub, private_hub

pytestmark = pytest.mark.integration

EVENTS = 1000
PUBLISH_KILLS = 4
SYNC_KILLS = 3
LINE_TIMEOUT_S = 90.0
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def hub(hub_settings: HubSettings, tmp_path_factory: pytest.TempPathFactory
        ) -> Iterator[PrivateHub]:
    with private_hub(hub_settings, tmp_path_factory.mktemp("offline-hub")) as started:
        yield started


class Child:
    """One run of `tests.support.pms_child`, its stdout read line by line."""

    def __init__(self, settings: HubSettings, *args: str) -> None:
        env = {name: value for name, value in os.environ.items()
               if not name.startswith("HOTELHUB_")} | child_environment(settings) | {
            "HOTELHUB_CONNECT_TIMEOUT_S": "2", "HOTELHUB_PUBLISH_TIMEOUT_S": "5",
            "HOTELHUB_CLIENT_BATCH": "50", "HOTELHUB_CLIENT_RETRY_MAX_S": "0.5"}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.support.pms_child", *args], cwd=REPO, env=env,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
            text=True)
        self._lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._lines.put(line.strip())
        self._lines.put(None)

    def lines(self) -> Iterator[str]:
        while (line := self._lines.get(timeout=LINE_TIMEOUT_S)) is not None:
            yield line

    def kill(self) -> None:
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(10)

    def finished(self) -> None:
        code = self.process.wait(30)
        assert self.process.stderr is not None
        assert code == 0, f"child exited {code}: {self.process.stderr.read()[-3000:]}"


def test_a_thousand_events_survive_an_outage_and_sigkills(hub: PrivateHub,
                                                         tmp_path: Path) -> None:
    rng = random.Random(20261124)
    directory, client_id = tmp_path / "pms", f"desk-{rng.randrange(10**6)}"
    accepted: dict[str, int] = {}

    # The broker is stopped: publish, killed at random points, until all are accepted.
    hub.stop_broker()
    next_index, kills = 0, 0
    while next_index < EVENTS:
        child = Child(hub.settings, "publish", str(directory), client_id, str(next_index),
                      str(EVENTS))
        kill_after = rng.randint(20, 250) if kills < PUBLISH_KILLS else None
        seen = 0
        for line in child.lines():
            if line.startswith("accepted"):
                _, index, event_id = line.split()
                accepted[event_id], next_index, seen = int(index), int(index) + 1, seen + 1
                if kill_after is not None and seen >= kill_after:
                    child.kill()
                    kills += 1
                    break
            elif line.startswith("done"):
                assert line == "done online=False", "the client did not notice the outage"
        else:
            child.finished()
    assert kills == PUBLISH_KILLS and len(accepted) >= EVENTS

    # The broker is back: sync, killed in the middle of it, until the outbox is empty.
    print(f"\nbroker up again in {hub.start_broker():.1f} s")
    mid_sync_kills = 0
    runs = SYNC_KILLS + 3
    for _ in range(runs):
        child = Child(hub.settings, "sync", str(directory), client_id)
        threshold = rng.randint(100, 900) if mid_sync_kills < SYNC_KILLS else None
        after_commit = mid_sync_kills % 2 == 0  # else wherever the sync is at the threshold
        synced = False
        for line in child.lines():
            if threshold is not None and line.startswith(("pending", "committed")):
                left = int(line.split()[1]) if line.startswith("pending") else None
                if (after_commit and line.startswith("committed")
                        and int(line.split()[1]) > EVENTS - threshold) or (
                        not after_commit and left is not None and 0 < left < threshold):
                    child.kill()
                    mid_sync_kills += 1
                    break
            elif line.startswith("synced"):
                synced = True
        else:
            child.finished()
        if synced:
            break
    else:
        pytest.fail(f"the outbox was not empty after {runs} sync runs")
    assert mid_sync_kills >= 1, "no sync was interrupted half way"

    # Every accepted event exactly once, nothing foreign, each room in acceptance order.
    with Outbox(directory / "outbox.sqlite3") as outbox:
        assert outbox.counts().pending == 0 and outbox.counts().rejected == 0
        held = {entry.event_id: entry for entry in outbox.entries()}
    topic = hub.settings.topic(POLICIES[EventKind.ROOM].topic)
    records = asyncio.run(read_topic(hub.settings, topic))
    ids = [dict(record.headers)["ce_id"].decode() for record in records]
    counts = Counter(ids)
    doubled = {event_id: n for event_id, n in counts.items() if n > 1}
    assert not doubled, f"{len(doubled)} event(s) in Kafka more than once"
    missing = set(accepted) - set(counts)
    assert not missing, f"{len(missing)} accepted event(s) not in Kafka"
    assert set(counts) <= set(held), "Kafka holds events the outbox never accepted"
    assert len(counts) == len(held), "an event the outbox holds is not in Kafka"
    by_room: dict[bytes, list[int]] = defaultdict(list)
    for record, event_id in zip(records, ids, strict=True):
        by_room[record.key or b""].append(held[event_id].seq)
    for room, seqs in by_room.items():
        assert seqs == sorted(seqs), f"room {room!r} out of order"
    assert all(entry.created_offline for entry in held.values())
    print(f"{len(accepted)} accepted ({len(held)} in the outbox), {PUBLISH_KILLS} kills while "
          f"publishing, {mid_sync_kills} mid-sync; {len(records)} records in {topic}")
