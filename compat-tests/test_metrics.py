"""`wharf serve --metrics-listen`: after a known produce and consume, the
Prometheus text at /metrics (parsed with the Prometheus project's own
Python parser) shows the counters moved by the right amounts, the
partitions' offsets, and the consumer groups' lag."""

import socket
import urllib.error
import urllib.request

import pytest
from confluent_kafka import Consumer, TopicPartition
from prometheus_client.parser import text_string_to_metric_families

from clients import assert_delivered, c_produce, c_producer, create_topic

TOPIC = "metrics-orders"
# Records per partition, and the size of each record's value.
COUNTS = {0: 12, 1: 8}
VALUE_BYTES = 100


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def scrape(port, path="/metrics"):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/plain")
        return resp.read().decode()


def samples(text):
    """{(sample name, frozenset of labels): value} of a scrape."""
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def value(found, name, **labels):
    key = (name, frozenset((k, str(v)) for k, v in labels.items()))
    assert key in found, f"no sample {name}{labels}; have {sorted(k for k in found if k[0] == name)}"
    return found[key]


@pytest.fixture
def metrics_broker(broker_factory):
    port = free_port()
    broker = broker_factory(extra_args=["--metrics-listen", f"127.0.0.1:{port}"])
    return broker, port


def consume_all_and_commit(broker, group):
    """A subscribed group member reads every record, then commits."""
    consumer = Consumer({
        "bootstrap.servers": broker.bootstrap,
        "group.id": group,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "session.timeout.ms": 6000,
        "heartbeat.interval.ms": 500,
    })
    try:
        consumer.subscribe([TOPIC])
        got = 0
        for _ in range(600):
            msg = consumer.poll(0.1)
            if msg is not None and msg.error() is None:
                got += 1
            if got == sum(COUNTS.values()):
                break
        assert got == sum(COUNTS.values()), f"consumed {got} records"
        consumer.commit(asynchronous=False)
    finally:
        consumer.close()


def commit_partially(broker, group, offsets):
    """Commits `offsets` ({partition: offset}) for a group without members."""
    consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group,
                         "enable.auto.commit": False})
    try:
        consumer.commit(offsets=[TopicPartition(TOPIC, p, o) for p, o in offsets.items()],
                        asynchronous=False)
    finally:
        consumer.close()


def test_metrics_after_a_known_produce_and_consume(metrics_broker):
    broker, port = metrics_broker
    create_topic(broker, TOPIC, partitions=len(COUNTS))
    producer = c_producer(broker.bootstrap)
    records = [{"value": bytes([65 + p]) * VALUE_BYTES, "partition": p}
               for p, n in COUNTS.items() for _ in range(n)]
    assert_delivered(c_produce(producer, TOPIC, records))
    consume_all_and_commit(broker, "metrics-all")
    commit_partially(broker, "metrics-half", {0: 5, 1: 2})

    found = samples(scrape(port))
    payload = VALUE_BYTES * sum(COUNTS.values())

    assert value(found, "wharf_requests_total", api="Produce", error="NONE") >= 1
    assert value(found, "wharf_requests_total", api="Fetch", error="NONE") >= 1
    assert value(found, "wharf_requests_total", api="OffsetCommit", error="NONE") >= 2
    assert value(found, "wharf_request_duration_seconds_count", api="Produce") >= 1
    inf = value(found, "wharf_request_duration_seconds_bucket", api="Produce", le="+Inf")
    assert inf == value(found, "wharf_request_duration_seconds_count", api="Produce")

    assert value(found, "wharf_topic_bytes_in_total", topic=TOPIC) >= payload
    assert value(found, "wharf_topic_bytes_out_total", topic=TOPIC) >= payload

    for p, n in COUNTS.items():
        assert value(found, "wharf_partition_log_end_offset", topic=TOPIC, partition=p) == n
        assert value(found, "wharf_partition_log_start_offset", topic=TOPIC, partition=p) == 0
        size = value(found, "wharf_partition_size_bytes", topic=TOPIC, partition=p)
        assert size >= VALUE_BYTES * n
        assert value(found, "wharf_consumer_group_lag",
                     group="metrics-all", topic=TOPIC, partition=p) == 0
        assert value(found, "wharf_consumer_group_committed_offset",
                     group="metrics-all", topic=TOPIC, partition=p) == n
    assert value(found, "wharf_consumer_group_lag",
                 group="metrics-half", topic=TOPIC, partition=0) == COUNTS[0] - 5
    assert value(found, "wharf_consumer_group_lag",
                 group="metrics-half", topic=TOPIC, partition=1) == COUNTS[1] - 2

    assert value(found, "wharf_under_replicated_partitions") == 0
    # The producer is still connected.
    assert value(found, "wharf_open_connections") >= 1
    assert value(found, "process_resident_memory_bytes") > 0
    assert value(found, "process_open_fds") > 0
    assert value(found, "process_cpu_seconds_total") >= 0
    producer.flush(5)


def test_counters_only_grow_between_scrapes(metrics_broker):
    broker, port = metrics_broker
    create_topic(broker, TOPIC, partitions=1)
    producer = c_producer(broker.bootstrap)
    assert_delivered(c_produce(producer, TOPIC, [{"value": b"x" * VALUE_BYTES}]))
    first = samples(scrape(port))
    assert_delivered(c_produce(producer, TOPIC, [{"value": b"y" * VALUE_BYTES}] * 3))
    second = samples(scrape(port))
    before = value(first, "wharf_topic_bytes_in_total", topic=TOPIC)
    after = value(second, "wharf_topic_bytes_in_total", topic=TOPIC)
    assert after - before >= 3 * VALUE_BYTES
    assert value(second, "wharf_partition_log_end_offset", topic=TOPIC, partition=0) == 4
    assert (value(second, "wharf_requests_total", api="Produce", error="NONE")
            > value(first, "wharf_requests_total", api="Produce", error="NONE"))


def test_other_paths_are_not_found(metrics_broker):
    _broker, port = metrics_broker
    with pytest.raises(urllib.error.HTTPError) as err:
        scrape(port, "/")
    assert err.value.code == 404
    with pytest.raises(urllib.error.HTTPError) as err:
        scrape(port, "/metrics/extra")
    assert err.value.code == 404
