"""Protocol-level faults, injected with `wharf faults add` through the
admin listener (`wharf serve --admin-listen`), as confluent-kafka sees
them: a retriable error is retried until the produce succeeds, a fatal one
reaches the delivery callback, an injected latency delays the produce, and
a dropped connection is reconnected. Without the admin listener nothing
can be injected. (Disk faults, `--fault-injection`, are in test_faults.py.)"""

import socket
import subprocess
import time

import pytest
from confluent_kafka import KafkaError

from clients import c_consume, c_producer, c_produce, create_topic

pytestmark = pytest.mark.timeout(120)

TOPIC = "orders"


def free_addr():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{s.getsockname()[1]}"


@pytest.fixture
def faulty(broker_factory, wharf_bin):
    """A broker with its admin listener, and a function running `wharf
    faults ARGS --admin ADDR`."""
    admin = free_addr()
    b = broker_factory(extra_args=["--admin-listen", admin])
    create_topic(b, TOPIC)

    def faults(*args, check=True):
        proc = subprocess.run([str(wharf_bin), "faults", *args, "--admin", admin],
                              capture_output=True, text=True, timeout=30)
        if check:
            assert proc.returncode == 0, proc.stderr
        return proc

    return b, faults


def produce_one(bootstrap, value, **conf):
    """Produces one record; returns (error or None, seconds taken)."""
    p = c_producer(bootstrap, **{"enable.idempotence": False, "linger.ms": 0, **conf})
    started = time.monotonic()
    [(err, _msg)] = c_produce(p, TOPIC, [{"value": value, "partition": 0}])
    return err, time.monotonic() - started


def stored(bootstrap):
    return [m.value() for m in c_consume(bootstrap, TOPIC)]


def test_retriable_error_is_retried_and_the_produce_succeeds(faulty):
    b, faults = faulty
    faults("add", "--api", "Produce", "--topic", TOPIC,
           "--error", "NOT_LEADER_OR_FOLLOWER", "--count", "3")
    err, _ = produce_one(b.bootstrap, b"after-retries", retry_backoff_ms=50)
    assert err is None, err
    assert stored(b.bootstrap) == [b"after-retries"]
    # All three firings were used up by the client's retries.
    assert "fault injected" in b.log()
    assert faults("list", "--output", "json").stdout.strip() == "[]"


def test_fatal_error_reaches_the_delivery_callback(faulty):
    b, faults = faulty
    faults("add", "--api", "Produce", "--error", "TOPIC_AUTHORIZATION_FAILED")
    err, _ = produce_one(b.bootstrap, b"refused")
    assert err is not None
    assert err.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED, err
    faults("clear")
    assert stored(b.bootstrap) == []


def test_latency_delays_the_produce(faulty):
    b, faults = faulty
    # A first produce connects and learns the metadata, so the timed one is
    # one Produce request.
    p = c_producer(b.bootstrap, linger_ms=0)
    c_produce(p, TOPIC, [{"value": b"warm", "partition": 0}])
    faults("add", "--api", "Produce", "--latency", "500ms", "--count", "1")
    started = time.monotonic()
    [(err, _msg)] = c_produce(p, TOPIC, [{"value": b"slow", "partition": 0}])
    took = time.monotonic() - started
    assert err is None, err
    assert took >= 0.5, took


def test_dropped_connection_is_reconnected_and_the_produce_succeeds(faulty):
    b, faults = faulty
    faults("add", "--api", "Produce", "--drop-connection", "--count", "1")
    err, _ = produce_one(b.bootstrap, b"after-reconnect", retry_backoff_ms=50)
    assert err is None, err
    assert stored(b.bootstrap) == [b"after-reconnect"]
    assert "drops the connection" in b.log()


def test_without_the_admin_listener_nothing_can_be_injected(broker_factory, wharf_bin):
    b = broker_factory()
    for admin in (free_addr(), b.bootstrap):
        proc = subprocess.run([str(wharf_bin), "faults", "add", "--api", "Produce",
                               "--error", "NOT_LEADER_OR_FOLLOWER", "--admin", admin],
                              capture_output=True, text=True, timeout=30)
        assert proc.returncode != 0, proc.stdout
    create_topic(b, TOPIC)
    err, _ = produce_one(b.bootstrap, b"untouched")
    assert err is None, err
