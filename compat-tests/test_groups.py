"""Consumer groups with real clients: balanced assignment, takeover after a
member dies, the three assignors, static membership, committed offsets
across restarts, auto.offset.reset, group admin, OffsetDelete, kcat -G,
kafka-python, and the raw records of __consumer_offsets."""

import os
import signal
import struct
import subprocess
import sys
import time

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

import kafka_wire as kw
from clients import assert_delivered, c_produce, c_producer, kcat

# Short timeouts keep rebalances and takeovers quick.
FAST = {
    "session.timeout.ms": 6000,
    "heartbeat.interval.ms": 500,
    "max.poll.interval.ms": 20000,
    "enable.auto.commit": False,
    "auto.offset.reset": "earliest",
    "topic.metadata.refresh.interval.ms": 2000,
}


def admin(broker):
    return AdminClient({"bootstrap.servers": broker.bootstrap})


def create(broker, topic, partitions):
    a = admin(broker)
    fs = a.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)])
    for f in fs.values():
        f.result(timeout=10)


def produce_each(broker, topic, partitions, per_partition, tag="v"):
    p = c_producer(broker.bootstrap)
    recs = [{"value": f"{tag}-{part}-{i}".encode(), "partition": part}
            for part in range(partitions) for i in range(per_partition)]
    assert_delivered(c_produce(p, topic, recs))


def consumer(broker, group, **extra):
    conf = {"bootstrap.servers": broker.bootstrap, "group.id": group, **FAST}
    conf.update(extra)
    return Consumer(conf)


class Tracker:
    """Polls several consumers in turn and keeps what each one received."""

    def __init__(self, consumers):
        self.consumers = consumers
        self.got = {id(c): [] for c in consumers}
        self.errors = []

    def poll_until(self, pred, timeout=30.0):
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
                self.got[id(c)].append((msg.partition(), msg.offset(), msg.value()))
            if pred():
                return
        raise AssertionError(
            f"condition not met in {timeout}s; assignments="
            f"{[sorted(tp.partition for tp in c.assignment()) for c in self.consumers]} "
            f"received={[len(v) for v in self.got.values()]} errors={self.errors[:3]}")

    def poll_for(self, seconds):
        deadline = time.monotonic() + seconds
        self.poll_until(lambda: time.monotonic() >= deadline, timeout=seconds + 5)

    def assignments(self):
        return [sorted(tp.partition for tp in c.assignment()) for c in self.consumers]

    def balanced(self, partitions):
        sets = self.assignments()
        flat = [p for s in sets for p in s]
        sizes = {len(s) for s in sets}
        return sorted(flat) == list(range(partitions)) and max(sizes) - min(sizes) <= 1

    def received(self, c):
        return self.got[id(c)]

    def total(self):
        return sum(len(v) for v in self.got.values())


def close_all(consumers):
    for c in consumers:
        try:
            c.close()
        except Exception:
            pass


VICTIM = r"""
import sys
from confluent_kafka import Consumer, KafkaError
bootstrap, group, topic = sys.argv[1:4]
c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "session.timeout.ms": 6000,
              "heartbeat.interval.ms": 500, "enable.auto.commit": False,
              "auto.offset.reset": "earliest", "enable.partition.eof": True})
c.subscribe([topic])
seen = {}
eof = set()
while True:
    m = c.poll(0.1)
    parts = {tp.partition for tp in c.assignment()}
    if m is not None:
        if m.error():
            if m.error().code() == KafkaError._PARTITION_EOF:
                eof.add(m.partition())
        else:
            seen.setdefault(m.partition(), []).append(m.offset())
            eof.discard(m.partition())
    if parts and parts <= eof and all(p in seen for p in parts):
        c.commit(asynchronous=False)
        print("READY", ",".join(str(p) for p in sorted(parts)),
              sum(len(seen[p]) for p in parts), flush=True)
        eof = set()
"""


