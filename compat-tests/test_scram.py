"""SASL SCRAM-SHA-256 and SCRAM-SHA-512 with real clients, over
SASL_PLAINTEXT and SASL_SSL: users made with `wharf kafka-configs.sh` and
with confluent-kafka's AdminClient.alter_user_scram_credentials, then
confluent-kafka, kafka-python and kcat produce, consume with a group and
make admin calls as those users; wrong passwords fail with each client's
authentication error; no password reaches the broker's log."""

import logging
import subprocess
import uuid

import pytest
from confluent_kafka import KafkaException
from confluent_kafka.admin import (AdminClient, NewTopic, ScramCredentialInfo,
                                   ScramMechanism, UserScramCredentialUpsertion)

from clients import kcat
from test_security import (Pki, _free_port, auth_failure, authentication_error,
                           broker_lines, produce_and_consume_group, wait_log)

pytestmark = pytest.mark.timeout(120)

MECHANISMS = ["SCRAM-SHA-256", "SCRAM-SHA-512"]


class ScramBroker:
    """A broker with its fixture PLAINTEXT listener (for the tools), a
    SASL_PLAINTEXT and a SASL_SSL listener serving both SCRAM mechanisms."""

    def __init__(self, broker_factory, tmp_path):
        self.pki = Pki(tmp_path)
        cert, key = self.pki.issue("server", "/CN=localhost/O=Wharf", "serverAuth")
        keystore = tmp_path / "server-keystore.pem"
        keystore.write_text(open(key).read() + open(cert).read())
        self.ports = {"SASL_PLAINTEXT": _free_port(), "SASL_SSL": _free_port()}
        props = tmp_path / "server.properties"
        props.write_text(
            "listeners=PLAINTEXT://127.0.0.1:0,SASL_PLAINTEXT://127.0.0.1:%d,"
            "SASL_SSL://127.0.0.1:%d\n"
            "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,"
            "SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL\n"
            "inter.broker.listener.name=PLAINTEXT\n"
            "sasl.enabled.mechanisms=SCRAM-SHA-256,SCRAM-SHA-512\n"
            "listener.name.sasl_ssl.ssl.keystore.type=PEM\n"
            "listener.name.sasl_ssl.ssl.keystore.location=%s\n"
            % (self.ports["SASL_PLAINTEXT"], self.ports["SASL_SSL"], keystore))
        self.broker = broker_factory(extra_args=["--config", str(props)])

    def bootstrap(self, protocol):
        return f"127.0.0.1:{self.ports[protocol]}"

    def conf(self, protocol, mechanism, user, password):
        conf = {"security.protocol": protocol, "sasl.mechanism": mechanism,
                "sasl.username": user, "sasl.password": password}
        if protocol == "SASL_SSL":
            conf["ssl.ca.location"] = self.pki.ca
        return conf

    def kafka_python(self, protocol, mechanism, user, password):
        creds = dict(security_protocol=protocol, sasl_mechanism=mechanism,
                     sasl_plain_username=user, sasl_plain_password=password)
        if protocol == "SASL_SSL":
            creds["ssl_cafile"] = self.pki.ca
        return creds

    def configs(self, *args):
        return subprocess.run([self.broker.binary, "kafka-configs.sh", "--bootstrap-server",
                               self.broker.bootstrap, *args],
                              capture_output=True, text=True, timeout=30)

    def add_user(self, user, mechanism, password, iterations=8192):
        out = self.configs("--alter", "--add-config",
                           f"{mechanism}=[iterations={iterations},password={password}]",
                           "--entity-type", "users", "--entity-name", user)
        assert out.returncode == 0, out.stderr
        assert out.stdout == f"Completed updating config for user {user}.\n"


@pytest.fixture
def scram(broker_factory, tmp_path):
    return ScramBroker(broker_factory, tmp_path)


def kafka_python_round_trip(bootstrap, creds, count=5):
    from kafka import KafkaConsumer, KafkaProducer

    topic = f"kp-scram-{uuid.uuid4().hex[:8]}"
    producer = KafkaProducer(bootstrap_servers=bootstrap, **creds)
    for i in range(count):
        producer.send(topic, key=b"k", value=f"v{i}".encode())
    producer.flush(20)
    producer.close()
    consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=f"g-{topic}",
                             auto_offset_reset="earliest", consumer_timeout_ms=10000, **creds)
    try:
        got = [m.value for m in consumer]
        consumer.commit()
    finally:
        consumer.close()
    assert got == [f"v{i}".encode() for i in range(count)]


@pytest.mark.parametrize("protocol", ["SASL_PLAINTEXT", "SASL_SSL"])
@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_users_from_kafka_configs_produce_consume_and_administer(scram, protocol, mechanism):
    password = f"alice-{mechanism.lower()}-pw"
    scram.add_user("alice", mechanism, password)
    described = scram.configs("--describe", "--entity-type", "users", "--entity-name", "alice")
    assert described.stdout == (
        f"SCRAM credential configs for user-principal 'alice' are {mechanism}=iterations=8192\n")
    bootstrap = scram.bootstrap(protocol)
    conf = scram.conf(protocol, mechanism, "alice", password)
    produce_and_consume_group(bootstrap, conf, count=10)
    admin = AdminClient({"bootstrap.servers": bootstrap, **conf})
    topic = f"admin-{uuid.uuid4().hex[:8]}"
    for f in admin.create_topics([NewTopic(topic, num_partitions=2)]).values():
        f.result(timeout=20)
    assert topic in admin.list_topics(timeout=10).topics
    kafka_python_round_trip(bootstrap, scram.kafka_python(protocol, mechanism, "alice", password))
    log = broker_lines(scram.broker)
    assert password not in log


