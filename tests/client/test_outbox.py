"""The durable outbox: order, idempotence, marking, and that a killed process loses nothing."""

from __future__ import annotations

import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from streams.client.outbox import Outbox, OutboxBusy, OutboxSchemaError

ROOT = Path(__file__).resolve().parents[2]


def _accept(outbox: Outbox, event_id: str, entity: str = "R-1", **document: object) -> int:
    entry = outbox.accept(
        {"event_id": event_id, **document},
        event_id=event_id,
        entity=entity,
        kind="reservation",
        created_offline=True,
    )
    return entry.seq


def test_pending_is_in_acceptance_order(tmp_path: Path) -> None:
    with Outbox(tmp_path / "deep" / "er" / "outbox.db") as outbox:
        for number in range(5):
            _accept(outbox, f"e{number}", entity=f"R-{number % 2}")
        pending = outbox.pending()
        assert [entry.event_id for entry in pending] == [f"e{n}" for n in range(5)]
        assert [entry.seq for entry in pending] == [1, 2, 3, 4, 5]
        assert [entry.event_id for entry in outbox.pending(limit=2)] == ["e0", "e1"]
        assert outbox.last_seq() == 5


def test_accept_keeps_the_document_as_json_without_floats_for_money(tmp_path: Path) -> None:
    with Outbox(tmp_path / "outbox.db") as outbox:
        entry = outbox.accept(
            {"total_amount": Decimal("120.50"), "checkin_date": datetime(2026, 3, 1).date()},
            event_id="e1",
            entity="R-1",
            kind="reservation",
            created_offline=False,
        )
        assert entry.document == {"total_amount": "120.50", "checkin_date": "2026-03-01"}
        assert entry.accepted_at.tzinfo is not None
        assert entry.created_offline is False
        assert outbox.pending() == [entry]


def test_accepting_an_event_id_again_returns_the_first_entry(tmp_path: Path) -> None:
    with Outbox(tmp_path / "outbox.db") as outbox:
        first = outbox.accept(
            {"n": 1}, event_id="e1", entity="R-1", kind="reservation", created_offline=True
        )
        again = outbox.accept(
            {"n": 2}, event_id="e1", entity="R-2", kind="room", created_offline=False
        )
        assert again == first
        assert outbox.counts().pending == 1
        assert outbox.last_seq() == 1


def test_mark_sent_records_where_each_landed_in_one_go(tmp_path: Path) -> None:
    with Outbox(tmp_path / "outbox.db") as outbox:
        seqs = [_accept(outbox, f"e{n}") for n in range(4)]
        outbox.mark_sent([(seqs[0], "hotel.reservation", 3, 41), (seqs[2], None, None, None)])
        assert [entry.seq for entry in outbox.pending()] == [seqs[1], seqs[3]]
        counts = outbox.counts()
        assert (counts.pending, counts.sent, counts.rejected) == (2, 2, 0)
        row = outbox._db.execute(
            "SELECT topic, partition, offset, sent_at FROM outbox WHERE seq = ?", (seqs[0],)
        ).fetchone()
        assert row[:3] == ("hotel.reservation", 3, 41)
        assert datetime.fromisoformat(row[3]).tzinfo is not None


def test_mark_sent_through_marks_only_pending_entries_up_to_seq(tmp_path: Path) -> None:
    with Outbox(tmp_path / "outbox.db") as outbox:
        seqs = [_accept(outbox, f"e{n}") for n in range(6)]
        outbox.mark_sent([(seqs[0], "t", 0, 0)])
        outbox.reject(seqs[1], "invalid_value: data.total_amount")
        assert outbox.mark_sent_through(seqs[3]) == 2
        assert [entry.seq for entry in outbox.pending()] == seqs[4:]
        assert outbox.mark_sent_through(seqs[3]) == 0
        counts = outbox.counts()
        assert (counts.pending, counts.sent, counts.rejected) == (2, 3, 1)


def test_a_rejected_entry_no_longer_blocks_the_queue(tmp_path: Path) -> None:
    with Outbox(tmp_path / "outbox.db") as outbox:
        seqs = [_accept(outbox, f"e{n}") for n in range(3)]
        outbox.reject(seqs[0], "contract changed: data.origin required")
        outbox.reject(seqs[0], "a second reason")
        assert [entry.seq for entry in outbox.pending()] == seqs[1:]
        [(entry, reason)] = outbox.rejected()
        assert entry.event_id == "e0"
        assert reason == "contract changed: data.origin required"
        with pytest.raises(KeyError, match="99"):
            outbox.reject(99, "unknown")


def test_counts_of_an_empty_outbox(tmp_path: Path) -> None:
    with Outbox(tmp_path / "outbox.db") as outbox:
        counts = outbox.counts()
        assert (counts.pending, counts.sent, counts.rejected) == (0, 0, 0)
        assert counts.oldest_pending_at is None
        assert outbox.last_seq() == 0


