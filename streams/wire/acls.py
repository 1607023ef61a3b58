"""Who may do what on Kafka, as ACL bindings generated from the identities and kind policies.

Pure: the same identity store and settings always give the same bindings, so the embedded
node (`streams.ops.security`), an external cluster and the Redpanda compose file
(`rpk_commands`) all enforce one table. Every binding allows; the broker denies whatever no
binding allows (`allow.everyone.if.no.acl.found=false`).

* A system WRITEs only the topics of the kinds the policies let it publish and READs only
  those it is a target of (or was configured to read); its consumer groups and
  transactional ids start with its name, and it reads and writes its client's outbox
  checkpoints (`hotel.outbox.<system>`).
* The hub reads every kind, writes only analytics (which it alone publishes) and the
  room topic (the room events a check-in or check-out derives), and alone writes
  refusals, dead letters, the gateway's delivery log and webhook dead letters, and its
  internal topics (`<app_id>...`). The gateway runs as the hub.
* The operator may do anything (wildcard resources), so people and CI never need the
  broker's super user, and the operator's secret rotates like any other.
* The schema registry owns its `_schemas` topic (and nothing else).

Every credential of an identity (`<identity>.<n>`, two while rotating) gets the same
bindings, so a rotation never changes what a client may do.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from enum import StrEnum

from streams.core.identities import Identity, Role
from streams.core.kinds import (
    DEADLETTER_TOPIC,
    DELIVERY_LOG_TOPIC,
    POLICIES,
    REFUSAL_TOPIC,
    WEBHOOK_DEADLETTER_TOPIC,
    EventKind,
    outbox_topic,
)
from streams.settings import HubSettings
from streams.wire.topics import outbox_topics

CLUSTER = "kafka-cluster"
"""The one name Kafka's cluster resource has."""
WILDCARD = "*"


class Resource(StrEnum):
    TOPIC = "topic"
    GROUP = "group"
    TRANSACTIONAL_ID = "transactional_id"
    CLUSTER = "cluster"


class Pattern(StrEnum):
    LITERAL = "literal"
    PREFIXED = "prefixed"


class Operation(StrEnum):
    ALL = "all"
    READ = "read"
    WRITE = "write"
    CREATE = "create"
    DELETE = "delete"
    ALTER = "alter"
    DESCRIBE = "describe"
    DESCRIBE_CONFIGS = "describe_configs"
    ALTER_CONFIGS = "alter_configs"
    IDEMPOTENT_WRITE = "idempotent_write"


@dataclass(frozen=True, order=True)
class ResourcePattern:
    """What a binding is about: one resource, or every resource whose name starts with `name`."""

    resource: Resource
    name: str
    pattern: Pattern = Pattern.LITERAL

    def __str__(self) -> str:
        star = "*" if self.pattern is Pattern.PREFIXED else ""
        return f"{self.resource.value}:{self.name}{star}"

    def covers(self, name: str) -> bool:
        """Whether this pattern matches resource `name` (as the broker matches it)."""
        if self.pattern is Pattern.PREFIXED:
            return name.startswith(self.name)
        return self.name in (name, WILDCARD)


@dataclass(frozen=True, order=True)
class AclBinding:
    """One ALLOW from any host: `principal` may `operation` on `on`."""

    on: ResourcePattern
    principal: str
    operation: Operation

    def __str__(self) -> str:
        return f"{self.principal} {self.operation.value} {self.on}"


@dataclass(frozen=True)
class Grant:
    """Operations one identity gets on one resource pattern, before credentials are named."""

    on: ResourcePattern
    operations: tuple[Operation, ...]


def principal(username: str) -> str:
    return f"User:{username}"


def kind_topics(settings: HubSettings) -> dict[EventKind, str]:
    """The topic of every kind in this deployment (its prefix applied)."""
    return {kind: settings.topic(policy.topic) for kind, policy in POLICIES.items()}


def _topic(name: str) -> ResourcePattern:
    return ResourcePattern(Resource.TOPIC, name)


