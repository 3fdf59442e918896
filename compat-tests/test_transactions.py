"""Transactions (exactly-once) against wharf: confluent-kafka's and
kafka-python's transactional producers, read_committed and
read_uncommitted consumers, send_offsets_to_transaction, fencing by a
second producer, the broker's timeout abort, and a consume-transform-produce
loop surviving a consumer kill and a broker restart."""

import time

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, Producer
from confluent_kafka import TopicPartition as TP

from clients import c_consume, create_topic

pytestmark = pytest.mark.timeout(180)


def txn_producer(bootstrap, txn_id, **conf):
    base = {
        "bootstrap.servers": bootstrap,
        "transactional.id": txn_id,
        "linger.ms": 5,
        "socket.timeout.ms": 10000,
    }
    base.update(conf)
    p = Producer(base)
    p.init_transactions(30)
    return p


def values(bootstrap, topic, partition=0, committed=True):
    level = "read_committed" if committed else "read_uncommitted"
    msgs = c_consume(bootstrap, topic, partition=partition, **{"isolation.level": level})
    return [m.value() for m in msgs]


def produce_all(p, topic, vals, partition=0):
    for v in vals:
        p.produce(topic, value=v, partition=partition)
    assert p.flush(20) == 0


def test_committed_records_reach_read_committed_only_after_commit(broker_factory):
    b = broker_factory()
    create_topic(b, "txc", partitions=2)
    p = txn_producer(b.bootstrap, "tx-commit")
    p.begin_transaction()
    produce_all(p, "txc", [b"a0", b"a1", b"a2"], partition=0)
    produce_all(p, "txc", [b"b0", b"b1"], partition=1)
    # Written but not committed: read_uncommitted sees them, read_committed not.
    assert values(b.bootstrap, "txc", 0, committed=False) == [b"a0", b"a1", b"a2"]
    assert values(b.bootstrap, "txc", 0) == []
    assert values(b.bootstrap, "txc", 1) == []
    p.commit_transaction(30)
    assert values(b.bootstrap, "txc", 0) == [b"a0", b"a1", b"a2"]
    assert values(b.bootstrap, "txc", 1) == [b"b0", b"b1"]


def test_aborted_records_never_reach_read_committed(broker_factory):
    b = broker_factory()
    create_topic(b, "txa")
    p = txn_producer(b.bootstrap, "tx-abort")
    p.begin_transaction()
    produce_all(p, "txa", [b"x0", b"x1", b"x2"])
    p.abort_transaction(30)
    p.begin_transaction()
    produce_all(p, "txa", [b"c0", b"c1"])
    p.commit_transaction(30)
    assert values(b.bootstrap, "txa") == [b"c0", b"c1"]
    assert values(b.bootstrap, "txa", committed=False) == [b"x0", b"x1", b"x2", b"c0", b"c1"]


def test_send_offsets_to_transaction_commits_the_group_offsets_with_the_output(broker_factory):
    b = broker_factory()
    create_topic(b, "eos-in")
    create_topic(b, "eos-out")
    plain = Producer({"bootstrap.servers": b.bootstrap})
    for i in range(10):
        plain.produce("eos-in", value=f"in{i}".encode(), partition=0)
    assert plain.flush(20) == 0

    consumer = Consumer({"bootstrap.servers": b.bootstrap, "group.id": "eos-group",
                         "enable.auto.commit": False, "auto.offset.reset": "earliest",
                         "isolation.level": "read_committed"})
    consumer.assign([TP("eos-in", 0, OFFSET_BEGINNING)])
    got = []
    deadline = time.monotonic() + 20
    while len(got) < 10 and time.monotonic() < deadline:
        m = consumer.poll(0.5)
        if m is not None and m.error() is None:
            got.append(m)
    assert len(got) == 10
    p = txn_producer(b.bootstrap, "tx-offsets")
    p.begin_transaction()
    for m in got:
        p.produce("eos-out", value=m.value().replace(b"in", b"out"), partition=0)
    p.send_offsets_to_transaction([TP("eos-in", 0, 10)], consumer.consumer_group_metadata(), 30)
    # Pending transactional offsets are not committed yet (asked without
    # require_stable, which would wait for the transaction to end).
    peek = Consumer({"bootstrap.servers": b.bootstrap, "group.id": "eos-group",
                     "isolation.level": "read_uncommitted"})
    try:
        assert peek.committed([TP("eos-in", 0)], timeout=10)[0].offset < 0
    finally:
        peek.close()
    p.commit_transaction(30)
    consumer.close()

    fresh = Consumer({"bootstrap.servers": b.bootstrap, "group.id": "eos-group",
                      "enable.auto.commit": False})
    try:
        assert fresh.committed([TP("eos-in", 0)], timeout=10)[0].offset == 10
    finally:
        fresh.close()
    assert values(b.bootstrap, "eos-out") == [f"out{i}".encode() for i in range(10)]


def test_second_producer_with_the_same_id_fences_the_first(broker_factory):
    b = broker_factory()
    create_topic(b, "txf")
    first = txn_producer(b.bootstrap, "tx-fence")
    first.begin_transaction()
    produce_all(first, "txf", [b"old0", b"old1"])
    second = txn_producer(b.bootstrap, "tx-fence")
    with pytest.raises(KafkaException) as raised:
        first.commit_transaction(30)
    err = raised.value.args[0]
    assert err.fatal(), f"expected a fatal fencing error, got {err}"
    # The first producer's open transaction was aborted by the fencing.
    second.begin_transaction()
    produce_all(second, "txf", [b"new0"])
    second.commit_transaction(30)
    assert values(b.bootstrap, "txf") == [b"new0"]
    assert values(b.bootstrap, "txf", committed=False) == [b"old0", b"old1", b"new0"]


