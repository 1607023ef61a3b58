"""Restored hotel states stay raw JSON until read, and read exactly as validated models."""

from __future__ import annotations

from streams.core.state import CustomerState
from streams.core.step import CUSTOMER
from streams.runners.restore import RestoredStates


def restored(**raw: bytes) -> RestoredStates:
    states = RestoredStates("test[0]")
    for key, value in raw.items():
        dict.__setitem__(states, (CUSTOMER, key.encode()), value)
    return states


def test_a_raw_state_is_validated_on_first_read_and_kept() -> None:
    state = CustomerState(hotel_id="H", customer_id="C1", version=3)
    states = restored(C1=state.model_dump_json().encode())
    assert states.pending() == 1
    assert states.get((CUSTOMER, b"C1")) == state
    assert states.pending() == 0
    assert states[CUSTOMER, b"C1"] is states.get((CUSTOMER, b"C1"))
    assert states.get((CUSTOMER, b"nope")) is None


def test_a_state_that_does_not_validate_reads_as_absent() -> None:
    states = restored(C1=b'{"hotel_id": 5}', C2=b"not json")
    assert states.get((CUSTOMER, b"C1")) is None
    assert (CUSTOMER, b"C1") not in states
    assert states[CUSTOMER, b"C2"] is None
    assert len(states) == 0


def test_items_and_values_are_models() -> None:
    one = CustomerState(hotel_id="H", customer_id="C1", version=1)
    two = CustomerState(hotel_id="H", customer_id="C2", version=2)
    states = restored(C1=one.model_dump_json().encode(), C2=two.model_dump_json().encode(),
                      C3=b"{}")
    states[CUSTOMER, b"C4"] = one  # a change applied after the restore
    assert sorted(state.customer_id for state in states.values()) == ["C1", "C1", "C2"]
    assert dict(states.items())[CUSTOMER, b"C2"] == two
