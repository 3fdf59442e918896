"""Compaction as clients see it: on a cleanup.policy=compact topic the log
cleaner keeps only the latest record per key (at its original offset) in
closed segments, and tombstones go after delete.retention.ms."""

import pytest
from confluent_kafka import TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

import kafka_wire as kw
from clients import assert_delivered, c_consume, c_consumer, c_produce, c_producer

pytestmark = pytest.mark.timeout(90)


def test_cleaner_keeps_latest_value_per_key_at_its_offset(broker_factory):
    b = broker_factory(extra_args=["--log-cleaner-backoff-ms", "200"])
    a = AdminClient({"bootstrap.servers": b.bootstrap})
    a.create_topics([NewTopic("compacted", num_partitions=1, replication_factor=1, config={
        "cleanup.policy": "compact", "segment.bytes": "2048", "delete.retention.ms": "100"})],
        request_timeout=15)["compacted"].result(timeout=20)
    records = [dict(key=f"k{i % 10}".encode(), value=f"v{i}".encode()) for i in range(300)]
    records.append(dict(key=b"k0", value=None))  # tombstone for k0
    records += [dict(key=b"tail", value=f"t{i}".encode()) for i in range(40)]  # roll past it
    reports = c_produce(c_producer(b.bootstrap, batch_num_messages=1), "compacted", records)
    assert_delivered(reports)
    acked = {}
    for rec, (_err, msg) in zip(records, reports):
        acked[rec["key"]] = (msg.offset(), rec["value"])

    def compacted():
        return len(c_consume(b.bootstrap, "compacted", timeout=30)) < 100
    assert kw.wait_until(compacted, timeout=20), "the cleaner removed nothing"

    msgs = c_consume(b.bootstrap, "compacted", timeout=30)
    got = [(m.key(), m.offset(), m.value()) for m in msgs]
    offsets = [o for _k, o, _v in got]
    assert offsets == sorted(offsets) and len(set(offsets)) == len(offsets)
    by_key = {}
    for k, o, v in got:
        by_key.setdefault(k, []).append((o, v))
    # Every key's latest record is there, at the offset it was acknowledged with.
    for k in [f"k{i}".encode() for i in range(1, 10)] + [b"tail"]:
        assert by_key[k][-1] == acked[k], k
    # k0's tombstone (and its older values) are gone.
    assert b"k0" not in by_key, by_key.get(b"k0")
    c = c_consumer(b.bootstrap)
    try:
        assert c.get_watermark_offsets(TopicPartition("compacted", 0), timeout=10) == (0, 341)
    finally:
        c.close()


def _produce_superseded(b, topic):
    # 10 keys written 20 times each, one record per batch, over many small segments.
    records = [dict(key=f"k{i % 10}".encode(), value=f"v{i}".encode()) for i in range(200)]
    records += [dict(key=b"tail", value=f"t{i}".encode()) for i in range(40)]  # roll past them
    assert_delivered(c_produce(c_producer(b.bootstrap, batch_num_messages=1), topic, records))
    return len(records)


@pytest.mark.parametrize("trigger", ["dirty-ratio", "max-compaction-lag"])
def test_cleaner_waits_for_min_cleanable_dirty_ratio_unless_max_compaction_lag_passed(
        broker_factory, trigger):
    from kafka.admin import ConfigResource as KRes
    from kafka.admin import ConfigResourceType, KafkaAdminClient

    b = broker_factory(extra_args=["--log-cleaner-backoff-ms", "100"])
    base = {"cleanup.policy": "compact", "segment.bytes": "1024",
            # A dirty share of 1.0 is never above the minimum: no pass is due.
            "min.cleanable.dirty.ratio": "1.0"}
    a = AdminClient({"bootstrap.servers": b.bootstrap})
    a.create_topics([NewTopic("lazy", num_partitions=1, replication_factor=1, config=base)],
                    request_timeout=15)["lazy"].result(timeout=20)
    total = _produce_superseded(b, "lazy")
    # Several cleaner passes go by: nothing is removed.
    assert not kw.wait_until(
        lambda: len(c_consume(b.bootstrap, "lazy", timeout=30)) < total, timeout=1.5)

    # kafka-python's AlterConfigs replaces the topic's whole override set.
    change = ({"min.cleanable.dirty.ratio": "0.1"} if trigger == "dirty-ratio"
              else {"max.compaction.lag.ms": "1"})
    client = KafkaAdminClient(bootstrap_servers=b.bootstrap, request_timeout_ms=15000)
    try:
        resp = client.alter_configs([KRes(ConfigResourceType.TOPIC, "lazy",
                                          configs={**base, **change})])
        assert [r[0] for r in resp.resources] == [0]
    finally:
        client.close()
    assert kw.wait_until(
        lambda: len(c_consume(b.bootstrap, "lazy", timeout=30)) < 100, timeout=20), \
        "the cleaner removed nothing after the change"


@pytest.mark.disk
def test_cleaner_io_budget_paces_compaction_and_shutdown_cancels_a_slow_pass(broker_factory):
    import time

    from kafka.admin import ConfigResource as KRes
    from kafka.admin import ConfigResourceType, KafkaAdminClient

    args = ["--log-cleaner-backoff-ms", "100", "--log-cleaner-io-max-bytes-per-second", "50000"]
    b = broker_factory(extra_args=args)
    a = AdminClient({"bootstrap.servers": b.bootstrap})
    a.create_topics([NewTopic("paced", num_partitions=1, replication_factor=1, config={
        "cleanup.policy": "compact", "segment.bytes": "1024"})],
        request_timeout=15)["paced"].result(timeout=20)
    _produce_superseded(b, "paced")
    assert kw.wait_until(
        lambda: len(c_consume(b.bootstrap, "paced", timeout=30)) < 100, timeout=20), \
        "the paced cleaner removed nothing"
    client = KafkaAdminClient(bootstrap_servers=b.bootstrap, request_timeout_ms=15000)
    try:
        [resp] = client.describe_configs([KRes(ConfigResourceType.BROKER, "1")])
        entries = {e[0]: e[1] for e in resp.resources[0][4]}
        assert float(entries["log.cleaner.io.max.bytes.per.second"]) == 50000.0
    finally:
        client.close()

    # At 200 bytes per second a pass over the log takes minutes; SIGTERM
    # must still stop the broker promptly (stop() asserts exit code 0 in 10 s).
    b.stop()
    b.extra_args = ["--log-cleaner-backoff-ms", "100",
                    "--log-cleaner-io-max-bytes-per-second", "200"]
    b.start()
    time.sleep(1.0)  # the first pass after a restart (whole log dirty) is under way
    b.stop()
    assert "compaction pass cancelled" in b.log()
