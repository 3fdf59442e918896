"""Consumer groups of the KIP-848 protocol (`group.protocol=consumer`) with
confluent-kafka: the broker assigns (uniform by default), members reconcile
incrementally, leave, subscribe by regex, resume from committed offsets,
and AdminClient describes the group as a CONSUMER group."""

import time

from confluent_kafka import Consumer, ConsumerGroupState, ConsumerGroupType, KafkaError
from confluent_kafka.admin import AdminClient

from test_groups import create, produce_each

# Quick heartbeats and sessions from the broker's side: with the consumer
# protocol these are the broker's settings, not the client's.
BROKER_ARGS = [
    "--group-consumer-heartbeat-interval-ms", "500",
    "--group-consumer-session-timeout-ms", "6000",
]


def start(broker_factory):
    return broker_factory(extra_args=BROKER_ARGS)


def consumer(broker, group, **extra):
    conf = {"bootstrap.servers": broker.bootstrap, "group.id": group,
            "group.protocol": "consumer", "enable.auto.commit": False,
            "auto.offset.reset": "earliest", "topic.metadata.refresh.interval.ms": 1000}
    conf.update(extra)
    return Consumer(conf)


class Polling:
    """Polls consumers in turn, keeping what each received; every wait is
    bounded."""

    def __init__(self, consumers):
        self.consumers = list(consumers)
        self.got = {id(c): [] for c in self.consumers}
        self.errors = []

    def poll_until(self, pred, timeout=45.0, what="condition"):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for c in self.consumers:
                msg = c.poll(0.05)
                if msg is None:
                    continue
                if msg.error():
                    if msg.error().code() != KafkaError._PARTITION_EOF:
                        self.errors.append(msg.error())
                    continue
                self.got[id(c)].append((msg.topic(), msg.partition(), msg.offset(), msg.value()))
            if pred():
                return
        raise AssertionError(
            f"{what} not met in {timeout}s; assignments={self.assignments()} "
            f"received={[len(v) for v in self.got.values()]} errors={self.errors[:3]}")

    def poll_for(self, seconds):
        deadline = time.monotonic() + seconds
        self.poll_until(lambda: time.monotonic() >= deadline, timeout=seconds + 5)

    def assignments(self):
        return [sorted((tp.topic, tp.partition) for tp in c.assignment()) for c in self.consumers]

    def records(self):
        return [r for c in self.consumers for r in self.got[id(c)]]

    def split_evenly(self, total):
        sets = self.assignments()
        flat = [tp for s in sets for tp in s]
        sizes = {len(s) for s in sets}
        return len(flat) == total and len(set(flat)) == total and max(sizes) - min(sizes) <= 1


def close_all(consumers):
    for c in consumers:
        try:
            c.close()
        except Exception:
            pass


def test_three_consumers_split_six_partitions_and_a_leaver_hands_over(broker_factory):
    broker = start(broker_factory)
    create(broker, "kip848-six", 6)
    members = [consumer(broker, "kip848-app") for _ in range(3)]
    try:
        for c in members:
            c.subscribe(["kip848-six"])
        p = Polling(members)
        p.poll_until(lambda: p.split_evenly(6) and all(len(s) == 2 for s in p.assignments()),
                     what="a 2/2/2 split")
        produce_each(broker, "kip848-six", 6, 10)
        p.poll_until(lambda: len(p.records()) >= 60, what="60 records")
        keys = [(t, part, off) for t, part, off, _ in p.records()]
        assert len(keys) == 60 and len(set(keys)) == 60, "a record was read twice"
        # Each consumer read exactly its own partitions.
        for c, assigned in zip(members, p.assignments()):
            assert {(t, part) for t, part, _, _ in p.got[id(c)]} == set(assigned)
        for c in members:
            c.commit(asynchronous=False)

        # One leaves: its two partitions go to the other two (3 each), which
        # continue from its commits.
        leaver = members.pop()
        leaver.close()
        produce_each(broker, "kip848-six", 6, 5, tag="after")
        q = Polling(members)
        q.poll_until(lambda: q.split_evenly(6) and len(q.records()) >= 30,
                     what="the survivors taking over")
        keys = [(t, part, off) for t, part, off, _ in q.records()]
        assert len(set(keys)) == len(keys) == 30
        assert all(off >= 10 for _, _, off in keys), "committed records were read again"
    finally:
        close_all(members)


