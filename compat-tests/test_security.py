"""Listener security with real clients: TLS (SSL listeners, with and without
client certificates) and SASL/PLAIN over SASL_PLAINTEXT and SASL_SSL, with
confluent-kafka, kafka-python and kcat (librdkafka as Debian packages it).
Certificates are made per test with the `openssl` command line tool."""

import logging
import subprocess
import time
import uuid

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer
from confluent_kafka.admin import AdminClient

from clients import kcat

pytestmark = pytest.mark.timeout(90)

USERS = {"alice": "alice-secret", "bob": "bob-secret"}
JAAS = ("org.apache.kafka.common.security.plain.PlainLoginModule required "
        + " ".join(f'user_{u}="{p}"' for u, p in USERS.items()) + ";")


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


class Pki:
    """A CA, a server certificate for localhost/127.0.0.1 and client
    certificates, as PEM files in `dir`."""

    def __init__(self, dir, name="ca"):
        self.dir = dir
        self.name = name
        openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.pem", "-days", "2",
                "-subj", f"/CN=Wharf test {name}", cwd=dir)
        self.ca = str(dir / f"{name}.pem")

    def issue(self, stem, subject, usage):
        ext = self.dir / f"{stem}.ext"
        san = "subjectAltName=DNS:localhost,IP:127.0.0.1\n" if usage == "serverAuth" else ""
        ext.write_text(f"basicConstraints=CA:FALSE\nextendedKeyUsage={usage}\n{san}")
        openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                "-keyout", f"{stem}.key", "-out", f"{stem}.csr", "-subj", subject, cwd=self.dir)
        openssl("x509", "-req", "-in", f"{stem}.csr", "-CA", f"{self.name}.pem",
                "-CAkey", f"{self.name}.key", "-CAcreateserial", "-out", f"{stem}.pem",
                "-days", "2", "-extfile", ext.name, cwd=self.dir)
        return str(self.dir / f"{stem}.pem"), str(self.dir / f"{stem}.key")

    def server_pkcs12(self, password):
        """The server certificate and key as a PKCS12 keystore, as
        `openssl pkcs12 -export` writes it (OpenSSL 3 defaults: AES, PBKDF2)."""
        cert, key = self.issue("server", "/CN=localhost/O=Wharf", "serverAuth")
        openssl("pkcs12", "-export", "-in", cert, "-inkey", key, "-out", "server.p12",
                "-passout", f"pass:{password}", "-name", "server", cwd=self.dir)
        return str(self.dir / "server.p12")


@pytest.fixture
def pki(tmp_path):
    return Pki(tmp_path)


def sec(key, value):
    return ["--security-config", f"{key}={value}"]


def ssl_broker(broker_factory, pki, protocol="SSL", client_auth=None, extra=()):
    cert, key = pki.issue("server", "/CN=localhost/O=Wharf", "serverAuth")
    args = ["--listener-name", protocol,
            *sec("ssl.keystore.type", "PEM"),
            *sec("ssl.keystore.certificate.chain", open(cert).read()),
            *sec("ssl.keystore.key", open(key).read()),
            *sec("ssl.truststore.type", "PEM"),
            *sec("ssl.truststore.location", pki.ca)]
    if client_auth:
        args += sec("ssl.client.auth", client_auth)
    return broker_factory(extra_args=[*args, *extra])


def ssl_conf(pki, cert=None, key=None, protocol="SSL"):
    conf = {"security.protocol": protocol, "ssl.ca.location": pki.ca}
    if cert:
        conf.update({"ssl.certificate.location": cert, "ssl.key.location": key})
    return conf


def sasl_conf(user, password, protocol="SASL_PLAINTEXT"):
    return {"security.protocol": protocol, "sasl.mechanism": "PLAIN",
            "sasl.username": user, "sasl.password": password}


