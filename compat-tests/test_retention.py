"""Retention and DeleteRecords as clients see them: retention.ms=1000 makes
old data disappear within seconds, deleting the override restores the
default, and DeleteRecords moves the earliest offset."""

import time

import pytest
from confluent_kafka import TopicPartition
from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource

import kafka_wire as kw
from clients import (admin, assert_delivered, c_consume, c_consumer, c_produce, c_producer,
                     create_topic)

pytestmark = pytest.mark.timeout(90)




def set_config(b, topic, name, value, op=AlterConfigOpType.SET):
    res = ConfigResource(ConfigResource.Type.TOPIC, topic,
                         incremental_configs=[ConfigEntry(name, value, incremental_operation=op)])
    a = admin(b)
    a.incremental_alter_configs([res], request_timeout=15)[res].result(timeout=20)


def watermarks(b, topic):
    c = c_consumer(b.bootstrap)
    try:
        return c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
    finally:
        c.close()


def produce(b, topic, values):
    # One record per batch: a batch larger than segment.bytes is refused.
    producer = c_producer(b.bootstrap, batch_num_messages=1)
    assert_delivered(c_produce(producer, topic, [dict(value=v) for v in values]))


def test_retention_ms_drops_old_data_and_deleting_it_restores_default(broker_factory):
    b = broker_factory(extra_args=["--log-retention-check-interval-ms", "200"])
    create_topic(b, "ret", config={"segment.bytes": "1024"})
    produce(b, "ret", [f"old-{i}".encode() * 20 for i in range(30)])
    assert watermarks(b, "ret") == (0, 30)
    time.sleep(0.6)
    assert watermarks(b, "ret") == (0, 30), "the 7-day default keeps fresh data"

    set_config(b, "ret", "retention.ms", "1000")
    assert kw.wait_until(lambda: watermarks(b, "ret") == (30, 30), timeout=15), watermarks(b, "ret")
    assert c_consume(b.bootstrap, "ret") == []

    set_config(b, "ret", "retention.ms", None, AlterConfigOpType.DELETE)
    produce(b, "ret", [b"new-0", b"new-1"])
    time.sleep(2)
    assert watermarks(b, "ret") == (30, 32)
    assert [m.value() for m in c_consume(b.bootstrap, "ret")] == [b"new-0", b"new-1"]
    assert [m.offset() for m in c_consume(b.bootstrap, "ret")] == [30, 31]


def test_retention_bytes_keeps_the_newest_segments(broker_factory):
    b = broker_factory(extra_args=["--log-retention-check-interval-ms", "200"])
    create_topic(b, "bytes", config={"segment.bytes": "1024", "retention.bytes": "2048"})
    produce(b, "bytes", [f"{i:04}".encode() * 50 for i in range(60)])
    assert kw.wait_until(lambda: watermarks(b, "bytes")[0] > 0, timeout=15)
    low, high = watermarks(b, "bytes")
    assert high == 60 and 0 < low < 60
    # A pass that ran while records were still arriving may be followed by
    # another: what is read is the newest records, without a gap, from
    # wherever the log start has moved to by then.
    offsets = [m.offset() for m in c_consume(b.bootstrap, "bytes")]
    assert offsets and offsets[0] >= low, (low, offsets[:3])
    assert offsets == list(range(offsets[0], 60))
    assert watermarks(b, "bytes")[0] == offsets[0]


@pytest.mark.disk
def test_delete_records_moves_earliest_offset_and_survives_restart(broker):
    create_topic(broker, "dr")
    produce(broker, "dr", [f"v{i}".encode() for i in range(10)])
    a = admin(broker)
    if not hasattr(a, "delete_records"):
        pytest.skip("this confluent-kafka has no delete_records")
    fut = a.delete_records([TopicPartition("dr", 0, 4)], request_timeout=15)
    result = list(fut.values())[0].result(timeout=20)
    assert result.low_watermark == 4
    assert watermarks(broker, "dr") == (4, 10)
    assert [m.offset() for m in c_consume(broker.bootstrap, "dr")] == list(range(4, 10))
    broker.restart(graceful=False)
    assert watermarks(broker, "dr") == (4, 10)
