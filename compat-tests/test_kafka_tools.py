"""The Kafka-compatible tool names of the `wharf` binary against other
clients: what `wharf kafka-console-producer.sh` writes, kcat reads; what kcat
writes, `wharf kafka-console-consumer.sh` prints in Kafka's format; the lag
`wharf kafka-consumer-groups.sh --describe` reports is what a confluent-kafka
consumer committed."""

import pytest
from confluent_kafka import TopicPartition

from clients import c_consumer, c_read_until_eof, kcat, run_command

pytestmark = pytest.mark.timeout(120)


def tool(wharf_bin, broker, name, *args, stdin=None):
    return run_command([str(wharf_bin), name, *args, "--bootstrap-server", broker.bootstrap],
                       stdin=stdin, timeout=60)


@pytest.mark.parametrize("codec", ["gzip", "zstd"])
def test_console_producer_records_read_by_kcat(wharf_bin, broker, codec):
    topic = f"console-{codec}"
    created = tool(wharf_bin, broker, "kafka-topics.sh", "--create", "--topic", topic,
                   "--partitions", "1", "--replication-factor", "1").stdout
    assert created == f"Created topic {topic}.\n"
    lines = "".join(f"key-{i}:value {i}\n" for i in range(10)) + "no key here\n"
    tool(wharf_bin, broker, "kafka-console-producer.sh", "--topic", topic,
         "--property", "parse.key=true", "--property", "key.separator=:",
         "--compression-codec", codec, stdin=lines)

    out = kcat(broker.bootstrap, "-t", topic, "-C", "-e", "-Z", "-f", "%k|%s|%o\n").stdout
    expected = [f"key-{i}|value {i}|{i}" for i in range(10)] + ["NULL|no key here|10"]
    assert out.splitlines() == expected


def test_kcat_records_printed_by_console_consumer(wharf_bin, broker):
    kcat(broker.bootstrap, "-t", "from-kcat", "-P", "-K", ":", "-p", "0",
         stdin="a:first\nb:second\n")
    out = tool(wharf_bin, broker, "kafka-console-consumer.sh", "--topic", "from-kcat",
               "--from-beginning", "--max-messages", "2",
               "--property", "print.key=true", "--property", "print.offset=true").stdout
    assert out == "Offset:0\ta\tfirst\nOffset:1\tb\tsecond\n"


def test_consumer_groups_lag_matches_what_confluent_kafka_committed(wharf_bin, broker):
    tool(wharf_bin, broker, "kafka-topics.sh", "--create", "--topic", "lagging",
         "--partitions", "2")
    for partition in (0, 1):
        kcat(broker.bootstrap, "-t", "lagging", "-P", "-p", str(partition),
             stdin="".join(f"{partition}-{i}\n" for i in range(5)))
    consumer = c_consumer(broker.bootstrap, **{"group.id": "lag-check"})
    try:
        consumer.assign([TopicPartition("lagging", 0, 0), TopicPartition("lagging", 1, 0)])
        c_read_until_eof(consumer, {("lagging", 0), ("lagging", 1)})
        consumer.commit(offsets=[TopicPartition("lagging", 0, 2),
                                 TopicPartition("lagging", 1, 5)], asynchronous=False)
    finally:
        consumer.close()

    out = tool(wharf_bin, broker, "kafka-consumer-groups.sh", "--describe",
               "--group", "lag-check").stdout
    rows = [line.split() for line in out.splitlines() if line.startswith("lag-check ")]
    # GROUP TOPIC PARTITION CURRENT-OFFSET LOG-END-OFFSET LAG CONSUMER-ID HOST CLIENT-ID
    assert sorted(rows) == [
        ["lag-check", "lagging", "0", "2", "5", "3", "-", "-", "-"],
        ["lag-check", "lagging", "1", "5", "5", "0", "-", "-", "-"],
    ]
