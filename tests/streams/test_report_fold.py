"""The reports' fold of facts into a day's totals survives a crash anywhere (`shares.fold`).

The agent writes, per fact, the day's totals and then the source's share, as two records of
one changelog partition, and commits the facts' offsets only after their writes are
durable (Faust's at-least-once). Modelled here: the changelog is a list of writes, a crash
keeps any prefix of it (never less than what the committed facts wrote), a restarted
worker restores the table from that prefix (cold) or keeps its local store, which may be
ahead of the changelog (warm), and reads the facts again from the committed offset. The
totals must always end as the sum of the last share of every source.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from streams.core.reports.shares import DayShare, DayTotals, fold, summed

TOTALS = "totals"

shares = st.one_of(st.none(), st.builds(
    DayShare, sold=st.integers(0, 1), booked=st.integers(0, 1),
    room_revenue=st.integers(0, 50_000).map(Decimal), other_revenue=st.integers(0, 9_000).map(
        Decimal), arrivals=st.integers(0, 1), arrival_nights=st.integers(0, 7),
    out_of_order=st.integers(0, 1), customer_id=st.sampled_from(["C1", "C2", "C3", None]),
    currency=st.just("JPY")))
facts = st.lists(st.tuples(st.sampled_from(["stay:A", "stay:B", "stay:C", "room:R"]), shares),
                 min_size=1, max_size=25)


def _apply(table: dict[str, Any], log: list[tuple[str, Any]], source: str,
           share: DayShare | None, offset: int) -> None:
    totals, kept = fold(table.get(TOTALS, {}), table.get(source, {}), share, offset)
    for key, value in ((TOTALS, totals), (source, kept)):
        table[key] = value
        log.append((key, value))


def _expected(read: list[tuple[str, DayShare | None]]) -> DayTotals:
    last: dict[str, DayShare | None] = {}
    for source, share in read:
        last[source] = share
    return summed(share for share in last.values() if share is not None)


@settings(max_examples=400, deadline=None)
@given(facts, st.data())
def test_a_crash_anywhere_then_a_replay_counts_every_fact_once(
    read: list[tuple[str, DayShare | None]], data: st.DataObject,
) -> None:
    """Cold (restored from the durable changelog) or warm (local store ahead of it)."""
    committed = data.draw(st.integers(0, len(read)), label="facts committed")
    crashed_at = data.draw(st.integers(committed, len(read)), label="facts read before the crash")
    table: dict[str, Any] = {}
    log: list[tuple[str, Any]] = []
    for offset, (source, share) in enumerate(read[:crashed_at]):
        _apply(table, log, source, share, offset)
    durable = data.draw(st.integers(2 * committed, len(log)), label="changelog records durable")
    warm = data.draw(st.booleans(), label="warm restart")
    restored: dict[str, Any] = dict(table) if warm else {}
    if not warm:
        for key, value in log[:durable]:
            restored[key] = value
    replayed_log = log[:durable]
    for offset in range(committed, len(read)):
        source, share = read[offset]
        _apply(restored, replayed_log, source, share, offset)
    expected = _expected(read)
    assert DayTotals.model_validate(restored[TOTALS]["totals"]) == expected
    from_changelog: dict[str, Any] = {}
    for key, value in replayed_log:
        from_changelog[key] = value
    assert DayTotals.model_validate(from_changelog[TOTALS]["totals"]) == expected, (
        "a worker restoring the changelog afterwards reads other totals")


@given(facts)
def test_reading_every_fact_twice_changes_nothing(read: list[tuple[str, DayShare | None]]) -> None:
    table: dict[str, Any] = {}
    for offset, (source, share) in enumerate(read):
        _apply(table, [], source, share, offset)
        _apply(table, [], source, share, offset)
    assert DayTotals.model_validate(table[TOTALS]["totals"]) == _expected(read)
