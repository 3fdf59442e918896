"""Partition replication across three wharf brokers, judged by real clients
(confluent-kafka) and by the brokers' own segment files: byte-identical
copies, acks=all answered only once the ISR has the records,
min.insync.replicas, ISR shrink and expansion, and a kill -9 loop of
partition leaders under an idempotent acks=all producer and a consumer
group, checked for lost, duplicated or reordered records and for committed
offsets going backwards."""

import os
import signal
import socket
import threading
import time

import pytest
from confluent_kafka import (Consumer, ElectionType, KafkaError, KafkaException, Producer,
                             TopicPartition)
from confluent_kafka.admin import AdminClient, NewTopic, OffsetSpec

pytestmark = pytest.mark.timeout(600)

KILL_CYCLES = int(os.environ.get("WHARF_KILL_CYCLES", "20"))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_cluster(broker_factory, session_ms=2000, lag_ms=3000, extra=(), extra_for=None):
    """Three brokers (ids 1-3, all voters); `extra_for` maps a node id to
    flags for that broker only."""
    extra_for = extra_for or {}
    ports = [free_port() for _ in range(3)]
    voters = ",".join(f"{i + 1}@127.0.0.1:{p}" for i, p in enumerate(ports))
    return [
        broker_factory(node_id=i + 1, extra_args=[
            "--controller-listen", f"127.0.0.1:{ports[i]}",
            "--controller-quorum-voters", voters,
            "--broker-heartbeat-interval-ms", "300",
            "--broker-session-timeout-ms", str(session_ms),
            "--replica-lag-time-max-ms", str(lag_ms),
            *extra,
            *extra_for.get(i + 1, ()),
        ])
        for i in range(3)
    ]


@pytest.fixture
def cluster(broker_factory):
    return start_cluster(broker_factory)


def poll_for(fetch, ok, timeout, what):
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            last = fetch()
        except KafkaException as e:
            last = e
        if not isinstance(last, Exception) and ok(last):
            return last
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}; last seen: {last!r}")
        time.sleep(0.1)


def bootstrap(cluster, only=None):
    brokers = cluster if only is None else [cluster[i] for i in only]
    return ",".join(b.bootstrap for b in brokers)


def partition_state(broker, topic, partition=0):
    """(leader, replicas, isr) of a partition as `broker` reports it."""
    admin = AdminClient({"bootstrap.servers": broker.bootstrap, "socket.timeout.ms": 3000})
    md = admin.list_topics(topic=topic, timeout=5)
    t = md.topics.get(topic)
    if t is None or t.error is not None or partition not in t.partitions:
        return None
    p = t.partitions[partition]
    return p.leader, sorted(p.replicas), sorted(p.isrs)


def wait_for_brokers(cluster, count=3):
    admin = AdminClient({"bootstrap.servers": bootstrap(cluster), "socket.timeout.ms": 3000})
    poll_for(lambda: admin.list_topics(timeout=5), lambda md: len(md.brokers) >= count, 30,
             f"{count} brokers registered")


def create_topic(cluster, name, partitions=1, rf=3, config=None):
    wait_for_brokers(cluster, rf)
    admin = AdminClient({"bootstrap.servers": bootstrap(cluster)})
    futures = admin.create_topics([NewTopic(name, partitions, rf, config=config or {})],
                                  operation_timeout=30)
    futures[name].result(timeout=40)
    for b in cluster:
        if b.is_running():
            poll_for(lambda b=b: partition_state(b, name),
                     lambda s: s and s[0] in (1, 2, 3) and len(s[2]) == rf, 30,
                     f"{name} with a leader and a full ISR on {b.bootstrap}")


def log_bytes(broker, topic, partition=0):
    """The partition's segment files, concatenated in offset order."""
    d = broker.data_dir / f"{topic}-{partition}"
    if not d.exists():
        return None
    return b"".join(p.read_bytes() for p in sorted(d.glob("*.log")))