def test_counts_name_the_oldest_pending_entry(tmp_path: Path) -> None:
    with Outbox(tmp_path / "outbox.db") as outbox:
        _accept(outbox, "e0")
        second = outbox.accept(
            {}, event_id="e1", entity="R-1", kind="reservation", created_offline=True
        )
        outbox.mark_sent_through(1)
        assert outbox.counts().oldest_pending_at == second.accepted_at


def test_prune_deletes_only_entries_sent_before_the_time(tmp_path: Path) -> None:
    with Outbox(tmp_path / "outbox.db") as outbox:
        seqs = [_accept(outbox, f"e{n}") for n in range(4)]
        outbox.mark_sent([(seqs[0], "t", 0, 0), (seqs[1], "t", 0, 1)])
        outbox.reject(seqs[1], "refused after it was sent")
        outbox.reject(seqs[2], "never sendable")
        assert outbox.prune(datetime.now(UTC) - timedelta(hours=1)) == 0
        assert outbox.prune(datetime.now(UTC) + timedelta(seconds=1)) == 1
        counts = outbox.counts()
        assert (counts.pending, counts.sent, counts.rejected) == (1, 0, 2)
        assert outbox.last_seq() == 4
        with pytest.raises(ValueError, match="time zone"):
            outbox.prune(datetime.now())


def test_everything_survives_a_reopen(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    with Outbox(path) as outbox:
        seqs = [_accept(outbox, f"e{n}") for n in range(3)]
        outbox.mark_sent([(seqs[0], "t", 1, 2)])
        outbox.reject(seqs[1], "no")
    with Outbox(path) as outbox:
        assert [entry.event_id for entry in outbox.pending()] == ["e2"]
        assert [reason for _, reason in outbox.rejected()] == ["no"]
        assert _accept(outbox, "e3") == 4


def test_pending_uses_the_index(tmp_path: Path) -> None:
    with Outbox(tmp_path / "outbox.db") as outbox:
        plan = outbox._db.execute(
            "EXPLAIN QUERY PLAN SELECT seq FROM outbox"
            " WHERE sent_at IS NULL AND rejected_at IS NULL ORDER BY seq LIMIT 10"
        ).fetchall()
        assert any("outbox_by_state" in str(step) for step in plan), plan


def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    Outbox(path).close()
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA user_version = 99")
    db.close()
    with pytest.raises(OutboxSchemaError, match="99"):
        Outbox(path)
    with sqlite3.connect(path) as db:  # the lock was let go: the file can be fixed and reopened
        db.execute("PRAGMA user_version = 1")
    db.close()
    Outbox(path).close()


def test_a_second_outbox_in_this_process_is_busy_until_the_first_closes(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    first = Outbox(path)
    with pytest.raises(OutboxBusy, match=str(path)):
        Outbox(path)
    first.close()
    first.close()
    Outbox(path).close()


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT)}


_HOLDER = """
import sys
from pathlib import Path
from streams.client.outbox import Outbox
with Outbox(Path(sys.argv[1])):
    print("holding", flush=True)
    sys.stdin.read()
"""


def test_an_outbox_held_by_another_process_is_busy(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=_env(),
        cwd=ROOT,
    )
    try:
        assert holder.stdout is not None and holder.stdin is not None
        assert holder.stdout.readline() == "holding\n"
        with pytest.raises(OutboxBusy, match=str(path)):
            Outbox(path)
        holder.stdin.close()
        assert holder.wait(timeout=10) == 0
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
    Outbox(path).close()


_WRITER = """
import sys
import time
from pathlib import Path
from streams.client.outbox import Outbox
total = int(sys.argv[2])
with Outbox(Path(sys.argv[1])) as outbox:
    for number in range(outbox.last_seq(), total):
        entry = outbox.accept(
            {"number": number}, event_id=f"ev-{number}", entity=f"R-{number % 7}",
            kind="reservation", created_offline=True,
        )
        print(entry.seq, entry.event_id, flush=True)
        time.sleep(0.001)  # a front desk's pace, so that kills land while it writes
"""


def _run_writer(path: Path, total: int, kill_after_s: float | None) -> list[tuple[int, str]]:
    """Run the writer, SIGKILLed `kill_after_s` after its first report (or when it would
    have started writing); the (seq, event_id) it reported."""
    child = subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(path), str(total)],
        stdout=subprocess.PIPE,
        text=True,
        env=_env(),
        cwd=ROOT,
    )
    lines: list[str] = []
    first = threading.Event()

    def read() -> None:
        for line in child.stdout or ():
            lines.append(line)
            first.set()
        first.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    if kill_after_s is not None:
        first.wait(timeout=10)
        time.sleep(kill_after_s)
        child.send_signal(signal.SIGKILL)
    child.wait(timeout=30)
    reader.join(timeout=10)
    reported = []
    for line in lines:
        if line.endswith("\n"):  # a line cut by the kill was not fully reported
            seq, event_id = line.split()
            reported.append((int(seq), event_id))
    return reported


