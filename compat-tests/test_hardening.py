"""What hostile or careless clients must not be able to do, seen with real
clients: a forged transaction marker, log-line forging through a group id,
and topic names that collide on '.' versus '_'."""

import struct
import time
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer
from confluent_kafka.admin import NewTopic

import kafka_wire as kw
from clients import admin, c_consume, create_topic

pytestmark = pytest.mark.timeout(120)

INVALID_RECORD = 87


def control_batch(producer_id, producer_epoch, commit, timestamp):
    """A transaction marker batch, as only a transaction coordinator may write."""
    key = struct.pack(">hh", 0, 1 if commit else 0)
    value = struct.pack(">hi", 0, 0)
    rec = kw.Writer()
    rec.i8(0).varint(0).varint(0)
    rec.varint(len(key)).raw(key).varint(len(value)).raw(value).varint(0)
    encoded = rec.bytes()
    tail = kw.Writer()
    tail.i16(0x10 | 0x20)  # transactional | control
    tail.i32(0).i64(timestamp).i64(timestamp)
    tail.i64(producer_id).i16(producer_epoch).i32(-1).i32(1)
    tail.varint(len(encoded)).raw(encoded)
    tail = tail.bytes()
    out = kw.Writer()
    out.i64(0).i32(4 + 1 + 4 + len(tail)).i32(-1).i8(2).u32(kw.crc32c(tail)).raw(tail)
    return out.bytes()


def first_batch_producer(broker, topic):
    """(producer id, epoch) of the first batch stored in partition 0."""
    partition_dir = Path(broker.data_dir) / f"{topic}-0"
    log = sorted(partition_dir.glob("*.log"))[0].read_bytes()
    return struct.unpack(">q", log[43:51])[0], struct.unpack(">h", log[51:53])[0]


def test_a_client_cannot_commit_another_producers_transaction_with_a_forged_marker(broker):
    topic = "forge"
    create_topic(broker, topic)
    p = Producer({"bootstrap.servers": broker.bootstrap, "transactional.id": "victim",
                  "socket.timeout.ms": 10000})
    p.init_transactions(30)
    p.begin_transaction()
    for v in (b"a", b"b", b"c"):
        p.produce(topic, value=v, partition=0)
    assert p.flush(20) == 0
    pid, epoch = first_batch_producer(broker, topic)
    assert pid >= 0
    with kw.Conn(broker.bootstrap) as conn:
        forged = control_batch(pid, epoch, commit=True, timestamp=int(time.time() * 1000))
        result = kw.produce(conn, 8, topic, 0, forged)
    assert result["error_code"] == INVALID_RECORD, result
    p.abort_transaction(30)
    # read_committed sees nothing of the aborted transaction...
    assert c_consume(broker.bootstrap, topic, **{"isolation.level": "read_committed"}) == []
    # ...and the partition still works for the real producer.
    p.begin_transaction()
    p.produce(topic, value=b"d", partition=0)
    p.commit_transaction(30)
    msgs = c_consume(broker.bootstrap, topic, **{"isolation.level": "read_committed"})
    assert [m.value() for m in msgs] == [b"d"]


def test_a_group_id_with_a_newline_cannot_forge_a_log_line(broker):
    topic = "forge-log"
    create_topic(broker, topic)
    forged = "2026-01-01T00:00:00.000000Z  INFO wharf: FORGED by a client"
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "g\n" + forged,
                  "auto.offset.reset": "earliest", "session.timeout.ms": 6000})
    try:
        c.subscribe([topic])
        deadline = time.time() + 30
        while not c.assignment() and time.time() < deadline:
            c.poll(0.2)
        assert c.assignment(), "the consumer joined its group"
    finally:
        c.close()
    log = broker.log()
    assert "FORGED by a client" in log, "the group id reached the log"
    assert not any(line.startswith(forged) for line in log.splitlines())


def test_topic_names_colliding_on_dot_and_underscore_are_refused(broker):
    create_topic(broker, "metrics.eu")
    a = admin(broker)
    fut = a.create_topics([NewTopic("metrics_eu", num_partitions=1, replication_factor=1)],
                          request_timeout=15)["metrics_eu"]
    with pytest.raises(KafkaException) as err:
        fut.result(timeout=20)
    assert err.value.args[0].code() == KafkaError.TOPIC_EXCEPTION
    assert "metrics_eu" not in a.list_topics(timeout=10).topics
