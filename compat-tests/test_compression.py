"""Compression across clients: every codec x every producer x every consumer.

Each producer (kcat, confluent-kafka, kafka-python, aiokafka) writes the
same kind of record set with each codec: hundreds of small records batched
together (keys, null keys, null values, headers) plus one 3 MiB record. Each
consumer then reads the topic back and every record is compared. The stored
batches are read from the segment file to prove the data really was
compressed (and stored as it came). Topic `compression.type` tests check that
the broker recompresses into the topic's codec and that every client can
read what the broker wrote.
"""

import asyncio
import json
import os
import socket
import struct
from pathlib import Path

import pytest
from confluent_kafka import OFFSET_BEGINNING
from confluent_kafka import TopicPartition as CTopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from clients import assert_delivered, c_consumer, c_produce, c_producer, c_read_until_eof, kcat

CODECS = ["gzip", "snappy", "lz4", "zstd"]
CODEC_IDS = {"none": 0, "gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}
MAX_MSG = 16 << 20
SMALL = 240
# 3 MiB of printable text that every codec compresses (period 16 KiB, inside
# gzip's 32 KiB window), so the big record's batch is compressed too.
BIG = (os.urandom(8192).hex().encode() * 192)[: 3 << 20]


def record_set(client):
    """(key, value, headers) records; kcat gives every record the same headers."""
    recs = []
    for i in range(SMALL):
        key = None if i % 5 == 0 else f"key-{i}".encode()
        # Null values only with a key: the Python clients refuse a record
        # with neither, and kcat skips empty lines.
        value = None if i % 11 == 3 and key else f"value-{i}-{'v' * (i % 40)}".encode()
        if client == "kcat":
            headers = [("src", b"kcat")]
        else:
            headers = [("idx", str(i).encode()), ("kind", b"small")] if i % 2 == 0 else []
        recs.append((key, value, headers))
    big_headers = [("src", b"kcat")] if client == "kcat" else [("kind", b"big")]
    recs.insert(SMALL // 2, (b"big", BIG, big_headers))
    return recs


# --- producers -------------------------------------------------------------------
def produce_kcat(bootstrap, topic, codec, recs):
    lines = []
    for key, value, _ in recs:
        v = (value or b"").decode()
        lines.append(v if key is None else f"{key.decode()}:{v}")
    kcat(bootstrap, "-t", topic, "-P", "-K:", "-Z", "-z", codec, "-H", "src=kcat",
         "-X", f"message.max.bytes={MAX_MSG}", "-X", "linger.ms=100",
         stdin="\n".join(lines) + "\n", timeout=60)


def produce_confluent(bootstrap, topic, codec, recs):
    p = c_producer(bootstrap, compression_type=codec, linger_ms=100, message_max_bytes=MAX_MSG)
    reports = c_produce(p, topic, [dict(key=k, value=v, headers=h or None) for k, v, h in recs])
    assert_delivered(reports)


def produce_kafka_python(bootstrap, topic, codec, recs):
    from kafka import KafkaProducer

    p = KafkaProducer(bootstrap_servers=bootstrap, compression_type=codec, linger_ms=100,
                      max_request_size=MAX_MSG, request_timeout_ms=15000)
    try:
        futures = [p.send(topic, key=k, value=v, headers=h) for k, v, h in recs]
        for f in futures:
            f.get(timeout=30)
    finally:
        p.close()


def produce_aiokafka(bootstrap, topic, codec, recs):
    from aiokafka import AIOKafkaProducer

    async def run():
        p = AIOKafkaProducer(bootstrap_servers=bootstrap, compression_type=codec,
                             linger_ms=100, max_request_size=MAX_MSG, request_timeout_ms=15000)
        await p.start()
        try:
            futures = [await p.send(topic, key=k, value=v, headers=h) for k, v, h in recs]
            await asyncio.gather(*futures)
        finally:
            await p.stop()

    asyncio.run(run())


PRODUCERS = {
    "kcat": produce_kcat,
    "confluent": produce_confluent,
    "kafka-python": produce_kafka_python,
    "aiokafka": produce_aiokafka,
}


# --- consumers: each returns [(key, value, headers)] ------------------------------
def consume_kcat(bootstrap, topic, count):
    out = kcat(bootstrap, "-t", topic, "-C", "-e", "-J", "-o", "beginning",
               "-X", f"fetch.message.max.bytes={MAX_MSG}", timeout=60).stdout
    recs = []
    for line in out.splitlines():
        m = json.loads(line)
        flat = m.get("headers") or []
        headers = [(flat[i], flat[i + 1].encode()) for i in range(0, len(flat), 2)]
        key = None if m["key"] is None else m["key"].encode()
        value = None if m["payload"] is None else m["payload"].encode()
        recs.append((key, value, headers))
    return recs


def consume_confluent(bootstrap, topic, count):
    consumer = c_consumer(bootstrap, **{"fetch.message.max.bytes": MAX_MSG})
    try:
        consumer.assign([CTopicPartition(topic, 0, OFFSET_BEGINNING)])
        msgs, errors = c_read_until_eof(consumer, {(topic, 0)}, timeout=30)
        assert not errors, errors
        return [(m.key(), m.value(), list(m.headers() or [])) for m in msgs]
    finally:
        consumer.close()


def consume_kafka_python(bootstrap, topic, count):
    import time

    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None,
                             enable_auto_commit=False, fetch_max_wait_ms=200,
                             max_partition_fetch_bytes=MAX_MSG, request_timeout_ms=15000)
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        consumer.seek_to_beginning(tp)
        out = []
        deadline = time.monotonic() + 30
        while len(out) < count and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=200).values():
                out.extend((r.key, r.value, list(r.headers)) for r in batch)
        return out
    finally:
        consumer.close()


