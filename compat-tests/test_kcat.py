"""kcat (librdkafka as packaged by Debian) against wharf."""

import json
import re

import pytest

from clients import kcat

pytestmark = pytest.mark.timeout(60)

FMT = "%k=%s @%o\n"


def produce_orders(bootstrap):
    kcat(bootstrap, "-t", "orders", "-P", "-K:", stdin="k1:hello\nk2:world\n")


def test_metadata_lists_broker_1_at_listen_address(broker):
    out = kcat(broker.bootstrap, "-L").stdout
    assert re.search(r"^\s*1 brokers:\s*$", out, re.M), out
    assert re.search(rf"^\s*broker 1 at 127\.0\.0\.1:{broker.port}\b", out, re.M), out


def test_produce_then_consume_keys_values_offsets(broker):
    produce_orders(broker.bootstrap)
    out = kcat(broker.bootstrap, "-t", "orders", "-C", "-e", "-f", FMT).stdout
    assert out.splitlines() == ["k1=hello @0", "k2=world @1"]


def test_second_produce_appends_at_next_offset(broker):
    produce_orders(broker.bootstrap)
    kcat(broker.bootstrap, "-t", "orders", "-P", "-K:", stdin="k3:again\n")
    out = kcat(broker.bootstrap, "-t", "orders", "-C", "-e", "-f", FMT).stdout
    assert out.splitlines() == ["k1=hello @0", "k2=world @1", "k3=again @2"]


def test_metadata_shows_auto_created_topic(broker):
    produce_orders(broker.bootstrap)
    out = kcat(broker.bootstrap, "-L", "-t", "orders").stdout
    assert 'topic "orders" with 1 partitions' in out, out
    assert re.search(r"partition 0, leader 1, replicas: 1, isrs: 1", out), out


def test_headers_round_trip(broker):
    kcat(broker.bootstrap, "-t", "hdrs", "-P", "-K:", "-H", "trace=abc123", "-H", "source=kcat",
         stdin="k:v\n")
    out = kcat(broker.bootstrap, "-t", "hdrs", "-C", "-e", "-f", "%k|%s|%h\n").stdout
    assert out.splitlines() == ["k|v|trace=abc123,source=kcat"]


def test_null_value_and_empty_value_are_distinct(broker):
    # Without -Z an empty value is sent as an empty (zero-length) value.
    kcat(broker.bootstrap, "-t", "nulls", "-P", "-K:", stdin="empty:\n")
    # With -Z an empty value is sent as NULL (a tombstone).
    kcat(broker.bootstrap, "-t", "nulls", "-P", "-K:", "-Z", stdin="tomb:\n")
    # %S is the value length: 0 for empty, -1 for NULL
    out = kcat(broker.bootstrap, "-t", "nulls", "-C", "-e", "-f", "%k %S @%o\n").stdout
    assert out.splitlines() == ["empty 0 @0", "tomb -1 @1"]


def test_null_key(broker):
    kcat(broker.bootstrap, "-t", "nokey", "-P", stdin="no-key-here\n")
    out = kcat(broker.bootstrap, "-t", "nokey", "-C", "-e", "-f", "%K|%s\n").stdout
    assert out.splitlines() == ["-1|no-key-here"]


@pytest.fixture
def five(broker):
    lines = "".join(f"k{i}:v{i}\n" for i in range(5))
    kcat(broker.bootstrap, "-t", "five", "-P", "-K:", stdin=lines)
    return broker


def consume_five(b, *opts):
    return kcat(b.bootstrap, "-t", "five", "-C", "-e", *opts, "-f", FMT).stdout.splitlines()


def test_consume_from_beginning(five):
    assert consume_five(five, "-o", "beginning") == [f"k{i}=v{i} @{i}" for i in range(5)]


def test_consume_from_end_gets_nothing(five):
    assert consume_five(five, "-o", "end") == []


def test_consume_from_absolute_offset(five):
    assert consume_five(five, "-o", "3") == ["k3=v3 @3", "k4=v4 @4"]


def test_consume_relative_from_end(five):
    # -o -2: two messages before the end
    assert consume_five(five, "-o", "-2") == ["k3=v3 @3", "k4=v4 @4"]