def test_broker_aborts_a_transaction_left_open_past_its_timeout(broker_factory):
    b = broker_factory()
    create_topic(b, "txt")
    p = txn_producer(b.bootstrap, "tx-timeout", **{"transaction.timeout.ms": 2000,
                                                     "socket.timeout.ms": 2000})
    p.begin_transaction()
    produce_all(p, "txt", [b"stuck0", b"stuck1"])
    plain = Producer({"bootstrap.servers": b.bootstrap})
    plain.produce("txt", value=b"after", partition=0)
    assert plain.flush(20) == 0
    # The open transaction holds read_committed consumers back...
    assert values(b.bootstrap, "txt") == []
    # ...until the broker aborts it.
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if values(b.bootstrap, "txt") == [b"after"]:
            break
        time.sleep(0.5)
    assert values(b.bootstrap, "txt") == [b"after"]
    assert values(b.bootstrap, "txt", committed=False) == [b"stuck0", b"stuck1", b"after"]
    # The timed-out producer cannot commit what the broker aborted.
    with pytest.raises(KafkaException):
        p.commit_transaction(10)


def test_kafka_python_transactional_producer_commit_and_abort(broker_factory):
    from kafka import KafkaProducer

    b = broker_factory()
    create_topic(b, "txk")
    p = KafkaProducer(bootstrap_servers=b.bootstrap, transactional_id="tx-kafka-python",
                      request_timeout_ms=15000)
    try:
        p.init_transactions()
        p.begin_transaction()
        p.send("txk", value=b"k-aborted", partition=0)
        p.flush()
        p.abort_transaction()
        p.begin_transaction()
        p.send("txk", value=b"k-committed", partition=0)
        p.flush()
        p.commit_transaction()
    finally:
        p.close(timeout=10)
    assert values(b.bootstrap, "txk") == [b"k-committed"]
    assert values(b.bootstrap, "txk", committed=False) == [b"k-aborted", b"k-committed"]


def committed_offset(bootstrap, topic, group):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group,
                  "enable.auto.commit": False})
    try:
        return c.committed([TP(topic, 0)], timeout=10)[0].offset
    except KafkaException:
        return -1
    finally:
        c.close()


@pytest.mark.disk
def test_consume_transform_produce_is_exactly_once_across_worker_kill_and_broker_restart(
        broker_factory, tmp_path):
    import signal
    import subprocess
    import sys
    from pathlib import Path

    b = broker_factory()
    create_topic(b, "ctp-in")
    create_topic(b, "ctp-out")
    n = 400
    plain = Producer({"bootstrap.servers": b.bootstrap, "linger.ms": 5})
    for i in range(n):
        plain.produce("ctp-in", value=f"in-{i}".encode(), partition=0)
    assert plain.flush(20) == 0

    worker_py = Path(__file__).with_name("eos_worker.py")

    worker_log = tmp_path / "worker.log"

    def start_worker():
        # Output to a file: a full pipe would block the worker.
        with open(worker_log, "ab") as log:
            return subprocess.Popen([sys.executable, str(worker_py), b.bootstrap, "ctp-in",
                                     "ctp-out", "ctp-group", "ctp-tx", str(n)],
                                    stdout=log, stderr=subprocess.STDOUT)

    def wait_progress(worker, at_least, timeout=60):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if committed_offset(b.bootstrap, "ctp-in", "ctp-group") >= at_least:
                return
            assert worker.poll() is None, worker_log.read_text(errors="replace")[-5000:]
            time.sleep(0.2)
        raise AssertionError(f"worker did not commit past {at_least} within {timeout}s")

    worker = start_worker()
    try:
        wait_progress(worker, n // 4)
        worker.kill()
        worker.wait()
        worker = start_worker()
        wait_progress(worker, n // 2)
        # SIGKILL: the transaction in flight and the coordinator's state must
        # come back from the logs alone. (The worker runs with
        # metadata.recovery.strategy=none: librdkafka's re-bootstrap when
        # every broker is down can leave send_offsets_to_transaction hung,
        # confluentinc/librdkafka#5511.)
        b.restart(graceful=False)
        deadline = time.monotonic() + 120
        while worker.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        rc = worker.poll()
        if rc is None:
            worker.send_signal(signal.SIGUSR1)  # the worker prints its stack
            time.sleep(1)
            worker.kill()
            worker.wait()
        out = worker_log.read_text(errors="replace")
        assert rc == 0, f"worker did not finish cleanly: {rc}\n{out[-5000:]}"
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    assert committed_offset(b.bootstrap, "ctp-in", "ctp-group") == n
    got = values(b.bootstrap, "ctp-out")
    expected = [f"out-{i}".encode() for i in range(n)]
    dups = len(got) - len(set(got))
    assert dups == 0, f"{dups} output records duplicated"
    assert got == expected
    # The killed worker's unfinished transaction left aborted records behind
    # for read_uncommitted readers only (or none, if it died between transactions).
    assert len(values(b.bootstrap, "ctp-out", committed=False)) >= n
