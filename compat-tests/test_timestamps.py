"""Record timestamp configs as clients see them: message.timestamp.type=
LogAppendTime makes the broker stamp batches (confluent-kafka's consumer
reports TIMESTAMP_LOG_APPEND_TIME and the broker's time), and
message.timestamp.before/after.max.ms (and the older difference.max.ms)
refuse out-of-range CreateTime records with INVALID_TIMESTAMP. Configs are
set with kafka-python's admin client."""

import time

import pytest
from confluent_kafka import TIMESTAMP_CREATE_TIME, TIMESTAMP_LOG_APPEND_TIME, KafkaError

from clients import assert_delivered, c_consume, c_produce, c_producer, create_topic

pytestmark = pytest.mark.timeout(90)

HOUR_MS = 3_600_000


def k_alter(broker, topic, configs):
    from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient

    client = KafkaAdminClient(bootstrap_servers=broker.bootstrap, request_timeout_ms=15000)
    try:
        resp = client.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic,
                                                    configs=configs)])
        assert [r[0] for r in resp.resources] == [0], resp
        [resp] = client.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
        entries = {e[0]: e[1] for e in resp.resources[0][4]}
        for name, value in configs.items():
            assert entries[name] == value, (name, entries[name])
    finally:
        client.close()


def producer(broker):
    return c_producer(broker.bootstrap, **{"message.send.max.retries": 0,
                                           "enable.idempotence": False})


def test_log_append_time_topic_gives_consumers_the_broker_time(broker):
    create_topic(broker, "appendtime")
    k_alter(broker, "appendtime", {"message.timestamp.type": "LogAppendTime"})
    create_time = int(time.time() * 1000) - 10 * HOUR_MS  # ten hours ago
    before = int(time.time() * 1000)
    reports = c_produce(producer(broker), "appendtime",
                        [{"value": f"v{i}".encode(), "timestamp": create_time} for i in range(5)])
    after = int(time.time() * 1000)
    assert_delivered(reports)
    msgs = c_consume(broker.bootstrap, "appendtime")
    assert [m.value() for m in msgs] == [f"v{i}".encode() for i in range(5)]
    for m in msgs:
        kind, ts = m.timestamp()
        assert kind == TIMESTAMP_LOG_APPEND_TIME
        assert before - 1000 <= ts <= after + 1000, (ts, before, after)


def test_create_time_topic_keeps_the_producer_timestamp(broker):
    create_topic(broker, "createtime")
    ts = int(time.time() * 1000) - 10 * HOUR_MS
    assert_delivered(c_produce(producer(broker), "createtime", [{"value": b"v", "timestamp": ts}]))
    [m] = c_consume(broker.bootstrap, "createtime")
    assert m.timestamp() == (TIMESTAMP_CREATE_TIME, ts)


@pytest.mark.parametrize("configs,offset_ms,ok", [
    # Kafka 4's default after.max.ms is one hour.
    ({}, 2 * HOUR_MS, False),
    ({}, -365 * 24 * HOUR_MS, True),
    ({"message.timestamp.before.max.ms": "60000"}, -2 * 60_000, False),
    ({"message.timestamp.before.max.ms": "60000"}, -30_000, True),
    ({"message.timestamp.after.max.ms": "60000"}, 2 * 60_000, False),
    ({"message.timestamp.difference.max.ms": "60000"}, -2 * 60_000, False),
    ({"message.timestamp.difference.max.ms": "60000"}, 2 * 60_000, False),
], ids=["default-future", "default-old", "before-old", "before-recent", "after-future",
        "difference-old", "difference-future"])
def test_out_of_range_create_time_is_refused_with_invalid_timestamp(broker, configs, offset_ms,
                                                                    ok):
    create_topic(broker, "bounded")
    if configs:
        k_alter(broker, "bounded", configs)
    ts = int(time.time() * 1000) + offset_ms
    [(err, _msg)] = c_produce(producer(broker), "bounded", [{"value": b"v", "timestamp": ts}])
    if ok:
        assert err is None, err
    else:
        assert err is not None and err.code() == KafkaError.INVALID_TIMESTAMP, err
        assert c_consume(broker.bootstrap, "bounded") == []