def grants(identity: Identity, settings: HubSettings) -> list[Grant]:
    """What `identity` may do in the deployment `settings` describe (topic prefix, app id)."""
    topics = kind_topics(settings)
    name = identity.name
    if identity.role is Role.SYSTEM:
        return [
            *(Grant(_topic(topics[k]), (Operation.WRITE, Operation.DESCRIBE))
              for k in sorted(identity.publishes)),
            *(Grant(_topic(topics[k]), (Operation.READ, Operation.DESCRIBE))
              for k in sorted(identity.reads)),
            Grant(ResourcePattern(Resource.GROUP, name, Pattern.PREFIXED),
                  (Operation.READ, Operation.DESCRIBE)),
            Grant(ResourcePattern(Resource.TRANSACTIONAL_ID, name, Pattern.PREFIXED),
                  (Operation.WRITE, Operation.DESCRIBE)),
            # Its client's sync checkpoints, written in the transactions that send its
            # outbox (streams.client) and read back after a crash.
            Grant(_topic(settings.topic(outbox_topic(name))),
                  (Operation.READ, Operation.WRITE, Operation.DESCRIBE)),
        ]
    if identity.role is Role.HUB:
        return _hub_grants(identity, settings, topics)
    if identity.role is Role.OPERATOR:
        return [
            *(Grant(ResourcePattern(r, WILDCARD), (Operation.ALL,))
              for r in (Resource.TOPIC, Resource.GROUP, Resource.TRANSACTIONAL_ID)),
            Grant(ResourcePattern(Resource.CLUSTER, CLUSTER), (Operation.ALL,)),
        ]
    # Role.REGISTRY: its log (streams.registry.kafka_log) creates the topic, checks its
    # cleanup policy, replays it by manual assignment (no consumer group) and appends.
    return [Grant(_topic(settings.registry_topic), _OWN_TOPIC)]


_OWN_TOPIC = (Operation.READ, Operation.WRITE, Operation.CREATE, Operation.DESCRIBE,
              Operation.DESCRIBE_CONFIGS)
"""What an owner does with a topic, as the broker's audit log showed: create it (with its
configs), read, write, describe; never delete it or alter its configs."""


def _hub_grants(identity: Identity, settings: HubSettings, topics: dict[EventKind, str]
                ) -> list[Grant]:
    """What the worker's clients were seen to need (the broker's audit log, a demo day and a
    worker run): no cluster grant, since WRITE on a topic already allows an idempotent
    producer, and nothing that deletes or alters."""
    writes = set(identity.publishes) | {EventKind.ROOM}
    derived = (settings.topic(REFUSAL_TOPIC), settings.topic(DEADLETTER_TOPIC),
               settings.topic(WEBHOOK_DEADLETTER_TOPIC), settings.topic(DELIVERY_LOG_TOPIC))
    app = settings.app_id
    return [
        # Creates the topics it reads if missing (streams.runners.admin) with their configs.
        *(Grant(_topic(topics[k]), (Operation.READ, Operation.DESCRIBE,
                                    Operation.DESCRIBE_CONFIGS, Operation.CREATE,
                                    *((Operation.WRITE,) if k in writes else ())))
          for k in sorted(topics)),
        *(Grant(_topic(t), _OWN_TOPIC) for t in derived),
        # Creates each client system's outbox topic with the others (streams.runners.admin).
        *(Grant(_topic(t), (Operation.CREATE, Operation.DESCRIBE, Operation.DESCRIBE_CONFIGS))
          for t in outbox_topics(settings)),
        # <app>.hotel-events, <app>.hotel-state, Faust's <app>-<table>-changelog and
        # <app>-__assignor-__leader.
        Grant(ResourcePattern(Resource.TOPIC, app, Pattern.PREFIXED), _OWN_TOPIC),
        # <app> (Faust), <app>-hotels (the processor, offsets in its transactions),
        # <app>-analytics; the lag exporter reads their offsets.
        Grant(ResourcePattern(Resource.GROUP, app, Pattern.PREFIXED),
              (Operation.READ, Operation.DESCRIBE)),
        # <app>-hotels-<partition>: one transactional producer per partition it owns.
        Grant(ResourcePattern(Resource.TRANSACTIONAL_ID, app, Pattern.PREFIXED),
              (Operation.WRITE, Operation.DESCRIBE)),
    ]


def identity_bindings(identity: Identity, settings: HubSettings) -> set[AclBinding]:
    """`grants` for every credential of `identity` (none when it has no credential)."""
    return {AclBinding(grant.on, principal(username), operation)
            for grant in grants(identity, settings)
            for operation in grant.operations
            for username in identity.usernames}


def acl_bindings(identities: Iterable[Identity], settings: HubSettings) -> set[AclBinding]:
    """Every binding the identities should have in the deployment `settings` describe."""
    found: set[AclBinding] = set()
    for identity in identities:
        found |= identity_bindings(identity, settings)
    return found


def deployment_resources(identities: Iterable[Identity], settings: HubSettings
                         ) -> set[ResourcePattern]:
    """Every resource pattern the deployment's bindings speak about, whoever holds them.

    A sync deletes stale bindings on these only, so syncing one deployment (a topic prefix
    and app id) never removes what another deployment sharing the cluster was granted.
    """
    # The hub's and the operator's grants name no identity, so they stand for every role's.
    stand_ins = [Identity("hub-scope", Role.HUB), Identity("operator-scope", Role.OPERATOR)]
    found = {grant.on for identity in [*identities, *stand_ins]
             for grant in grants(identity, settings)}
    return found | {_topic(settings.registry_topic)}