def produce_and_consume_group(bootstrap, conf, count=20):
    """confluent-kafka: produce `count` records, then read them back as a
    member of a consumer group that commits."""
    topic = f"secure-{uuid.uuid4().hex[:8]}"
    errors = []
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5,
                         "message.timeout.ms": 20000,
                         "error_cb": lambda e: errors.append(e), **conf})
    reports = []
    for i in range(count):
        producer.produce(topic, key=f"k{i}", value=f"v{i}",
                         on_delivery=lambda err, msg: reports.append(err))
    assert producer.flush(30) == 0, errors
    assert reports == [None] * count, reports
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"g-{topic}",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False,
                         **conf})
    try:
        consumer.subscribe([topic])
        got = []
        deadline = time.monotonic() + 30
        while len(got) < count and time.monotonic() < deadline:
            m = consumer.poll(0.5)
            if m is not None and m.error() is None:
                got.append(m.value().decode())
        assert sorted(got) == sorted(f"v{i}" for i in range(count))
        committed = consumer.commit(asynchronous=False)
        assert sum(tp.offset for tp in committed) == count
    finally:
        consumer.close()


def auth_failure(bootstrap, conf):
    """The errors an AdminClient with `conf` reports (its error callback's,
    then the failed call's), or None if it is served."""
    errors = []
    a = AdminClient({"bootstrap.servers": bootstrap, "socket.timeout.ms": 5000,
                     "error_cb": lambda e: errors.append(e), **conf})
    try:
        a.list_topics(timeout=6)
        return None
    except KafkaException as e:
        a.poll(1)  # serves the error callbacks
        return errors + [e.args[0]]


def authentication_error(errors):
    """The client's authentication error among `errors`, if any."""
    return next((e for e in errors or [] if e.code() == KafkaError._AUTHENTICATION), None)


def broker_lines(broker):
    """What the broker logged (without the fixture's own lines, which
    repeat its command line)."""
    return "\n".join(line for line in broker.log().splitlines() if not line.startswith("====="))


