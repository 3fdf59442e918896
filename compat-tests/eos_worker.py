"""A consume-transform-produce worker for test_transactions.py, run as its
own process so the test can kill it with SIGKILL.

Reads `<in_topic>` partition 0 (read_committed) from the offset its group
committed, and for each batch of input records, in one transaction,
writes `out-<n>` for every `in-<n>` to `<out_topic>` and commits the input
offsets with send_offsets_to_transaction. Exits 0 once the committed
offset reaches `<count>`; exits 3 on a fatal error (e.g. it was fenced).

usage: eos_worker.py BOOTSTRAP IN_TOPIC OUT_TOPIC GROUP TXN_ID COUNT
"""

import faulthandler
import signal
import sys
import time

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, Producer
from confluent_kafka import TopicPartition as TP


def main():
    # `kill -USR1` prints where the worker is, to diagnose a hang.
    faulthandler.register(signal.SIGUSR1)
    bootstrap, in_topic, out_topic, group, txn_id, count = sys.argv[1:7]
    count = int(count)
    consumer = Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": group,
        "enable.auto.commit": False,
        "isolation.level": "read_committed",
        "fetch.wait.max.ms": 100,
        "socket.timeout.ms": 5000,
        "metadata.recovery.strategy": "none",
    })
    producer = Producer({
        "bootstrap.servers": bootstrap,
        "transactional.id": txn_id,
        "linger.ms": 5,
        "socket.timeout.ms": 5000,
        "transaction.timeout.ms": 20000,
        # Without re-bootstrapping when every broker is down, librdkafka keeps
        # its broker handles across the restart (see the test's note on
        # librdkafka#5511).
        "metadata.recovery.strategy": "none",
    })
    producer.init_transactions(60)

    def rewind():
        """Position the consumer at the group's committed offset."""
        while True:
            try:
                committed = consumer.committed([TP(in_topic, 0)], timeout=10)[0].offset
                break
            except KafkaException:
                time.sleep(0.5)
        start = committed if committed >= 0 else OFFSET_BEGINNING
        consumer.assign([TP(in_topic, 0, start)])
        return committed

    position = max(rewind(), 0)
    while position < count:
        batch = []
        deadline = time.monotonic() + 0.5
        while len(batch) < 7 and time.monotonic() < deadline:
            m = consumer.poll(0.1)
            if m is not None and m.error() is None:
                batch.append(m)
        if not batch:
            continue
        try:
            producer.begin_transaction()
            for m in batch:
                producer.produce(out_topic, value=m.value().replace(b"in-", b"out-"), partition=0)
            next_offset = batch[-1].offset() + 1
            producer.send_offsets_to_transaction(
                [TP(in_topic, 0, next_offset)], consumer.consumer_group_metadata(), 30)
            while True:
                try:
                    producer.commit_transaction(30)
                    break
                except KafkaException as e:
                    if e.args[0].retriable():
                        continue
                    raise
            position = next_offset
        except KafkaException as e:
            err = e.args[0]
            if err.fatal():
                print(f"fatal: {err}", flush=True)
                sys.exit(3)
            print(f"aborting after: {err}", flush=True)
            while True:
                try:
                    producer.abort_transaction(30)
                    break
                except KafkaException as abort_err:
                    if abort_err.args[0].fatal():
                        sys.exit(3)
                    time.sleep(0.5)
            position = max(rewind(), 0)
        time.sleep(0.02)
    producer.flush(10)
    consumer.close()


if __name__ == "__main__":
    main()