def test_three_consumers_share_six_partitions_and_survivors_take_over(broker):
    create(broker, "six", 6)
    produce_each(broker, "six", 6, 10)
    # The victim starts first; the initial rebalance delay (1 s, extended by
    # each newcomer) lets all three land in the first generation.
    victim = subprocess.Popen([sys.executable, "-c", VICTIM, broker.bootstrap, "app", "six"],
                              stdout=subprocess.PIPE, text=True)
    time.sleep(0.3)
    a, b = consumer(broker, "app"), consumer(broker, "app")
    d = None
    try:
        a.subscribe(["six"])
        b.subscribe(["six"])
        t = Tracker([a, b])
        # Settle: both local consumers hold 2 partitions each and have read
        # everything on them; the victim holds the other 2.
        t.poll_until(lambda: t.assignments() and all(len(s) == 2 for s in t.assignments())
                     and all(len({p for p, _, _ in t.received(c) if p in s}) == 2
                             for c, s in zip(t.consumers, t.assignments())), timeout=60)
        victim_parts = None
        os.set_blocking(victim.stdout.fileno(), False)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            t.poll_until(lambda: True, timeout=0.2)
            line = victim.stdout.readline()
            if line.startswith("READY"):
                _, parts, _count = line.split()
                victim_parts = sorted(int(p) for p in parts.split(","))
                local = t.assignments()
                if sorted(victim_parts + local[0] + local[1]) == list(range(6)):
                    break
        assert victim_parts is not None and len(victim_parts) == 2
        local = t.assignments()
        assert sorted(victim_parts + local[0] + local[1]) == list(range(6)), (victim_parts, local)
        # Every record read once among the local consumers' partitions.
        mine = [(p, o) for c in t.consumers for p, o, _ in t.received(c) if p not in victim_parts]
        assert len(mine) == len(set(mine))
        a.commit(asynchronous=False)
        b.commit(asynchronous=False)

        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=10)
        produce_each(broker, "six", 6, 3, tag="after")
        start = time.monotonic()
        t.poll_until(lambda: t.balanced(6) and all(len(s) == 3 for s in t.assignments())
                     and {p for c in t.consumers for p, o, _ in t.received(c)
                          if o >= 10} == set(range(6))
                     and all(sum(1 for c in t.consumers for p, o, _ in t.received(c)
                                 if p == vp and o >= 10) >= 3 for vp in victim_parts),
                     timeout=40)
        assert time.monotonic() - start < 30
        # The survivors continued the victim's partitions from its commits:
        # nothing below offset 10 was read again.
        reread = [(p, o) for c in t.consumers for p, o, _ in t.received(c)
                  if p in victim_parts and o < 10]
        assert reread == []

        # A newcomer: the load is spread over three again.
        a.commit(asynchronous=False)
        b.commit(asynchronous=False)
        d = consumer(broker, "app")
        d.subscribe(["six"])
        t = Tracker([a, b, d])
        t.poll_until(lambda: t.balanced(6) and all(len(s) == 2 for s in t.assignments()), timeout=40)
    finally:
        if victim.poll() is None:
            victim.kill()
            victim.wait()
        victim.stdout.close()
        close_all([c for c in (a, b, d) if c is not None])


@pytest.mark.parametrize("assignor", ["range", "roundrobin", "cooperative-sticky"])
def test_assignors_spread_partitions_and_rebalance_on_join(broker, assignor):
    topic = f"as-{assignor}"
    create(broker, topic, 4)
    produce_each(broker, topic, 4, 5)
    conf = {"partition.assignment.strategy": assignor}
    first = [consumer(broker, f"g-{assignor}", **conf) for _ in range(2)]
    third = None
    try:
        for c in first:
            c.subscribe([topic])
        t = Tracker(first)
        t.poll_until(lambda: t.balanced(4) and t.total() >= 20, timeout=40)
        assert sorted((p, o) for c in first for p, o, _ in t.received(c)) == \
            sorted((p, o) for p in range(4) for o in range(5))
        for c in first:
            c.commit(asynchronous=False)
        third = consumer(broker, f"g-{assignor}", **conf)
        third.subscribe([topic])
        t3 = Tracker(first + [third])
        t3.poll_until(lambda: t3.balanced(4) and all(t3.assignments()), timeout=40)
        sizes = sorted(len(s) for s in t3.assignments())
        assert sizes == [1, 1, 2]
        a = admin(broker)
        desc = a.describe_consumer_groups([f"g-{assignor}"])[f"g-{assignor}"].result(timeout=10)
        assert desc.partition_assignor == assignor
        assert len(desc.members) == 3
    finally:
        close_all(first + ([third] if third else []))


