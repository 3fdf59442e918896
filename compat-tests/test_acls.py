"""ACL authorization with real clients: a SASL_PLAINTEXT (PLAIN) listener
for applications and a PLAINTEXT one for tools, with Kafka's
StandardAuthorizer settings. alice gets Read/Write on a topic and Read on a
group; bob gets nothing. confluent-kafka's AdminClient manages ACLs, as does
`wharf kafka-acls.sh`; kcat sees its authorization error."""

import socket
import subprocess
import time
import uuid

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer
from confluent_kafka.admin import (AclBinding, AclBindingFilter, AclOperation,
                                   AclPermissionType, AdminClient, ResourcePatternType,
                                   ResourceType)

from clients import kcat

pytestmark = pytest.mark.timeout(120)

USERS = {"admin": "admin-secret", "alice": "alice-secret", "bob": "bob-secret"}
JAAS = ("org.apache.kafka.common.security.plain.PlainLoginModule required "
        + " ".join(f'user_{u}="{p}"' for u, p in USERS.items()) + ";")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sec(key, value):
    return ["--security-config", f"{key}={value}"]


@pytest.fixture
def secured(broker_factory):
    """A broker with the authorizer on: SASL_PLAINTEXT on its main port,
    PLAINTEXT for tools on another (User:ANONYMOUS is a super user there,
    as is User:admin)."""
    tools_port = free_port()
    broker = broker_factory(extra_args=[
        "--listener-name", "SASL_PLAINTEXT",
        "--extra-listeners", f"PLAINTEXT://127.0.0.1:{tools_port}",
        *sec("sasl.enabled.mechanisms", "PLAIN"),
        *sec("listener.name.sasl_plaintext.plain.sasl.jaas.config", JAAS),
        "--authorizer-class-name", "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        "--super-users", "User:admin;User:ANONYMOUS",
    ])
    broker.tools = f"127.0.0.1:{tools_port}"
    return broker


def conf(user):
    return {"security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "PLAIN",
            "sasl.username": user, "sasl.password": USERS[user]}


def admin(broker, user="admin"):
    return AdminClient({"bootstrap.servers": broker.bootstrap, **conf(user)})


def wait_all(futures):
    return {k: f.result(timeout=30) for k, f in futures.items()}


def grant_alice(broker, topic, group):
    bindings = [
        AclBinding(ResourceType.TOPIC, topic, ResourcePatternType.LITERAL, "User:alice", "*",
                   AclOperation.READ, AclPermissionType.ALLOW),
        AclBinding(ResourceType.TOPIC, topic, ResourcePatternType.LITERAL, "User:alice", "*",
                   AclOperation.WRITE, AclPermissionType.ALLOW),
        AclBinding(ResourceType.TOPIC, topic, ResourcePatternType.LITERAL, "User:alice", "*",
                   AclOperation.CREATE, AclPermissionType.ALLOW),
        AclBinding(ResourceType.GROUP, group, ResourcePatternType.LITERAL, "User:alice", "*",
                   AclOperation.READ, AclPermissionType.ALLOW),
    ]
    client = admin(broker)
    wait_all(client.create_acls(bindings))


def test_alice_with_acls_produces_and_consumes_and_bob_gets_authorization_errors(secured):
    topic, group = f"acl-{uuid.uuid4().hex[:8]}", "acl-group"
    grant_alice(secured, topic, group)

    producer = Producer({"bootstrap.servers": secured.bootstrap, "message.timeout.ms": 20000,
                         **conf("alice")})
    delivered = []
    for i in range(5):
        producer.produce(topic, f"v{i}".encode(),
                         on_delivery=lambda err, msg: delivered.append(err))
    producer.flush(30)
    assert delivered == [None] * 5

    consumer = Consumer({"bootstrap.servers": secured.bootstrap, "group.id": group,
                         "auto.offset.reset": "earliest", **conf("alice")})
    consumer.subscribe([topic])
    got = []
    deadline = time.monotonic() + 30
    while len(got) < 5 and time.monotonic() < deadline:
        msg = consumer.poll(1.0)
        if msg is not None and not msg.error():
            got.append(msg.value())
    consumer.commit(asynchronous=False)
    consumer.close()
    assert got == [f"v{i}".encode() for i in range(5)]

    # bob: the producer's delivery fails with TOPIC_AUTHORIZATION_FAILED.
    failures = []
    bob_producer = Producer({"bootstrap.servers": secured.bootstrap,
                             "message.timeout.ms": 10000, **conf("bob")})
    bob_producer.produce(topic, b"nope", on_delivery=lambda err, msg: failures.append(err))
    bob_producer.flush(20)
    assert failures and failures[0] is not None
    assert failures[0].code() == KafkaError.TOPIC_AUTHORIZATION_FAILED, failures[0]

    # bob as a consumer: the group is refused (GROUP_AUTHORIZATION_FAILED).
    bob_consumer = Consumer({"bootstrap.servers": secured.bootstrap, "group.id": group,
                             "auto.offset.reset": "earliest", **conf("bob")})
    bob_consumer.subscribe([topic])
    seen = set()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not seen & {KafkaError.GROUP_AUTHORIZATION_FAILED,
                                                      KafkaError.TOPIC_AUTHORIZATION_FAILED}:
        msg = bob_consumer.poll(0.5)
        if msg is not None and msg.error():
            seen.add(msg.error().code())
    bob_consumer.close()
    assert seen & {KafkaError.GROUP_AUTHORIZATION_FAILED,
                   KafkaError.TOPIC_AUTHORIZATION_FAILED}, seen

    # bob's metadata does not show the topic.
    md = admin(secured, "bob").list_topics(timeout=10)
    assert topic not in md.topics
    assert "Principal = User:bob is Denied operation = " in secured.log()


