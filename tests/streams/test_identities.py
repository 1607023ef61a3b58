"""The identity store on its own: credentials, rotation limits, authentication, bad files."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from streams.core.exceptions import ConfigurationError
from streams.core.identities import (
    Identity,
    IdentityStore,
    Role,
    WatchedStore,
    identity_of,
    new_credential,
    read_user_info,
    secret_path,
    without_credential,
)
from streams.core.kinds import EventKind


def _store(tmp_path: Path) -> tuple[IdentityStore, Path]:
    return IdentityStore(tmp_path / "identities.json"), tmp_path / "secrets"


def test_a_credential_is_a_numbered_user_whose_secret_only_its_file_holds(tmp_path: Path) -> None:
    store, secrets_dir = _store(tmp_path)
    identity, issued = new_credential(Identity("hotel-pms", Role.SYSTEM), secrets_dir)
    store.put(identity)
    store.save()

    assert issued.username == "hotel-pms.1" and identity_of(issued.username) == "hotel-pms"
    assert read_user_info(issued.path) == ("hotel-pms.1", issued.secret)
    assert read_user_info(secret_path(secrets_dir, "hotel-pms")) == ("hotel-pms.1", issued.secret)
    assert issued.secret not in store.path.read_text()
    for path in (store.path, issued.path):
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_rotation_holds_two_credentials_at_most_and_both_authenticate(tmp_path: Path) -> None:
    store, secrets_dir = _store(tmp_path)
    identity, first = new_credential(Identity("hotel-member", Role.SYSTEM), secrets_dir)
    identity, second = new_credential(identity, secrets_dir)
    store.put(identity)

    assert second.username == "hotel-member.2"
    assert store.authenticate("hotel-member.1", first.secret) is not None
    assert store.authenticate("hotel-member.2", second.secret) is not None
    assert store.authenticate("hotel-member", first.secret) is not None  # by identity name
    assert store.authenticate("hotel-member.2", first.secret) is None  # not each other's
    with pytest.raises(ConfigurationError, match="revoke the old one first"):
        new_credential(identity, secrets_dir)

    identity = without_credential(identity, "hotel-member.1", secrets_dir)
    store.put(identity)
    assert store.authenticate("hotel-member.1", first.secret) is None
    assert not first.path.exists()
    assert read_user_info(secret_path(secrets_dir, "hotel-member"))[0] == "hotel-member.2"
    with pytest.raises(ConfigurationError, match="has no credential"):
        without_credential(identity, "hotel-member.1", secrets_dir)


def test_what_a_role_may_publish_and_read_comes_from_the_policies() -> None:
    pms, saas = Identity("hotel-pms", Role.SYSTEM), Identity("hotel-saas", Role.SYSTEM)
    assert EventKind.ROOM in pms.publishes and EventKind.ROOM not in saas.publishes
    assert EventKind.ROOM not in saas.reads
    extra = Identity("hotel-spa", Role.SYSTEM, extra_reads=(EventKind.ROOM,))
    assert extra.publishes == frozenset() and extra.reads == {EventKind.ROOM}
    assert Identity("hotel-hub", Role.HUB).publishes == {EventKind.ANALYTICS}
    assert Identity("schema-registry", Role.REGISTRY).reads == frozenset()
    scoped = Identity("hotel-pms", Role.SYSTEM, hotels=("HTL-A",))
    assert scoped.sees_hotel("HTL-A") and not scoped.sees_hotel("HTL-B")


@pytest.mark.parametrize("content", ["not json", json.dumps({"identities": {"x": {}}}),
                                     json.dumps({"identities": {"x": {"role": "system",
                                                                      "hotels": "HTL-A"}}})])
def test_a_bad_store_file_is_named(tmp_path: Path, content: str) -> None:
    path = tmp_path / "identities.json"
    path.write_text(content)
    with pytest.raises(ConfigurationError, match=r"identities\.json is unreadable"):
        IdentityStore.load(path)


def test_a_watched_store_sees_a_revocation_without_a_restart(tmp_path: Path) -> None:
    store, secrets_dir = _store(tmp_path)
    identity, issued = new_credential(Identity("hotel-saas", Role.SYSTEM), secrets_dir)
    with store.editing() as editing:
        editing.put(identity)
    watched = WatchedStore(store.path, every_s=0.0)
    assert watched.current().authenticate(issued.username, issued.secret) is not None

    with store.editing() as editing:
        editing.put(without_credential(identity, issued.username, secrets_dir))
    assert watched.current().authenticate(issued.username, issued.secret) is None


def test_a_missing_or_malformed_secret_file_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="hotelhub broker up"):
        read_user_info(tmp_path / "nobody.secret")
    bad = tmp_path / "bad.secret"
    bad.write_text("no-colon-here")
    with pytest.raises(ConfigurationError, match="username:secret"):
        read_user_info(bad)
