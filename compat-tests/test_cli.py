"""`wharf produce` and `wharf consume` against other clients: what the
command line writes, confluent-kafka (librdkafka) and kcat read, and the
other way round. Keyed records must land where the Java client's murmur2
partitioner puts them (confluent-kafka's `murmur2_random` partitioner)."""

import json

import pytest

from clients import (assert_delivered, c_consume, c_produce, c_producer, create_topic, kcat,
                     run_command)

pytestmark = pytest.mark.timeout(120)


def wharf(wharf_bin, broker, *args, stdin=None, check=True, timeout=60):
    return run_command([str(wharf_bin), *args, "--bootstrap-server", broker.bootstrap],
                       stdin=stdin, timeout=timeout, check=check)


@pytest.mark.parametrize("codec", ["none", "gzip", "snappy", "lz4", "zstd"])
def test_records_from_wharf_produce_read_by_confluent_kafka_and_kcat(wharf_bin, broker, codec):
    topic = f"from-cli-{codec}"
    wharf(wharf_bin, broker, "topic", "create", topic, "--partitions", "1")
    lines = "".join(f"key-{i}:value {i}\n" for i in range(20))
    wharf(wharf_bin, broker, "produce", topic, "--key-separator", ":", "--compression", codec,
          "--header", "trace=abc", "--header", "source=wharf", stdin=lines)

    msgs = c_consume(broker.bootstrap, topic)
    assert [(m.key(), m.value(), m.offset()) for m in msgs] == [
        (f"key-{i}".encode(), f"value {i}".encode(), i) for i in range(20)]
    assert msgs[0].headers() == [("trace", b"abc"), ("source", b"wharf")]

    out = kcat(broker.bootstrap, "-t", topic, "-C", "-e", "-f", "%k|%s|%h|%o\n").stdout
    assert out.splitlines()[:2] == ["key-0|value 0|trace=abc,source=wharf|0",
                                    "key-1|value 1|trace=abc,source=wharf|1"]
    assert len(out.splitlines()) == 20


def test_keyed_records_land_where_the_java_partitioner_puts_them(wharf_bin, broker):
    create_topic(broker, "by-cli", partitions=7)
    create_topic(broker, "by-librdkafka", partitions=7)
    keys = [f"customer-{i}" for i in range(60)] + ["", "a", "\u00e9t\u00e9", "0123456789abcdef"]
    lines = "".join(f"{k}\t{i}\n" for i, k in enumerate(keys))
    out = wharf(wharf_bin, broker, "produce", "by-cli", "--key-separator", "\t",
                "--output", "json", stdin=lines).stdout
    cli_partition = {keys[r["line"] - 1]: r["partition"] for r in json.loads(out)["records"]}
    assert len(cli_partition) == len(keys)

    producer = c_producer(broker.bootstrap, partitioner="murmur2_random")
    reports = c_produce(producer, "by-librdkafka",
                        [{"key": k.encode(), "value": str(i).encode()} for i, k in enumerate(keys)])
    assert_delivered(reports)
    java_partition = {m.key().decode(): m.partition() for _err, m in reports}
    # An empty key is a key (murmur2 of no bytes), not a keyless record.
    assert cli_partition == java_partition
    assert len(set(java_partition.values())) > 3

    # And what the consumer side reports agrees with where they are stored.
    for p in range(7):
        stored = {m.key().decode() for m in c_consume(broker.bootstrap, "by-cli", partition=p)}
        assert stored == {k for k, q in cli_partition.items() if q == p}


def test_wharf_consume_reads_what_confluent_kafka_produced(wharf_bin, broker):
    create_topic(broker, "from-librdkafka", partitions=3)
    where = {}
    for codec in ["none", "gzip", "snappy", "lz4", "zstd"]:
        producer = c_producer(broker.bootstrap, compression_type=codec,
                              partitioner="murmur2_random")
        reports = c_produce(producer, "from-librdkafka", [
            {"key": f"{codec}-{i}".encode(), "value": f"v{i}".encode(),
             "headers": [("codec", codec.encode())], "timestamp": 1_700_000_000_000 + i}
            for i in range(10)])
        assert_delivered(reports)
        for _err, m in reports:
            where[m.key().decode()] = (m.partition(), m.offset())
    assert len(where) == 50

    out = wharf(wharf_bin, broker, "consume", "from-librdkafka", "--from-beginning",
                "--max-messages", "50", "--output", "json").stdout
    records = [json.loads(line) for line in out.splitlines()]
    assert len(records) == 50
    seen = {r["key"]: r for r in records}
    assert len(seen) == 50
    for key, (partition, offset) in where.items():
        assert (seen[key]["partition"], seen[key]["offset"]) == (partition, offset)
    zstd3 = seen["zstd-3"]
    assert zstd3["value"] == "v3"
    assert zstd3["timestamp"] == 1_700_000_000_003
    assert zstd3["headers"] == [{"key": "codec", "value": "zstd"}]

    text = wharf(wharf_bin, broker, "consume", "from-librdkafka", "--partition",
                 str(where["gzip-0"][0]), "--offset", str(where["gzip-0"][1]),
                 "--max-messages", "1", "--format", "%k:%v (partition %p offset %o, %T)").stdout
    assert text == (f"gzip-0:v0 (partition {where['gzip-0'][0]} offset {where['gzip-0'][1]}, "
                    f"1700000000000)\n")