def consume_aiokafka(bootstrap, topic, count):
    from aiokafka import AIOKafkaConsumer, TopicPartition

    async def run():
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                    fetch_max_wait_ms=200, max_partition_fetch_bytes=MAX_MSG,
                                    auto_offset_reset="earliest")
        await consumer.start()
        try:
            tp = TopicPartition(topic, 0)
            consumer.assign([tp])
            await consumer.seek_to_beginning(tp)
            out = []
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 30
            while len(out) < count and loop.time() < deadline:
                got = await consumer.getmany(tp, timeout_ms=200)
                for batch in got.values():
                    out.extend((r.key, r.value, list(r.headers)) for r in batch)
            return out
        finally:
            await consumer.stop()

    return asyncio.run(run())


CONSUMERS = {
    "kcat": consume_kcat,
    "confluent": consume_confluent,
    "kafka-python": consume_kafka_python,
    "aiokafka": consume_aiokafka,
}


def normalize(recs):
    return [(k, v, [(hk, hv) for hk, hv in h]) for k, v, h in recs]


def check_every_consumer(bootstrap, topic, expected):
    for name, consume in CONSUMERS.items():
        got = normalize(consume(bootstrap, topic, len(expected)))
        assert len(got) == len(expected), f"{name} read {len(got)} of {len(expected)}"
        for i, (g, e) in enumerate(zip(got, expected)):
            if g != e:
                short = lambda r: (r[0], None if r[1] is None else r[1][:40], r[2])  # noqa: E731
                raise AssertionError(f"{name}: record {i} differs: {short(g)} != {short(e)}")


# --- what is on disk ----------------------------------------------------------------
def stored_codecs(broker, topic):
    """The codec id of every batch in partition 0's segment files."""
    codecs = []
    for seg in sorted(Path(broker.data_dir, f"{topic}-0").glob("*.log")):
        data = seg.read_bytes()
        pos = 0
        while pos + 61 <= len(data):
            (length,) = struct.unpack_from(">i", data, pos + 8)
            (attributes,) = struct.unpack_from(">h", data, pos + 21)
            codecs.append(attributes & 7)
            pos += 12 + length
    return codecs


