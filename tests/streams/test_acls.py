"""Who may do what, enforced by Kafka itself: the generated ACL bindings, then the real broker.

The matrix is every system x every kind topic x {publish, read}, with aiokafka and with
confluent-kafka, each client holding that system's own credential. What is allowed comes
from the kind policies directly (`POLICIES`: publishers and targets), not from the code
under test. A refused read is shown by the broker refusing the offset commit of the topic
(OffsetCommit needs READ on it): aiokafka only logs a refused topic in a consumer's
metadata, while it raises the commit's TopicAuthorizationFailedError.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.conn import create_conn
from aiokafka.errors import (
    GroupAuthorizationFailedError,
    KafkaConnectionError,
    SaslAuthenticationFailed,
    TopicAuthorizationFailedError,
)
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Producer
from confluent_kafka import TopicPartition as ConfluentPartition
from confluent_kafka.admin import AclBinding as KafkaAclBinding
from confluent_kafka.admin import (
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    AdminClient,
    ResourcePatternType,
    ResourceType,
)
from pydantic import SecretStr

from streams.core.identities import Credential, Identity, Role, read_user_info, secret_path
from streams.core.kinds import (
    DEADLETTER_TOPIC,
    POLICIES,
    REFUSAL_TOPIC,
    EventKind,
    System,
    outbox_topic,
)
from streams.ops.security import broker_users, forget_prefix, sync
from streams.runners.admin import ensure_topics
from streams.settings import HubSettings
from streams.wire.acls import (
    CLUSTER,
    AclBinding,
    Operation,
    Resource,
    ResourcePattern,
    acl_bindings,
    allows,
    deployment_resources,
    identity_bindings,
    rpk_commands,
    rpk_script,
)
from streams.wire.topics import TopicSpec

TOPIC_AUTHORIZATION_FAILED = 29
SYSTEMS = (System.HOTEL_PMS, System.HOTEL_MEMBER, System.HOTEL_SAAS)
HOTELHUB = Path(sys.executable).with_name("hotelhub")


def _credential(username: str) -> Credential:
    return Credential(username=username, created_at="2026-01-01T00:00:00+00:00", salt="00",
                      digest="00", signing_key="00")


def _identity(name: str, role: Role, *numbers: int, **fields: object) -> Identity:
    credentials = tuple(_credential(f"{name}.{n}") for n in (numbers or (1,)))
    return Identity(name, role, credentials=credentials, **fields)  # type: ignore[arg-type]


def _settings(**update: object) -> HubSettings:
    return HubSettings(kafka_bootstrap_servers=None, topic_prefix="t.", app_id="t.hub",
                       security="sasl").model_copy(update=update)


def _may(bindings: set[AclBinding], username: str, operation: Operation, topic: str) -> bool:
    return allows(bindings, username, operation, Resource.TOPIC, topic)


# -- the bindings, without a broker ------------------------------------------------------


@pytest.mark.parametrize("system", SYSTEMS)
def test_a_system_writes_what_it_publishes_and_reads_what_it_is_a_target_of(system: System):
    settings = _settings()
    bindings = identity_bindings(_identity(system.value, Role.SYSTEM), settings)
    user = f"{system.value}.1"

    for policy in POLICIES.values():
        topic = settings.topic(policy.topic)
        assert _may(bindings, user, Operation.WRITE, topic) == (system in policy.publishers)
        assert _may(bindings, user, Operation.READ, topic) == (system in policy.targets)
    for topic in (settings.topic(REFUSAL_TOPIC), settings.topic(DEADLETTER_TOPIC),
                  f"{settings.app_id}.hotel-state", settings.registry_topic):
        for operation in (Operation.WRITE, Operation.READ, Operation.DESCRIBE):
            assert not _may(bindings, user, operation, topic), (operation, topic)
    assert allows(bindings, user, Operation.READ, Resource.GROUP, f"{system.value}-reader")
    assert not allows(bindings, user, Operation.READ, Resource.GROUP, settings.app_id)
    assert allows(bindings, user, Operation.WRITE, Resource.TRANSACTIONAL_ID,
                  f"{system.value}-tx")
    assert not any(b.on.resource is Resource.CLUSTER for b in bindings)
    assert {b.operation for b in bindings} <= {Operation.READ, Operation.WRITE,
                                               Operation.DESCRIBE}
    # Its client's outbox checkpoints, and no other system's.
    for other in SYSTEMS:
        checkpoints = settings.topic(outbox_topic(other.value))
        for operation in (Operation.READ, Operation.WRITE):
            assert _may(bindings, user, operation, checkpoints) == (other is system)


def test_every_credential_of_an_identity_gets_the_same_bindings():
    settings = _settings()
    both = identity_bindings(_identity("hotel-pms", Role.SYSTEM, 1, 2), settings)
    first = {b for b in both if b.principal == "User:hotel-pms.1"}
    second = {b for b in both if b.principal == "User:hotel-pms.2"}

    assert first and {replace(b, principal="User:hotel-pms.2") for b in first} == second
    assert identity_bindings(Identity("hotel-pms", Role.SYSTEM), settings) == set()


def test_extra_reads_of_a_configured_system():
    settings = _settings()
    reader = _identity("hotel-bi", Role.SYSTEM, extra_reads=(EventKind.ANALYTICS,))
    bindings = identity_bindings(reader, settings)
    analytics = settings.topic(POLICIES[EventKind.ANALYTICS].topic)

    assert _may(bindings, "hotel-bi.1", Operation.READ, analytics)
    assert not _may(bindings, "hotel-bi.1", Operation.WRITE, analytics)
    assert not any(_may(bindings, "hotel-bi.1", Operation.WRITE, settings.topic(p.topic))
                   for p in POLICIES.values())


def test_only_the_hub_writes_derived_and_internal_topics():
    settings = _settings()
    hub = identity_bindings(_identity("hotel-hub", Role.HUB), settings)
    user = "hotel-hub.1"
    writes = {k for k in POLICIES
              if _may(hub, user, Operation.WRITE, settings.topic(POLICIES[k].topic))}

    assert writes == {EventKind.ANALYTICS, EventKind.ROOM}
    assert all(_may(hub, user, op, settings.topic(p.topic)) for p in POLICIES.values()
               for op in (Operation.READ, Operation.CREATE, Operation.DESCRIBE_CONFIGS))
    for topic in (REFUSAL_TOPIC, DEADLETTER_TOPIC):
        assert _may(hub, user, Operation.WRITE, settings.topic(topic))
        assert _may(hub, user, Operation.READ, settings.topic(topic))
    for internal in ("t.hub.hotel-state", "t.hub.hotel-events", "t.hub-room_to_state-changelog"):
        assert _may(hub, user, Operation.CREATE, internal)
        assert _may(hub, user, Operation.WRITE, internal)
        assert not _may(hub, user, Operation.DELETE, internal)
    assert allows(hub, user, Operation.READ, Resource.GROUP, "t.hub-hotels")
    assert allows(hub, user, Operation.WRITE, Resource.TRANSACTIONAL_ID, "t.hub-hotels-3")
    assert not allows(hub, user, Operation.WRITE, Resource.TRANSACTIONAL_ID, "hotel-pms-tx")
    assert not any(b.on.resource is Resource.CLUSTER for b in hub)  # WRITE allows idempotence
    assert not _may(hub, user, Operation.READ, settings.registry_topic)


def test_the_operator_may_do_anything_and_the_registry_owns_its_topic():
    settings = _settings()
    operator = identity_bindings(_identity("operator", Role.OPERATOR), settings)
    registry = identity_bindings(_identity("schema-registry", Role.REGISTRY), settings)

    assert _may(operator, "operator.1", Operation.DELETE, "anything.at.all")
    assert allows(operator, "operator.1", Operation.ALTER, Resource.CLUSTER, CLUSTER)
    assert _may(registry, "schema-registry.1", Operation.CREATE, "_schemas")
    assert _may(registry, "schema-registry.1", Operation.DESCRIBE_CONFIGS, "_schemas")
    assert not _may(registry, "schema-registry.1", Operation.DELETE, "_schemas")
    assert {b.on for b in registry} == {ResourcePattern(Resource.TOPIC, "_schemas")}


def test_deployments_sharing_a_cluster_speak_of_different_resources():
    identities = [_identity(s.value, Role.SYSTEM) for s in SYSTEMS]
    identities += [_identity("hotel-hub", Role.HUB)]
    one = _settings(topic_prefix="a.", app_id="a.hub")
    other = _settings(topic_prefix="b.", app_id="b.hub")
    topics = {ResourcePattern(Resource.TOPIC, one.topic(p.topic)) for p in POLICIES.values()}

    assert topics <= deployment_resources(identities, one)
    assert not topics & deployment_resources(identities, other)
    assert acl_bindings(identities, one) != acl_bindings(identities, other)


def test_rpk_commands_name_every_operation_once():
    settings = _settings(topic_prefix="", app_id="hotelhub")
    bindings = identity_bindings(_identity("hotel-saas", Role.SYSTEM), settings)
    commands = list(rpk_commands(bindings))

    assert ("rpk security acl create --allow-principal User:hotel-saas.1 --operation "
            "describe,read,write --topic hotel.reservation --resource-pattern-type literal"
            ) in commands
    assert ("rpk security acl create --allow-principal User:hotel-saas.1 --operation "
            "describe,read --group hotel-saas --resource-pattern-type prefixed") in commands
    assert len(commands) == len({(b.principal, b.on) for b in bindings})


def test_the_rpk_script_reads_secrets_when_it_runs_and_holds_none(tmp_path: Path):
    settings = _settings(topic_prefix="", app_id="hotelhub")
    identities = [_identity(s.value, Role.SYSTEM) for s in SYSTEMS]
    identities += [_identity("hotel-hub", Role.HUB, 1, 2)]
    script = rpk_script(identities, settings, super_user="hotelhub-broker")
    path = tmp_path / "security.sh"
    path.write_text(script)

    assert subprocess.run(["sh", "-n", str(path)], check=False).returncode == 0
    for user in ("hotel-pms.1", "hotel-hub.1", "hotel-hub.2", "hotelhub-broker"):
        assert f"user {user}\n" in script
    assert script.index("enable_sasl true") < script.index("rpk security acl create")
    acls = [line for line in script.splitlines() if line.startswith("rpk security acl")]
    assert len(acls) == len(list(rpk_commands(acl_bindings(identities, settings))))
    assert 'cut -d: -f2- "$SECRETS/$1.secret"' in script


# -- the real broker ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def secured(hub_settings: HubSettings) -> HubSettings:
    if not hub_settings.secured:
        pytest.skip("HOTELHUB_SECURITY=none: the broker enforces nothing")
    return hub_settings.as_identity("operator")


@pytest.fixture(scope="module")
async def topics(secured: HubSettings) -> dict[str, str]:
    """Every kind topic with one record on partition 0, the derived ones, and an internal one."""
    internal = f"{secured.topic_prefix}hotelhub-acl-{uuid.uuid4().hex[:6]}.hotel-state"
    await ensure_topics(secured)
    await ensure_topics(secured, [TopicSpec(internal, 1)])
    names = {kind.value: secured.topic(policy.topic) for kind, policy in POLICIES.items()}
    producer = AIOKafkaProducer(bootstrap_servers=secured.bootstrap_servers,
                                **secured.kafka_auth(), acks="all")
    await producer.start()
    try:
        for topic in names.values():
            await producer.send_and_wait(topic, b"seen by the matrix", partition=0)
    finally:
        await producer.stop()
    return {**names, "refusals": secured.topic(REFUSAL_TOPIC),
            "deadletter": secured.topic(DEADLETTER_TOPIC), "internal": internal}


def _expected(system: System, topics: dict[str, str]) -> dict[tuple[str, str], bool]:
    """From the policy table itself: publish iff a publisher, read iff a target."""
    cells = {}
    for kind, policy in POLICIES.items():
        cells[(kind.value, "publish")] = system in policy.publishers
        cells[(kind.value, "read")] = system in policy.targets
    for derived in ("refusals", "deadletter", "internal"):
        cells[(derived, "publish")] = cells[(derived, "read")] = False
    assert set(k for k, _ in cells) == set(topics)
    return cells


async def _aiokafka_cells(settings: HubSettings, system: System, topics: dict[str, str]
                          ) -> dict[tuple[str, str], bool]:
    found: dict[tuple[str, str], bool] = {}
    auth = settings.as_identity(system.value).kafka_auth()
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers, **auth,
                                enable_idempotence=True, request_timeout_ms=10_000)
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.bootstrap_servers, **auth,
                                group_id=f"{system.value}.acl-matrix-{uuid.uuid4().hex[:6]}",
                                enable_auto_commit=False, auto_offset_reset="earliest",
                                fetch_max_wait_ms=50, request_timeout_ms=10_000)
    await producer.start()
    await consumer.start()
    try:
        for name, topic in topics.items():
            try:
                await producer.send_and_wait(topic, b"matrix", partition=0)
                found[(name, "publish")] = True
            except TopicAuthorizationFailedError:
                found[(name, "publish")] = False
            partition = TopicPartition(topic, 0)
            consumer.assign([partition])
            try:
                await consumer.commit({partition: 0})
            except TopicAuthorizationFailedError:
                found[(name, "read")] = False
                continue
            records = await consumer.getmany(partition, timeout_ms=5_000)
            found[(name, "read")] = bool(records.get(partition))
    finally:
        await consumer.stop()
        await producer.stop()
    return found


def _confluent_cells(settings: HubSettings, system: System, topics: dict[str, str]
                     ) -> dict[tuple[str, str], bool]:
    found: dict[tuple[str, str], bool] = {}
    auth = settings.as_identity(system.value).confluent_auth()
    common = {"bootstrap.servers": settings.bootstrap_servers, **auth}
    producer = Producer({**common, "enable.idempotence": True, "message.timeout.ms": 10_000,
                         "linger.ms": 0})
    consumer = Consumer({**common, "group.id": f"{system.value}.acl-matrix-{uuid.uuid4().hex}",
                         "enable.auto.commit": False, "fetch.wait.max.ms": 50})
    try:
        for name, topic in topics.items():
            errors: list[KafkaError | None] = []
            producer.produce(topic, b"matrix", partition=0,
                             on_delivery=lambda err, _msg, errors=errors: errors.append(err))
            producer.flush(15)
            assert len(errors) == 1, f"no delivery report for {topic}"
            error = errors[0]
            assert error is None or error.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED, error
            found[(name, "publish")] = error is None
            partition = ConfluentPartition(topic, 0, OFFSET_BEGINNING)
            try:
                consumer.commit(offsets=[ConfluentPartition(topic, 0, 0)], asynchronous=False)
            except KafkaException as exc:
                assert exc.args[0].code() == KafkaError.TOPIC_AUTHORIZATION_FAILED, exc
                found[(name, "read")] = False
                continue
            consumer.assign([partition])
            deadline = time.monotonic() + 5
            message = None
            while message is None and time.monotonic() < deadline:
                message = consumer.poll(0.2)
            consumer.unassign()
            found[(name, "read")] = message is not None and message.error() is None
    finally:
        consumer.close()
        producer.flush(5)
    return found


@pytest.mark.integration
@pytest.mark.parametrize("system", SYSTEMS)
async def test_matrix_aiokafka(secured: HubSettings, topics: dict[str, str], system: System):
    assert await _aiokafka_cells(secured, system, topics) == _expected(system, topics)


@pytest.mark.integration
@pytest.mark.parametrize("system", SYSTEMS)
async def test_matrix_confluent_kafka(secured: HubSettings, topics: dict[str, str],
                                      system: System):
    found = await asyncio.to_thread(_confluent_cells, secured, system, topics)

    assert found == _expected(system, topics)


@pytest.mark.integration
async def test_a_system_cannot_use_another_systems_consumer_group(secured: HubSettings,
                                                                  topics: dict[str, str]):
    saas = secured.as_identity("hotel-saas")
    consumer = AIOKafkaConsumer(bootstrap_servers=saas.bootstrap_servers, **saas.kafka_auth(),
                                group_id="hotel-pms.borrowed", enable_auto_commit=False)
    await consumer.start()
    try:
        partition = TopicPartition(topics["reservation"], 0)
        consumer.assign([partition])
        with pytest.raises(GroupAuthorizationFailedError):
            await consumer.commit({partition: 0})
    finally:
        await consumer.stop()


@pytest.mark.integration
async def test_unauthenticated_and_wrong_secret_clients_are_refused(secured: HubSettings):
    host, _, port = secured.bootstrap_servers.split(",")[0].rpartition(":")
    auth = secured.as_identity("hotel-pms").kafka_auth()

    plaintext = AIOKafkaProducer(bootstrap_servers=secured.bootstrap_servers,
                                 request_timeout_ms=5_000)
    with pytest.raises(KafkaConnectionError):
        await plaintext.start()
    await plaintext.stop()
    with pytest.raises(SaslAuthenticationFailed):
        await create_conn(host, int(port), **{**auth, "sasl_plain_password": "not-the-secret"})
    with pytest.raises(SaslAuthenticationFailed):
        await create_conn(host, int(port), **{**auth, "sasl_plain_username": "nobody.1"})
    conn = await create_conn(host, int(port), **auth)
    conn.close()

    def confluent(config: dict[str, str]) -> None:
        admin = AdminClient({"bootstrap.servers": secured.bootstrap_servers, **config,
                             "socket.connection.setup.timeout.ms": 3_000})
        admin.list_topics(timeout=3)

    good = secured.as_identity("hotel-pms").confluent_auth()
    with pytest.raises(KafkaException):
        await asyncio.to_thread(confluent, {"security.protocol": "PLAINTEXT"})
    with pytest.raises(KafkaException):
        await asyncio.to_thread(confluent, {**good, "sasl.password": "not-the-secret"})
    await asyncio.to_thread(confluent, good)


# -- rotation, revocation, and secrets kept out of logs -------------------------------------


async def _cli(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """`hotelhub identity ...` as an operator runs it, in this session's environment."""
    done = await asyncio.to_thread(
        subprocess.run, [str(HOTELHUB), "identity", *args], capture_output=True, text=True,
        timeout=120, env=os.environ.copy(), check=False)
    assert done.returncode == 0 or not check, done.stderr
    return done


