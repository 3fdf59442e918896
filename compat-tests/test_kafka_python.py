"""kafka-python (pure-Python client) producer, consumer and admin client."""

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic
from kafka.errors import TopicAlreadyExistsError, UnknownTopicOrPartitionError

from clients import k_consume

pytestmark = pytest.mark.timeout(90)

BASE_TS = 1_700_000_100_000


def producer(bootstrap, **kw):
    return KafkaProducer(bootstrap_servers=bootstrap, request_timeout_ms=15000,
                         max_block_ms=15000, **kw)


def consumer(bootstrap):
    return KafkaConsumer(bootstrap_servers=bootstrap, group_id=None,
                         enable_auto_commit=False, request_timeout_ms=15000)


def create(bootstrap, name, partitions):
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=15000)
    try:
        resp = admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)])
        assert [(t[0], t[1]) for t in resp.topic_errors] == [(name, 0)]
    finally:
        admin.close()


def topics_of(bootstrap):
    c = consumer(bootstrap)
    try:
        return c.topics()
    finally:
        c.close()


def send_all(p, topic, records):
    futs = [p.send(topic, **r) for r in records]
    p.flush(timeout=20)
    return [f.get(timeout=20) for f in futs]


@pytest.fixture
def loaded(broker):
    """Topic 'kp' with 6 records: keys, headers, a None value, explicit timestamps."""
    create(broker.bootstrap, "kp", 1)
    p = producer(broker.bootstrap, acks="all")
    records = [
        dict(key=b"a", value=b"first", timestamp_ms=BASE_TS),
        dict(key=b"b", value=b"second", headers=[("h1", b"x"), ("h2", b"")],
             timestamp_ms=BASE_TS + 10),
        dict(key=b"c", value=None, timestamp_ms=BASE_TS + 20),
        dict(key=None, value=b"keyless", timestamp_ms=BASE_TS + 30),
        dict(key=b"e", value=b"", timestamp_ms=BASE_TS + 40),
        dict(key=b"f", value=b"last", timestamp_ms=BASE_TS + 50),
    ]
    metas = send_all(p, "kp", records)
    p.close()
    assert [(m.topic, m.partition, m.offset) for m in metas] == [("kp", 0, i) for i in range(6)]
    assert [m.timestamp for m in metas] == [BASE_TS + 10 * i for i in range(6)]
    return broker


def test_round_trip(loaded):
    recs = k_consume(loaded.bootstrap, "kp", expect=6)
    assert [r.offset for r in recs] == list(range(6))
    assert [r.key for r in recs] == [b"a", b"b", b"c", None, b"e", b"f"]
    assert [r.value for r in recs] == [b"first", b"second", None, b"keyless", b"", b"last"]
    assert recs[1].headers == [("h1", b"x"), ("h2", b"")]
    assert recs[0].headers == []
    assert [r.timestamp for r in recs] == [BASE_TS + 10 * i for i in range(6)]
    assert all(r.timestamp_type == 0 for r in recs)  # CreateTime


def test_seek_to_offset(loaded):
    recs = k_consume(loaded.bootstrap, "kp", offset=4, expect=2)
    assert [(r.offset, r.key) for r in recs] == [(4, b"e"), (5, b"f")]


def test_beginning_and_end_offsets(loaded):
    c = consumer(loaded.bootstrap)
    try:
        tp = TopicPartition("kp", 0)
        assert c.beginning_offsets([tp]) == {tp: 0}
        assert c.end_offsets([tp]) == {tp: 6}
    finally:
        c.close()


def test_offsets_for_times(loaded):
    c = consumer(loaded.bootstrap)
    try:
        tp = TopicPartition("kp", 0)
        got = c.offsets_for_times({tp: BASE_TS + 20})[tp]
        assert (got.offset, got.timestamp) == (2, BASE_TS + 20)
        got = c.offsets_for_times({tp: BASE_TS + 21})[tp]
        assert (got.offset, got.timestamp) == (3, BASE_TS + 30)
        got = c.offsets_for_times({tp: 0})[tp]
        assert (got.offset, got.timestamp) == (0, BASE_TS)
        # later than every record: Kafka answers offset -1, which kafka-python maps to None
        assert c.offsets_for_times({tp: BASE_TS + 10_000})[tp] is None
    finally:
        c.close()


