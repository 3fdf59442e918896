"""Fetch sessions (KIP-227) with real consumers of a 500-partition topic.

kafka-python opens an incremental fetch session: its first Fetch names all
500 partitions, later ones only what changed, and the broker's
`wharf_request_size_bytes{api="Fetch"}` histogram shows the shrink, while
every record produced (also to partitions the incremental requests no
longer name) is consumed. librdkafka (confluent-kafka, kcat) fetches
without a session (epoch -1): it still reads everything, and opens none.
"""

import socket
import time
import urllib.request

import pytest
from confluent_kafka import OFFSET_BEGINNING
from confluent_kafka import TopicPartition as CTopicPartition
from prometheus_client.parser import text_string_to_metric_families

from clients import (assert_delivered, c_consumer, c_produce, c_producer, c_read_until_eof,
                     create_topic, kcat)

PARTITIONS = 500


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def scrape(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


class FetchSizes:
    """The Fetch request-size histogram of one scrape."""

    def __init__(self, found):
        def get(name, **labels):
            return found.get((name, frozenset(labels.items())), 0.0)
        self.count = get("wharf_request_size_bytes_count", api="Fetch")
        self.sum = get("wharf_request_size_bytes_sum", api="Fetch")
        self.le_256 = get("wharf_request_size_bytes_bucket", api="Fetch", le="256")
        self.le_4096 = get("wharf_request_size_bytes_bucket", api="Fetch", le="4096")
        self.sessions = get("wharf_fetch_sessions")
        self.session_partitions = get("wharf_fetch_session_partitions")


@pytest.fixture
def metrics_broker(broker_factory):
    port = free_port()
    broker = broker_factory(extra_args=["--metrics-listen", f"127.0.0.1:{port}"])
    return broker, port


def produce_wave(broker, topic, per_partition, tag):
    """`per_partition` records on every partition; returns their values."""
    records = [{"value": f"{tag}-{p}-{i}".encode(), "partition": p}
               for p in range(PARTITIONS) for i in range(per_partition)]
    producer = c_producer(broker.bootstrap)
    assert_delivered(c_produce(producer, topic, records, flush_timeout=60))
    return {r["value"] for r in records}


def k_poll_values(consumer, want, timeout):
    """Polls until every value of `want` was read; returns what was read."""
    got = []
    deadline = time.monotonic() + timeout
    while not want <= set(got):
        assert time.monotonic() < deadline, \
            f"read {len(set(got) & want)} of {len(want)} records in {timeout}s"
        for recs in consumer.poll(timeout_ms=200).values():
            got.extend(r.value for r in recs)
    return got


def k_idle(consumer, seconds):
    """Polls for `seconds`, expecting nothing new."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for recs in consumer.poll(timeout_ms=100).values():
            raise AssertionError(f"unexpected records: {[r.value for r in recs][:5]}")


def test_kafka_python_fetch_requests_shrink_and_read_everything(metrics_broker):
    from kafka import KafkaConsumer, TopicPartition

    broker, port = metrics_broker
    topic = "sessions-500"
    create_topic(broker, topic, partitions=PARTITIONS)
    first_wave = produce_wave(broker, topic, 2, "a")
    before = FetchSizes(scrape(port))
    assert before.count == 0

    consumer = KafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=None,
                             enable_auto_commit=False, request_timeout_ms=15000,
                             fetch_max_wait_ms=100)
    try:
        consumer.assign([TopicPartition(topic, p) for p in range(PARTITIONS)])
        consumer.seek_to_beginning()
        got = k_poll_values(consumer, first_wave, timeout=60)
        assert len(got) == len(first_wave), "a record was read twice"
        reading = FetchSizes(scrape(port))
        # The first fetch named all 500 partitions (about 28 bytes each).
        assert reading.count - reading.le_4096 >= 1, vars(reading)

        # Idle: every further fetch is an incremental one naming nothing.
        k_idle(consumer, 2.0)
        idle = FetchSizes(scrape(port))
        idle_count = idle.count - reading.count
        assert idle_count >= 5, (vars(reading), vars(idle))
        assert idle.le_256 - reading.le_256 == idle_count, (vars(reading), vars(idle))
        idle_average = (idle.sum - reading.sum) / idle_count
        # A sessionless fetch of 500 partitions is some 14 KB; an idle
        # incremental one is its header and a few fields.
        assert idle_average < 128, (vars(reading), vars(idle))
        assert idle.sessions >= 1 and idle.session_partitions >= PARTITIONS, vars(idle)

        # New records on every partition, which the idle requests did not
        # name: the session remembered them all.
        second_wave = produce_wave(broker, topic, 1, "b")
        got = k_poll_values(consumer, second_wave, timeout=60)
        assert len(got) == len(second_wave), "a record was read twice"
        after = FetchSizes(scrape(port))
        print(f"Fetch requests while reading the first {len(first_wave)} records: "
              f"{int(reading.count)}, {int(reading.count - reading.le_4096)} over 4 KiB, "
              f"average {reading.sum / reading.count:.0f} bytes; idle incremental fetches: "
              f"{idle_count:.0f}, average {idle_average:.0f} bytes; all {int(after.count)} "
              f"requests: {after.sum:.0f} bytes")
    finally:
        consumer.close()


def test_confluent_kafka_reads_500_partitions_without_a_session(metrics_broker):
    broker, port = metrics_broker
    topic = "sessionless-500"
    create_topic(broker, topic, partitions=PARTITIONS)
    values = produce_wave(broker, topic, 2, "c")
    consumer = c_consumer(broker.bootstrap)
    try:
        consumer.assign([CTopicPartition(topic, p, OFFSET_BEGINNING) for p in range(PARTITIONS)])
        msgs, errors = c_read_until_eof(
            consumer, {(topic, p) for p in range(PARTITIONS)}, timeout=60)
        assert not errors, errors[:5]
        read = [m.value() for m in msgs]
        assert len(read) == len(values) and set(read) == values
        found = FetchSizes(scrape(port))
        # librdkafka sends session epoch -1: full fetches, no session.
        assert found.count >= 1 and found.sessions == 0, vars(found)
    finally:
        consumer.close()


def test_kcat_reads_500_partitions(broker):
    topic = "kcat-500"
    create_topic(broker, topic, partitions=PARTITIONS)
    values = produce_wave(broker, topic, 1, "k")
    out = kcat(broker.bootstrap, "-C", "-t", topic, "-o", "beginning", "-e", "-q",
               "-f", "%s\\n", timeout=60)
    lines = [line.encode() for line in out.stdout.splitlines() if line]
    assert len(lines) == len(values) and set(lines) == values