def test_read_committed_skips_an_aborted_transaction(wharf_bin, broker):
    create_topic(broker, "txn", partitions=1)
    producer = c_producer(broker.bootstrap, transactional_id="cli-txn")
    producer.init_transactions(15)
    producer.begin_transaction()
    producer.produce("txn", value=b"aborted-1")
    producer.produce("txn", value=b"aborted-2")
    producer.flush(15)
    producer.abort_transaction(15)
    producer.begin_transaction()
    producer.produce("txn", value=b"committed")
    producer.commit_transaction(15)

    committed = wharf(wharf_bin, broker, "consume", "txn", "--from-beginning",
                      "--isolation", "read_committed", "--max-messages", "1",
                      "--format", "%v@%o").stdout
    # Offsets 0-1 aborted, 2 their marker, 3 the committed record.
    assert committed == "committed@3\n"
    everything = wharf(wharf_bin, broker, "consume", "txn", "--from-beginning",
                       "--max-messages", "3", "--format", "%v").stdout
    assert everything.splitlines() == ["aborted-1", "aborted-2", "committed"]


def test_wharf_consume_group_shares_partitions_with_a_librdkafka_member(wharf_bin, broker):
    """`wharf consume --group` and a confluent-kafka consumer in one group:
    the range assignor (whichever member leads) splits the partitions, each
    record is read once, and `wharf group describe` shows both members."""
    from clients import (assert_shared_once, c_consumer, produce_and_share,
                         spawn_wharf_member, stop_both, wait_for_group,
                         wharf_partitions_of)

    create_topic(broker, "mixed", partitions=4)
    proc, from_wharf, reader = spawn_wharf_member(wharf_bin, broker, "mixed", "mixed-group")
    consumer = c_consumer(broker.bootstrap, **{"group.id": "mixed-group",
                                               "partition.assignment.strategy": "range",
                                               "auto.offset.reset": "earliest",
                                               "enable.partition.eof": False})
    try:
        consumer.subscribe(["mixed"])
        d = wait_for_group(
            lambda: wharf(wharf_bin, broker, "group", "describe", "mixed-group",
                          "--output", "json", check=False),
            consumer,
            lambda d: d["state"] == "Stable" and len(d["members"]) == 2 and
            all(m["assignment"] for m in d["members"]),
            timeout=40)
        clients = sorted(m["client_id"] for m in d["members"])
        assert clients[1] == "wharf-cli", clients
        wharf_partitions = wharf_partitions_of(d)
        assert len(wharf_partitions) == 2

        from_librdkafka = produce_and_share(broker, "mixed", 40, consumer, from_wharf)
    finally:
        stop_both(consumer, proc, reader)

    assert_shared_once(from_wharf, from_librdkafka, wharf_partitions, 40)

    # Both committed what they read.
    d = json.loads(wharf(wharf_bin, broker, "group", "describe", "mixed-group",
                         "--output", "json").stdout)
    assert d["state"] == "Empty", d
    assert sum(o["current_offset"] for o in d["offsets"]) == 40, d
    assert all(o["lag"] == 0 for o in d["offsets"]), d


def test_offsets_reset_by_wharf_are_where_a_librdkafka_member_resumes(wharf_bin, broker):
    """`wharf group reset-offsets --to-datetime --execute` on a group a
    confluent-kafka consumer committed in: librdkafka reads back the new
    committed offsets and resumes there; `wharf group delete-offsets`
    leaves it no committed offset for that partition."""
    from confluent_kafka import OFFSET_INVALID
    from confluent_kafka import TopicPartition as CTopicPartition

    from clients import c_consumer, c_read_until_eof

    create_topic(broker, "rewind", partitions=2)
    minute = 60_000
    new_year = 1_767_225_600_000  # 2026-01-01T00:00:00Z
    producer = c_producer(broker.bootstrap)
    assert_delivered(c_produce(producer, "rewind", [
        {"value": f"p{p}-{i}".encode(), "partition": p, "timestamp": new_year + i * minute}
        for p in range(2) for i in range(5)]))

    conf = {"group.id": "rewind-group", "auto.offset.reset": "earliest"}
    partitions = [CTopicPartition("rewind", p) for p in range(2)]
    consumer = c_consumer(broker.bootstrap, **conf)
    try:
        consumer.assign([CTopicPartition("rewind", p, 0) for p in range(2)])
        msgs, _ = c_read_until_eof(consumer, {("rewind", 0), ("rewind", 1)})
        assert len(msgs) == 10
        consumer.commit(asynchronous=False)
    finally:
        consumer.close()

    out = wharf(wharf_bin, broker, "group", "reset-offsets", "rewind-group", "--topic", "rewind",
                "--to-datetime", "2026-01-01T00:02:30Z", "--execute", "--output", "json").stdout
    assert [(o["partition"], o["new_offset"]) for o in json.loads(out)["offsets"]] == \
        [(0, 3), (1, 3)]

    consumer = c_consumer(broker.bootstrap, **conf)
    try:
        committed = consumer.committed(partitions, timeout=10)
        assert [(tp.partition, tp.offset) for tp in committed] == [(0, 3), (1, 3)]
        consumer.subscribe(["rewind"])
        msgs, _ = c_read_until_eof(consumer, {("rewind", 0), ("rewind", 1)}, timeout=30)
        assert sorted((m.partition(), m.offset()) for m in msgs) == \
            [(p, o) for p in range(2) for o in (3, 4)]
    finally:
        consumer.close()

    wharf(wharf_bin, broker, "group", "delete-offsets", "rewind-group", "--topic", "rewind:1")
    consumer = c_consumer(broker.bootstrap, **conf)
    try:
        committed = consumer.committed(partitions, timeout=10)
        assert [(tp.partition, tp.offset) for tp in committed] == [(0, 3), (1, OFFSET_INVALID)]
    finally:
        consumer.close()
