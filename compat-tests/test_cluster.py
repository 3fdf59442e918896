"""Three wharf brokers as one cluster, seen by real clients: every broker
listed from any bootstrap, one controller, and a new one after the
controller is killed with SIGKILL."""

import socket
import time

import pytest
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient
from kafka.admin import KafkaAdminClient

pytestmark = pytest.mark.timeout(120)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def cluster(broker_factory):
    ports = [free_port() for _ in range(3)]
    voters = ",".join(f"{i + 1}@127.0.0.1:{p}" for i, p in enumerate(ports))
    return [
        broker_factory(node_id=i + 1, extra_args=[
            "--controller-listen", f"127.0.0.1:{ports[i]}",
            "--controller-quorum-voters", voters,
            "--broker-heartbeat-interval-ms", "300",
            "--broker-session-timeout-ms", "2000",
        ])
        for i in range(3)
    ]


def wait_until(pred, timeout, what):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = pred()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def confluent_view(broker):
    """(broker ids, controller id) as confluent-kafka's AdminClient sees
    them, or None while it cannot tell."""
    admin = AdminClient({"bootstrap.servers": broker.bootstrap, "socket.timeout.ms": 5000})
    try:
        described = admin.describe_cluster(request_timeout=5).result(timeout=10)
    except KafkaException:
        return None
    ids = sorted(n.id for n in described.nodes)
    return ids, described.controller.id if described.controller else None


def test_every_broker_lists_the_whole_cluster_to_confluent_and_kafka_python(cluster):
    views = wait_until(
        lambda: (lambda v: v if all(x and x == v[0] and x[0] == [1, 2, 3] for x in v) else None)(
            [confluent_view(b) for b in cluster]),
        30, "three brokers listed alike by every broker")
    controller = views[0][1]
    assert controller in (1, 2, 3)
    metadata = AdminClient({"bootstrap.servers": cluster[0].bootstrap}).list_topics(timeout=10)
    assert sorted(metadata.brokers) == [1, 2, 3]
    assert {b.port for b in metadata.brokers.values()} == {b.port for b in cluster}
    admin = KafkaAdminClient(bootstrap_servers=cluster[2].bootstrap, request_timeout_ms=10000)
    try:
        described = admin.describe_cluster()
    finally:
        admin.close()
    assert sorted(b["node_id"] for b in described["brokers"]) == [1, 2, 3]
    assert described["controller_id"] == controller


def test_a_killed_controller_is_replaced_and_fenced(cluster):
    ids, controller = wait_until(
        lambda: (lambda v: v if v and v[0] == [1, 2, 3] and v[1] else None)(
            confluent_view(cluster[0])),
        30, "the cluster to form")
    cluster[controller - 1].stop(graceful=False)
    survivor = cluster[controller % 3]
    started = time.time()
    new_ids, new_controller = wait_until(
        lambda: (lambda v: v if v and v[1] not in (None, controller) and controller not in v[0]
                 else None)(confluent_view(survivor)),
        40, "a new controller and the old one fenced")
    print(f"new controller {new_controller}, broker {controller} fenced after "
          f"{time.time() - started:.1f}s")
    assert len(new_ids) == 2