def test_users_from_confluent_admin_client_and_removal(scram):
    admin = AdminClient({"bootstrap.servers": scram.broker.bootstrap})
    upserts = [UserScramCredentialUpsertion("carol", ScramCredentialInfo(m, 4096), b"carol-pw")
               for m in (ScramMechanism.SCRAM_SHA_256,)]
    upserts.append(UserScramCredentialUpsertion(
        "dave", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 16384), b"dave-pw"))
    for f in admin.alter_user_scram_credentials(upserts).values():
        f.result(timeout=20)
    described = {user: f.result(timeout=20) for user, f in
                 admin.describe_user_scram_credentials(["carol", "dave"]).items()}
    assert [(i.mechanism, i.iterations) for i in described["carol"].scram_credential_infos] == [
        (ScramMechanism.SCRAM_SHA_256, 4096)]
    assert [(i.mechanism, i.iterations) for i in described["dave"].scram_credential_infos] == [
        (ScramMechanism.SCRAM_SHA_512, 16384)]
    for protocol in ("SASL_PLAINTEXT", "SASL_SSL"):
        produce_and_consume_group(scram.bootstrap(protocol),
                                  scram.conf(protocol, "SCRAM-SHA-512", "dave", "dave-pw"),
                                  count=3)
    # Too few iterations: Kafka's UNACCEPTABLE_CREDENTIAL.
    bad = admin.alter_user_scram_credentials([UserScramCredentialUpsertion(
        "erin", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_256, 1000), b"pw")])
    with pytest.raises(KafkaException) as refused:
        bad["erin"].result(timeout=20)
    assert "iterations" in str(refused.value).lower()
    # Once removed, carol can no longer log in.
    out = scram.configs("--alter", "--delete-config", "SCRAM-SHA-256",
                        "--entity-type", "users", "--entity-name", "carol")
    assert out.returncode == 0, out.stderr
    errors = auth_failure(scram.bootstrap("SASL_PLAINTEXT"),
                          scram.conf("SASL_PLAINTEXT", "SCRAM-SHA-256", "carol", "carol-pw"))
    assert authentication_error(errors) is not None, errors
    log = broker_lines(scram.broker)
    assert "carol-pw" not in log and "dave-pw" not in log


@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_kcat_with_scram_and_a_wrong_password(scram, mechanism):
    scram.add_user("kc", mechanism, "kc-secret", iterations=4096)
    bootstrap = scram.bootstrap("SASL_PLAINTEXT")
    opts = ["-X", "security.protocol=SASL_PLAINTEXT", "-X", f"sasl.mechanisms={mechanism}",
            "-X", "sasl.username=kc"]
    kcat(bootstrap, *opts, "-X", "sasl.password=kc-secret", "-t", "scram-kcat", "-P",
         stdin="one\ntwo\n")
    out = kcat(bootstrap, *opts, "-X", "sasl.password=kc-secret", "-G", "kcat-scram",
               "scram-kcat", "-e", "-X", "auto.offset.reset=earliest").stdout
    assert sorted(out.split()) == ["one", "two"]
    bad = kcat(bootstrap, *opts, "-X", "sasl.password=wrong", "-L", check=False, timeout=30)
    assert bad.returncode != 0
    assert "Authentication failed" in bad.stderr + bad.stdout, bad.stderr
    assert "kc-secret" not in broker_lines(scram.broker)


def test_wrong_password_is_each_clients_authentication_error(scram, caplog):
    scram.add_user("frank", "SCRAM-SHA-256", "frank-secret")
    bootstrap = scram.bootstrap("SASL_SSL")
    errors = auth_failure(bootstrap, scram.conf("SASL_SSL", "SCRAM-SHA-256", "frank", "guess-1"))
    err = authentication_error(errors)
    assert err is not None, errors
    assert "SCRAM-SHA-256" in err.str()
    # An unknown user fails the same way.
    errors = auth_failure(bootstrap, scram.conf("SASL_SSL", "SCRAM-SHA-256", "nobody", "x"))
    assert authentication_error(errors) is not None, errors
    wait_log(scram.broker, "authentication failed")

    from kafka import KafkaProducer
    from kafka.errors import KafkaError as KpError
    caplog.set_level(logging.ERROR, logger="kafka")
    producer = KafkaProducer(bootstrap_servers=scram.bootstrap("SASL_PLAINTEXT"),
                             max_block_ms=4000,
                             **scram.kafka_python("SASL_PLAINTEXT", "SCRAM-SHA-256",
                                                  "frank", "guess-2"))
    try:
        with pytest.raises(KpError):
            producer.send("never", b"x").get(timeout=5)
    finally:
        producer.close(timeout=2)
    assert "SaslAuthenticationFailedError" in caplog.text, caplog.text[-2000:]
    log = broker_lines(scram.broker)
    assert "User:frank" in log and "User:nobody" in log
    for secret in ("frank-secret", "guess-1", "guess-2"):
        assert secret not in log
