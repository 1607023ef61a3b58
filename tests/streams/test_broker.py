from __future__ import annotations

import os
import socket
import subprocess
import uuid
from pathlib import Path

import pytest

from streams.core.exceptions import ConfigurationError, EmbeddedServiceError
from streams.core.identities import AuthenticationError, Role, read_user_info
from streams.ops.broker import TOOLS, EmbeddedKafka, probe_kafka
from streams.ops.broker.config import new_cluster_id, render_server_properties
from streams.ops.broker.logins import ensure_broker_secret
from streams.ops.broker.probe import ProbeLogin
from streams.ops.broker.tools import config_flag
from streams.ops.security import broker_users, create_identity, revoke_identity, rotate_identity
from streams.settings import HubSettings


def _properties(text: str) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in text.splitlines() if line and line[0] != "#")
    return {key: value for key, value in pairs}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def offline(tmp_path: Path) -> HubSettings:
    """Embedded plaintext settings whose ports nothing listens on, in a home nobody else uses.

    Explicit None: other fixtures export KAFKA_BOOTSTRAP_SERVERS for the whole session.
    """
    return HubSettings(
        kafka_bootstrap_servers=None,
        schema_registry_url=None,
        home=tmp_path,
        broker_port=_free_port(),
        controller_port=_free_port(),
        topic_partitions=6,
        security="none",
    )


@pytest.fixture
def offline_secured(offline: HubSettings) -> HubSettings:
    return offline.model_copy(update={"security": "sasl"})


def test_server_properties_single_loopback_kraft_node(offline: HubSettings, tmp_path: Path):
    props = _properties(render_server_properties(offline, data_dir=tmp_path / "data"))
    b, c = offline.broker_port, offline.controller_port

    assert props["process.roles"] == "broker,controller"
    assert props["node.id"] == "1"
    assert props["controller.quorum.voters"] == f"1@127.0.0.1:{c}"
    assert props["listeners"] == f"PLAINTEXT://127.0.0.1:{b},CONTROLLER://127.0.0.1:{c}"
    assert props["advertised.listeners"] == f"PLAINTEXT://127.0.0.1:{b}"
    assert props["log.dirs"] == str(tmp_path / "data")
    assert props["num.partitions"] == "6"


def test_server_properties_fit_one_node_and_explicit_topics(offline: HubSettings, tmp_path: Path):
    props = _properties(render_server_properties(offline, data_dir=tmp_path))

    for key in (
        "offsets.topic.replication.factor",
        "transaction.state.log.replication.factor",
        "transaction.state.log.min.isr",
    ):
        assert props[key] == "1"
    assert props["auto.create.topics.enable"] == "false"
    assert props["group.initial.rebalance.delay.ms"] == "0"


def test_secured_node_takes_scram_and_denies_what_no_acl_allows(
    offline_secured: HubSettings, tmp_path: Path
):
    props = _properties(render_server_properties(
        offline_secured, data_dir=tmp_path, broker_secret="s3cret-Token_x"))
    b, c = offline_secured.broker_port, offline_secured.controller_port

    assert props["listeners"] == f"SASL_PLAINTEXT://127.0.0.1:{b},CONTROLLER://127.0.0.1:{c}"
    assert props["advertised.listeners"] == f"SASL_PLAINTEXT://127.0.0.1:{b}"
    assert props["listener.security.protocol.map"] == (
        "SASL_PLAINTEXT:SASL_PLAINTEXT,CONTROLLER:SASL_PLAINTEXT")
    assert props["sasl.enabled.mechanisms"] == "SCRAM-SHA-512"
    assert props["sasl.mechanism.inter.broker.protocol"] == "SCRAM-SHA-512"
    assert props["sasl.mechanism.controller.protocol"] == "PLAIN"
    assert props["authorizer.class.name"] == (
        "org.apache.kafka.metadata.authorizer.StandardAuthorizer")
    assert props["super.users"] == "User:hotelhub-broker"
    assert props["allow.everyone.if.no.acl.found"] == "false"
    assert 'user_hotelhub-broker="s3cret-Token_x"' in (
        props["listener.name.controller.plain.sasl.jaas.config"])
    assert 'username="hotelhub-broker"' in (
        props["listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config"])


def test_secured_node_refuses_to_render_without_its_secret(offline_secured: HubSettings,
                                                          tmp_path: Path):
    with pytest.raises(ConfigurationError, match="hotelhub-broker"):
        render_server_properties(offline_secured, data_dir=tmp_path)
    with pytest.raises(ConfigurationError, match="quotes"):
        render_server_properties(offline_secured, data_dir=tmp_path, broker_secret='a"b')


def test_secured_and_plaintext_nodes_never_share_data(offline: HubSettings,
                                                      offline_secured: HubSettings):
    assert EmbeddedKafka(offline_secured).data_dir.name.endswith("-sasl")
    assert EmbeddedKafka(offline).data_dir != EmbeddedKafka(offline_secured).data_dir


