"""confluent-kafka (librdkafka) producer, consumer and admin client."""

import time
import zlib

import pytest
from confluent_kafka import (OFFSET_BEGINNING, OFFSET_END, KafkaError, KafkaException,
                             TIMESTAMP_CREATE_TIME, TopicPartition)
from confluent_kafka.admin import AdminClient, NewTopic

from clients import assert_delivered, c_consume, c_consumer, c_produce, c_producer, c_read_until_eof

pytestmark = pytest.mark.timeout(90)


def admin(bootstrap):
    return AdminClient({"bootstrap.servers": bootstrap, "socket.timeout.ms": 10000})


def create_topic(bootstrap, name, partitions=1, config=None):
    a = admin(bootstrap)  # keep the client alive until the future resolves
    fut = a.create_topics(
        [NewTopic(name, num_partitions=partitions, replication_factor=1, config=config or {})],
        request_timeout=15)
    fut[name].result(timeout=20)


def test_produce_keys_headers_nulls_timestamps_round_trip(broker):
    records = [
        dict(key=b"k0", value=b"plain", timestamp=1_700_000_000_001),
        dict(key=b"k1", value=b"with-headers", headers=[("a", b"1"), ("b", b""), ("a", b"2")],
             timestamp=1_700_000_000_002),
        dict(key=b"k2", value=None, timestamp=1_700_000_000_003),  # tombstone
        dict(key=None, value=b"no-key", timestamp=1_700_000_000_004),
        dict(key=b"k4", value=b"\x00\xff binary \x01", headers=[("null-valued", None)],
             timestamp=1_700_000_000_005),
    ]
    reports = c_produce(c_producer(broker.bootstrap, acks="all"), "rt", records)
    assert_delivered(reports)
    assert [(m.partition(), m.offset()) for _e, m in reports] == [(0, i) for i in range(5)]

    msgs = c_consume(broker.bootstrap, "rt")
    assert [m.offset() for m in msgs] == [0, 1, 2, 3, 4]
    assert [m.key() for m in msgs] == [b"k0", b"k1", b"k2", None, b"k4"]
    assert [m.value() for m in msgs] == [b"plain", b"with-headers", None, b"no-key",
                                         b"\x00\xff binary \x01"]
    assert msgs[0].headers() is None
    assert msgs[1].headers() == [("a", b"1"), ("b", b""), ("a", b"2")]
    assert msgs[4].headers() == [("null-valued", None)]
    assert [m.timestamp() for m in msgs] == [
        (TIMESTAMP_CREATE_TIME, 1_700_000_000_001 + i) for i in range(5)]


@pytest.mark.parametrize("acks", ["0", "1", "all"])
def test_acks_levels(broker, acks):
    records = [dict(key=f"k{i}".encode(), value=f"v{i}".encode()) for i in range(50)]
    reports = c_produce(c_producer(broker.bootstrap, acks=acks), f"acks-{acks}", records)
    assert_delivered(reports)
    if acks != "0":
        # with acks the broker reports the offset it assigned
        assert [m.offset() for _e, m in reports] == list(range(50))
    else:
        time.sleep(0.5)  # acks=0: nothing tells us the broker has appended
    msgs = c_consume(broker.bootstrap, f"acks-{acks}")
    assert [(m.offset(), m.key(), m.value()) for m in msgs] == [
        (i, f"k{i}".encode(), f"v{i}".encode()) for i in range(50)]


@pytest.mark.parametrize("codec", ["gzip", "snappy", "lz4", "zstd"])
def test_compression_codecs(broker, codec):
    records = [dict(key=f"k{i}".encode(), value=(f"{codec}-{i}-" * 20).encode())
               for i in range(100)]
    reports = c_produce(c_producer(broker.bootstrap, compression_type=codec, linger_ms=50),
                        f"z-{codec}", records)
    assert_delivered(reports)
    msgs = c_consume(broker.bootstrap, f"z-{codec}")
    assert [(m.offset(), m.value()) for m in msgs] == [
        (i, (f"{codec}-{i}-" * 20).encode()) for i in range(100)]


def test_large_message(broker):
    big = bytes(range(256)) * 2048  # 512 KiB
    reports = c_produce(c_producer(broker.bootstrap), "big", [dict(key=b"big", value=big)])
    assert_delivered(reports)
    msgs = c_consume(broker.bootstrap, "big")
    assert len(msgs) == 1 and msgs[0].value() == big


@pytest.fixture
def ten(broker):
    records = [dict(key=f"k{i}".encode(), value=f"v{i}".encode(),
                    timestamp=1_700_000_000_000 + 1000 * i) for i in range(10)]
    assert_delivered(c_produce(c_producer(broker.bootstrap), "ten", records))
    return broker


