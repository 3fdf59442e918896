"""Disk faults, injected with `wharf serve --fault-injection`: a full disk
(ENOSPC) or a failing one (EIO) on a segment write or an fsync. A
confluent-kafka producer gets KAFKA_STORAGE_ERROR for the partition, the
broker keeps running and logs why, every record acknowledged before stays
readable at its offset, and after a restart without the fault the partition
takes writes again with nothing lost."""

import pytest
from confluent_kafka import KafkaError

from clients import c_consume, c_producer, c_produce, create_topic

pytestmark = pytest.mark.timeout(120)

TOPIC = "faulty"


def producer(bootstrap, acks):
    # No retries: KAFKA_STORAGE_ERROR is retriable and would otherwise be
    # retried until message.timeout.ms; each send here is one Produce.
    return c_producer(bootstrap, acks=acks, **{"message.send.max.retries": 0,
                                               "enable.idempotence": False,
                                               "linger.ms": 0})


def send(p, value):
    """Produces one record and waits for its report: (error code or None, offset)."""
    [(err, msg)] = c_produce(p, TOPIC, [{"value": value, "partition": 0}])
    return (None if err is None else err.code()), msg.offset()


def values(bootstrap):
    return [(m.offset(), m.value()) for m in c_consume(bootstrap, TOPIC)]


def test_full_disk_refuses_produce_with_storage_error_and_keeps_acknowledged_records(
        broker_factory):
    # The first three segment writes succeed, every later one finds the disk full.
    b = broker_factory(extra_args=["--fault-injection", "segment-write=enospc@after:3"])
    create_topic(b, TOPIC)
    p = producer(b.bootstrap, "all")
    for i in range(3):
        assert send(p, f"ok-{i}".encode()) == (None, i)
    for i in range(3):
        err, _ = send(p, f"refused-{i}".encode())
        assert err == KafkaError.KAFKA_STORAGE_ERROR
    assert values(b.bootstrap) == [(i, f"ok-{i}".encode()) for i in range(3)]
    assert "produce failed" in b.log() and "No space left on device" in b.log()
    assert b.is_running()

    b.stop()
    b.extra_args = []
    b.start()
    assert values(b.bootstrap) == [(i, f"ok-{i}".encode()) for i in range(3)]
    p = producer(b.bootstrap, "all")
    assert send(p, b"after-restart") == (None, 3)


def test_disk_that_fills_then_frees_space_takes_writes_again_without_restart(broker_factory):
    b = broker_factory(extra_args=["--fault-injection", "segment-write=enospc@next:2"])
    create_topic(b, TOPIC)
    p = producer(b.bootstrap, "all")
    assert send(p, b"full-1")[0] == KafkaError.KAFKA_STORAGE_ERROR
    assert send(p, b"full-2")[0] == KafkaError.KAFKA_STORAGE_ERROR
    # Nothing of the refused batches was kept: the next record gets offset 0.
    assert send(p, b"fits") == (None, 0)
    assert values(b.bootstrap) == [(0, b"fits")]


def test_eio_on_write_takes_the_partition_offline_until_restart(broker_factory):
    b = broker_factory(extra_args=["--fault-injection", "segment-write=eio@after:2"])
    create_topic(b, TOPIC)
    p = producer(b.bootstrap, "1")
    assert send(p, b"a") == (None, 0)
    assert send(p, b"b") == (None, 1)
    assert send(p, b"c")[0] == KafkaError.KAFKA_STORAGE_ERROR
    assert "log taken offline" in b.log()
    assert values(b.bootstrap) == [(0, b"a"), (1, b"b")]

    b.stop()
    b.extra_args = []
    b.start()
    assert values(b.bootstrap) == [(0, b"a"), (1, b"b")]
    assert send(producer(b.bootstrap, "1"), b"d") == (None, 2)


def test_failed_fsync_fails_the_acks_all_produce_and_refuses_writes_until_restart(
        broker_factory):
    # The first fsync fails once; the fault does not fire again, but after a
    # failed fsync the broker no longer trusts the partition's page cache.
    b = broker_factory(extra_args=["--fsync-before-ack",
                                   "--fault-injection", "segment-sync=eio@next:1"])
    create_topic(b, TOPIC)
    acks1 = producer(b.bootstrap, "1")
    # acks=1 is answered without an fsync.
    assert send(acks1, b"a") == (None, 0)
    assert send(acks1, b"b") == (None, 1)
    err, _ = send(producer(b.bootstrap, "all"), b"not-durable")
    assert err == KafkaError.KAFKA_STORAGE_ERROR
    assert "log taken offline" in b.log()
    # Offline: even acks=1 writes are refused now.
    assert send(acks1, b"refused")[0] == KafkaError.KAFKA_STORAGE_ERROR
    got = values(b.bootstrap)
    assert got[:2] == [(0, b"a"), (1, b"b")]
    assert all(v != b"refused" for _, v in got)
    assert b.is_running()

    b.stop()
    b.extra_args = ["--fsync-before-ack"]
    b.start()
    got = values(b.bootstrap)
    assert got[:2] == [(0, b"a"), (1, b"b")]
    end = len(got)
    assert send(producer(b.bootstrap, "all"), b"after-restart") == (None, end)