def wait_log(broker, text, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in broker.log():
            return broker.log()
        time.sleep(0.1)
    raise AssertionError(f"{text!r} not in the broker log:\n{broker.log()[-3000:]}")


# --- TLS ----------------------------------------------------------------------------

def test_confluent_produces_and_consumes_with_a_group_over_ssl(broker_factory, pki):
    broker = ssl_broker(broker_factory, pki)
    produce_and_consume_group(broker.bootstrap, ssl_conf(pki))


@pytest.mark.parametrize("version", ["TLSv1_2", "TLSv1_3"])
def test_tls_1_2_and_1_3_are_both_served(broker_factory, pki, version):
    import socket
    import ssl
    import struct

    broker = ssl_broker(broker_factory, pki)
    ctx = ssl.create_default_context(cafile=pki.ca)
    ctx.minimum_version = ctx.maximum_version = getattr(ssl.TLSVersion, version)
    with socket.create_connection((broker.host, broker.port), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as tls:
            assert tls.version() == version.replace("_", ".")
            # ApiVersions v0: api key 18, version 0, correlation id 7, client id "t".
            body = struct.pack(">hhih", 18, 0, 7, 1) + b"t"
            tls.sendall(struct.pack(">i", len(body)) + body)
            head = tls.recv(10)
            size, correlation, error = struct.unpack(">iih", head[:10])
            assert (correlation, error) == (7, 0) and size > 6


def test_mutual_tls_with_a_trusted_client_certificate(broker_factory, pki):
    broker = ssl_broker(broker_factory, pki, client_auth="required")
    cert, key = pki.issue("alice", "/CN=alice/O=Acme", "clientAuth")
    produce_and_consume_group(broker.bootstrap, ssl_conf(pki, cert, key))


def test_mutual_tls_refuses_an_untrusted_or_missing_client_certificate(broker_factory, pki, tmp_path):
    broker = ssl_broker(broker_factory, pki, client_auth="required")
    other_dir = tmp_path / "other"
    other_dir.mkdir()
    other = Pki(other_dir, name="evil-ca")
    cert, key = other.issue("mallory", "/CN=mallory/O=Evil", "clientAuth")
    err = auth_failure(broker.bootstrap, ssl_conf(pki, cert, key))
    assert err is not None, "an untrusted certificate was served"
    wait_log(broker, "TLS handshake failed")
    assert auth_failure(broker.bootstrap, ssl_conf(pki)) is not None, "no certificate was served"


def test_kcat_over_ssl_with_mutual_tls(broker_factory, pki):
    broker = ssl_broker(broker_factory, pki, client_auth="required")
    cert, key = pki.issue("kcat", "/CN=kcat/O=Acme", "clientAuth")
    opts = ["-X", "security.protocol=SSL", "-X", f"ssl.ca.location={pki.ca}",
            "-X", f"ssl.certificate.location={cert}", "-X", f"ssl.key.location={key}"]
    kcat(broker.bootstrap, *opts, "-t", "tls-kcat", "-P", "-K:", stdin="a:1\nb:2\n")
    out = kcat(broker.bootstrap, *opts, "-G", "kcat-group", "tls-kcat", "-e",
               "-f", "%k=%s\n", "-X", "auto.offset.reset=earliest").stdout
    assert sorted(out.split()) == ["a=1", "b=2"]


def test_a_pkcs12_keystore_from_openssl(broker_factory, pki):
    path = pki.server_pkcs12("p12-secret")
    broker = broker_factory(extra_args=[
        "--listener-name", "SSL", *sec("ssl.keystore.type", "PKCS12"),
        *sec("ssl.keystore.location", path), *sec("ssl.keystore.password", "p12-secret")])
    produce_and_consume_group(broker.bootstrap, ssl_conf(pki), count=3)
    assert "p12-secret" not in broker_lines(broker)


def test_plaintext_client_on_a_tls_port_is_closed_and_logged(broker_factory, pki):
    broker = ssl_broker(broker_factory, pki)
    assert auth_failure(broker.bootstrap, {}) is not None
    wait_log(broker, "a plaintext Kafka request arrived on a TLS listener")


# --- SASL/PLAIN ---------------------------------------------------------------------

def sasl_plaintext_broker(broker_factory, extra=()):
    return broker_factory(extra_args=[
        "--listener-name", "SASL_PLAINTEXT", *sec("sasl.enabled.mechanisms", "PLAIN"),
        *sec("listener.name.sasl_plaintext.plain.sasl.jaas.config", JAAS), *extra])


def test_confluent_over_sasl_plaintext_plain(broker_factory):
    broker = sasl_plaintext_broker(broker_factory)
    produce_and_consume_group(broker.bootstrap, sasl_conf("alice", "alice-secret"))


def test_kafka_python_over_sasl_plaintext_plain(broker_factory):
    from kafka import KafkaConsumer, KafkaProducer

    broker = sasl_plaintext_broker(broker_factory)
    creds = dict(security_protocol="SASL_PLAINTEXT", sasl_mechanism="PLAIN",
                 sasl_plain_username="bob", sasl_plain_password="bob-secret")
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, **creds)
    for i in range(5):
        producer.send("kp-sasl", key=b"k", value=f"v{i}".encode())
    producer.flush(20)
    producer.close()
    consumer = KafkaConsumer("kp-sasl", bootstrap_servers=broker.bootstrap, group_id="kp-g",
                             auto_offset_reset="earliest", consumer_timeout_ms=10000, **creds)
    try:
        got = [m.value for m in consumer]
    finally:
        consumer.close()
    assert got == [f"v{i}".encode() for i in range(5)]


def test_kcat_over_sasl_plaintext_plain_and_wrong_password(broker_factory):
    broker = sasl_plaintext_broker(broker_factory)
    opts = ["-X", "security.protocol=SASL_PLAINTEXT", "-X", "sasl.mechanisms=PLAIN",
            "-X", "sasl.username=alice"]
    kcat(broker.bootstrap, *opts, "-X", "sasl.password=alice-secret", "-t", "sasl-kcat",
         "-P", stdin="one\ntwo\n")
    out = kcat(broker.bootstrap, *opts, "-X", "sasl.password=alice-secret",
               "-t", "sasl-kcat", "-C", "-e").stdout
    assert out.split() == ["one", "two"]
    bad = kcat(broker.bootstrap, *opts, "-X", "sasl.password=wrong", "-L", check=False,
               timeout=30)
    assert bad.returncode != 0
    assert "Authentication failed" in bad.stderr + bad.stdout, bad.stderr


def test_wrong_credentials_surface_as_the_clients_authentication_error(broker_factory, caplog):
    broker = sasl_plaintext_broker(broker_factory)
    errors = auth_failure(broker.bootstrap, sasl_conf("alice", "guess"))
    err = authentication_error(errors)
    assert err is not None, errors
    assert "Invalid username or password" in err.str()
    wait_log(broker, "authentication failed")
    log = broker_lines(broker)
    assert "User:alice" in log and "guess" not in log and "alice-secret" not in log

    from kafka import KafkaProducer
    from kafka.errors import KafkaError as KpError
    caplog.set_level(logging.ERROR, logger="kafka")
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, security_protocol="SASL_PLAINTEXT",
                             sasl_mechanism="PLAIN", sasl_plain_username="bob",
                             sasl_plain_password="nope", max_block_ms=4000)
    try:
        with pytest.raises(KpError):
            producer.send("never", b"x").get(timeout=5)
    finally:
        producer.close(timeout=2)
    assert "SaslAuthenticationFailedError" in caplog.text, caplog.text[-2000:]
    assert "Invalid username or password" in caplog.text