def test_regex_subscription_picks_up_a_new_topic(broker_factory):
    broker = start(broker_factory)
    create(broker, "orders-eu", 2)
    create(broker, "payments", 1)
    produce_each(broker, "orders-eu", 2, 3)
    produce_each(broker, "payments", 1, 3)
    c = consumer(broker, "kip848-regex")
    try:
        c.subscribe(["^orders-.*"])
        p = Polling([c])
        p.poll_until(lambda: len(p.records()) >= 6, what="orders-eu's records")
        create(broker, "orders-us", 3)
        produce_each(broker, "orders-us", 3, 2)
        p.poll_until(lambda: sum(1 for r in p.records() if r[0] == "orders-us") >= 6,
                     timeout=60, what="orders-us picked up")
        assert {r[0] for r in p.records()} == {"orders-eu", "orders-us"}
        assert len(p.records()) == 12
    finally:
        close_all([c])


def test_committed_offsets_are_resumed_by_a_restarted_consumer(broker_factory):
    broker = start(broker_factory)
    create(broker, "kip848-resume", 2)
    produce_each(broker, "kip848-resume", 2, 5)
    c = consumer(broker, "kip848-resume-app")
    try:
        c.subscribe(["kip848-resume"])
        p = Polling([c])
        p.poll_until(lambda: len(p.records()) >= 10, what="the first 10 records")
        c.commit(asynchronous=False)
    finally:
        close_all([c])
    produce_each(broker, "kip848-resume", 2, 3, tag="later")
    d = consumer(broker, "kip848-resume-app")
    try:
        d.subscribe(["kip848-resume"])
        q = Polling([d])
        q.poll_until(lambda: len(q.records()) >= 6, what="the 6 new records")
        q.poll_for(2)  # nothing more arrives
        assert sorted(v for _, _, _, v in q.records()) == sorted(
            f"later-{part}-{i}".encode() for part in range(2) for i in range(3))
    finally:
        close_all([d])


def test_admin_describes_a_consumer_protocol_group(broker_factory):
    broker = start(broker_factory)
    create(broker, "kip848-desc", 4)
    members = [consumer(broker, "kip848-desc-app", **{"group.remote.assignor": "range"})
               for _ in range(2)]
    try:
        for c in members:
            c.subscribe(["kip848-desc"])
        p = Polling(members)
        p.poll_until(lambda: p.split_evenly(4), what="a 2/2 split")
        admin = AdminClient({"bootstrap.servers": broker.bootstrap})
        deadline = time.monotonic() + 30
        while True:
            # Keep heartbeating while waiting for the group to be Stable.
            p.poll_for(1)
            d = admin.describe_consumer_groups(["kip848-desc-app"])["kip848-desc-app"].result(
                timeout=10)
            if d.state == ConsumerGroupState.STABLE or time.monotonic() > deadline:
                break
        assert d.type == ConsumerGroupType.CONSUMER
        assert d.state == ConsumerGroupState.STABLE
        assert d.partition_assignor == "range"
        assert len(d.members) == 2
        described = sorted(tp.partition for m in d.members for tp in m.assignment.topic_partitions)
        assert described == [0, 1, 2, 3]
        listed = admin.list_consumer_groups().result(timeout=10)
        mine = [g for g in listed.valid if g.group_id == "kip848-desc-app"]
        assert len(mine) == 1 and mine[0].type == ConsumerGroupType.CONSUMER
    finally:
        close_all(members)
