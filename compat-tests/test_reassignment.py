"""Partition reassignment (KIP-455) and DescribeLogDirs across three wharf
brokers: a partition's replicas move to other brokers while an idempotent
acks=all producer writes to it, with nothing acknowledged lost and the new
copies byte-identical; a move that cannot finish is listed and can be
cancelled; bad targets get Kafka's error codes. Requests go through
kafka-python's protocol classes (its admin client has no helpers for
these APIs); records through confluent-kafka."""

import threading
import time

import pytest
from confluent_kafka import Producer
from kafka import KafkaAdminClient
from kafka.protocol.admin import (AlterPartitionReassignmentsRequest_v0,
                                  DescribeLogDirsRequest_v0, DescribeLogDirsResponse_v0,
                                  ListPartitionReassignmentsRequest_v0)

from test_replication import (assigned_topic, bootstrap, consume_all, log_bytes, partition_state,
                              poll_for, start_cluster)

pytestmark = pytest.mark.timeout(300)

INVALID_REPLICA_ASSIGNMENT = 39
NO_REASSIGNMENT_IN_PROGRESS = 85
UNKNOWN_TOPIC_OR_PARTITION = 3


class DescribeLogDirsResponse_v1(DescribeLogDirsResponse_v0):
    API_VERSION = 1


class DescribeLogDirsRequest_v1(DescribeLogDirsRequest_v0):
    """v1 has v0's fields; Kafka 4 serves v1 and later only."""
    API_VERSION = 1
    RESPONSE_TYPE = DescribeLogDirsResponse_v1


def admin_for(cluster):
    return KafkaAdminClient(bootstrap_servers=bootstrap(cluster), request_timeout_ms=40000)


def reassign(admin, topic, partition, replicas):
    """AlterPartitionReassignments for one partition (replicas None:
    cancel); returns (top-level error, partition error)."""
    request = AlterPartitionReassignmentsRequest_v0(
        timeout_ms=30000,
        topics=[(topic, [(partition, replicas, {})], {})],
        tags={})
    # To broker 1, which these tests never stop (the least loaded node
    # kafka-python would pick may be one just stopped).
    response = admin.send_request(request, node_id=1)
    [(name, [(index, code, _message, _)], _)] = response.responses
    assert (name, index) == (topic, partition), response
    return response.error_code, code


def ongoing(admin, topics=None):
    """ListPartitionReassignments: {(topic, partition): (replicas, adding, removing)}."""
    request = ListPartitionReassignmentsRequest_v0(
        timeout_ms=30000,
        topics=None if topics is None else [(t, ps, {}) for t, ps in topics],
        tags={})
    response = admin.send_request(request, node_id=1)
    assert response.error_code == 0, response
    return {(t, p): (sorted(r), sorted(a), sorted(rm))
            for t, parts, _ in response.topics
            for p, r, a, rm, _ in parts}