async def _connects(settings: HubSettings, username: str, secret: str) -> bool:
    """Whether the broker takes this credential."""
    own = settings.model_copy(update={"username": username, "password": SecretStr(secret)})
    host, _, port = settings.bootstrap_servers.split(",")[0].rpartition(":")
    try:
        conn = await create_conn(host, int(port), **own.kafka_auth())
    except SaslAuthenticationFailed:
        return False
    conn.close()
    return True


def _runs_on_the_embedded_broker(settings: HubSettings) -> bool:
    """The session's Kafka is the hub's embedded node, also when CI names it by address
    (KAFKA_BOOTSTRAP_SERVERS), so its logs are there to grep."""
    from streams.ops.broker import EmbeddedKafka

    node = EmbeddedKafka(settings.model_copy(update={"kafka_bootstrap_servers": None}))
    return (node.daemon.pid() is not None
            and node.settings.bootstrap_servers == settings.bootstrap_servers)


@pytest.mark.integration
async def test_rotation_keeps_both_secrets_until_the_old_is_revoked(secured: HubSettings,
                                                                   topics: dict[str, str]):
    if not _runs_on_the_embedded_broker(secured):
        pytest.skip("checks the embedded broker's logs")
    name = f"acl-rot-{uuid.uuid4().hex[:6]}"
    secrets_dir = secured.secrets_dir
    outputs: list[str] = []
    try:
        outputs.append((await _cli("create", name, "--reads", "analytics")).stdout)
        old = secret_path(secrets_dir, f"{name}.1")
        old_secret = read_user_info(old)[1]
        assert await _connects(secured, f"{name}.1", old_secret)

        rotated = await _cli("rotate", name)
        outputs.append(rotated.stdout + rotated.stderr)
        new = secret_path(secrets_dir, f"{name}.2")
        new_secret = read_user_info(new)[1]
        assert str(new) in rotated.stdout
        assert await _connects(secured, f"{name}.1", old_secret)
        assert await _connects(secured, f"{name}.2", new_secret)
        assert read_user_info(secret_path(secrets_dir, name))[1] == new_secret

        revoked = await _cli("revoke", name, "--credential", f"{name}.1")
        outputs.append(revoked.stdout + revoked.stderr)
        assert not old.exists()
        assert not await _connects(secured, f"{name}.1", old_secret)  # a client that kept it
        assert await _connects(secured, f"{name}.2", new_secret)
        users = await asyncio.to_thread(broker_users, secured)
        assert users[f"{name}.2"] is True and users[f"{name}.1"] is False  # overwritten

        # The new credential reads what its identity reads (the analytics topic), nothing else.
        own = secured.model_copy(update={"username": f"{name}.2",
                                         "password": SecretStr(new_secret)})
        consumer = AIOKafkaConsumer(bootstrap_servers=own.bootstrap_servers, **own.kafka_auth(),
                                    group_id=f"{name}.reader", enable_auto_commit=False)
        await consumer.start()
        try:
            analytics, room = (TopicPartition(topics[k], 0) for k in ("analytics", "room"))
            consumer.assign([analytics, room])
            await consumer.commit({analytics: 0})
            with pytest.raises(TopicAuthorizationFailedError):
                await consumer.commit({room: 0})
        finally:
            await consumer.stop()
        listed = await _cli("list")
        outputs.append(listed.stdout)
        assert f"{name}.2" in listed.stdout and f"{name}.1" not in listed.stdout
        secrets = [old_secret, new_secret]
    finally:
        await _cli("revoke", name, check=False)
    assert not await _connects(secured, f"{name}.2", new_secret)
    secrets += [read_user_info(f)[1] for f in secrets_dir.glob("*.secret")]
    logs = [p for p in (secured.home / "logs").glob("kafka*") if p.is_file()]
    assert logs
    for secret in secrets:
        assert all(secret not in out for out in outputs)
        for log in logs:
            assert secret.encode() not in log.read_bytes(), f"a secret is in {log}"


