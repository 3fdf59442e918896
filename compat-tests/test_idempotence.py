"""Idempotent producers (enable.idempotence) against wharf: every record
lands exactly once and in order, including when the broker is killed with
SIGKILL mid-stream and the producer retries what was in flight."""

import threading
import time

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from clients import c_consume, c_produce, c_producer, assert_delivered, k_consume

pytestmark = pytest.mark.timeout(180)

# Logs each InitProducerId grant, so tests can tell the client really asked.
ID_LOG = "info,wharf::handlers::init_producer_id=debug"


def create_topic(bootstrap, name, partitions):
    a = AdminClient({"bootstrap.servers": bootstrap, "log_level": 2})
    a.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)],
                    request_timeout=15)[name].result(timeout=20)


def check_exactly_once_in_order(bootstrap, topic, partitions, expected):
    """`expected`: partition -> list of values in production order. Each
    partition must hold exactly those values, once each, in that order."""
    for p in range(partitions):
        got = [m.value() for m in c_consume(bootstrap, topic, partition=p, timeout=30)]
        want = expected.get(p, [])
        dups = len(got) - len(set(got))
        assert dups == 0, f"partition {p}: {dups} duplicated records"
        assert got == want, (f"partition {p}: {len(got)} records, expected {len(want)}; "
                             f"first difference at "
                             f"{next((i for i, (a, b) in enumerate(zip(got, want)) if a != b), min(len(got), len(want)))}")


def test_confluent_idempotent_producer_writes_each_record_once_in_order(broker_factory):
    b = broker_factory(log_level=ID_LOG)
    create_topic(b.bootstrap, "idem", 3)
    p = c_producer(b.bootstrap, **{"enable.idempotence": True, "linger.ms": 1,
                                   "batch.num.messages": 50})
    n = 6000
    records = [{"value": f"v{i}".encode(), "partition": i % 3} for i in range(n)]
    reports = c_produce(p, "idem", records, flush_timeout=60)
    assert_delivered(reports)
    expected = {}
    for i in range(n):
        expected.setdefault(i % 3, []).append(f"v{i}".encode())
    # Delivery reports carry the offsets the log gave: 0, 1, 2, ... per partition.
    for part in range(3):
        offsets = [m.offset() for _e, m in reports if m.partition() == part]
        assert offsets == list(range(len(offsets)))
    check_exactly_once_in_order(b.bootstrap, "idem", 3, expected)
    assert "producer id allocated" in b.log()


@pytest.mark.disk
def test_confluent_idempotent_producer_across_sigkill_has_no_duplicates_or_gaps(broker_factory):
    # fsync before ack widens the window between writing a batch and
    # acknowledging it, so kills leave written but unacknowledged batches.
    b = broker_factory(log_level="info,wharf::handlers=debug", extra_args=["--fsync-before-ack"])
    create_topic(b.bootstrap, "idemcrash", 2)
    p = Producer({
        "bootstrap.servers": b.bootstrap,
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 2,
        "batch.num.messages": 20,
        # Long enough to ride out the restart: records are retried, not failed.
        "message.timeout.ms": 60000,
        "socket.timeout.ms": 2000,
        "reconnect.backoff.ms": 20,
        "reconnect.backoff.max.ms": 200,
        "retry.backoff.ms": 50,
        "log_level": 2,
    })
    acked = {}
    failed = []

    def on_delivery(err, msg):
        if err is None:
            acked[msg.value()] = (msg.partition(), msg.offset())
        else:
            failed.append(err)

    restarter_done = threading.Event()

    def restarter():
        try:
            for _ in range(3):
                time.sleep(0.5)
                b.stop(graceful=False)
                time.sleep(0.3)
                b.start()
        finally:
            restarter_done.set()

    t = threading.Thread(target=restarter)
    t.start()
    # Steady load (bursts of 50 records every 5 ms) until the last restart
    # is over, and a little after: records are in flight at every SIGKILL.
    sent = 0
    tail = None
    while tail is None or sent < tail:
        if tail is None and restarter_done.is_set():
            tail = sent + 500
        try:
            p.produce("idemcrash", value=f"r{sent}".encode(), partition=sent % 2,
                      on_delivery=on_delivery)
            sent += 1
        except BufferError:
            p.poll(0.01)
            continue
        if sent % 50 == 0:
            p.poll(0.005)
    t.join()
    assert p.flush(90) == 0, "records still undelivered"
    assert not failed, f"{len(failed)} records failed: {failed[:3]}"
    assert len(acked) == sent
    expected = {0: [], 1: []}
    for i in range(sent):
        expected[i % 2].append(f"r{i}".encode())
    check_exactly_once_in_order(b.bootstrap, "idemcrash", 2, expected)
    # Every record sits at the offset its acknowledgement named.
    for part in range(2):
        for offset, value in enumerate(expected[part]):
            assert acked[value] == (part, offset), value
    # How often a retry hit a batch already written depends on where the
    # kills fell; shown for the record (-s), not asserted.
    print(f"{sent} records, {b.log().count('duplicate idempotent batch')} retried "
          f"batches acknowledged as duplicates")
    assert b.starts == 4


def test_kafka_python_idempotent_producer(broker_factory):
    from kafka import KafkaProducer

    b = broker_factory(log_level=ID_LOG)
    create_topic(b.bootstrap, "kpidem", 1)
    p = KafkaProducer(bootstrap_servers=b.bootstrap, enable_idempotence=True,
                      acks="all", linger_ms=2, request_timeout_ms=15000)
    try:
        futures = [p.send("kpidem", value=f"k{i}".encode(), partition=0) for i in range(2000)]
        p.flush(timeout=60)
        offsets = [f.get(timeout=30).offset for f in futures]
    finally:
        p.close(timeout=10)
    assert offsets == list(range(2000))
    got = [r.value for r in k_consume(b.bootstrap, "kpidem", expect=2000, timeout=30)]
    assert got == [f"k{i}".encode() for i in range(2000)]
    assert "producer id allocated" in b.log()


def test_aiokafka_idempotent_producer(broker_factory):
    import asyncio

    from aiokafka import AIOKafkaProducer

    b = broker_factory(log_level=ID_LOG)
    create_topic(b.bootstrap, "aioidem", 1)

    async def run():
        p = AIOKafkaProducer(bootstrap_servers=b.bootstrap, enable_idempotence=True,
                             acks="all", linger_ms=2, request_timeout_ms=15000)
        await p.start()
        try:
            futures = [await p.send("aioidem", value=f"a{i}".encode(), partition=0)
                       for i in range(2000)]
            return [m.offset for m in await asyncio.gather(*futures)]
        finally:
            await p.stop()

    offsets = asyncio.run(run())
    assert offsets == list(range(2000))
    got = [m.value() for m in c_consume(b.bootstrap, "aioidem", timeout=30)]
    assert got == [f"a{i}".encode() for i in range(2000)]
    assert "producer id allocated" in b.log()
