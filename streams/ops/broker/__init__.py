"""The embedded Apache Kafka: one KRaft node (broker and controller) on loopback.

Why Kafka 4.3.1 by default: it is the newest release that aiokafka 0.14 and
faust-streaming 0.15.3 were seen to work with here, transactions included.
Kafka 4 dropped old protocol versions (KIP-896), so an older client stack would
break first on 4.x; if that ever happens, fall back to the last 3.x line with
`HOTELHUB_KAFKA_VERSION=3.9.1` (also KRaft-only here, same config, same tools).

Two differences the fallback brings, both handled here:

* 3.9 ships `kafka.tools.ConsoleProducer` where 4.x has
  `org.apache.kafka.tools.ConsoleProducer`; every other tool of `TOOLS` has the
  same class in both. `EmbeddedKafka.tool()` looks the class up in the assembled jars.
* Storage formatted by 4.x cannot be read by 3.9, so each release keeps its own
  data directory under the hub home.

The jars come from Maven Central through `mvn` (the pom is package data), once
per release, into `<home>/kafka-<version>/libs`.

With `HOTELHUB_SECURITY=sasl` (the default) the node takes SCRAM-SHA-512 logins only and
denies whatever no ACL allows; its own user, `hotelhub-broker`, is the one super user, and
`streams.ops.security` gives it the identities and ACLs of the store after it starts.
`HOTELHUB_SECURITY=none` starts it in plaintext, in a data directory of its own.

One module per job:

* `jars`: assembling the jars with Maven, finding Java;
* `config`: server.properties, log4j2 configs, client properties, cluster ids (pure);
* `logins`: the node's own secret, and who operator commands act as;
* `process`: `EmbeddedKafka`, starting and stopping the node;
* `probe`: a Metadata request over a plain socket, after a SCRAM login (`probe_kafka`);
* `tools`: Kafka's own CLI tools (`TOOLS`).
"""

from __future__ import annotations

from streams.ops.broker.probe import ClusterAnswer, probe_kafka
from streams.ops.broker.process import BrokerStatus, EmbeddedKafka
from streams.ops.broker.tools import TOOLS

__all__ = ["TOOLS", "BrokerStatus", "ClusterAnswer", "EmbeddedKafka", "probe_kafka"]