# -- sync: idempotent, and scoped to a deployment ---------------------------------------------


@pytest.fixture
async def own_deployment(secured: HubSettings) -> AsyncIterator[HubSettings]:
    settings = secured.model_copy(update={
        "topic_prefix": f"{secured.topic_prefix}sync-{uuid.uuid4().hex[:6]}."})
    settings = settings.model_copy(update={"app_id": f"{settings.topic_prefix}hotelhub"})
    try:
        yield settings
    finally:
        await asyncio.to_thread(forget_prefix, secured, settings.topic_prefix)


def _operator_admin(settings: HubSettings) -> AdminClient:
    return AdminClient({"bootstrap.servers": settings.bootstrap_servers,
                        **settings.as_identity("operator").confluent_auth()})


@pytest.mark.integration
async def test_sync_is_idempotent_and_removes_only_stale_bindings_of_its_deployment(
    own_deployment: HubSettings, secured: HubSettings
):
    first = await asyncio.to_thread(sync, secured, deployments=[own_deployment])
    again = await asyncio.to_thread(sync, secured, deployments=[own_deployment])
    assert first.acls_created > 0
    assert again.acls_created == 0 and again.users_created == ()

    room = own_deployment.topic(POLICIES[EventKind.ROOM].topic)
    elsewhere = f"{own_deployment.topic_prefix}elsewhere.hotel.room"
    stale = [KafkaAclBinding(ResourceType.TOPIC, topic, ResourcePatternType.LITERAL,
                             "User:hotel-saas.1", "*", AclOperation.WRITE,
                             AclPermissionType.ALLOW) for topic in (room, elsewhere)]
    admin = _operator_admin(secured)
    for future in admin.create_acls(stale).values():
        future.result(timeout=10)

    cleaned = await asyncio.to_thread(sync, secured, deployments=[own_deployment])

    found = admin.describe_acls(_filter_for("User:hotel-saas.1")).result(timeout=10)
    written = {b.name for b in found if b.operation == AclOperation.WRITE}
    assert cleaned.acls_deleted >= 1
    assert room not in written  # on the deployment's topic and not generated: removed
    assert elsewhere in written  # another deployment's resource: not this sync's to judge


def _filter_for(principal: str) -> AclBindingFilter:
    return AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY, principal, None,
                            AclOperation.ANY, AclPermissionType.ANY)


@pytest.mark.integration
async def test_the_session_lets_the_hub_create_its_apps_topics_and_no_system(
    secured: HubSettings,
):
    """What tests/conftest.py granted: any app id under the session's prefix is the hub's."""
    tag = uuid.uuid4().hex[:6]
    names = [f"{secured.topic_prefix}hotelhub-acl-{tag}.hotel-events",
             f"{secured.topic_prefix}app-{tag}.hotel-state"]

    async def create(identity: str, topics: list[str]) -> list[int]:
        admin = AIOKafkaAdminClient(bootstrap_servers=secured.bootstrap_servers,
                                    **secured.as_identity(identity).kafka_auth())
        await admin.start()
        try:
            response = await admin.create_topics([NewTopic(n, 1, 1) for n in topics])
        finally:
            await admin.close()
        return [error[1] for error in response.topic_errors]

    assert await create("hotel-member", names) == [TOPIC_AUTHORIZATION_FAILED] * 2
    assert await create("hotel-hub", names) == [0, 0]