def test_static_member_restart_keeps_assignment_without_rebalance(broker):
    create(broker, "stat", 2)
    revoked = []

    def on_revoke(_c, parts):
        revoked.append(parts)

    s1 = consumer(broker, "static", **{"group.instance.id": "one"})
    s2 = consumer(broker, "static", **{"group.instance.id": "two"})
    try:
        s1.subscribe(["stat"])
        s2.subscribe(["stat"], on_revoke=on_revoke)
        t = Tracker([s1, s2])
        t.poll_until(lambda: t.balanced(2) and all(t.assignments()), timeout=40)
        before = t.assignments()[0]
        a = admin(broker)
        desc = a.describe_consumer_groups(["static"])["static"].result(timeout=10)
        assert sorted(m.group_instance_id for m in desc.members) == ["one", "two"]
        revoked.clear()
        # A static member leaves no LeaveGroup behind on close.
        s1.close()
        s1 = consumer(broker, "static", **{"group.instance.id": "one"})
        s1.subscribe(["stat"])
        t = Tracker([s1, s2])
        t.poll_until(lambda: t.assignments()[0] == before, timeout=20)
        t.poll_for(3)
        assert revoked == [], "s2 saw a rebalance"
        assert t.assignments()[1] and t.balanced(2)

        # A second live process with the same instance id fences the first.
        dup = consumer(broker, "static", **{"group.instance.id": "one"})
        dup.subscribe(["stat"])
        fenced = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not fenced:
            dup.poll(0.05)
            s2.poll(0.05)
            try:
                m = s1.poll(0.1)
            except KafkaException as e:
                fenced.append(e.args[0])
                break
            # librdkafka raises fencing as a fatal error (_FATAL) naming the cause.
            if m is not None and m.error() and m.error().code() in (
                    KafkaError._FATAL, KafkaError.FENCED_INSTANCE_ID):
                fenced.append(m.error())
        assert fenced and "fenced" in str(fenced[0]).lower()
        assert fenced, "the older instance was not fenced"
        close_all([dup])
    finally:
        close_all([s1, s2])


@pytest.mark.disk
def test_commit_and_resume_after_broker_restart(broker):
    create(broker, "resume", 1)
    produce_each(broker, "resume", 1, 10)
    c = consumer(broker, "resumer")
    c.subscribe(["resume"])
    t = Tracker([c])
    t.poll_until(lambda: t.total() >= 4)
    last = t.received(c)[3]
    c.commit(offsets=[TopicPartition("resume", 0, last[1] + 1, metadata="cp-1")], asynchronous=False)
    c.close()
    broker.restart()
    c = consumer(broker, "resumer")
    try:
        committed = c.committed([TopicPartition("resume", 0)], timeout=10)
        assert committed[0].offset == 4
        assert committed[0].metadata == "cp-1"
        c.subscribe(["resume"])
        t = Tracker([c])
        t.poll_until(lambda: t.total() >= 6)
        assert [o for _, o, _ in t.received(c)] == list(range(4, 10))
    finally:
        c.close()


def test_auto_offset_reset_latest_and_error(broker):
    create(broker, "reset", 1)
    produce_each(broker, "reset", 1, 3, tag="old")
    late = consumer(broker, "late", **{"auto.offset.reset": "latest"})
    strict = consumer(broker, "strict", **{"auto.offset.reset": "error"})
    try:
        late.subscribe(["reset"])
        t = Tracker([late])
        t.poll_until(lambda: t.assignments() == [[0]], timeout=30)
        t.poll_for(1.5)
        produce_each(broker, "reset", 1, 1, tag="new")
        t.poll_until(lambda: t.total() >= 1, timeout=20)
        assert [v for _, _, v in t.received(late)] == [b"new-0-0"]

        strict.subscribe(["reset"])
        errors = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not errors:
            m = strict.poll(0.2)
            if m is not None and m.error():
                errors.append(m.error())
            elif m is not None:
                raise AssertionError(f"read {m.value()} without a committed offset")
        assert errors and errors[0].code() == KafkaError._AUTO_OFFSET_RESET
    finally:
        close_all([late, strict])


def test_kafka_python_group_consumer_commits_and_resumes(broker):
    from kafka import KafkaConsumer
    from kafka.errors import NoOffsetForPartitionError
    create(broker, "kp", 2)
    produce_each(broker, "kp", 2, 5)

    def run(group, reset="earliest", expect=None):
        kc = KafkaConsumer("kp", bootstrap_servers=broker.bootstrap, group_id=group,
                           auto_offset_reset=reset, enable_auto_commit=False,
                           session_timeout_ms=6000, heartbeat_interval_ms=500,
                           consumer_timeout_ms=4000)
        try:
            got = []
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                batch = kc.poll(timeout_ms=200)
                for recs in batch.values():
                    got.extend((r.partition, r.offset) for r in recs)
                if expect is not None and len(got) >= expect:
                    break
                if expect == 0 and kc.assignment() and time.monotonic() > deadline - 25:
                    break
            kc.commit()
            return got
        finally:
            kc.close()

    first = run("kpg", expect=10)
    assert sorted(first) == sorted((p, o) for p in range(2) for o in range(5))
    assert run("kpg", expect=0) == []
    produce_each(broker, "kp", 2, 1, tag="more")
    assert sorted(run("kpg", expect=2)) == [(0, 5), (1, 5)]

    kc = KafkaConsumer("kp", bootstrap_servers=broker.bootstrap, group_id="kp-none",
                       auto_offset_reset="none", session_timeout_ms=6000,
                       heartbeat_interval_ms=500)
    try:
        with pytest.raises(NoOffsetForPartitionError):
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                kc.poll(timeout_ms=200)
    finally:
        kc.close()