def test_consume_count_limit(five):
    out = kcat(five.bootstrap, "-t", "five", "-C", "-o", "1", "-c", "2", "-f", FMT).stdout
    assert out.splitlines() == ["k1=v1 @1", "k2=v2 @2"]


def test_consume_from_end_then_new_messages_arrive(five):
    # -o end, produce after the consumer started, it must see only new ones.
    import subprocess
    import time

    cmd = ["kcat", "-b", five.bootstrap, "-t", "five", "-C", "-o", "end", "-c", "2", "-f", FMT]
    consumer = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # give it time to resolve the end offset before producing
        time.sleep(2)
        kcat(five.bootstrap, "-t", "five", "-P", "-K:", stdin="k5:v5\nk6:v6\n")
        out, err = consumer.communicate(timeout=20)
    finally:
        if consumer.poll() is None:
            consumer.kill()
            consumer.wait()
    assert consumer.returncode == 0, err
    assert out.splitlines() == ["k5=v5 @5", "k6=v6 @6"]


def test_timestamps_are_create_time_and_queryable(five):
    # kcat -Q asks ListOffsets for the first offset at or after a timestamp.
    out = kcat(five.bootstrap, "-t", "five", "-C", "-e", "-f", "%T\n").stdout
    stamps = [int(x) for x in out.split()]
    assert len(stamps) == 5 and all(s > 1_600_000_000_000 for s in stamps), stamps
    q = kcat(five.bootstrap, "-Q", "-t", f"five:0:{stamps[0]}").stdout
    assert re.search(r"five \[0\] offset 0\b", q), q
    q = kcat(five.bootstrap, "-Q", "-t", f"five:0:{stamps[-1] + 60_000}").stdout
    assert re.search(r"five \[0\] offset -1\b", q), q


def test_json_metadata(broker):
    produce_orders(broker.bootstrap)
    md = json.loads(kcat(broker.bootstrap, "-J", "-L").stdout)
    assert md["brokers"] == [{"id": 1, "name": f"127.0.0.1:{broker.port}"}]
    assert md["originating_broker"]["id"] == 1
    topics = {t["topic"]: t for t in md["topics"]}
    assert "orders" in topics, md
    parts = topics["orders"]["partitions"]
    assert len(parts) == 1
    assert parts[0]["partition"] == 0 and parts[0]["leader"] == 1
    assert parts[0]["replicas"] == [{"id": 1}]
    assert parts[0]["isrs"] == [{"id": 1}]


def test_json_envelope_consume(broker):
    produce_orders(broker.bootstrap)
    out = kcat(broker.bootstrap, "-t", "orders", "-C", "-e", "-J").stdout
    msgs = [json.loads(line) for line in out.splitlines() if line.strip()]
    assert [(m["key"], m["payload"], m["offset"], m["partition"]) for m in msgs] == [
        ("k1", "hello", 0, 0), ("k2", "world", 1, 0)]
    assert all(m["tstype"] == "create" for m in msgs), msgs


@pytest.mark.parametrize("codec", ["gzip", "snappy", "lz4"])
def test_compressed_produce_round_trips(broker, codec):
    lines = "".join(f"key{i}:{codec}-value-{i}-{'x' * 50}\n" for i in range(20))
    kcat(broker.bootstrap, "-t", f"z-{codec}", "-P", "-K:", "-z", codec, stdin=lines)
    out = kcat(broker.bootstrap, "-t", f"z-{codec}", "-C", "-e", "-f", FMT).stdout
    assert out.splitlines() == [f"key{i}={codec}-value-{i}-{'x' * 50} @{i}" for i in range(20)]


def test_many_messages_in_order(broker):
    n = 2000
    lines = "".join(f"{i}\n" for i in range(n))
    kcat(broker.bootstrap, "-t", "bulk", "-P", stdin=lines)
    out = kcat(broker.bootstrap, "-t", "bulk", "-C", "-e", "-f", "%o:%s\n").stdout
    assert out.splitlines() == [f"{i}:{i}" for i in range(n)]