@pytest.mark.parametrize("target", [[1, 3], [2, 3]], ids=["follower-moves", "leader-moves"])
def test_a_replica_moves_to_another_broker_under_load_and_nothing_acknowledged_is_lost(
        broker_factory, target):
    """[1, 2] -> [1, 3] moves the follower; [1, 2] -> [2, 3] moves the
    leader too: broker 2 takes over while broker 3 is catching up, and
    every copy must end up identical."""
    dropped = ({1, 2} - set(target)).pop()
    cluster = start_cluster(broker_factory)
    assigned_topic(cluster, "moving", [1, 2, 3])
    admin = admin_for(cluster)
    # Shrink to two replicas first (completes at once: both are in sync).
    assert reassign(admin, "moving", 0, [1, 2]) == (0, 0)
    poll_for(lambda: partition_state(cluster[2], "moving"),
             lambda s: s and s[1] == [1, 2] and s[2] == [1, 2], 30, "replicas [1, 2]")
    poll_for(lambda: log_bytes(cluster[2], "moving"), lambda b: b is None, 30,
             "broker 3 dropping its copy")

    acked, failed, stop = [], [], threading.Event()

    def write():
        p = Producer({"bootstrap.servers": bootstrap(cluster), "acks": "all",
                      "enable.idempotence": True, "linger.ms": 5})

        def done(err, msg):
            (failed if err else acked).append(err or msg.value())
        n = 0
        while not stop.is_set():
            try:
                p.produce("moving", value=b"v%08d" % n, partition=0, on_delivery=done)
                n += 1
            except BufferError:
                p.poll(0.05)
            p.poll(0)
            time.sleep(0.001)
        assert p.flush(60) == 0

    writer = threading.Thread(target=write)
    writer.start()
    try:
        poll_for(lambda: len(acked), lambda n: n >= 500, 30, "records acknowledged")
        assert reassign(admin, "moving", 0, target) == (0, 0)
        poll_for(lambda: ongoing(admin), lambda o: o == {}, 60, "the move finishing")
        state = poll_for(lambda: partition_state(cluster[2], "moving"),
                         lambda s: s and sorted(s[1]) == target and sorted(s[2]) == target, 30,
                         f"replicas and ISR {target}")
        assert state[0] == target[0], state
        moved_at = len(acked)
        poll_for(lambda: len(acked), lambda n: n >= moved_at + 500, 30,
                 "records acknowledged after the move")
    finally:
        stop.set()
        writer.join(90)
    assert not failed, failed[:5]
    poll_for(lambda: log_bytes(cluster[dropped - 1], "moving"), lambda b: b is None, 30,
             f"broker {dropped} dropping its copy")
    copies = poll_for(lambda: [log_bytes(cluster[n - 1], "moving") for n in target],
                      lambda c: c[0] and c[0] == c[1], 30, f"identical copies on {target}")
    assert copies[0]
    read = [v for _, v in consume_all(cluster, "moving", len(acked))]
    assert read == sorted(read), "records out of order"
    assert set(read) == set(acked), f"lost: {sorted(set(acked) - set(read))[:5]}"
    assert len(read) == len(set(read)), "duplicates"

    # DescribeLogDirs: each broker reports its copy's size; the dropped one
    # has none.
    for node_id, expect in ((n, n != dropped) for n in (1, 2, 3)):
        broker = cluster[node_id - 1]
        response = admin.send_request(DescribeLogDirsRequest_v1(topics=None), node_id=node_id)
        [(error, log_dir, topics)] = response.log_dirs
        assert error == 0 and log_dir == str(broker.data_dir.resolve()), response
        sizes = {(t, p): size for t, parts in topics for p, size, _lag, _future in parts}
        if expect:
            size = sizes[("moving", 0)]
            assert size == len(log_bytes(broker, "moving")), (size, sizes)
        else:
            assert ("moving", 0) not in sizes, sizes
    admin.close()


def test_a_move_that_cannot_finish_is_listed_and_cancelled(broker_factory):
    cluster = start_cluster(broker_factory)
    assigned_topic(cluster, "stuck", [1, 2, 3])
    admin = admin_for(cluster)
    assert reassign(admin, "stuck", 0, [1, 2]) == (0, 0)
    poll_for(lambda: partition_state(cluster[0], "stuck"),
             lambda s: s and s[1] == [1, 2], 30, "replicas [1, 2]")
    cluster[2].stop(graceful=True)
    # Broker 3 is down: it cannot catch up, so the move stays in progress.
    assert reassign(admin, "stuck", 0, [1, 3]) == (0, 0)
    time.sleep(1)
    assert ongoing(admin) == {("stuck", 0): ([1, 2, 3], [3], [2])}
    assert ongoing(admin, [("stuck", [0, 7]), ("no-such-topic", [0])]) == \
        {("stuck", 0): ([1, 2, 3], [3], [2])}
    assert partition_state(cluster[0], "stuck")[2] == [1, 2]
    # Cancelled: back to [1, 2].
    assert reassign(admin, "stuck", 0, None) == (0, 0)
    poll_for(lambda: partition_state(cluster[0], "stuck"),
             lambda s: s and s[1] == [1, 2] and s[2] == [1, 2], 30, "replicas back to [1, 2]")
    assert ongoing(admin) == {}
    # Bad requests: Kafka's codes, and nothing changes.
    assert reassign(admin, "stuck", 0, None)[1] == NO_REASSIGNMENT_IN_PROGRESS
    assert reassign(admin, "stuck", 0, [1, 9])[1] == INVALID_REPLICA_ASSIGNMENT
    assert reassign(admin, "stuck", 0, [1, 1])[1] == INVALID_REPLICA_ASSIGNMENT
    assert reassign(admin, "stuck", 0, [])[1] == INVALID_REPLICA_ASSIGNMENT
    assert reassign(admin, "no-such-topic", 0, [1])[1] == UNKNOWN_TOPIC_OR_PARTITION
    assert partition_state(cluster[1], "stuck")[1:] == ([1, 2], [1, 2])
    admin.close()