def test_consume_from_explicit_offset(ten):
    msgs = c_consume(ten.bootstrap, "ten", offset=7)
    assert [(m.offset(), m.value()) for m in msgs] == [(7, b"v7"), (8, b"v8"), (9, b"v9")]


def test_consume_from_offset_zero_and_beginning_agree(ten):
    a = [(m.offset(), m.value()) for m in c_consume(ten.bootstrap, "ten", offset=0)]
    b = [(m.offset(), m.value()) for m in c_consume(ten.bootstrap, "ten", offset=OFFSET_BEGINNING)]
    assert a == b == [(i, f"v{i}".encode()) for i in range(10)]


def test_consume_from_end_sees_only_new_records(ten):
    consumer = c_consumer(ten.bootstrap)
    try:
        consumer.assign([TopicPartition("ten", 0, OFFSET_END)])
        # The end-of-partition event proves the end offset has been resolved.
        msgs, _ = c_read_until_eof(consumer, {("ten", 0)})
        assert msgs == []
        assert_delivered(c_produce(c_producer(ten.bootstrap), "ten",
                                   [dict(key=b"new", value=b"fresh")]))
        msgs, _ = c_read_until_eof(consumer, {("ten", 0)})
        assert [(m.offset(), m.key(), m.value()) for m in msgs] == [(10, b"new", b"fresh")]
    finally:
        consumer.close()


def test_consumer_waiting_at_end_receives_new_record_quickly(ten):
    # Long-poll Fetch: a consumer parked at the end must get a new record
    # promptly, well before a long fetch.wait.max.ms would expire.
    consumer = c_consumer(ten.bootstrap, **{"fetch.wait.max.ms": 5000})
    try:
        consumer.assign([TopicPartition("ten", 0, 10)])
        c_read_until_eof(consumer, {("ten", 0)})
        time.sleep(0.5)  # the consumer now sits in a long-poll fetch
        start = time.monotonic()
        assert_delivered(c_produce(c_producer(ten.bootstrap), "ten", [dict(value=b"ping")]))
        got = None
        while time.monotonic() - start < 10:
            m = consumer.poll(0.1)
            if m is not None and m.error() is None:
                got = m
                break
        elapsed = time.monotonic() - start
        assert got is not None and got.value() == b"ping" and got.offset() == 10
        assert elapsed < 3.0, f"record arrived after {elapsed:.2f}s; long-poll not woken by produce?"
    finally:
        consumer.close()


def test_watermarks(ten):
    consumer = c_consumer(ten.bootstrap)
    try:
        lo, hi = consumer.get_watermark_offsets(TopicPartition("ten", 0), timeout=10)
        assert (lo, hi) == (0, 10)
    finally:
        consumer.close()


def test_offsets_for_times(ten):
    consumer = c_consumer(ten.bootstrap)
    base = 1_700_000_000_000
    try:
        queries = {
            base: 0,            # exact match on the first record
            base + 3000: 3,     # exact match
            base + 3500: 4,     # between records: the next one
            base - 10_000: 0,   # before everything: the first
            base + 99_000: -1,  # after everything: no such offset (-1)
        }
        for ts, want in queries.items():
            res = consumer.offsets_for_times([TopicPartition("ten", 0, ts)], timeout=10)
            assert res[0].error is None, res[0].error
            assert res[0].offset == want, f"timestamp {ts}: offset {res[0].offset}, want {want}"
    finally:
        consumer.close()


def librdkafka_consistent_random_partition(key, partitions):
    # librdkafka's default partitioner for keyed messages: CRC-32 of the key
    # modulo the partition count.
    return zlib.crc32(key) % partitions


def test_keyed_records_across_six_partitions(broker):
    create_topic(broker.bootstrap, "six", partitions=6)
    md = admin(broker.bootstrap).list_topics("six", timeout=10)
    assert sorted(md.topics["six"].partitions) == [0, 1, 2, 3, 4, 5]

    keys = [f"user-{i}".encode() for i in range(120)]
    records = [dict(key=k, value=b"v-" + k) for k in keys]
    reports = c_produce(c_producer(broker.bootstrap), "six", records)
    assert_delivered(reports)

    delivered = {}  # partition -> [(offset, key)]
    for (_e, m), k in zip(reports, keys):
        assert m.partition() == librdkafka_consistent_random_partition(k, 6), \
            f"{k!r} went to partition {m.partition()}"
        delivered.setdefault(m.partition(), []).append((m.offset(), k))
    assert len(delivered) == 6, f"keys used only partitions {sorted(delivered)}"

    for p in range(6):
        want = sorted(delivered[p])
        assert [o for o, _k in want] == list(range(len(want))), f"partition {p} offsets {want}"
        msgs = c_consume(broker.bootstrap, "six", partition=p)
        assert [(m.offset(), m.key()) for m in msgs] == want, f"partition {p}"
        assert all(m.partition() == p for m in msgs)

    # the same key goes to the same partition again, at the next offset
    again = c_produce(c_producer(broker.bootstrap), "six", [dict(key=keys[0], value=b"again")])
    p0 = librdkafka_consistent_random_partition(keys[0], 6)
    assert (again[0][1].partition(), again[0][1].offset()) == (p0, len(delivered[p0]))


