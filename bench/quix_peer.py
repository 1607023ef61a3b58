"""A Quix Streams peer of the hub: the core of the same state, from the same topics.

It reads the hub's four source topics (`<prefix>hotel.room`, `.customer`, `.reservation`,
`.checkin_checkout`), checks each record's signature as the hub's intake does
(`streams.wire.signing.Verifier` over the identity store: one HMAC-SHA256 a record; a
record that does not verify is dropped and counted, where the hub would refuse it), and
decodes each record as the hub does: the Confluent header
(magic byte, schema id), the writer schema fetched from the registry by id (cached), Avro
resolved against our contract (`fastavro`, the hub's parsed schemas) and the event
validated with the hub's pydantic model. It keeps, in RocksDB state with changelog topics:

- the latest room, customer and reservation per record key, and the latest stay movement;
- sold nights per hotel and room type: each reservation's change of held nights goes
  through a repartition (`group_by` hotel:room_type) into a stateful count per night.

It does not apply the hub's rules (no refusals, waiting room or derived room events), so
it does less work than the hub; see bench/README.md.

It connects as the settings' identity (`HOTELHUB_IDENTITY`, or `HOTELHUB_CREDENTIALS_FILE`:
SCRAM-SHA-512 through Quix's `ConnectionConfig`, HTTP Basic to the registry), so no secret
is on its command line; `bench.month_catchup` runs it as the operator, since its changelog
and repartition topics are under no grant of the policies.

Run by `bench.month_catchup` as a subprocess, stopped by SIGTERM once its consumer group
has no lag; on its own, `--idle-s` stops it after that many seconds without a record.
On exit it prints one JSON line: records processed and its own first-to-last rate.
"""

from __future__ import annotations

import argparse
import io
import json
import struct
import sys
import time
from collections.abc import Callable, Sequence
from datetime import date, timedelta
from typing import Any

import fastavro
import httpx
from pydantic import SecretStr
from quixstreams import Application, State
from quixstreams.kafka.configuration import ConnectionConfig

from schemas import schema_text
from streams.core.kinds import POLICIES, EventKind
from streams.core.models import EVENT_MODELS
from streams.settings import HubSettings
from streams.wire.codec import parse_schema
from streams.wire.registry_client import IdentityAuth, split_credentials
from streams.wire.signing import HUB_SET, Verifier

KINDS = (EventKind.ROOM, EventKind.CUSTOMER, EventKind.RESERVATION, EventKind.CHECKIN_CHECKOUT)
HOLDS = frozenset({"tentative", "confirmed", "guaranteed", "checked_in", "checked_out"})
_HEADER = struct.Struct(">bI")


class Counter:
    """Records decoded, and when the first and the last one were; records dropped because
    their signature did not verify."""

    def __init__(self) -> None:
        self.records = 0
        self.unverified = 0
        self.first: float | None = None
        self.last: float | None = None

    def tick(self) -> None:
        now = time.time()
        self.records += 1
        if self.first is None:
            self.first = now
        self.last = now


class Writers:
    """Writer schemas by id from the registry (GET /schemas/ids/{id}), parsed once."""

    def __init__(self, url: str, settings: HubSettings) -> None:
        base, auth = split_credentials(url)
        self._client = httpx.Client(
            base_url=base, timeout=10.0,
            auth=auth or (IdentityAuth(settings) if settings.secured else None))
        self._parsed: dict[int, Any] = {}

    def __call__(self, schema_id: int) -> Any:
        found = self._parsed.get(schema_id)
        if found is None:
            response = self._client.get(f"/schemas/ids/{schema_id}")
            response.raise_for_status()
            found = self._parsed[schema_id] = parse_schema(response.json()["schema"])
        return found


class HubAvro:
    """Intake of one kind's topic: the signature checked (as the hub's intake), then
    Confluent-framed Avro into the hub's validated model, as a JSON-ready dict; None for a
    record that does not verify.

    Applied with its key and headers (`apply(..., metadata=True)`) on the raw value bytes,
    since the signature covers key, value and headers, which a value deserializer does not
    all see.
    """

    def __init__(self, kind: EventKind, writers: Writers, counter: Counter,
                 verifier: Verifier | None) -> None:
        self.kind, self.writers, self.counter = kind, writers, counter
        self.reader = parse_schema(schema_text(kind.value))
        self.model = EVENT_MODELS[kind]
        self.topic = POLICIES[kind].topic  # signed without the deployment's prefix
        self.verifier = verifier

    def __call__(self, value: bytes, key: str | None, timestamp: int, headers: Any) -> Any:
        if self.verifier is not None:
            signed = [(name, data) for name, data in headers or () if name not in HUB_SET]
            if self.verifier.verify(self.topic, None if key is None else key.encode(), value,
                                    signed).identity is None:
                self.counter.unverified += 1
                return None
        magic, schema_id = _HEADER.unpack_from(value)
        if magic != 0:
            raise ValueError(f"magic byte {magic} is not the Confluent framing")
        record = fastavro.schemaless_reader(io.BytesIO(value[_HEADER.size:]),
                                            self.writers(schema_id), self.reader)
        event = self.model.model_validate(record)
        self.counter.tick()
        return event.model_dump(mode="json")


