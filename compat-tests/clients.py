"""Thin helpers around the three client stacks the compat tests drive."""

import subprocess
import time

from confluent_kafka import Consumer, KafkaError, Producer
from confluent_kafka import TopicPartition as CTopicPartition
from confluent_kafka.admin import AdminClient, NewTopic


# --- kcat ------------------------------------------------------------------------
def run_command(cmd, stdin=None, timeout=30, check=True):
    """Runs `cmd` with text output; with `check`, a non-zero exit fails
    with the command line and both outputs."""
    proc = subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{' '.join(cmd)} exited with {proc.returncode}\n"
            f"--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}")
    return proc


def kcat(bootstrap, *args, stdin=None, timeout=30, check=True):
    """Run kcat against the broker; returns CompletedProcess with text output."""
    return run_command(["kcat", "-b", bootstrap, "-m", "10", *args], stdin=stdin,
                       timeout=timeout, check=check)


# --- wharf consume --group beside a librdkafka member ------------------------------
def spawn_wharf_member(wharf_bin, broker, topic, group):
    """Starts `wharf consume TOPIC --group GROUP --from-beginning --output
    json`; returns the process, the list its records are appended to, and
    the thread that reads them."""
    import json
    import threading

    cmd = [str(wharf_bin), "consume", topic, "--group", group, "--from-beginning",
           "--output", "json", "--bootstrap-server", broker.bootstrap]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    records = []
    reader = threading.Thread(target=lambda: [records.append(json.loads(line))
                                              for line in proc.stdout], daemon=True)
    reader.start()
    return proc, records, reader


def wait_for_group(describe, consumer, settled, timeout):
    """Polls `consumer` while `describe()` (wharf group describe --output
    json, unchecked) shows the group until `settled(description)`; returns
    that description. A group that does not exist yet is waited for."""
    import json

    deadline = time.monotonic() + timeout
    while True:
        m = consumer.poll(0.2)
        assert m is None or m.error() is None or not m.error().fatal()
        described = describe()
        if described.returncode != 0:
            # Neither member has joined yet: the group does not exist.
            assert "GROUP_ID_NOT_FOUND" in described.stderr, described.stderr
        else:
            d = json.loads(described.stdout)
            if settled(d):
                return d
        assert time.monotonic() < deadline, f"the group never settled: {described.stdout}"


def wharf_partitions_of(description):
    """The partitions the `wharf consume` member holds in a description."""
    return {a["partition"] for m in description["members"]
            if m["client_id"] == "wharf-cli" for a in m["assignment"]}


def stop_both(consumer, proc, reader):
    """Closes the librdkafka consumer and stops the wharf member, which must
    exit 0 within 20 s."""
    import signal

    consumer.close()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=20) == 0, proc.stderr.read()
    reader.join(timeout=5)


def produce_and_share(broker, topic, count, consumer, from_wharf, timeout=30):
    """Produces `count` records keyed k0.. to `topic`, polls `consumer`
    until it and the wharf member (records in `from_wharf`) have read them
    all, commits, and returns librdkafka's messages."""
    producer = c_producer(broker.bootstrap, partitioner="murmur2_random")
    assert_delivered(c_produce(producer, topic,
                               [{"key": f"k{i}".encode(), "value": str(i).encode()}
                                for i in range(count)]))
    from_librdkafka = []
    deadline = time.monotonic() + timeout
    while len(from_librdkafka) + len(from_wharf) < count:
        assert time.monotonic() < deadline, \
            f"{len(from_librdkafka)} + {len(from_wharf)} of {count} records"
        m = consumer.poll(0.2)
        if m is not None and m.error() is None:
            from_librdkafka.append(m)
    consumer.commit(asynchronous=False)
    return from_librdkafka


def assert_shared_once(from_wharf, from_librdkafka, wharf_partitions, count):
    """Each member read only its partitions, and each record was read once."""
    assert {r["partition"] for r in from_wharf} <= wharf_partitions
    assert not {m.partition() for m in from_librdkafka} & wharf_partitions
    keys = [r["key"] for r in from_wharf] + [m.key().decode() for m in from_librdkafka]
    assert sorted(keys) == sorted(f"k{i}" for i in range(count))


# --- confluent-kafka ---------------------------------------------------------------
def c_producer(bootstrap, **conf):
    base = {
        "bootstrap.servers": bootstrap,
        "linger.ms": 5,
        "message.timeout.ms": 15000,
        "socket.timeout.ms": 10000,
    }
    base.update({k.replace("_", "."): v for k, v in conf.items()})
    return Producer(base)