def wait_identical_copies(cluster, topic, partition=0, timeout=30):
    """Waits until every broker's copy of the partition holds the same
    bytes; returns them."""
    def copies():
        return [log_bytes(b, topic, partition) for b in cluster]
    found = poll_for(copies, lambda c: c[0] and all(x == c[0] for x in c), timeout,
                     f"identical copies of {topic}-{partition}")
    return found[0]


def consume_all(cluster, topic, expect, timeout=60, partition=0):
    c = Consumer({"bootstrap.servers": bootstrap(cluster), "group.id": f"check-{time.time()}",
                  "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    try:
        c.assign([TopicPartition(topic, partition, 0)])
        out = []
        deadline = time.monotonic() + timeout
        while len(out) < expect and time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is None:
                continue
            if m.error():
                if m.error().code() == KafkaError._PARTITION_EOF:
                    continue
                raise AssertionError(f"consumer error: {m.error()}")
            out.append((m.offset(), m.value()))
        return out
    finally:
        c.close()


def produce(cluster, topic, values, acks="all", idempotent=True, timeout=60):
    p = Producer({"bootstrap.servers": bootstrap(cluster), "acks": acks,
                  "enable.idempotence": idempotent, "linger.ms": 5,
                  "compression.type": "lz4"})
    results = []

    def done(err, msg):
        results.append((err, msg.offset() if err is None else None))
    for v in values:
        while True:
            try:
                p.produce(topic, value=v, partition=0, on_delivery=done)
                break
            except BufferError:
                p.poll(0.1)
        p.poll(0)
    assert p.flush(timeout) == 0, "records still unacknowledged"
    return results


def test_rf3_copies_are_byte_identical_and_consumers_see_every_acked_record(cluster):
    create_topic(cluster, "copies")
    values = [f"v{i}".encode() for i in range(3000)]
    results = produce(cluster, "copies", values)
    assert all(err is None for err, _ in results), [e for e, _ in results if e][:3]
    data = wait_identical_copies(cluster, "copies")
    assert len(data) > 3000
    got = consume_all(cluster, "copies", len(values))
    assert [v for _, v in got] == values
    assert [o for o, _ in got] == list(range(len(values)))


def test_min_insync_replicas_refuses_acks_all_until_the_isr_is_back(cluster):
    create_topic(cluster, "guarded", config={"min.insync.replicas": "3"})
    assert all(e is None for e, _ in produce(cluster, "guarded", [b"a", b"b"]))
    leader = partition_state(cluster[0], "guarded")[0]
    follower = next(i for i in (1, 2, 3) if i != leader)
    cluster[follower - 1].stop(graceful=False)
    alive = [b for b in cluster if b.is_running()]
    poll_for(lambda: partition_state(alive[0], "guarded"),
             lambda s: s and follower not in s[2], 30, f"broker {follower} out of the ISR")

    p = Producer({"bootstrap.servers": bootstrap(alive), "acks": "all",
                  "message.timeout.ms": 3000, "retries": 0})
    errors = []
    p.produce("guarded", value=b"refused", partition=0,
              on_delivery=lambda err, msg: errors.append(err))
    p.flush(10)
    assert errors and errors[0] is not None
    assert errors[0].code() in (KafkaError.NOT_ENOUGH_REPLICAS, KafkaError._MSG_TIMED_OUT), errors[0]

    # acks=1 still writes; committed data is still read.
    assert all(e is None for e, _ in produce(alive, "guarded", [b"c"], acks="1", idempotent=False))
    got = consume_all(alive, "guarded", 2, timeout=20)
    assert [v for _, v in got][:2] == [b"a", b"b"]

    # The follower returns, catches up, rejoins: acks=all works again.
    cluster[follower - 1].start()
    poll_for(lambda: partition_state(cluster[0], "guarded"),
             lambda s: s and len(s[2]) == 3, 30, "the ISR back to three")
    assert all(e is None for e, _ in produce(cluster, "guarded", [b"d"]))
    wait_identical_copies(cluster, "guarded")


def test_a_stalled_follower_leaves_the_isr_and_rejoins_once_resumed(broker_factory):
    # Sessions outlast the stall: only replica lag takes it out of the ISR.
    cluster = start_cluster(broker_factory, session_ms=30000, lag_ms=1500)
    create_topic(cluster, "lagging")
    leader = partition_state(cluster[0], "lagging")[0]
    follower = next(i for i in (1, 2, 3) if i != leader)
    os.kill(cluster[follower - 1].proc.pid, signal.SIGSTOP)
    try:
        # Writes keep the leader's end moving past the stalled follower.
        others = [b for i, b in enumerate(cluster) if i != follower - 1]
        started = time.monotonic()
        writer_done = threading.Event()

        def writer():
            p = Producer({"bootstrap.servers": bootstrap(others), "acks": "1"})
            while not writer_done.is_set():
                p.produce("lagging", value=b"x", partition=0)
                p.poll(0.05)
            p.flush(5)
        t = threading.Thread(target=writer, daemon=True)
        t.start()
        try:
            poll_for(lambda: partition_state(others[0], "lagging"),
                     lambda s: s and follower not in s[2], 30,
                     f"stalled broker {follower} shrunk out of the ISR")
        finally:
            writer_done.set()
            t.join(10)
        print(f"ISR shrank {time.monotonic() - started:.1f}s after the stall")
    finally:
        os.kill(cluster[follower - 1].proc.pid, signal.SIGCONT)
    poll_for(lambda: partition_state(cluster[0], "lagging"),
             lambda s: s and len(s[2]) == 3, 30, "the resumed follower back in the ISR")
    wait_identical_copies(cluster, "lagging")


class Checker:
    """An idempotent acks=all producer of consecutive integers and a
    consumer group reading them, run while brokers are killed."""

    def __init__(self, cluster, topic):
        self.cluster = cluster
        self.topic = topic
        self.stop = threading.Event()
        self.acked = {}
        self.failed = 0
        self.next = 0
        self.lock = threading.Lock()
        self.commits = []
        self.errors = []

    def produce(self):
        p = Producer({"bootstrap.servers": bootstrap(self.cluster), "acks": "all",
                      "enable.idempotence": True, "linger.ms": 2,
                      "message.timeout.ms": 120000, "socket.timeout.ms": 3000,
                      "topic.metadata.refresh.interval.ms": 1000})

        def done(err, msg):
            with self.lock:
                if err is None:
                    self.acked[int(msg.value())] = msg.offset()
                else:
                    self.failed += 1
        while not self.stop.is_set():
            try:
                p.produce(self.topic, value=str(self.next).encode(), partition=0, on_delivery=done)
                self.next += 1
            except BufferError:
                pass
            p.poll(0.002)
        remaining = p.flush(120)
        if remaining:
            self.errors.append(f"{remaining} records never answered")

    def consume(self):
        c = Consumer({"bootstrap.servers": bootstrap(self.cluster), "group.id": "kill-loop",
                      "enable.auto.commit": False, "auto.offset.reset": "earliest",
                      "session.timeout.ms": 10000, "socket.timeout.ms": 3000})
        c.subscribe([self.topic])
        seen = 0
        last = -1
        try:
            while not self.stop.is_set():
                m = c.poll(0.2)
                if m is None or m.error():
                    continue
                seen += 1
                if seen % 200 == 0:
                    try:
                        c.commit(asynchronous=False)
                        committed = c.committed([TopicPartition(self.topic, 0)], timeout=5)[0].offset
                    except KafkaException:
                        continue
                    if committed >= 0:
                        with self.lock:
                            self.commits.append(committed)
                        if committed < last:
                            self.errors.append(f"committed offset went back from {last} to {committed}")
                        last = max(last, committed)
        finally:
            c.close()


def controller_seen_by(broker):
    """The active controller's id as `broker`'s Metadata reports it."""
    admin = AdminClient({"bootstrap.servers": broker.bootstrap, "socket.timeout.ms": 3000})
    return admin.list_topics(timeout=5).controller_id


def failover_figures(failovers):
    """Median and max of (seconds, leader was also the controller) pairs,
    overall and split by whether the killed leader was the controller."""
    def figures(times):
        if not times:
            return "none"
        times = sorted(times)
        return f"median {times[len(times) // 2]:.2f}s max {times[-1]:.2f}s ({len(times)})"
    return (f"all {figures([t for t, _ in failovers])}, "
            f"leader only {figures([t for t, c in failovers if not c])}, "
            f"leader+controller {figures([t for t, c in failovers if c])}")


def test_twenty_leader_kills_lose_no_acknowledged_record(cluster):
    topic = "survives"
    create_topic(cluster, topic, config={"min.insync.replicas": "2"})
    checker = Checker(cluster, topic)
    threads = [threading.Thread(target=checker.produce, daemon=True),
               threading.Thread(target=checker.consume, daemon=True)]
    for t in threads:
        t.start()
    failovers = []
    try:
        for cycle in range(KILL_CYCLES):
            time.sleep(0.5)
            state = poll_for(lambda: partition_state(cluster[cycle % 3], topic),
                             lambda s: s and s[0] in (1, 2, 3) and len(s[2]) == 3, 60,
                             f"a leader and a full ISR before kill {cycle + 1}")
            leader = state[0]
            victim = cluster[leader - 1]
            was_controller = controller_seen_by(victim) == leader
            victim.stop(graceful=False)
            killed = time.monotonic()
            survivor = cluster[leader % 3]
            poll_for(lambda: partition_state(survivor, topic),
                     lambda s: s and s[0] in (1, 2, 3) and s[0] != leader, 30,
                     f"a new leader after killing {leader} (cycle {cycle + 1})")
            failovers.append((time.monotonic() - killed, was_controller))
            victim.start()
    finally:
        time.sleep(2)
        checker.stop.set()
        for t in threads:
            t.join(180)
    poll_for(lambda: partition_state(cluster[0], topic),
             lambda s: s and len(s[2]) == 3, 60, "a full ISR at the end")
    acked = dict(checker.acked)
    assert not checker.errors, checker.errors
    assert len(acked) > 0
    records = consume_all(cluster, topic, max(acked.values()) + 1, timeout=120)
    values = [int(v) for _, v in records]
    offsets = [o for o, _ in records]
    assert len(values) == len(set(values)), "a record was written twice"
    assert values == sorted(values), "records out of order"
    present = {v: o for o, v in zip(offsets, values)}
    lost = [v for v in acked if v not in present]
    moved = [v for v, o in acked.items() if v in present and present[v] != o]
    wait_identical_copies(cluster, topic, timeout=60)
    print(f"kill loop: {KILL_CYCLES} leader kills, {len(acked)} records acknowledged, "
          f"{checker.failed} failed, {len(lost)} lost, {len(moved)} at another offset; "
          f"failover {failover_figures(failovers)}; "
          f"{len(checker.commits)} group commits checked")
    assert not lost, f"acknowledged records lost: {lost[:20]}"
    assert not moved, f"acknowledged records at another offset: {moved[:20]}"


def test_killing_a_leader_at_default_settings_moves_it_within_seconds(broker_factory):
    """kill -9 of a partition's leader at the default broker session
    (2.5 s), three times when it is also the active controller and three
    times when it is not: a new controller (where needed) takes over and the
    partition gets a new leader from its ISR, with every acknowledged
    record kept. The time until a survivor's Metadata shows the new leader
    is printed (figures, not assertions)."""
    cluster = start_cluster(broker_factory, session_ms=2500)
    wait_for_brokers(cluster)
    times = {True: [], False: []}
    for cycle in range(6):
        with_controller = cycle % 2 == 0
        controller = poll_for(lambda: controller_seen_by(cluster[0]), lambda c: c in (1, 2, 3), 30,
                              "an active controller")
        victim_id = controller if with_controller else next(n for n in (1, 2, 3) if n != controller)
        others = [n for n in (1, 2, 3) if n != victim_id]
        topic = f"killed-{cycle}"
        assigned_topic(cluster, topic, [victim_id, *others])
        p = Producer({"bootstrap.servers": bootstrap(cluster), "acks": "all",
                      "enable.idempotence": True})
        for n in range(200):
            p.produce(topic, value=b"%d" % n, partition=0)
        assert p.flush(30) == 0
        victim = cluster[victim_id - 1]
        victim.stop(graceful=False)
        killed = time.monotonic()
        survivor = cluster[others[0] - 1]
        state = poll_for(lambda: partition_state(survivor, topic),
                         lambda s: s and s[0] in others, 30,
                         f"a new leader after killing broker {victim_id}")
        times[with_controller].append(time.monotonic() - killed)
        assert victim_id not in state[2], state
        poll_for(lambda: controller_seen_by(survivor), lambda c: c in others, 30,
                 "a live controller")
        read = [int(v) for _, v in consume_all(cluster, topic, 200)]
        assert read == list(range(200)), read[:10]
        victim.start()
        poll_for(lambda: partition_state(survivor, topic), lambda s: s and len(s[2]) == 3, 60,
                 f"broker {victim_id} back in the ISR")
    print("failover at default settings: " + failover_figures(
        [(t, c) for c, ts in times.items() for t in ts]))


def test_a_consumer_with_client_rack_reads_through_its_racks_follower(broker_factory):
    """KIP-392 with librdkafka: brokers in racks rack-1..3 with the
    rack-aware replica selector; a consumer with client.rack set to a
    follower's rack is sent to that follower and reads every record, and
    keeps reading (from the leader) once that follower is killed."""
    selector = ["--replica-selector-class",
                "org.apache.kafka.common.replica.RackAwareReplicaSelector"]
    cluster = start_cluster(broker_factory, extra=selector,
                            extra_for={n: ["--broker-rack", f"rack-{n}"] for n in (1, 2, 3)})
    assigned_topic(cluster, "near", [1, 2, 3])
    p = Producer({"bootstrap.servers": bootstrap(cluster), "acks": "all"})
    for n in range(100):
        p.produce("near", value=b"%d" % n, partition=0)
    assert p.flush(30) == 0
    c = Consumer({"bootstrap.servers": bootstrap(cluster), "group.id": "near-reader",
                  "client.rack": "rack-2", "auto.offset.reset": "earliest",
                  "enable.auto.commit": False})
    try:
        c.assign([TopicPartition("near", 0, 0)])
        seen = []
        deadline = time.monotonic() + 60
        while len(seen) < 100 and time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is not None and not m.error():
                seen.append(int(m.value()))
        assert seen == list(range(100)), seen[:10]
        # The follower the consumer reads from dies; the leader takes over.
        cluster[1].stop(graceful=False)
        for n in range(100, 150):
            p.produce("near", value=b"%d" % n, partition=0)
        assert p.flush(30) == 0
        deadline = time.monotonic() + 90
        while len(seen) < 150 and time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is not None and not m.error():
                seen.append(int(m.value()))
        assert seen == list(range(150)), seen[95:110]
    finally:
        c.close()


def test_a_returning_leader_truncates_what_was_never_committed(broker_factory):
    # Long lag: only the controller's fencing changes the ISR here.
    cluster = start_cluster(broker_factory, session_ms=3000, lag_ms=60000)
    create_topic(cluster, "tail")
    assert all(e is None for e, _ in produce(cluster, "tail", [f"a{i}".encode() for i in range(10)]))
    wait_identical_copies(cluster, "tail")
    leader = partition_state(cluster[0], "tail")[0]
    followers = [i for i in (1, 2, 3) if i != leader]
    old = cluster[leader - 1]
    for f in followers:
        os.kill(cluster[f - 1].proc.pid, signal.SIGSTOP)
    try:
        # Fetches the followers sent before they stalled end empty after
        # --replica-fetch-wait-max-ms (500); then nothing carries new
        # records to them, and the leader takes acks=1 writes it can never
        # commit.
        time.sleep(1.5)
        results = produce([old], "tail", [f"u{i}".encode() for i in range(5)],
                          acks="1", idempotent=False, timeout=20)
        assert all(e is None for e, _ in results), results
        old.stop(graceful=False)
    finally:
        for f in followers:
            os.kill(cluster[f - 1].proc.pid, signal.SIGCONT)
    rest = [cluster[f - 1] for f in followers]
    state = poll_for(lambda: partition_state(rest[0], "tail"),
                     lambda s: s and s[0] in followers, 60, "a new leader among the followers")
    print(f"new leader {state[0]}, ISR {state[2]}")
    assert all(e is None for e, _ in produce(rest, "tail", [f"b{i}".encode() for i in range(5)]))
    old.start()
    poll_for(lambda: partition_state(cluster[0], "tail"),
             lambda s: s and len(s[2]) == 3, 60, "the old leader back in the ISR")
    wait_identical_copies(cluster, "tail")
    got = [v.decode() for _, v in consume_all(cluster, "tail", 15, timeout=30)]
    assert got == [f"a{i}" for i in range(10)] + [f"b{i}" for i in range(5)], got
    assert "log diverged from the leader's; truncated" in old.log()


def test_a_rolling_restart_under_load_fails_no_write(cluster):
    topic = "rolling"
    create_topic(cluster, topic, config={"min.insync.replicas": "2"})
    checker = Checker(cluster, topic)
    threads = [threading.Thread(target=checker.produce, daemon=True),
               threading.Thread(target=checker.consume, daemon=True)]
    for t in threads:
        t.start()
    handovers = []
    try:
        for round_ in range(2):
            for b in cluster:
                poll_for(lambda: partition_state(cluster[0] if b is not cluster[0] else cluster[1],
                                                 topic),
                         lambda s: s and s[0] in (1, 2, 3) and len(s[2]) == 3, 60,
                         "a full ISR before the next restart")
                started = time.monotonic()
                b.stop(graceful=True)  # SIGTERM: controlled shutdown first
                handovers.append(time.monotonic() - started)
                b.start()
    finally:
        time.sleep(2)
        checker.stop.set()
        for t in threads:
            t.join(180)
    poll_for(lambda: partition_state(cluster[0], topic),
             lambda s: s and len(s[2]) == 3, 60, "a full ISR at the end")
    acked = dict(checker.acked)
    assert not checker.errors, checker.errors
    records = consume_all(cluster, topic, max(acked.values()) + 1, timeout=120)
    present = {int(v): o for o, v in records}
    lost = [v for v in acked if v not in present]
    print(f"rolling restart: 6 restarts, {len(acked)} acknowledged, {checker.failed} failed, "
          f"{len(lost)} lost; SIGTERM to exit median {sorted(handovers)[len(handovers) // 2]:.2f}s")
    assert checker.failed == 0, f"{checker.failed} writes failed during the rolling restart"
    assert not lost, lost[:20]
    for b in cluster:
        assert "controlled shutdown: the controller let this broker stop" in b.log(), b.log()[-3000:]


def move_leadership_off(cluster, topic, preferred):
    """Restarts the preferred leader so another replica leads; returns once
    it is back in the ISR."""
    cluster[preferred - 1].stop(graceful=True)
    other = cluster[preferred % 3]
    poll_for(lambda: partition_state(other, topic), lambda s: s and s[0] not in (-1, preferred),
             30, "another leader")
    cluster[preferred - 1].start()
    poll_for(lambda: partition_state(other, topic), lambda s: s and len(s[2]) == 3, 30,
             f"broker {preferred} back in the ISR")


def assigned_topic(cluster, name, replicas):
    wait_for_brokers(cluster)
    admin = AdminClient({"bootstrap.servers": bootstrap(cluster)})
    admin.create_topics([NewTopic(name, num_partitions=1, replica_assignment=[replicas])],
                        operation_timeout=30)[name].result(timeout=40)
    poll_for(lambda: partition_state(cluster[0], name),
             lambda s: s and s[0] == replicas[0] and len(s[2]) == 3, 30, f"{name} led by {replicas[0]}")


def test_elect_leaders_moves_leadership_back_to_the_preferred_replica(broker_factory):
    cluster = start_cluster(broker_factory, extra=["--auto-leader-rebalance-enable", "false"])
    assigned_topic(cluster, "elect", [1, 2, 3])
    move_leadership_off(cluster, "elect", 1)
    time.sleep(1)
    assert partition_state(cluster[1], "elect")[0] != 1, "moved back without being asked"
    admin = AdminClient({"bootstrap.servers": bootstrap(cluster)})
    tp = TopicPartition("elect", 0)
    result = admin.elect_leaders(ElectionType.PREFERRED, [tp]).result(timeout=30)
    assert [e for e in result.values()] == [None], result
    poll_for(lambda: partition_state(cluster[2], "elect"), lambda s: s and s[0] == 1, 10,
             "broker 1 leading again")
    # Nothing left to do: ELECTION_NOT_NEEDED, for either kind.
    for kind in (ElectionType.PREFERRED, ElectionType.UNCLEAN):
        again = admin.elect_leaders(kind, [tp]).result(timeout=30)
        [err] = again.values()
        assert err is not None and err.code() == KafkaError.ELECTION_NOT_NEEDED, again
    unknown = admin.elect_leaders(ElectionType.PREFERRED,
                                  [TopicPartition("no-such-topic", 0)]).result(timeout=30)
    [err] = unknown.values()
    assert err is not None and err.code() == KafkaError.UNKNOWN_TOPIC_OR_PART, unknown


def test_leadership_returns_to_the_preferred_replica_by_itself(broker_factory):
    cluster = start_cluster(broker_factory,
                            extra=["--leader-imbalance-check-interval-seconds", "1"])
    assigned_topic(cluster, "rebalanced", [2, 3, 1])
    move_leadership_off(cluster, "rebalanced", 2)
    poll_for(lambda: partition_state(cluster[0], "rebalanced"), lambda s: s and s[0] == 2, 30,
             "broker 2 leading again without being asked")


def java_hash(s):
    h = 0
    for ch in s.encode("utf-16-be").decode("utf-16-be"):
        h = (31 * h + ord(ch)) & 0xFFFFFFFF
    return h - (1 << 32) if h >= (1 << 31) else h


def txn_state_partition(transactional_id, partitions=50):
    return abs(java_hash(transactional_id)) % partitions


def test_transactions_commit_exactly_across_leader_and_coordinator_kills(cluster):
    topic = "txdata"
    create_topic(cluster, topic, config={"min.insync.replicas": "2"})
    txn_id = "tx-loop"
    outcomes = {}
    stop = threading.Event()
    problems = []

    def transact():
        def make():
            p = Producer({"bootstrap.servers": bootstrap(cluster), "transactional.id": txn_id,
                          "transaction.timeout.ms": 20000, "socket.timeout.ms": 3000,
                          "message.timeout.ms": 20000, "linger.ms": 2})
            p.init_transactions(60)
            return p
        p = make()
        i = 0
        while not stop.is_set():
            try:
                p.begin_transaction()
                for j in range(10):
                    p.produce(topic, value=f"{i}-{j}".encode(), partition=0)
                p.commit_transaction(60)
                outcomes[i] = "committed"
            except KafkaException as e:
                err = e.args[0]
                outcomes[i] = "unknown"
                try:
                    if err.txn_requires_abort():
                        p.abort_transaction(60)
                        outcomes[i] = "aborted"
                    elif err.fatal() or not err.retriable():
                        p = make()
                except KafkaException as again:
                    problems.append(f"txn {i}: {err} then {again}")
                    p = make()
            i += 1
        p.flush(30)

    worker = threading.Thread(target=transact, daemon=True)
    worker.start()
    try:
        state_partition = txn_state_partition(txn_id)
        for cycle in range(4):
            time.sleep(2)
            if cycle % 2 == 0:
                target, part = topic, 0
            else:
                target, part = "__transaction_state", state_partition
            state = poll_for(lambda: partition_state(cluster[cycle % 3], target, part),
                             lambda s: s and s[0] in (1, 2, 3) and len(s[2]) == 3, 60,
                             f"{target}-{part} led with a full ISR")
            victim = cluster[state[0] - 1]
            victim.stop(graceful=False)
            poll_for(lambda: partition_state(cluster[state[0] % 3], target, part),
                     lambda s: s and s[0] in (1, 2, 3) and s[0] != state[0], 30,
                     f"a new leader of {target}-{part}")
            victim.start()
        time.sleep(2)
    finally:
        stop.set()
        worker.join(180)
    committed = [i for i, o in outcomes.items() if o == "committed"]
    assert committed, outcomes
    c = Consumer({"bootstrap.servers": bootstrap(cluster), "group.id": "txn-check",
                  "isolation.level": "read_committed", "auto.offset.reset": "earliest",
                  "enable.auto.commit": False})
    c.assign([TopicPartition(topic, 0, 0)])
    seen = []
    deadline = time.monotonic() + 60
    idle = 0
    while time.monotonic() < deadline and idle < 10:
        m = c.poll(0.5)
        if m is None or m.error():
            idle += 1
            continue
        idle = 0
        seen.append(m.value().decode())
    c.close()
    assert len(seen) == len(set(seen)), "a record read twice"
    by_txn = {}
    for v in seen:
        i, j = v.split("-")
        by_txn.setdefault(int(i), set()).add(int(j))
    missing = [i for i in committed if by_txn.get(i) != set(range(10))]
    leaked = [i for i, o in outcomes.items() if o == "aborted" and i in by_txn]
    partial = [i for i, js in by_txn.items() if js != set(range(10))]
    print(f"transactions: {len(committed)} committed, "
          f"{sum(1 for o in outcomes.values() if o == 'aborted')} aborted, "
          f"{sum(1 for o in outcomes.values() if o == 'unknown')} unknown; problems {problems}")
    assert not missing, f"committed transactions not (wholly) visible: {missing}"
    assert not leaked, f"aborted transactions visible: {leaked}"
    assert not partial, f"transactions partly visible: {partial}"


def test_deleted_records_stay_deleted_after_a_failover(cluster):
    create_topic(cluster, "trimmed")
    assert all(e is None for e, _ in produce(cluster, "trimmed",
                                             [f"r{i}".encode() for i in range(100)]))
    admin = AdminClient({"bootstrap.servers": bootstrap(cluster)})
    tp = TopicPartition("trimmed", 0, 60)
    [(_, fut)] = list(admin.delete_records([tp]).items())
    assert fut.result(timeout=30).low_watermark == 60
    leader = partition_state(cluster[0], "trimmed")[0]
    # The followers take the leader's log start with their next fetches
    # (each long-polls at most --replica-fetch-wait-max-ms, 500 ms).
    time.sleep(1.5)
    cluster[leader - 1].stop(graceful=False)
    alive = [b for b in cluster if b.is_running()]
    poll_for(lambda: partition_state(alive[0], "trimmed"),
             lambda s: s and s[0] not in (-1, leader), 30, "a new leader")
    a2 = AdminClient({"bootstrap.servers": bootstrap(alive)})
    res = a2.list_offsets({TopicPartition("trimmed", 0): OffsetSpec.earliest()})
    [(_, fut)] = list(res.items())
    assert fut.result(timeout=30).offset == 60
    got = consume_all(alive, "trimmed", 40, timeout=30)
    assert [v for _, v in got] == [f"r{i}".encode() for i in range(60, 100)]
    cluster[leader - 1].start()
