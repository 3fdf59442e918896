"""Crash safety: a real wharf process is killed with SIGKILL at random
moments while confluent-kafka produces with acks=all, then restarted; every
acknowledged record must be readable at the offset it was acknowledged
with, and no record may appear twice."""

import os
import random
import time

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from clients import c_consume

pytestmark = pytest.mark.timeout(180)

ROUNDS = int(os.environ.get("WHARF_CRASH_ROUNDS", "20"))
PARTITIONS = 2


def producer(bootstrap):
    return Producer({
        "bootstrap.servers": bootstrap,
        "acks": "all",
        "linger.ms": 2,
        # No retries: each record is sent at most once, so any duplicate in
        # the log is the broker's doing.
        "message.send.max.retries": 0,
        "enable.idempotence": False,
        "message.timeout.ms": 600,
        "socket.timeout.ms": 1000,
        "reconnect.backoff.ms": 20,
        "reconnect.backoff.max.ms": 100,
        # Connection-refused noise while the broker is down is expected.
        "log_level": 2,
    })


@pytest.mark.parametrize("fsync", [False, True], ids=["page-cache", "fsync-before-ack"])
def test_sigkill_under_acks_all_load_loses_no_acknowledged_record(broker_factory, fsync):
    args = ["--fsync-before-ack"] if fsync else []
    b = broker_factory(extra_args=args)
    a = AdminClient({"bootstrap.servers": b.bootstrap, "log_level": 2})
    a.create_topics([NewTopic("crash", num_partitions=PARTITIONS, replication_factor=1)],
                    request_timeout=15)["crash"].result(timeout=20)
    del a
    rng = random.Random(int.from_bytes(os.urandom(4), "big"))
    acked = {}  # value -> (partition, offset)
    failed = 0
    rounds = ROUNDS // 2 if fsync else ROUNDS
    for rnd in range(rounds):
        p = producer(b.bootstrap)

        def on_delivery(err, msg):
            nonlocal failed
            if err is None:
                acked[msg.value()] = (msg.partition(), msg.offset())
            else:
                failed += 1

        kill_at = time.monotonic() + rng.uniform(0.05, 0.5)
        i = 0
        killed = False
        while True:
            if not killed and time.monotonic() >= kill_at:
                b.stop(graceful=False)
                killed = True
                stop_at = time.monotonic() + 0.05
            if killed and time.monotonic() >= stop_at:
                break
            try:
                p.produce("crash", value=f"r{rnd}-{i}".encode(), partition=i % PARTITIONS,
                          on_delivery=on_delivery)
                i += 1
            except BufferError:
                pass
            # Bursts of 100 records every few ms: steady load, bounded volume.
            p.poll(0.003 if i % 100 == 0 else 0)
        p.flush(10)
        assert len(p) == 0, "delivery reports still pending"
        del p
        b.start()

    assert len(acked) > 100, f"too little load to mean anything: {len(acked)} acked"
    seen = {}
    for part in range(PARTITIONS):
        for m in c_consume(b.bootstrap, "crash", partition=part, timeout=30):
            v = m.value()
            assert v not in seen, f"{v!r} stored twice: {seen[v]} and {(part, m.offset())}"
            seen[v] = (part, m.offset())
    lost = {v: where for v, where in acked.items() if seen.get(v) != where}
    assert not lost, (f"{len(lost)} of {len(acked)} acknowledged records missing or moved, "
                      f"e.g. {list(lost.items())[:5]} (found: {[seen.get(v) for v in list(lost)[:5]]})")
    print(f"{rounds} SIGKILLs: {len(acked)} acknowledged records all present; "
          f"{failed} unacknowledged; {len(seen)} stored")