def allows(bindings: Iterable[AclBinding], username: str, operation: Operation,
           resource: Resource, name: str) -> bool:
    """Whether `bindings` let `username` do `operation` on `resource` `name`.

    As the broker decides it, for the tests and for what `hotelhub identity list` shows:
    ALL covers every operation; READ, WRITE, DELETE and ALTER imply DESCRIBE; ALTER_CONFIGS
    implies DESCRIBE_CONFIGS.
    """
    who = principal(username)
    return any(b.principal == who and b.on.resource is resource and b.on.covers(name)
               and (b.operation in (operation, Operation.ALL)
                    or b.operation in _IMPLIED_BY.get(operation, ()))
               for b in bindings)


_IMPLIED_BY: dict[Operation, frozenset[Operation]] = {
    Operation.DESCRIBE: frozenset({Operation.READ, Operation.WRITE, Operation.DELETE,
                                   Operation.ALTER}),
    Operation.DESCRIBE_CONFIGS: frozenset({Operation.ALTER_CONFIGS}),
}
"""The operations that grant each one beside ALL, as the broker's authorizer decides."""


_RPK_RESOURCE = {Resource.TOPIC: "--topic", Resource.GROUP: "--group",
                 Resource.TRANSACTIONAL_ID: "--transactional-id", Resource.CLUSTER: "--cluster"}


def rpk_commands(bindings: Iterable[AclBinding]) -> Iterator[str]:
    """The bindings as `rpk security acl create` commands, for clusters run with rpk (Redpanda).

    One command per principal, resource and pattern, naming all its operations.
    """
    grouped: dict[tuple[str, ResourcePattern], set[Operation]] = {}
    for binding in bindings:
        grouped.setdefault((binding.principal, binding.on), set()).add(binding.operation)
    for (who, on), operations in sorted(grouped.items()):
        where = (_RPK_RESOURCE[on.resource] if on.resource is Resource.CLUSTER
                 else f"{_RPK_RESOURCE[on.resource]} {shlex.quote(on.name)}")
        ops = ",".join(sorted(o.value for o in operations))
        yield (f"rpk security acl create --allow-principal {shlex.quote(who)} --operation {ops} "
               f"{where} --resource-pattern-type {on.pattern.value}")


def rpk_script(identities: Iterable[Identity], settings: HubSettings, *, super_user: str,
               secrets_path: str = "/secrets") -> str:
    """A POSIX sh script that gives a Redpanda cluster these identities and their ACLs.

    It reads each secret from `<secrets_path>/<username>.secret` when it runs, so the script
    itself holds none. Users go through the Admin API (`rpk security user`), which needs no
    login while SASL is still off; then SASL goes on with `super_user` as the one superuser,
    and the ACLs are created through the Kafka API as that user. Run it again after
    `hotelhub identity create/rotate`; a revoked credential is removed by hand
    (`rpk security user delete`, `rpk security acl delete --allow-principal User:<name>`).
    """
    chosen = list(identities)
    usernames = sorted({u for i in chosen for u in i.usernames} | {super_user})
    lines = [
        "#!/bin/sh",
        "# Generated by `hotelhub identity rpk` from the identity store; holds no secret.",
        "set -eu",
        f'SECRETS="${{SECRETS:-{secrets_path}}}"',
        'ADMIN="${RPK_ADMIN:-redpanda:9644}"',
        'BROKERS="${RPK_BROKERS:-redpanda:29092}"',
        'secret() { cut -d: -f2- "$SECRETS/$1.secret"; }',
        "user() {",
        '  rpk security user create "$1" --mechanism SCRAM-SHA-512 -p "$(secret "$1")" '
        '-X admin.hosts="$ADMIN" >/dev/null 2>&1 \\',
        '  || rpk security user update "$1" --mechanism SCRAM-SHA-512 --new-password '
        '"$(secret "$1")" -X admin.hosts="$ADMIN" >/dev/null',
        '  echo "user $1"',
        "}",
        *(f"user {shlex.quote(u)}" for u in usernames),
        f"rpk cluster config set superusers '[\"{super_user}\"]' -X admin.hosts=\"$ADMIN\"",
        'rpk cluster config set enable_sasl true -X admin.hosts="$ADMIN"',
        f'AUTH="-X brokers=$BROKERS -X user={super_user} -X sasl.mechanism=SCRAM-SHA-512"',
        f'PASS="$(secret {shlex.quote(super_user)})"',
        *(f'{command} $AUTH -X pass="$PASS" >/dev/null'
          for command in rpk_commands(acl_bindings(chosen, settings))),
        'echo "ACLs applied"',
        "",
    ]
    return "\n".join(lines)