def test_broker_secret_is_made_once_and_private(offline_secured: HubSettings):
    first = ensure_broker_secret(offline_secured)
    path = EmbeddedKafka(offline_secured).broker_secret_path

    assert ensure_broker_secret(offline_secured) == first
    assert path.read_text().strip() == f"hotelhub-broker:{first}"
    assert path.stat().st_mode & 0o777 == 0o600


def test_up_refuses_a_running_node_of_the_other_security_mode(offline: HubSettings):
    """Without waiting for it: a SASL node never answers a plaintext probe, nor the reverse."""
    kafka = EmbeddedKafka(offline)
    kafka.daemon.pid_path.parent.mkdir(parents=True)
    kafka.daemon.pid_path.write_text(str(os.getpid()))  # a live pid: "it runs"
    kafka.config_dir.mkdir(parents=True)
    kafka.server_properties_path.write_text("listeners=SASL_PLAINTEXT://127.0.0.1:1\n")

    with pytest.raises(EmbeddedServiceError, match="HOTELHUB_SECURITY=sasl"):
        kafka.up(timeout_s=1)
    assert "HOTELHUB_SECURITY=sasl" in (kafka.status().error or "")
    kafka.daemon.pid_path.unlink()


def test_paths_live_under_the_hub_home(offline: HubSettings):
    kafka = EmbeddedKafka(offline)

    assert kafka.libs_dir == offline.home / f"kafka-{offline.kafka_version}" / "libs"
    for path in (kafka.data_dir, kafka.daemon.pid_path, kafka.daemon.log_path):
        assert path.is_relative_to(offline.home)


def test_cluster_id_is_kafka_shaped():
    ids = {new_cluster_id() for _ in range(50)}

    assert len(ids) == 50
    for cluster_id in ids:
        assert len(cluster_id) == 22 and not cluster_id.startswith("-")
        assert set(cluster_id) <= set(
            "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
        )


def test_probe_of_a_closed_port_is_none(offline: HubSettings):
    assert probe_kafka(offline.bootstrap_servers, timeout_s=0.5) is None


def test_external_cluster_starts_and_stops_nothing(tmp_path: Path):
    settings = HubSettings(home=tmp_path, KAFKA_BOOTSTRAP_SERVERS=f"127.0.0.1:{_free_port()}")
    kafka = EmbeddedKafka(settings)

    status = kafka.up()

    assert not status.embedded and status.pid is None and not status.answers
    assert kafka.down() is False
    assert not any(tmp_path.iterdir())


def test_tool_adds_bootstrap_server_unless_given(offline: HubSettings, monkeypatch):
    seen: list[list[str]] = []

    def run(command, **kwargs):
        seen.append(command)
        return subprocess.CompletedProcess(command, 0, "", "")

    monkeypatch.setattr(EmbeddedKafka, "tool_class", lambda self, name: "Main")
    monkeypatch.setattr(subprocess, "run", run)
    kafka = EmbeddedKafka(offline)

    kafka.tool("topics", ["--list"])
    kafka.tool("topics", ["--bootstrap-server=elsewhere:9092", "--list"])

    assert seen[0][-3:] == ["--bootstrap-server", offline.bootstrap_servers, "--list"]
    assert seen[1][-2:] == ["--bootstrap-server=elsewhere:9092", "--list"]
    assert seen[1].count("--bootstrap-server") == 0


def test_secured_tool_authenticates_as_the_operator_through_a_private_file(
    offline_secured: HubSettings, monkeypatch
):
    secrets = offline_secured.secrets_dir
    secrets.mkdir(parents=True)
    (secrets / "operator.secret").write_text("operator.1:tok-en_1\n")
    seen: list[list[str]] = []
    files: list[tuple[Path, int, str]] = []

    def run(command, **kwargs):
        seen.append(command)
        if "--command-config" in command and command[-1] == "--list" and not files:
            config = Path(command[command.index("--command-config") + 1])
            files.append((config, config.stat().st_mode & 0o777, config.read_text()))
        return subprocess.CompletedProcess(command, 0, "", "")

    monkeypatch.setattr(EmbeddedKafka, "tool_class", lambda self, name: "Main")
    monkeypatch.setattr(subprocess, "run", run)
    kafka = EmbeddedKafka(offline_secured)

    kafka.tool("topics", ["--list"])
    kafka.tool("topics", ["--command-config", "mine.properties", "--list"])

    config, mode, text = files[0]
    assert mode == 0o600 and not config.exists()  # private while the tool runs, then gone
    assert 'username="operator.1" password="tok-en_1"' in text
    assert "security.protocol=SASL_PLAINTEXT" in text
    assert "tok-en_1" not in " ".join(seen[0])
    assert seen[1].count("--command-config") == 1 and "mine.properties" in seen[1]