# --- SASL_SSL, Kafka's own configuration ----------------------------------------------

def _free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_sasl_ssl_and_plaintext_listeners_from_server_properties(broker_factory, pki, tmp_path):
    cert, key = pki.issue("server", "/CN=localhost/O=Wharf", "serverAuth")
    keystore = tmp_path / "server-keystore.pem"
    keystore.write_text(open(key).read() + open(cert).read())
    secure_port = _free_port()
    props = tmp_path / "server.properties"
    # The fixture's --listen is the PLAINTEXT listener; the file adds SASL_SSL.
    props.write_text(
        "listeners=PLAINTEXT://127.0.0.1:0,SASL_SSL://127.0.0.1:%d\n"
        "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,SASL_SSL:SASL_SSL\n"
        "inter.broker.listener.name=PLAINTEXT\n"
        "sasl.enabled.mechanisms=PLAIN\n"
        "listener.name.sasl_ssl.ssl.keystore.type=PEM\n"
        "listener.name.sasl_ssl.ssl.keystore.location=%s\n"
        "listener.name.sasl_ssl.plain.sasl.jaas.config=%s\n"
        % (secure_port, keystore, JAAS))
    broker = broker_factory(extra_args=["--config", str(props)])
    secure = f"127.0.0.1:{secure_port}"
    produce_and_consume_group(secure, {**sasl_conf("alice", "alice-secret", "SASL_SSL"),
                                       "ssl.ca.location": pki.ca})
    # The plaintext listener still serves, and its clients see that topic.
    a = AdminClient({"bootstrap.servers": broker.bootstrap})
    assert any(t.startswith("secure-") for t in a.list_topics(timeout=10).topics)

    from kafka import KafkaConsumer
    consumer = KafkaConsumer(bootstrap_servers=secure, security_protocol="SASL_SSL",
                             ssl_cafile=pki.ca, sasl_mechanism="PLAIN",
                             sasl_plain_username="bob", sasl_plain_password="bob-secret")
    try:
        assert any(t.startswith("secure-") for t in consumer.topics())
    finally:
        consumer.close()
    errors = auth_failure(secure, {**sasl_conf("bob", "wrong", "SASL_SSL"),
                                   "ssl.ca.location": pki.ca})
    assert authentication_error(errors) is not None, errors
    out = subprocess.run([broker.binary, "serve", "--config", str(props), "--print-config"],
                         capture_output=True, text=True, check=True).stdout
    assert "bob-secret" not in out and "alice-secret" not in out
    assert "listener.name.sasl_ssl.ssl.keystore.location" in out