def advertises(bootstrap, api_key):
    """Whether ApiVersions (v0) lists `api_key`."""
    host, port = bootstrap.rsplit(":", 1)
    body = struct.pack(">hhih", 18, 0, 1, 1) + b"t"
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(struct.pack(">i", len(body)) + body)
        buf = b""
        while len(buf) < 4 or len(buf) < 4 + struct.unpack(">i", buf[:4])[0]:
            chunk = s.recv(65536)
            assert chunk, "connection closed"
            buf += chunk
    _corr, err, n = struct.unpack_from(">ihi", buf, 4)
    keys = {struct.unpack_from(">h", buf, 14 + 6 * i)[0] for i in range(n)}
    return err == 0 and api_key in keys


def expected_stored_codec(bootstrap, producer, codec):
    # librdkafka enables lz4 only once the broker lists FindCoordinator (key
    # 10); until then it sends lz4 batches uncompressed.
    if codec == "lz4" and producer in ("kcat", "confluent") and not advertises(bootstrap, 10):
        return "none"
    return codec


@pytest.fixture
def broker(broker_factory):
    """These batches carry a 3 MiB record, which not every client compresses
    below Kafka's default 1 MiB batch limit (max.message.bytes); raise the
    limit as a Kafka user would."""
    return broker_factory(extra_args=["--message-max-bytes", str(8 << 20)])


@pytest.mark.parametrize("codec", CODECS)
@pytest.mark.parametrize("producer", list(PRODUCERS))
def test_codec_round_trips_to_every_consumer(broker, producer, codec):
    topic = f"z-{producer}-{codec}"
    recs = record_set(producer)
    PRODUCERS[producer](broker.bootstrap, topic, codec, recs)

    stored = stored_codecs(broker, topic)
    want = CODEC_IDS[expected_stored_codec(broker.bootstrap, producer, codec)]
    assert stored, "nothing stored"
    # Clients may send a batch uncompressed when compressing does not shrink
    # it (kafka-python, aiokafka), but several records must share batches and
    # the compressed ones must keep the producer's codec.
    assert len(stored) < len(recs) / 2, f"{len(stored)} batches for {len(recs)} records"
    assert want in stored and set(stored) <= {want, 0}, stored

    check_every_consumer(broker.bootstrap, topic, normalize(recs))


def create_topic(bootstrap, topic, configs):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics([NewTopic(topic, 1, 1, config=configs)])
    futures[topic].result(timeout=15)


@pytest.mark.parametrize("target,sent", [
    ("zstd", "gzip"), ("snappy", "zstd"), ("lz4", "snappy"), ("gzip", "lz4"),
    ("uncompressed", "zstd"),
])
def test_topic_compression_type_recompresses_for_every_consumer(broker, target, sent):
    topic = f"recompress-{target}"
    create_topic(broker.bootstrap, topic, {"compression.type": target,
                                           "compression.zstd.level": "9"})
    recs = record_set("kafka-python")
    produce_kafka_python(broker.bootstrap, topic, sent, recs)

    stored = stored_codecs(broker, topic)
    want = CODEC_IDS["none" if target == "uncompressed" else target]
    assert stored and set(stored) == {want}, stored
    check_every_consumer(broker.bootstrap, topic, normalize(recs))


def test_broker_compression_type_flag(broker_factory):
    b = broker_factory(extra_args=["--compression-type", "zstd"])
    recs = record_set("confluent")[:50]
    produce_confluent(b.bootstrap, "flagged", "gzip", recs)
    assert set(stored_codecs(b, "flagged")) == {CODEC_IDS["zstd"]}
    assert normalize(consume_confluent(b.bootstrap, "flagged", len(recs))) == normalize(recs)


def test_create_topics_refuses_bad_compression_configs(broker):
    from confluent_kafka import KafkaException

    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    for key, value in [("compression.type", "none"), ("compression.zstd.level", "99")]:
        futures = admin.create_topics([NewTopic("bad", 1, 1, config={key: value})])
        with pytest.raises(KafkaException) as info:
            futures["bad"].result(timeout=15)
        err = info.value.args[0]
        assert err.name() == "INVALID_CONFIG", err
        assert key in err.str(), err