def test_admin_client_creates_describes_and_deletes_acls(secured):
    client = admin(secured)
    binding = AclBinding(ResourceType.TOPIC, "orders", ResourcePatternType.PREFIXED,
                         "User:carol", "*", AclOperation.DESCRIBE, AclPermissionType.DENY)
    wait_all(client.create_acls([binding]))
    everything = AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY, None, None,
                                  AclOperation.ANY, AclPermissionType.ANY)
    found = client.describe_acls(everything).result(timeout=30)
    assert binding in found
    # A MATCH filter for a topic finds the prefixed ACL that covers it.
    match = AclBindingFilter(ResourceType.TOPIC, "orders-eu", ResourcePatternType.MATCH, None,
                             None, AclOperation.ANY, AclPermissionType.ANY)
    assert client.describe_acls(match).result(timeout=30) == [binding]
    deleted = wait_all(client.delete_acls([everything]))
    assert binding in deleted[everything]
    assert client.describe_acls(everything).result(timeout=30) == []

    # bob may not manage ACLs: his CreateAcls entry fails with
    # CLUSTER_AUTHORIZATION_FAILED; his DescribeAcls shows nothing (the
    # broker answers CLUSTER_AUTHORIZATION_FAILED, which confluent-kafka
    # surfaces as an empty list) though an ACL exists.
    wait_all(client.create_acls([binding]))
    bob = admin(secured, "bob")
    with pytest.raises(KafkaException) as refused:
        wait_all(bob.create_acls([binding]))
    assert refused.value.args[0].code() == KafkaError.CLUSTER_AUTHORIZATION_FAILED
    assert bob.describe_acls(everything).result(timeout=30) == []
    assert client.describe_acls(everything).result(timeout=30) == [binding]
    assert "Principal = User:bob is Denied operation = Describe" in secured.log()


def test_kafka_acls_tool_adds_lists_and_removes(secured, wharf_bin):
    def tool(*args):
        return subprocess.run([str(wharf_bin), "kafka-acls.sh", "--bootstrap-server",
                               secured.tools, *args], capture_output=True, text=True,
                              timeout=60, check=True).stdout

    out = tool("--add", "--allow-principal", "User:alice", "--operation", "Read",
               "--topic", "orders")
    assert ("Adding ACLs for resource `ResourcePattern(resourceType=TOPIC, name=orders, "
            "patternType=LITERAL)`") in out
    assert "(principal=User:alice, host=*, operation=READ, permissionType=ALLOW)" in out
    tool("--add", "--allow-principal", "User:bob", "--consumer", "--topic", "pay",
         "--group", "billing", "--resource-pattern-type", "prefixed")
    listed = tool("--list", "--principal", "User:bob")
    assert "ACLs for principal `User:bob`" in listed
    assert "name=pay, patternType=PREFIXED" in listed and "name=orders" not in listed
    # The ACLs reach the SASL listener's authorizer: bob may now read pay-*.
    client = admin(secured)
    found = client.describe_acls(AclBindingFilter(
        ResourceType.GROUP, "billing", ResourcePatternType.PREFIXED, "User:bob", None,
        AclOperation.READ, AclPermissionType.ALLOW)).result(timeout=30)
    assert len(found) == 1
    tool("--remove", "--force", "--topic", "orders")
    assert "name=orders" not in tool("--list")


def test_kcat_without_acls_gets_an_authorization_error(secured):
    topic = f"kc-{uuid.uuid4().hex[:8]}"
    grant_alice(secured, topic, "unused")
    opts = ["-X", "security.protocol=SASL_PLAINTEXT", "-X", "sasl.mechanisms=PLAIN"]
    kcat(secured.bootstrap, *opts, "-X", "sasl.username=alice", "-X",
         "sasl.password=alice-secret", "-t", topic, "-P", stdin="one\n")
    bad = kcat(secured.bootstrap, *opts, "-X", "sasl.username=bob", "-X",
               "sasl.password=bob-secret", "-t", topic, "-P", stdin="two\n", check=False,
               timeout=40)
    assert bad.returncode != 0
    text = bad.stderr + bad.stdout
    assert "authorization failed" in text.lower() or "Authorization" in text, text