def test_produce_continues_after_consume(loaded):
    p = producer(loaded.bootstrap)
    metas = send_all(p, "kp", [dict(value=b"seven"), dict(value=b"eight")])
    p.close()
    assert [m.offset for m in metas] == [6, 7]
    recs = k_consume(loaded.bootstrap, "kp", offset=6, expect=2)
    assert [r.value for r in recs] == [b"seven", b"eight"]


def test_gzip_compressed(broker):
    codec = "gzip"  # the codec kafka-python supports without extra packages
    create(broker.bootstrap, "kz", 1)
    p = producer(broker.bootstrap, compression_type=codec, linger_ms=20)
    metas = send_all(p, "kz", [dict(value=f"{codec}{i}".encode() * 30) for i in range(50)])
    p.close()
    assert [m.offset for m in metas] == list(range(50))
    recs = k_consume(broker.bootstrap, "kz", expect=50)
    assert [r.value for r in recs] == [f"{codec}{i}".encode() * 30 for i in range(50)]


def test_keyed_records_use_murmur2_partitions(broker):
    create(broker.bootstrap, "kp4", 4)
    from kafka.partitioner.default import murmur2

    p = producer(broker.bootstrap)
    keys = [f"key-{i}".encode() for i in range(40)]
    metas = send_all(p, "kp4", [dict(key=k, value=k) for k in keys])
    p.close()
    per_partition = {}
    for k, m in zip(keys, metas):
        assert m.partition == (murmur2(k) & 0x7FFFFFFF) % 4
        per_partition.setdefault(m.partition, []).append((m.offset, k))
    assert len(per_partition) == 4
    for part, want in per_partition.items():
        recs = k_consume(broker.bootstrap, "kp4", partition=part, expect=len(want))
        assert [(r.offset, r.key) for r in recs] == want


def test_admin_create_and_delete_topics(broker):
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap, request_timeout_ms=15000)
    try:
        resp = admin.create_topics([NewTopic("ka", num_partitions=3, replication_factor=1),
                                    NewTopic("kb", num_partitions=1, replication_factor=1)])
        assert sorted((t[0], t[1]) for t in resp.topic_errors) == [("ka", 0), ("kb", 0)]
        # (metadata through a consumer: kafka-python's admin metadata calls
        # choke on ACL-operation bits newer than the client knows)
        assert topics_of(broker.bootstrap) >= {"ka", "kb"}
        c = consumer(broker.bootstrap)
        try:
            assert c.partitions_for_topic("ka") == {0, 1, 2}
        finally:
            c.close()

        # creating it again: TOPIC_ALREADY_EXISTS (36), which kafka-python raises
        with pytest.raises(TopicAlreadyExistsError):
            admin.create_topics([NewTopic("ka", num_partitions=3, replication_factor=1)])

        resp = admin.delete_topics(["ka"])
        assert [(t[0], t[1]) for t in resp.topic_error_codes] == [("ka", 0)]
        names = topics_of(broker.bootstrap)
        assert "ka" not in names and "kb" in names

        # UNKNOWN_TOPIC_OR_PARTITION (3), which kafka-python raises
        with pytest.raises(UnknownTopicOrPartitionError):
            admin.delete_topics(["never-was"])
    finally:
        admin.close()


def test_admin_describes_cluster_and_topics(broker):
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    try:
        admin.create_topics([NewTopic("described", 2, 1)])
        assert "described" in admin.list_topics()
        cluster = admin.describe_cluster()
        assert cluster["controller_id"] == 1
        assert [(b["node_id"], b["port"]) for b in cluster["brokers"]] == [
            (1, int(broker.bootstrap.rsplit(":", 1)[1]))]
        # No authorizer: every cluster operation is reported allowed.
        assert "DESCRIBE" in cluster["authorized_operations"]
        (topic,) = admin.describe_topics(["described"])
        assert topic["error_code"] == 0
        assert sorted(p["partition"] for p in topic["partitions"]) == [0, 1]
    finally:
        admin.close()