def c_produce(producer, topic, records, flush_timeout=20):
    """Produce records (dicts with any of key, value, headers, timestamp,
    partition) and wait for all delivery reports.

    Returns a list, in production order, of (error, Message)."""
    reports = [None] * len(records)

    def on_delivery(idx):
        def cb(err, msg):
            reports[idx] = (err, msg)
        return cb

    for i, rec in enumerate(records):
        kwargs = {k: v for k, v in rec.items() if v is not None or k == "value"}
        producer.produce(topic, on_delivery=on_delivery(i), **kwargs)
        producer.poll(0)
    left = producer.flush(flush_timeout)
    assert left == 0, f"{left} messages still undelivered after {flush_timeout}s"
    assert all(r is not None for r in reports), "a delivery report is missing"
    return reports


def assert_delivered(reports):
    errors = [(i, err) for i, (err, _m) in enumerate(reports) if err is not None]
    assert not errors, f"delivery failed: {errors[:5]}"


def c_consumer(bootstrap, **conf):
    base = {
        "bootstrap.servers": bootstrap,
        "group.id": "wharf-compat",
        "enable.auto.commit": False,
        "enable.partition.eof": True,
        "fetch.wait.max.ms": 200,
        "socket.timeout.ms": 10000,
    }
    base.update(conf)
    return Consumer(base)


def c_read_until_eof(consumer, partitions, timeout=20):
    """Poll an assigned consumer until every partition in `partitions` (a
    set of (topic, partition)) has reported end-of-partition.

    Returns (messages, other_errors)."""
    waiting = set(partitions)
    msgs, errors = [], []
    deadline = time.monotonic() + timeout
    while waiting:
        if time.monotonic() > deadline:
            raise AssertionError(
                f"no end-of-partition for {sorted(waiting)} within {timeout}s; "
                f"got {len(msgs)} messages, errors: {errors[:5]}")
        m = consumer.poll(0.2)
        if m is None:
            continue
        err = m.error()
        if err is None:
            msgs.append(m)
        elif err.code() == KafkaError._PARTITION_EOF:
            waiting.discard((m.topic(), m.partition()))
        else:
            errors.append(err)
            if err.fatal():
                raise AssertionError(f"fatal consumer error: {err}")
    return msgs, errors


def c_consume(bootstrap, topic, partition=0, offset=None, timeout=20, **conf):
    """Read one partition from `offset` (default: beginning) up to its end."""
    from confluent_kafka import OFFSET_BEGINNING

    consumer = c_consumer(bootstrap, **conf)
    try:
        start = OFFSET_BEGINNING if offset is None else offset
        consumer.assign([CTopicPartition(topic, partition, start)])
        msgs, errors = c_read_until_eof(consumer, {(topic, partition)}, timeout)
        relevant = [e for e in errors if topic in str(e)]
        assert not relevant, f"consumer errors for {topic}: {relevant}"
        return msgs
    finally:
        consumer.close()


# --- kafka-python -------------------------------------------------------------------
def k_consume(bootstrap, topic, partition=0, offset=None, expect=None, timeout=20):
    """Assign one partition, seek (default: beginning), poll until `expect`
    records arrived (or, if expect is None, until the end offset)."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None,
                             enable_auto_commit=False, request_timeout_ms=15000,
                             fetch_max_wait_ms=200)
    try:
        tp = TopicPartition(topic, partition)
        consumer.assign([tp])
        if offset is None:
            consumer.seek_to_beginning(tp)
        else:
            consumer.seek(tp, offset)
        if expect is None:
            end = consumer.end_offsets([tp])[tp]
            start = consumer.position(tp)
            expect = max(0, end - start)
        out = []
        deadline = time.monotonic() + timeout
        while len(out) < expect:
            assert time.monotonic() < deadline, \
                f"got {len(out)} of {expect} records from {topic}/{partition} in {timeout}s"
            for recs in consumer.poll(timeout_ms=200).values():
                out.extend(recs)
        return out
    finally:
        consumer.close()


# --- confluent-kafka admin --------------------------------------------------------


def admin(broker):
    return AdminClient({"bootstrap.servers": broker.bootstrap, "socket.timeout.ms": 10000})


def create_topic(broker, name, partitions=1, config=None):
    a = admin(broker)  # keep the handle alive until the future resolves
    a.create_topics(
        [NewTopic(name, num_partitions=partitions, replication_factor=1, config=config or {})],
        request_timeout=15)[name].result(timeout=20)