def test_console_tools_before_4_1_take_their_old_config_option():
    assert config_flag("console-consumer", "3.9.1") == "--consumer.config"
    assert config_flag("console-producer", "4.0.0") == "--producer.config"
    assert config_flag("console-consumer", "4.3.1") == "--command-config"
    assert config_flag("topics", "3.9.1") == "--command-config"


def test_unknown_tool_is_refused(offline: HubSettings):
    with pytest.raises(ConfigurationError, match="topics"):
        EmbeddedKafka(offline).tool("zookeeper-shell")


# -- against the broker the session uses ------------------------------------------------


@pytest.mark.integration
def test_up_on_a_running_embedded_broker_keeps_its_pid(hub_settings: HubSettings):
    kafka = EmbeddedKafka(hub_settings.model_copy(update={"kafka_bootstrap_servers": None}))
    before = kafka.status()
    if before.pid is None:
        pytest.skip("this session's Kafka is not the hub's embedded broker")

    after = kafka.up()

    assert after.pid == before.pid
    assert before.answer is not None and after.answer is not None
    assert after.answer.cluster_id == before.answer.cluster_id


@pytest.mark.integration
def test_status_reports_an_answering_cluster(hub_settings: HubSettings):
    status = EmbeddedKafka(hub_settings).status()

    assert status.answers, status.error
    assert status.bootstrap_servers == hub_settings.bootstrap_servers
    assert status.secured == hub_settings.secured


@pytest.mark.integration
def test_probe_authenticates_and_a_wrong_secret_is_refused(hub_settings: HubSettings):
    kafka = EmbeddedKafka(hub_settings)
    login = kafka.probe_login()
    if login is None:
        pytest.skip("this session's Kafka does not authenticate")

    assert probe_kafka(hub_settings.bootstrap_servers, timeout_s=5, login=login) is not None
    assert probe_kafka(hub_settings.bootstrap_servers, timeout_s=5) is None  # no SASL: dropped
    with pytest.raises(AuthenticationError, match=login.username):
        probe_kafka(hub_settings.bootstrap_servers, timeout_s=5,
                    login=ProbeLogin(login.username, "not-the-secret"))


@pytest.mark.integration
def test_kafka_cli_tools_reach_the_cluster(hub_settings: HubSettings):
    kafka = EmbeddedKafka(hub_settings)
    topic = f"test.broker-tool.{uuid.uuid4().hex[:8]}"

    created = kafka.tool(
        "topics", ["--create", "--topic", topic, "--partitions", "2"], capture=True, timeout_s=120
    )
    try:
        assert created.returncode == 0, created.stderr
        listed = kafka.tool("topics", ["--list"], capture=True, timeout_s=120)
        assert listed.returncode == 0, listed.stderr
        assert topic in listed.stdout.split()
        offsets = kafka.tool("get-offsets", ["--topic", topic], capture=True, timeout_s=120)
        assert sorted(offsets.stdout.split()) == [f"{topic}:0:0", f"{topic}:1:0"]
    finally:
        kafka.tool("topics", ["--delete", "--topic", topic], capture=True, timeout_s=120)


def test_every_tool_names_a_class():
    assert all(TOOLS[name] for name in TOOLS)


@pytest.mark.integration
def test_a_secured_node_keeps_its_users_across_a_restart_after_a_revocation(
    hub_settings: HubSettings, tmp_path: Path
):
    """Revoked credentials are overwritten, never deleted: Kafka 4.3 loses every SCRAM user at
    restart when a deleted one comes first in its HashMap, as `rv-000.1` would (bucket 0)."""
    jars = hub_settings.home / f"kafka-{hub_settings.kafka_version}"
    if not (jars / "libs").is_dir():
        pytest.skip("needs the embedded Kafka's jars")
    (tmp_path / jars.name).symlink_to(jars)
    own = HubSettings(kafka_bootstrap_servers=None, schema_registry_url=None, home=tmp_path,
                      broker_port=_free_port(), controller_port=_free_port(),
                      security="sasl", identity="operator")
    kafka = EmbeddedKafka(own)
    try:
        assert kafka.up(timeout_s=120).set_up is not None
        create_identity(own, "rv-000", Role.SYSTEM)
        new, _ = rotate_identity(own, "rv-000")
        old_secret = read_user_info(own.secrets_dir / "rv-000.1.secret")[1]
        revoke_identity(own, "rv-000", credential="rv-000.1")
        kafka.down()

        status = kafka.up(timeout_s=120)

        assert status.answers, status.error
        login = ProbeLogin("rv-000.2", read_user_info(new.path)[1])
        assert probe_kafka(own.bootstrap_servers, timeout_s=5, login=login) is not None
        with pytest.raises(AuthenticationError):
            probe_kafka(own.bootstrap_servers, timeout_s=5,
                        login=ProbeLogin("rv-000.1", old_secret))
        assert broker_users(own)["rv-000.1"] is False
    finally:
        kafka.down()
