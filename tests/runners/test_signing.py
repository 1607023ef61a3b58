"""Record signatures (`streams.wire.signing`) and who the hub takes a record from.

Signing and verifying over an identity store on disk: tampered topic, key, value or
CloudEvents header, another credential, a revoked one, an unsigned record; the exact bytes
signed, spelled out here for third-party producers; the intake (`Forwarding`) and the
step's refusal of an event whose producer is not the system it names.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
import time
from pathlib import Path
from typing import Any, cast

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.core.documents import build_event
from streams.core.identities import (
    Identity,
    IdentityStore,
    Role,
    WatchedStore,
    new_credential,
    without_credential,
)
from streams.core.kinds import EventKind, System
from streams.core.models import RefusalReason
from streams.core.rules import Principal, RuleSettings, origin_refusal
from streams.core.step import apply_event, refuse_unverified
from streams.runners.effects import DERIVED_BY, step_records
from streams.runners.forwarding import Forwarding
from streams.settings import HubSettings
from streams.wire.cloudevents import header_map, headers_for
from streams.wire.codec import ConfluentAvroCodec
from streams.wire.signing import (
    CREDENTIAL_HEADER,
    PRINCIPAL_HEADER,
    SIGNATURE_HEADER,
    UNVERIFIED_HEADER,
    Signer,
    Verified,
    Verifier,
    signed_bytes,
)
from tests.support.events import sample

TOPIC = "hotel.reservation"
"""What is signed: the kind's topic without the deployment's prefix."""
WRITTEN_TO = "staging.hotel.reservation"
"""Where a deployment with HOTELHUB_TOPIC_PREFIX=staging. writes it."""
KEY = b"H1:RSV-1"
VALUE = b"\x00\x00\x00\x00\x07avro body"
KNOWN_SIGNATURE = "9c5ae08cd3d7c07e0607722c49a93d60d9a2401ea8b2331b6c1bf124a977b7f9"
HEADERS = [("ce_id", b"e-1"), ("ce_hotelid", b"H1"), ("content-type", b"application/avro")]


class Deployment:
    """An identity store with a credential per default system, and their secrets."""

    def __init__(self, root: Path) -> None:
        self.settings = HubSettings(security="sasl", home=root)
        self.store = IdentityStore(self.settings.identities_path)
        self.secrets: dict[str, tuple[str, str]] = {}
        for name, role in ((s.value, Role.SYSTEM) for s in
                           (System.HOTEL_PMS, System.HOTEL_MEMBER, System.HOTEL_SAAS)):
            self.add(Identity(name, role))
        self.add(Identity(System.HOTEL_HUB.value, Role.HUB))
        self.store.save()

    def add(self, identity: Identity) -> str:
        """One more credential for `identity` (saved by the caller); its username."""
        identity, issued = new_credential(identity, self.settings.secrets_dir)
        self.store.put(identity)
        self.secrets[issued.username] = (issued.username, issued.secret)
        self.secrets[identity.name] = (issued.username, issued.secret)
        return issued.username

    def signer(self, name: str) -> Signer:
        return Signer(*self.secrets[name])

    def verifier(self) -> Verifier:
        return Verifier(WatchedStore(self.settings.identities_path, every_s=0))


@pytest.fixture
def deployment(tmp_path: Path) -> Deployment:
    return Deployment(tmp_path)


def field(data: bytes | None) -> bytes:
    return b"\xff\xff\xff\xff" if data is None else struct.pack(">I", len(data)) + data


def test_the_signed_bytes_are_the_documented_format() -> None:
    """What a Java producer reimplements: length-prefixed topic, key, value, then the
    `ce_*` headers sorted by name and value; nothing else."""
    headers = [("ce_type", b"t"), ("x-trace", b"1"), ("ce_id", b"b"), ("ce_id", b"a"),
               ("hub.credential", b"c"), ("ce_empty", None)]
    expected = (field(b"staging.hotel.room") + field(b"H1:R1") + field(None)
                + struct.pack(">I", 4)
                + field(b"ce_empty") + field(None)
                + field(b"ce_id") + field(b"a") + field(b"ce_id") + field(b"b")
                + field(b"ce_type") + field(b"t"))
    assert signed_bytes("staging.hotel.room", b"H1:R1", None, headers) == expected


def test_a_known_answer_for_third_party_producers() -> None:
    """A fixed secret and record, and their signature: a reimplementation must match it."""
    body = signed_bytes("hotel.room", b"H1:R1", b"v", [("ce_id", b"1")])
    assert body.hex() == ("0000000a" "686f74656c2e726f6f6d" "00000005" "48313a5231"
                          "00000001" "76" "00000001" "00000005" "63655f6964" "00000001" "31")
    key = hmac.new(b"s3cret", b"hotelhub record signing v1", hashlib.sha256).digest()
    assert hmac.new(key, body, hashlib.sha256).hexdigest() == KNOWN_SIGNATURE
    headers = Signer("hotel-pms.1", "s3cret").sign("hotel.room", b"H1:R1", b"v",
                                                   [("ce_id", b"1")])
    assert header_map(headers) == {"ce_id": "1", CREDENTIAL_HEADER: "hotel-pms.1",
                                   SIGNATURE_HEADER: KNOWN_SIGNATURE}


def test_a_signed_record_verifies_as_its_identity(deployment: Deployment) -> None:
    headers = deployment.signer("hotel-pms").sign(TOPIC, KEY, VALUE, HEADERS)
    assert deployment.verifier().verify(TOPIC, KEY, VALUE, headers) == Verified("hotel-pms")


def test_unsigned_headers_may_be_added_and_headers_reordered(deployment: Deployment) -> None:
    headers = deployment.signer("hotel-saas").sign(TOPIC, KEY, VALUE, HEADERS)
    moved = [*reversed(headers), ("traceparent", b"00-abc"), ("hub.replayed-from", b"dl:0:1")]
    assert deployment.verifier().verify(TOPIC, KEY, VALUE, moved).identity == "hotel-saas"


@pytest.mark.parametrize("change", ["topic", "key", "value", "ce header", "new ce header",
                                    "dropped ce header", "credential"])
def test_any_change_to_what_is_signed_fails(deployment: Deployment, change: str) -> None:
    headers = deployment.signer("hotel-pms").sign(TOPIC, KEY, VALUE, HEADERS)
    topic, key, value = TOPIC, KEY, VALUE
    if change == "topic":
        topic = "hotel.room"
    elif change == "key":
        key = b"H1:RSV-2"
    elif change == "value":
        value = VALUE + b"!"
    elif change == "ce header":
        headers = [(n, b"H2" if n == "ce_hotelid" else v) for n, v in headers]
    elif change == "new ce header":
        headers = [*headers, ("ce_targets", b"hotel-pms")]
    elif change == "dropped ce header":
        headers = [(n, v) for n, v in headers if n != "ce_id"]
    else:  # another system's credential named over hotel-pms's signature
        member = deployment.secrets["hotel-member"][0]
        headers = [(n, member.encode() if n == CREDENTIAL_HEADER else v) for n, v in headers]
    found = deployment.verifier().verify(topic, key, value, headers)
    assert found.identity is None
    assert found.problem is not None and "bad signature" in found.problem


def test_a_key_not_derived_from_the_credentials_secret_fails(deployment: Deployment) -> None:
    """Naming hotel-member's credential does not help without hotel-member's secret."""
    member = deployment.secrets["hotel-member"][0]
    headers = Signer(member, deployment.secrets["hotel-pms"][1]).sign(TOPIC, KEY, VALUE, HEADERS)
    found = deployment.verifier().verify(TOPIC, KEY, VALUE, headers)
    assert found.identity is None and "bad signature" in (found.problem or "")


def test_unsigned_unknown_and_malformed(deployment: Deployment) -> None:
    verifier = deployment.verifier()
    assert "unsigned" in (verifier.verify(TOPIC, KEY, VALUE, HEADERS).problem or "")
    stranger = Signer("hotel-pos.1", "guess").sign(TOPIC, KEY, VALUE, HEADERS)
    assert "'hotel-pos.1' is unknown or revoked" in (
        verifier.verify(TOPIC, KEY, VALUE, stranger).problem or "")
    signed = deployment.signer("hotel-pms").sign(TOPIC, KEY, VALUE, HEADERS)
    twice = [*signed, (SIGNATURE_HEADER, b"00")]
    assert "malformed" in (verifier.verify(TOPIC, KEY, VALUE, twice).problem or "")
    only_signature = [(n, v) for n, v in signed if n != CREDENTIAL_HEADER]
    assert "malformed" in (verifier.verify(TOPIC, KEY, VALUE, only_signature).problem or "")


def test_rotation_and_revocation_take_effect_without_a_restart(deployment: Deployment) -> None:
    verifier = deployment.verifier()
    old = deployment.signer("hotel-pms")
    new_username = deployment.add(deployment.store.require("hotel-pms"))
    deployment.store.save()
    new = deployment.signer(new_username)
    for signer in (old, new):  # both valid during the overlap
        headers = signer.sign(TOPIC, KEY, VALUE, HEADERS)
        assert verifier.verify(TOPIC, KEY, VALUE, headers).identity == "hotel-pms"
    time.sleep(0.01)  # a new mtime for the store file
    with deployment.store.editing() as store:
        store.put(without_credential(store.require("hotel-pms"), old.username,
                                     deployment.settings.secrets_dir))
    revoked = verifier.verify(TOPIC, KEY, VALUE, old.sign(TOPIC, KEY, VALUE, HEADERS))
    assert revoked.identity is None and "unknown or revoked" in (revoked.problem or "")
    assert verifier.verify(TOPIC, KEY, VALUE, new.sign(TOPIC, KEY, VALUE, HEADERS)
                           ).identity == "hotel-pms"


def test_security_off_signs_and_verifies_nothing(tmp_path: Path) -> None:
    plain = HubSettings(security="none", home=tmp_path)
    assert Signer.of(plain) is None and Verifier.of(plain) is None


def test_signer_of_reads_the_settings_credential(deployment: Deployment) -> None:
    signer = Signer.of(deployment.settings.as_identity("hotel-member"))
    assert signer is not None and signer.username == deployment.secrets["hotel-member"][0]
    again = signer.sign(TOPIC, KEY, VALUE, signer.sign(TOPIC, KEY, VALUE, HEADERS))
    assert [n for n, _ in again].count(SIGNATURE_HEADER) == 1  # re-signing replaces


HEADER_NAMES = st.one_of(st.sampled_from(["ce_id", "ce_hotelid", "ce_type", "x", "hub.source"]),
                         st.text(min_size=1, max_size=12))
RECORDS = st.tuples(
    st.text(min_size=1, max_size=40), st.one_of(st.none(), st.binary(max_size=64)),
    st.one_of(st.none(), st.binary(max_size=256)),
    st.lists(st.tuples(HEADER_NAMES, st.binary(max_size=32)), max_size=8))


@settings(max_examples=200, deadline=None)
@given(record=RECORDS, flip=st.integers(min_value=0))
def test_random_records_verify_and_any_flipped_byte_does_not(
    tmp_path_factory: pytest.TempPathFactory, record: Any, flip: int,
) -> None:
    deployment = _shared(tmp_path_factory)
    topic, key, value, headers = record
    signed = deployment.signer("hotel-saas").sign(topic, key, value, headers)
    verifier = deployment.verifier()
    assert verifier.verify(topic, key, value, signed).identity == "hotel-saas"
    for field_name in ("key", "value"):
        data = key if field_name == "key" else value
        if not data:
            continue
        at = flip % len(data)
        changed = data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1:]
        found = (verifier.verify(topic, changed, value, signed) if field_name == "key"
                 else verifier.verify(topic, key, changed, signed))
        assert found.identity is None, field_name
    # A null and an empty key or value are not the same record.
    if key is None:
        assert verifier.verify(topic, b"", value, signed).identity is None


_DEPLOYMENTS: dict[str, Deployment] = {}


def _shared(factory: pytest.TempPathFactory) -> Deployment:
    """One store for every hypothesis example (credentials take a moment to make)."""
    if "shared" not in _DEPLOYMENTS:
        _DEPLOYMENTS["shared"] = Deployment(factory.mktemp("signing"))
    return _DEPLOYMENTS["shared"]


# --- the refusal: the step, the intake, the hub's own room events ---------------------


def room_event(system: System, hotel: str = "H1") -> Any:
    """A room event naming `system`, whichever system may publish rooms."""
    _, document = sample(EventKind.ROOM, "R1", room_type="DBL", status="vacant_clean",
                         maintenance_notes=None, version=1)
    event = build_event({**document, "action": "status_changed", "hotel_id": hotel},
                        publisher=System.HOTEL_PMS, default_hotel_id=hotel)
    return event.model_copy(update={"updated_by_system": system.value})


def test_the_system_an_event_names_must_be_its_producer() -> None:
    event = room_event(System.HOTEL_PMS)
    assert origin_refusal(event, Principal("hotel-pms")) is None
    forged = origin_refusal(event, Principal("hotel-saas"))
    assert forged is not None and forged.reason_code is RefusalReason.UNVERIFIED_ORIGIN
    assert forged.reason == "updated_by_system hotel-pms but signed by hotel-saas"
    unsigned = origin_refusal(event, Principal(None, "unsigned"))
    assert unsigned is not None
    assert unsigned.reason == ("updated_by_system hotel-pms but the producer is not verified: "
                               "unsigned")


def test_a_refused_origin_changes_no_state() -> None:
    event = room_event(System.HOTEL_PMS)
    step = refuse_unverified(event, Principal("hotel-member"))
    assert step is not None and not step.changes and not step.room_events
    assert [r.reason_code for r in step.refusals] == [RefusalReason.UNVERIFIED_ORIGIN]
    assert refuse_unverified(event, Principal("hotel-pms")) is None
    assert apply_event(event, lambda tag, key: None, RuleSettings()).changes  # else applied


class _NoCodec:
    """Forwarding decodes only records without a usable `ce_hotelid`; these have one."""

    def encode(self, event: Any) -> bytes:
        return bytes(event.model_dump_json().encode())


def test_the_intake_sets_the_principal_and_drops_a_clients_own(deployment: Deployment) -> None:
    from aiokafka.structs import ConsumerRecord

    settings = deployment.settings.model_copy(update={"topic_partitions": 2})
    forwarding = Forwarding(settings, cast(ConfluentAvroCodec, _NoCodec()),
                            {WRITTEN_TO: EventKind.RESERVATION}, "app.hotel-events")

    def record(headers: list[tuple[str, bytes]]) -> ConsumerRecord[bytes, bytes]:
        return ConsumerRecord(WRITTEN_TO, 0, 7, 1, 0, KEY, VALUE, None, len(KEY), len(VALUE),
                              headers)

    async def forwarded(headers: list[tuple[str, bytes]]) -> dict[str, str]:
        (out,) = await forwarding.forward(record(headers))
        return header_map(out.headers)

    import asyncio

    lying = [*HEADERS, (PRINCIPAL_HEADER, b"hotel-hub")]
    signed = deployment.signer("hotel-pms").sign(TOPIC, KEY, VALUE, lying)
    found = asyncio.run(forwarded(signed))
    assert found[PRINCIPAL_HEADER] == "hotel-pms" and UNVERIFIED_HEADER not in found
    found = asyncio.run(forwarded(lying))
    assert PRINCIPAL_HEADER not in found and "unsigned" in found[UNVERIFIED_HEADER]
    # Signed over the prefixed name instead of the kind's topic: not what the hub checks.
    prefixed = deployment.signer("hotel-pms").sign(WRITTEN_TO, KEY, VALUE, HEADERS)
    assert "bad signature" in asyncio.run(forwarded(prefixed))[UNVERIFIED_HEADER]
    # A room event marked as the hub's own is passed over only when the hub signed it.
    derived = [*HEADERS, (DERIVED_BY, b"other-app")]
    assert asyncio.run(forwarding.forward(record(
        deployment.signer("hotel-hub").sign(TOPIC, KEY, VALUE, derived)))) == []
    found = asyncio.run(forwarded(deployment.signer("hotel-pms").sign(TOPIC, KEY, VALUE,
                                                                      derived)))
    assert found[PRINCIPAL_HEADER] == "hotel-pms"


def test_the_hub_signs_its_room_events_and_tells_the_real_producer(
        deployment: Deployment) -> None:
    from streams.core.step import Step

    settings = deployment.settings
    codec = cast(ConfluentAvroCodec, _NoCodec())
    hub = deployment.signer("hotel-hub")
    derived = room_event(System.HOTEL_HUB)
    records = step_records(Step(room_event(System.HOTEL_PMS), room_events=[derived]),
                           settings=settings, codec=codec, signer=hub, principal="hotel-pms")
    (out,) = records
    assert out.topic == settings.topic("hotel.room")
    assert header_map(out.headers)[CREDENTIAL_HEADER] == hub.username
    assert deployment.verifier().verify("hotel.room", out.key, out.value, out.headers
                                        ) == Verified("hotel-hub")
    assert dict(headers_for(derived)).items() <= dict(out.headers).items()


def test_verifying_records_reads_the_store_keys_once(
        deployment: Deployment, monkeypatch: pytest.MonkeyPatch) -> None:
    """One HMAC per record, the store's keys cached while its file is unchanged (what that
    costs per record: `python -m bench.signing`)."""
    event = room_event(System.HOTEL_PMS)
    value = b"\x00\x00\x00\x00\x01" + event.model_dump_json().encode()[:300]
    headers = deployment.signer("hotel-pms").sign("hotel.room", KEY, value, headers_for(event))
    verifier = Verifier(WatchedStore(deployment.settings.identities_path))  # as the hub runs it
    derived: list[IdentityStore] = []
    keys = IdentityStore.signing_keys

    def counted(store: IdentityStore) -> dict[str, tuple[str, bytes]]:
        derived.append(store)
        return keys(store)

    monkeypatch.setattr(IdentityStore, "signing_keys", counted)
    for _ in range(1_000):
        assert verifier.verify("hotel.room", KEY, value, headers) == Verified("hotel-pms")
    assert derived == []


def test_a_replayed_dead_letter_still_verifies_as_its_producer(deployment: Deployment) -> None:
    """`hotelhub deadletter replay` sends the original key, value and headers back to the
    source topic: the producer's signature holds, and the hub's own principal is not kept."""
    from aiokafka.structs import ConsumerRecord

    from streams.wire.deadletters import parse_dead_letter, replay_headers

    settings = deployment.settings
    forwarding = Forwarding(settings, cast(ConfluentAvroCodec, _NoCodec()),
                            {WRITTEN_TO: EventKind.RESERVATION}, "app.hotel-events")
    signed = deployment.signer("hotel-member").sign(TOPIC, KEY, VALUE, HEADERS)
    forwarded = [*signed, ("hub.source.topic", WRITTEN_TO.encode()),
                 ("hub.source.partition", b"0"),
                 ("hub.source.offset", b"7"), (PRINCIPAL_HEADER, b"hotel-member")]
    failed = ConsumerRecord("app.hotel-events", 1, 3, 1, 0, KEY, VALUE, None, len(KEY),
                            len(VALUE), forwarded)
    letter_record, topic = forwarding.dead_letter(failed, ZeroDivisionError("rule bug"))
    assert topic == WRITTEN_TO and PRINCIPAL_HEADER not in dict(letter_record.headers)
    letter = parse_dead_letter(partition=0, offset=0, timestamp_ms=0, key=letter_record.key,
                               value=letter_record.value, headers=letter_record.headers)
    assert letter.source_topic == WRITTEN_TO  # where the replay writes it, as the original
    headers = replay_headers(letter, settings.topic("hotel.deadletter"))
    assert deployment.verifier().verify(TOPIC, letter.key, letter.value,
                                        headers) == Verified("hotel-member")
