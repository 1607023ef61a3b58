"""What a record signature costs: signing (every publisher) and verifying (the hub's intake).

`python -m bench.signing --records 20000 --runs 3`: a room event's record as the publisher
writes it (its Avro-sized value, CloudEvents headers), signed with `Signer` and verified with
`Verifier` over an identity store on disk, as the hub runs it (`WatchedStore`, checked at
most once a second). No broker: the per-record CPU cost of `streams.wire.signing` alone.
Prints microseconds per record, the median of `--runs`.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench.common import room_document
from streams.core.documents import build_event
from streams.core.identities import Identity, IdentityStore, Role, WatchedStore, new_credential
from streams.core.kinds import System
from streams.core.models import record_key
from streams.settings import HubSettings
from streams.wire.cloudevents import headers_for
from streams.wire.signing import Signer, Verifier

TOPIC = "hotel.room"


def per_record_us(work: Callable[[], object], records: int) -> float:
    started = time.perf_counter()
    for _ in range(records):
        work()
    return (time.perf_counter() - started) / records * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=3)
    options = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-signing-") as home:
        settings = HubSettings(security="sasl", home=Path(home))
        store = IdentityStore(settings.identities_path)
        identity, issued = new_credential(Identity(System.HOTEL_PMS.value, Role.SYSTEM),
                                          settings.secrets_dir)
        store.put(identity)
        store.save()
        signer = Signer(issued.username, issued.secret)
        verifier = Verifier(WatchedStore(settings.identities_path))

        system, document = room_document()
        event = build_event(document, publisher=system, default_hotel_id="H1")
        key = record_key(event)
        value = b"\x00\x00\x00\x00\x01" + event.model_dump_json().encode()[:300]
        headers = headers_for(event)
        signed = signer.sign(TOPIC, key, value, headers)
        if verifier.verify(TOPIC, key, value, signed).identity != System.HOTEL_PMS.value:
            raise SystemExit("the benchmark's record does not verify")

        sides = {
            "sign": lambda: signer.sign(TOPIC, key, value, headers),
            "verify": lambda: verifier.verify(TOPIC, key, value, signed),
        }
        runs = {name: [per_record_us(work, options.records) for _ in range(options.runs)]
                for name, work in sides.items()}

    print(f"{options.records} records, {len(signed)} headers, {len(value)}-byte value; "
          f"median of {options.runs} runs")
    print("| side | median us/record | each run |")
    print("|---|---|---|")
    for name, each in runs.items():
        print(f"| {name} | {statistics.median(each):.1f} | "
              f"{', '.join(f'{us:.1f}' for us in each)} |")


if __name__ == "__main__":
    main()