def test_a_killed_writer_loses_nothing_it_reported(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    total = 2_000
    chance = random.Random(20261124)
    reported: list[tuple[int, str]] = []
    for _ in range(5):
        reported += _run_writer(path, total, kill_after_s=chance.uniform(0.05, 0.5))
    assert 0 < len(reported) < total, "no kill landed while the writer was writing"
    reported += _run_writer(path, total, kill_after_s=None)

    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        rows = db.execute("SELECT seq, event_id FROM outbox ORDER BY seq").fetchall()
    db.close()
    stored = dict(rows)
    by_event = {event_id: seq for seq, event_id in rows}
    assert len(by_event) == len(rows) == total
    for seq, event_id in reported:
        assert stored.get(seq) == event_id
    # seqs follow acceptance order: ev-n was accepted n-th
    assert [int(event_id.removeprefix("ev-")) for _, event_id in rows] == list(range(total))
    assert [seq for seq, _ in rows] == list(range(1, total + 1))


class OutboxModel(RuleBasedStateMachine):
    """Random accepts, sends, rejections and restarts against a list of what was accepted."""

    def __init__(self) -> None:
        super().__init__()
        self.directory = Path(tempfile.mkdtemp(prefix="outbox-model-"))
        self.path = self.directory / "outbox.db"
        self.outbox = Outbox(self.path)
        self.accepted: list[tuple[str, str]] = []  # (event_id, entity) in acceptance order
        self.done: set[str] = set()  # sent or rejected
        self.rejected: set[str] = set()

    def teardown(self) -> None:
        self.outbox.close()
        shutil.rmtree(self.directory, ignore_errors=True)

    def _model_pending(self) -> list[str]:
        return [event_id for event_id, _ in self.accepted if event_id not in self.done]

    @rule(entity=st.sampled_from(["R-1", "R-2", "C-9"]))
    def accept(self, entity: str) -> None:
        event_id = f"ev-{len(self.accepted)}"
        entry = self.outbox.accept(
            {"entity": entity}, event_id=event_id, entity=entity, kind="k", created_offline=True
        )
        assert entry.seq == self.outbox.last_seq()
        self.accepted.append((event_id, entity))

    @precondition(lambda self: self.accepted)
    @rule(data=st.data())
    def accept_again(self, data: st.DataObject) -> None:
        event_id, entity = data.draw(st.sampled_from(self.accepted))
        before = self.outbox.last_seq()
        entry = self.outbox.accept(
            {"other": True}, event_id=event_id, entity="X", kind="x", created_offline=False
        )
        assert (entry.event_id, entry.entity) == (event_id, entity)
        assert entry.document == {"entity": entity}
        assert self.outbox.last_seq() == before

    @rule(count=st.integers(min_value=0, max_value=5))
    def send_a_prefix(self, count: int) -> None:
        batch = self.outbox.pending(limit=count) if count else []
        self.outbox.mark_sent((entry.seq, "t", 0, entry.seq) for entry in batch)
        self.done.update(entry.event_id for entry in batch)

    @precondition(lambda self: self.accepted)
    @rule(data=st.data())
    def send_through(self, data: st.DataObject) -> None:
        seq = data.draw(st.integers(min_value=0, max_value=len(self.accepted)))
        through = [event_id for event_id, _ in self.accepted[:seq]]
        expected = len([event_id for event_id in through if event_id not in self.done])
        assert self.outbox.mark_sent_through(seq) == expected
        self.done.update(through)

    @precondition(lambda self: self.accepted)
    @rule(data=st.data())
    def reject(self, data: st.DataObject) -> None:
        index = data.draw(st.integers(min_value=0, max_value=len(self.accepted) - 1))
        event_id = self.accepted[index][0]
        self.outbox.reject(index + 1, f"reason {event_id}")
        self.done.add(event_id)
        self.rejected.add(event_id)

    @rule()
    def crash_and_reopen(self) -> None:
        self.outbox.close()
        self.outbox = Outbox(self.path)

    @invariant()
    def pending_is_what_is_left_in_acceptance_order(self) -> None:
        pending = self.outbox.pending(limit=10_000)
        ids = [entry.event_id for entry in pending]
        assert ids == self._model_pending()
        assert len(set(ids)) == len(ids)
        seqs = [entry.seq for entry in pending]
        assert seqs == sorted(seqs)
        for entity in {entity for _, entity in self.accepted}:
            mine = [entry.event_id for entry in pending if entry.entity == entity]
            model = [e for e, owner in self.accepted if owner == entity and e not in self.done]
            assert mine == model

    @invariant()
    def nothing_accepted_is_lost(self) -> None:
        counts = self.outbox.counts()
        assert counts.pending + counts.sent + counts.rejected == len(self.accepted)
        assert counts.rejected == len(self.rejected)
        assert {entry.event_id for entry, _ in self.outbox.rejected()} == self.rejected
        assert self.outbox.last_seq() == len(self.accepted)


OutboxModel.TestCase.settings = settings(max_examples=40, stateful_step_count=30, deadline=None)
test_outbox_model = OutboxModel.TestCase
