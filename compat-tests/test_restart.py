"""Durability across restarts: graceful (SIGTERM, exit code 0) and kill -9."""

import pytest
from confluent_kafka import TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

import kafka_wire as kw
from clients import assert_delivered, c_consume, c_consumer, c_produce, c_producer, kcat

pytestmark = pytest.mark.timeout(120)


def produce_keyed(bootstrap, topic, start, count):
    """acks=all produce of keys k<start>..; returns {partition: [(offset, key, value)]}."""
    records = [dict(key=f"k{i}".encode(), value=f"value-{i}".encode()) for i in range(start, start + count)]
    reports = c_produce(c_producer(bootstrap, acks="all"), topic, records)
    assert_delivered(reports)
    out = {}
    for _e, m in reports:
        out.setdefault(m.partition(), []).append((m.offset(), m.key(), m.value()))
    return out


def read_all(bootstrap, topic, partitions):
    return {p: [(m.offset(), m.key(), m.value()) for m in c_consume(bootstrap, topic, partition=p)]
            for p in range(partitions)}


def watermarks(bootstrap, topic, partitions):
    c = c_consumer(bootstrap)
    try:
        return {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
                for p in range(partitions)}
    finally:
        c.close()


def merge(expected, more):
    for p, recs in more.items():
        expected.setdefault(p, []).extend(recs)


def test_records_survive_graceful_restart_and_kill9(broker_factory):
    b = broker_factory(num_partitions=3)
    expected = produce_keyed(b.bootstrap, "durable", 0, 300)
    # --num-partitions 3 applies to auto-created topics
    assert sorted(expected) == [0, 1, 2]
    for recs in expected.values():
        assert [o for o, _k, _v in recs] == list(range(len(recs)))
    ids_before = kw.topic_ids(b.bootstrap, ["durable"])
    next_key = 300

    for graceful in (True, False):
        b.restart(graceful=graceful)
        what = "graceful restart" if graceful else "kill -9"
        assert read_all(b.bootstrap, "durable", 3) == {p: expected.get(p, []) for p in range(3)}, what
        assert watermarks(b.bootstrap, "durable", 3) == {
            p: (0, len(expected.get(p, []))) for p in range(3)}, what
        if ids_before is not None:
            assert kw.topic_ids(b.bootstrap, ["durable"]) == ids_before, f"topic id changed by {what}"
        # new records continue at the next offsets
        more = produce_keyed(b.bootstrap, "durable", next_key, 60)
        next_key += 60
        for p, recs in more.items():
            first = recs[0][0]
            assert first == len(expected.get(p, [])), f"partition {p} resumed at {first} after {what}"
        merge(expected, more)

    b.restart(graceful=False)
    assert read_all(b.bootstrap, "durable", 3) == {p: expected.get(p, []) for p in range(3)}


def test_kill9_right_after_acknowledged_produce(broker):
    # Each kcat run waits for acks=all delivery before exiting; kill -9 right after.
    for round_ in range(3):
        lines = "".join(f"r{round_}-{i}\n" for i in range(100))
        kcat(broker.bootstrap, "-t", "k9", "-P", "-X", "acks=all", stdin=lines)
        broker.restart(graceful=False)
    out = kcat(broker.bootstrap, "-t", "k9", "-C", "-e", "-f", "%o %s\n").stdout.splitlines()
    want = [f"{r * 100 + i} r{r}-{i}" for r in range(3) for i in range(100)]
    assert out == want


def test_empty_topics_and_partition_counts_survive_restart(broker):
    a = AdminClient({"bootstrap.servers": broker.bootstrap})
    futs = a.create_topics([NewTopic("empty4", num_partitions=4, replication_factor=1),
                            NewTopic("empty1", num_partitions=1, replication_factor=1)],
                           request_timeout=15)
    for f in futs.values():
        f.result(timeout=20)
    ids = kw.topic_ids(broker.bootstrap, ["empty4", "empty1"])
    for graceful in (True, False):
        broker.restart(graceful=graceful)
        md = AdminClient({"bootstrap.servers": broker.bootstrap}).list_topics(timeout=10)
        assert len(md.topics["empty4"].partitions) == 4
        assert len(md.topics["empty1"].partitions) == 1
        if ids is not None:
            assert kw.topic_ids(broker.bootstrap, ["empty4", "empty1"]) == ids
    assert watermarks(broker.bootstrap, "empty4", 4) == {p: (0, 0) for p in range(4)}


def test_sigterm_exits_zero_with_idle_clients_connected(broker):
    kcat(broker.bootstrap, "-t", "idle", "-P", stdin="x\n")
    c = c_consumer(broker.bootstrap)
    try:
        c.assign([TopicPartition("idle", 0, 1)])  # parked at the end, long-polling
        c.poll(1.0)
        broker.stop(graceful=True)  # asserts exit code 0 within the time limit
    finally:
        c.close()