def test_kcat_balanced_consumer(broker):
    create(broker, "kc", 3)
    produce_each(broker, "kc", 3, 4)
    # (-o would make kcat seek on every assignment; the reset policy only
    # applies where nothing is committed.)
    args = ["-G", "kcg", "-X", "auto.offset.reset=earliest", "-e", "-f", "%p:%o\n", "-X", "session.timeout.ms=6000",
            "-X", "heartbeat.interval.ms=500", "kc"]
    out = kcat(broker.bootstrap, *args).stdout.split()
    assert sorted(out) == sorted(f"{p}:{o}" for p in range(3) for o in range(4))
    # Offsets were committed: a second run reads nothing.
    assert kcat(broker.bootstrap, *args).stdout.split() == []


def test_simple_consumer_commits_without_membership(broker):
    create(broker, "simple", 2)
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "assigner",
                  "enable.auto.commit": False})
    try:
        c.assign([TopicPartition("simple", 0, 0), TopicPartition("simple", 1, 0)])
        c.commit(offsets=[TopicPartition("simple", 0, 7, metadata="m7"),
                          TopicPartition("simple", 1, 3)], asynchronous=False)
        got = c.committed([TopicPartition("simple", 0), TopicPartition("simple", 1)], timeout=10)
        assert [(tp.offset, tp.metadata) for tp in got] == [(7, "m7"), (3, None)] or \
            [(tp.offset, tp.metadata) for tp in got] == [(7, "m7"), (3, "")]
    finally:
        c.close()


def test_admin_list_describe_offsets_and_delete_groups(broker):
    from confluent_kafka import ConsumerGroupTopicPartitions
    create(broker, "adm", 2)
    produce_each(broker, "adm", 2, 5)
    live = consumer(broker, "live-group", **{"client.id": "live-client"})
    idle = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "idle-group"})
    try:
        idle.commit(offsets=[TopicPartition("adm", 0, 2), TopicPartition("adm", 1, 4)],
                    asynchronous=False)
        live.subscribe(["adm"])
        t = Tracker([live])
        t.poll_until(lambda: t.assignments() == [[0, 1]] and t.total() >= 10)
        a = admin(broker)
        listed = a.list_consumer_groups().result(timeout=10)
        states = {g.group_id: (str(g.state), g.is_simple_consumer_group) for g in listed.valid}
        assert "STABLE" in states["live-group"][0]
        assert "EMPTY" in states["idle-group"][0]
        desc = a.describe_consumer_groups(["live-group"])["live-group"].result(timeout=10)
        (member,) = desc.members
        assert member.client_id == "live-client"
        assert member.host.lstrip("/") in ("127.0.0.1", "localhost")
        assert sorted(tp.partition for tp in member.assignment.topic_partitions) == [0, 1]
        # Committed offsets give the lag against the log end.
        res = a.list_consumer_group_offsets([ConsumerGroupTopicPartitions("idle-group")])
        offsets = {tp.partition: tp.offset for tp in res["idle-group"].result(timeout=10).topic_partitions}
        assert offsets == {0: 2, 1: 4}
        _, high = idle.get_watermark_offsets(TopicPartition("adm", 0), timeout=10)
        assert high - offsets[0] == 3

        # OffsetDelete over the wire: partition 0 of the idle group.
        with kw.Conn(broker.bootstrap) as conn:
            body = (kw.Writer().string("idle-group")
                    .array(["adm"], lambda w, t: w.string(t).array([0], lambda w2, p: w2.i32(p)))
                    .bytes())
            r = conn.request(47, 0, body)
            assert r.i16() == 0
            r.i32()
            topics = r.array(lambda r2: (r2.string(), r2.array(lambda r3: (r3.i32(), r3.i16()))))
            assert topics == [("adm", [(0, 0)])]
        res = a.list_consumer_group_offsets([ConsumerGroupTopicPartitions("idle-group")])
        offsets = {tp.partition: tp.offset for tp in res["idle-group"].result(timeout=10).topic_partitions}
        assert offsets == {1: 4}
        # Reset (AlterConsumerGroupOffsets is an OffsetCommit outside membership).
        altered = a.alter_consumer_group_offsets([ConsumerGroupTopicPartitions(
            "idle-group", [TopicPartition("adm", 1, 1)])])
        altered["idle-group"].result(timeout=10)
        res = a.list_consumer_group_offsets([ConsumerGroupTopicPartitions("idle-group")])
        offsets = {tp.partition: tp.offset for tp in res["idle-group"].result(timeout=10).topic_partitions}
        assert offsets == {1: 1}

        deleted = a.delete_consumer_groups(["idle-group", "live-group"])
        deleted["idle-group"].result(timeout=10)
        with pytest.raises(KafkaException) as err:
            deleted["live-group"].result(timeout=10)
        assert err.value.args[0].code() == KafkaError.NON_EMPTY_GROUP
        names = {g.group_id for g in a.list_consumer_groups().result(timeout=10).valid}
        assert "idle-group" not in names and "live-group" in names
    finally:
        close_all([live, idle])