def held(reservation: dict[str, Any] | None) -> set[str]:
    """Nights a reservation takes from its room type (the hub's rule, without early
    departures: check-outs are on another topic)."""
    if reservation is None or reservation["status"] not in HOLDS:
        return set()
    start = date.fromisoformat(reservation["checkin_date"])
    end = date.fromisoformat(reservation["checkout_date"])
    return {(start + timedelta(days=n)).isoformat() for n in range((end - start).days)}


def keep_latest(name: str) -> Callable[[dict[str, Any], State[str, Any]], dict[str, Any]]:
    def apply(event: dict[str, Any], state: State[str, Any]) -> dict[str, Any]:
        state.set(name, event["data"])
        return event
    return apply


def reservation_change(event: dict[str, Any], state: State[str, Any]) -> dict[str, Any]:
    """Keep the latest reservation; say which nights of which room type it took or gave."""
    before: dict[str, Any] | None = state.get("reservation")
    after = event["data"]
    state.set("reservation", after)
    change: dict[str, int] = {}
    if before is not None and before["room_type"] != after["room_type"]:
        change = {night: -1 for night in held(before)}
        before = None
    old, new = held(before), held(after)
    change |= {night: 1 for night in new - old} | {night: -1 for night in old - new}
    return {"hotel_id": event["hotel_id"], "room_type": after["room_type"], "sold": change}


def count_sold(change: dict[str, Any], state: State[str, Any]) -> dict[str, Any]:
    sold: dict[str, int] = state.get("sold", {})
    for night, step in change["sold"].items():
        sold[night] = sold.get(night, 0) + step
    state.set("sold", sold)
    return change


def build(app: Application, prefix: str, writers: Writers, counter: Counter,
          verifier: Verifier | None) -> None:
    def intake(kind: EventKind) -> Any:
        topic = app.topic(f"{prefix}{POLICIES[kind].topic}", key_deserializer="str",
                          value_deserializer="bytes")
        return (app.dataframe(topic)
                .apply(HubAvro(kind, writers, counter, verifier), metadata=True)
                .filter(lambda event: event is not None))

    rooms = intake(EventKind.ROOM)
    rooms.apply(keep_latest("room"), stateful=True)
    customers = intake(EventKind.CUSTOMER)
    customers.apply(keep_latest("customer"), stateful=True)
    moves = intake(EventKind.CHECKIN_CHECKOUT)
    moves.apply(keep_latest("movement"), stateful=True)
    bookings = intake(EventKind.RESERVATION)
    changes = bookings.apply(reservation_change, stateful=True)
    changes = changes.filter(lambda change: bool(change["sold"]))
    by_type = changes.group_by(lambda change: f"{change['hotel_id']}:{change['room_type']}",
                               name="sold-nights")
    by_type.apply(count_sold, stateful=True)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--registry", default=None,
                        help="registry URL (default: the settings', SCHEMA_REGISTRY_URL, "
                             "which keeps any credentials off the command line)")
    parser.add_argument("--prefix", required=True, help="topic prefix of the hub's topics")
    parser.add_argument("--group", required=True, help="consumer group (new: from earliest)")
    parser.add_argument("--state-dir", required=True)
    parser.add_argument("--guarantee", default="exactly-once",
                        choices=("exactly-once", "at-least-once"))
    parser.add_argument("--commit-interval", type=float, default=1.0)
    parser.add_argument("--idle-s", type=float, default=0.0,
                        help="stop after this many seconds without a record (0: until SIGTERM)")
    return parser.parse_args(argv)


def connection(bootstrap: str, settings: HubSettings) -> ConnectionConfig:
    """Quix's connection as the settings' identity: SASL/SCRAM-SHA-512 with its secret file's
    credential (read here, never passed on a command line); plaintext with security off."""
    found = settings.credentials()
    if found is None:
        return ConnectionConfig(bootstrap_servers=bootstrap)
    username, secret = found
    cafile = settings.kafka_ssl_cafile
    return ConnectionConfig(
        bootstrap_servers=bootstrap,
        security_protocol="sasl_ssl" if cafile else "sasl_plaintext",
        sasl_mechanism="SCRAM-SHA-512", sasl_username=username,
        sasl_password=SecretStr(secret), ssl_ca_location=str(cafile) if cafile else None)


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_args(argv)
    settings = HubSettings()
    counter = Counter()
    app = Application(
        broker_address=connection(options.bootstrap, settings), consumer_group=options.group,
        auto_offset_reset="earliest", state_dir=options.state_dir,
        processing_guarantee=options.guarantee, commit_interval=options.commit_interval,
        use_changelog_topics=True, loglevel="INFO",
    )
    build(app, options.prefix, Writers(options.registry or settings.registry_url, settings),
          counter, Verifier.of(settings))
    started = time.time()
    app.run(timeout=options.idle_s)
    seconds = (counter.last or 0) - (counter.first or 0)
    print(json.dumps({
        "records": counter.records, "unverified": counter.unverified,
        "first_record_s": round((counter.first or started) - started, 3),
        "first_to_last_s": round(seconds, 3),
        "records_per_s": round((counter.records - 1) / seconds, 1) if seconds > 0 else None,
        "first_record_at": counter.first, "last_record_at": counter.last,
    }), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