def test_explicit_partition_produce(broker):
    create_topic(broker.bootstrap, "three", partitions=3)
    targets = [2, 0, 2, 1, 2]
    reports = c_produce(c_producer(broker.bootstrap), "three",
                        [dict(value=f"m{i}".encode(), partition=p) for i, p in enumerate(targets)])
    assert_delivered(reports)
    assert [(m.partition(), m.offset()) for _e, m in reports] == [
        (2, 0), (0, 0), (2, 1), (1, 0), (2, 2)]
    assert [m.value() for m in c_consume(broker.bootstrap, "three", partition=2)] == [
        b"m0", b"m2", b"m4"]
    assert [m.value() for m in c_consume(broker.bootstrap, "three", partition=1)] == [b"m3"]


def test_admin_create_list_describe_delete(broker):
    a = admin(broker.bootstrap)
    futs = a.create_topics([
        NewTopic("alpha", num_partitions=4, replication_factor=1),
        NewTopic("beta", num_partitions=1, replication_factor=1,
                 config={"retention.ms": "3600000", "cleanup.policy": "delete"}),
    ], request_timeout=15)
    for name, f in futs.items():
        assert f.result(timeout=20) is None, name

    md = a.list_topics(timeout=10)
    assert md.brokers[1].host == "127.0.0.1" and md.brokers[1].port == broker.port
    assert md.controller_id == 1
    assert md.cluster_id
    assert len(md.topics["alpha"].partitions) == 4
    assert len(md.topics["beta"].partitions) == 1
    for p in md.topics["alpha"].partitions.values():
        assert p.leader == 1 and p.replicas == [1] and p.isrs == [1]
        assert p.error is None

    cluster = a.describe_cluster(request_timeout=10).result(timeout=15)
    assert cluster.cluster_id == md.cluster_id
    assert [(n.id, n.host, n.port) for n in cluster.nodes] == [(1, "127.0.0.1", broker.port)]
    assert cluster.controller is not None and cluster.controller.id == 1

    a.delete_topics(["alpha"], request_timeout=15)["alpha"].result(timeout=20)
    md = a.list_topics(timeout=10)
    assert "alpha" not in md.topics and "beta" in md.topics


def test_admin_create_validate_only_creates_nothing(broker):
    a = admin(broker.bootstrap)
    futs = a.create_topics([NewTopic("dry", num_partitions=3, replication_factor=1)],
                           validate_only=True, request_timeout=15)
    assert futs["dry"].result(timeout=20) is None
    assert "dry" not in a.list_topics(timeout=10).topics
    assert broker.partition_dirs("dry") == []


def error_code_of(fut):
    with pytest.raises(KafkaException) as ei:
        fut.result(timeout=20)
    return ei.value.args[0].code()


def test_admin_create_existing_topic_fails(broker):
    create_topic(broker.bootstrap, "dup", partitions=2)
    a = admin(broker.bootstrap)
    fut = a.create_topics(
        [NewTopic("dup", num_partitions=5, replication_factor=1)], request_timeout=15)["dup"]
    assert error_code_of(fut) == KafkaError.TOPIC_ALREADY_EXISTS
    md = a.list_topics("dup", timeout=10)
    assert len(md.topics["dup"].partitions) == 2  # unchanged


def test_admin_create_invalid_name_fails(broker):
    a = admin(broker.bootstrap)
    fut = a.create_topics(
        [NewTopic("bad/name", num_partitions=1, replication_factor=1)],
        request_timeout=15)["bad/name"]
    assert error_code_of(fut) == KafkaError.TOPIC_EXCEPTION  # INVALID_TOPIC_EXCEPTION (17)


def test_admin_delete_unknown_topic_fails(broker):
    a = admin(broker.bootstrap)
    fut = a.delete_topics(["never-created"], request_timeout=15)
    assert error_code_of(fut["never-created"]) == KafkaError.UNKNOWN_TOPIC_OR_PART