def java_hash(s):
    h = 0
    for unit in struct.unpack(f">{len(s.encode('utf-16-be')) // 2}H", s.encode("utf-16-be")):
        h = (h * 31 + unit) & 0xFFFFFFFF
    return h - (1 << 32) if h >= 1 << 31 else h


def decode_string(buf, pos):
    (n,) = struct.unpack_from(">h", buf, pos)
    pos += 2
    if n < 0:
        return None, pos
    return buf[pos:pos + n].decode(), pos + n


def test_consumer_offsets_records_use_kafka_schemas(broker_factory):
    broker = broker_factory(extra_args=["--offsets-topic-num-partitions", "7"])
    create(broker, "raw", 1)
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "rawgroup",
                  "session.timeout.ms": 6000, "heartbeat.interval.ms": 500,
                  "enable.auto.commit": False})
    try:
        c.subscribe(["raw"])
        t = Tracker([c])
        t.poll_until(lambda: t.assignments() == [[0]])
        c.commit(offsets=[TopicPartition("raw", 0, 42, metadata="hello")], asynchronous=False)
    finally:
        c.close()
    a = admin(broker)
    md = a.list_topics("__consumer_offsets", timeout=10)
    assert len(md.topics["__consumer_offsets"].partitions) == 7
    expected_partition = abs(java_hash("rawgroup")) % 7
    reader = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "raw-reader",
                       "enable.partition.eof": True, "enable.auto.commit": False})
    try:
        reader.assign([TopicPartition("__consumer_offsets", p, 0) for p in range(7)])
        records, eof = [], set()
        deadline = time.monotonic() + 20
        while len(eof) < 7 and time.monotonic() < deadline:
            m = reader.poll(0.2)
            if m is None:
                continue
            if m.error():
                if m.error().code() == KafkaError._PARTITION_EOF:
                    eof.add(m.partition())
                continue
            records.append((m.partition(), m.key(), m.value()))
    finally:
        reader.close()
    assert records and {p for p, _, _ in records} == {expected_partition}
    offsets, groups = [], []
    for _p, key, value in records:
        (kv,) = struct.unpack_from(">h", key)
        if kv in (0, 1):
            group, pos = decode_string(key, 2)
            topic, pos = decode_string(key, pos)
            (partition,) = struct.unpack_from(">i", key, pos)
            if value is None:
                continue
            (vv,) = struct.unpack_from(">h", value)
            assert vv == 3
            offset, epoch = struct.unpack_from(">qi", value, 2)
            meta, pos = decode_string(value, 14)
            # librdkafka sends the metadata string with its C terminator.
            meta = meta.rstrip("\0")
            (ts,) = struct.unpack_from(">q", value, pos)
            offsets.append((group, topic, partition, offset, meta))
            assert ts > 1_600_000_000_000
        elif kv == 2:
            group, _ = decode_string(key, 2)
            if value is None:
                continue
            (vv,) = struct.unpack_from(">h", value)
            assert vv == 3
            ptype, pos = decode_string(value, 2)
            (generation,) = struct.unpack_from(">i", value, pos)
            protocol, pos = decode_string(value, pos + 4)
            groups.append((group, ptype, generation, protocol))
        else:
            raise AssertionError(f"unknown key version {kv}")
    assert ("rawgroup", "raw", 0, 42, "hello") in offsets
    assert any(g[0] == "rawgroup" and g[1] == "consumer" and g[2] >= 1 and g[3] == "range"
               for g in groups), groups
