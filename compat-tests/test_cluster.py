"""Three wharf brokers as one cluster, seen by real clients: every broker
listed from any bootstrap, one controller, and a new one after the
controller is killed with SIGKILL."""

import json
import socket
import time
from collections import Counter

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from kafka import KafkaConsumer, KafkaProducer
from kafka import TopicPartition as KTopicPartition
from kafka.admin import KafkaAdminClient
from kafka.admin import NewTopic as KNewTopic
from kafka.errors import InvalidReplicationFactorError
from kafka.errors import KafkaError as KafkaPythonError

from clients import kcat

pytestmark = pytest.mark.timeout(120)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def cluster(broker_factory):
    ports = [free_port() for _ in range(3)]
    voters = ",".join(f"{i + 1}@127.0.0.1:{p}" for i, p in enumerate(ports))
    return [
        broker_factory(node_id=i + 1, extra_args=[
            "--controller-listen", f"127.0.0.1:{ports[i]}",
            "--controller-quorum-voters", voters,
            "--broker-heartbeat-interval-ms", "300",
            "--broker-session-timeout-ms", "2000",
        ])
        for i in range(3)
    ]


def wait_until(pred, timeout, what):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = pred()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def confluent_view(broker):
    """(broker ids, controller id) as confluent-kafka's AdminClient sees
    them, or None while it cannot tell."""
    admin = AdminClient({"bootstrap.servers": broker.bootstrap, "socket.timeout.ms": 5000})
    try:
        described = admin.describe_cluster(request_timeout=5).result(timeout=10)
    except KafkaException:
        return None
    ids = sorted(n.id for n in described.nodes)
    return ids, described.controller.id if described.controller else None


def test_every_broker_lists_the_whole_cluster_to_confluent_and_kafka_python(cluster):
    views = wait_until(
        lambda: (lambda v: v if all(x and x == v[0] and x[0] == [1, 2, 3] for x in v) else None)(
            [confluent_view(b) for b in cluster]),
        30, "three brokers listed alike by every broker")
    controller = views[0][1]
    assert controller in (1, 2, 3)
    metadata = AdminClient({"bootstrap.servers": cluster[0].bootstrap}).list_topics(timeout=10)
    assert sorted(metadata.brokers) == [1, 2, 3]
    assert {b.port for b in metadata.brokers.values()} == {b.port for b in cluster}
    admin = KafkaAdminClient(bootstrap_servers=cluster[2].bootstrap, request_timeout_ms=10000)
    try:
        described = admin.describe_cluster()
    finally:
        admin.close()
    assert sorted(b["node_id"] for b in described["brokers"]) == [1, 2, 3]
    assert described["controller_id"] == controller


def test_a_killed_controller_is_replaced_and_fenced(cluster):
    ids, controller = wait_until(
        lambda: (lambda v: v if v and v[0] == [1, 2, 3] and v[1] else None)(
            confluent_view(cluster[0])),
        30, "the cluster to form")
    cluster[controller - 1].stop(graceful=False)
    survivor = cluster[controller % 3]
    started = time.time()
    new_ids, new_controller = wait_until(
        lambda: (lambda v: v if v and v[1] not in (None, controller) and controller not in v[0]
                 else None)(confluent_view(survivor)),
        40, "a new controller and the old one fenced")
    print(f"new controller {new_controller}, broker {controller} fenced after "
          f"{time.time() - started:.1f}s")
    assert len(new_ids) == 2


# --- replicated topics seen through real clients ---------------------------------
#
# Metadata, leaders and coordinators across brokers; replication of the data
# itself and leader failover under load are test_replication.py's.

ORDERS = "orders"
ORDERS_PARTITIONS = 6
IDS = {1, 2, 3}


def node_id(cluster, broker):
    return cluster.index(broker) + 1


def poll_for(fetch, ok, timeout, what):
    """Call fetch() until ok(value); fail after `timeout` seconds, showing
    the last value seen."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        last = fetch()
        if ok(last):
            return last
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}; last seen: {last!r}")
        time.sleep(0.2)


def wait_for_cluster(cluster):
    wait_until(
        lambda: all((v := confluent_view(b)) and v[0] == [1, 2, 3] and v[1] in IDS for b in cluster),
        30, "every broker to list brokers 1, 2, 3 and a controller")


def c_admin(broker):
    return AdminClient({"bootstrap.servers": broker.bootstrap, "socket.timeout.ms": 5000})


def topic_view(broker, topic):
    """As confluent-kafka sees it from a fresh client bootstrapped from
    `broker` alone: {"brokers": sorted ids, "partitions": {p: (leader,
    replicas, isrs)}}, or None if the metadata request fails or the topic
    has an error."""
    try:
        md = c_admin(broker).list_topics(topic=topic, timeout=5)
    except KafkaException:
        return None
    t = md.topics.get(topic)
    if t is None or t.error is not None:
        return None
    parts = {}
    for p in t.partitions.values():
        if p.error is not None:
            return None
        parts[p.id] = (p.leader, sorted(p.replicas), sorted(p.isrs))
    return {"brokers": sorted(md.brokers), "partitions": parts}


def fully_replicated(view, partitions, rf=3):
    """Every partition has rf replicas on distinct live brokers, all in sync,
    and a leader among them."""
    if not view or sorted(view["partitions"]) != list(range(partitions)):
        return False
    for leader, replicas, isrs in view["partitions"].values():
        if len(set(replicas)) != rf or not set(replicas) <= set(view["brokers"]):
            return False
        if isrs != replicas or leader not in replicas:
            return False
    return True


def leaders(view):
    return {p: v[0] for p, v in view["partitions"].items()}


def create_replicated(broker, topic, partitions, rf=3):
    a = c_admin(broker)
    fut = a.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=rf)],
                          request_timeout=15)[topic]
    fut.result(timeout=20)


def views_of_every_broker(cluster, topic, partitions):
    """{node id: view} once every broker describes `topic` fully replicated."""
    return {
        node_id(cluster, b): poll_for(
            lambda b=b: topic_view(b, topic), lambda v: fully_replicated(v, partitions), 20,
            f"broker {node_id(cluster, b)} to describe {topic!r} with {partitions} partitions, "
            f"3 replicas and 3 in-sync replicas each")
        for b in cluster
    }


@pytest.fixture
def orders(cluster):
    """The cluster, with topic "orders" (6 partitions, RF 3) created through
    broker 1 and described alike by every broker. Returns the leaders."""
    wait_for_cluster(cluster)
    create_replicated(cluster[0], ORDERS, ORDERS_PARTITIONS)
    views = views_of_every_broker(cluster, ORDERS, ORDERS_PARTITIONS)
    seen = {n: leaders(v) for n, v in views.items()}
    assert seen[1] == seen[2] == seen[3], f"brokers disagree on the leaders: {seen}"
    return seen[1]


def c_producer(broker, **extra):
    conf = {"bootstrap.servers": broker.bootstrap, "acks": "all", "linger.ms": 5,
            "message.timeout.ms": 20000, "socket.timeout.ms": 10000}
    conf.update(extra)
    return Producer(conf)


def produce_all(producer, topic, records, timeout=25):
    """records: (partition, key, value). Returns delivery reports (err, partition, offset, value)."""
    reports = []

    def cb(err, msg):
        reports.append((err, msg.partition(), msg.offset(), msg.value()))

    for p, k, v in records:
        producer.produce(topic, key=k, value=v, partition=p, on_delivery=cb)
        producer.poll(0)
    left = producer.flush(timeout)
    assert left == 0, f"{left} of {len(records)} messages undelivered after {timeout}s"
    assert len(reports) == len(records), f"{len(records) - len(reports)} delivery reports missing"
    errors = [(p, str(e)) for e, p, _o, _v in reports if e is not None]
    assert not errors, f"{len(errors)} delivery errors, e.g. {errors[:5]}"
    return reports


def test_replicated_topic_created_via_broker_1_is_described_alike_by_every_broker(cluster):
    wait_for_cluster(cluster)
    create_replicated(cluster[0], ORDERS, ORDERS_PARTITIONS)
    views = views_of_every_broker(cluster, ORDERS, ORDERS_PARTITIONS)
    for n, v in views.items():
        assert v["brokers"] == [1, 2, 3], f"broker {n} lists brokers {v['brokers']}"
        for p, (leader, replicas, isrs) in v["partitions"].items():
            assert replicas == [1, 2, 3] and isrs == [1, 2, 3] and leader in IDS, \
                f"broker {n}: partition {p} leader {leader} replicas {replicas} isrs {isrs}"
    seen = {n: leaders(v) for n, v in views.items()}
    assert seen[1] == seen[2] == seen[3], f"brokers disagree on the leaders: {seen}"
    spread = Counter(seen[1].values())
    assert spread == {1: 2, 2: 2, 3: 2}, f"leaders not spread 2/2/2 over brokers 1-3: {seen[1]}"

    # kafka-python: create through broker 3, describe through broker 2.
    kadmin = KafkaAdminClient(bootstrap_servers=cluster[2].bootstrap, request_timeout_ms=15000)
    try:
        kadmin.create_topics([KNewTopic("kp-replicated", 3, 3)], timeout_ms=10000)
        with pytest.raises(InvalidReplicationFactorError):
            kadmin.create_topics([KNewTopic("kp-too-many", 1, 4)], timeout_ms=10000)
    finally:
        kadmin.close()
    kadmin = KafkaAdminClient(bootstrap_servers=cluster[1].bootstrap, request_timeout_ms=15000)
    try:
        def described():
            [t] = kadmin.describe_topics(["kp-replicated"])
            return t

        def ok(t):
            parts = t["partitions"]
            return t["error_code"] == 0 and sorted(p["partition"] for p in parts) == [0, 1, 2] and all(
                sorted(p["replicas"]) == [1, 2, 3] and sorted(p["isr"]) == [1, 2, 3]
                and p["leader"] in IDS for p in parts)

        topic = poll_for(described, ok, 20, "broker 2 to describe kp-replicated with 3 replicas per partition")
        assert sorted(p["leader"] for p in topic["partitions"]) == [1, 2, 3], topic
        assert "kp-too-many" not in {t["topic"] for t in kadmin.describe_topics()}
    finally:
        kadmin.close()

    # confluent-kafka: replication factor 4 on three brokers.
    with pytest.raises(KafkaException) as failed:
        create_replicated(cluster[1], "too-many", 1, rf=4)
    assert failed.value.args[0].code() == KafkaError.INVALID_REPLICATION_FACTOR, failed.value
    assert "too-many" not in c_admin(cluster[0]).list_topics(timeout=10).topics


def find_coordinator(broker, group, timeout=15):
    """The coordinator's node id from kafka-python's FindCoordinator through
    `broker`, retrying retriable errors (e.g. while __consumer_offsets is
    being created)."""
    kadmin = KafkaAdminClient(bootstrap_servers=broker.bootstrap, request_timeout_ms=10000)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                return kadmin._find_coordinator_ids([group])[group]
            except KafkaPythonError as e:
                if not e.retriable or time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
    finally:
        kadmin.close()


def consume_group(broker, group, expected, timeout=40):
    """Subscribe to orders in `group` through `broker` alone, read until the
    values equal `expected`, commit synchronously. Returns the values."""
    consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group,
                         "auto.offset.reset": "earliest", "enable.auto.commit": False,
                         "socket.timeout.ms": 10000, "session.timeout.ms": 10000,
                         "fetch.wait.max.ms": 200})
    try:
        consumer.subscribe([ORDERS])
        got, errors = [], []
        deadline = time.monotonic() + timeout
        while len(got) < len(expected):
            assert time.monotonic() < deadline, (
                f"group {group}: {len(got)} of {len(expected)} messages within {timeout}s; "
                f"errors: {errors[:5]}")
            m = consumer.poll(0.5)
            if m is None:
                continue
            if m.error():
                errors.append(str(m.error()))
                continue
            got.append(m.value())
        assert len(got) == len(set(got)), f"group {group}: duplicates among {len(got)} messages"
        assert set(got) == set(expected), f"group {group}: values differ from what was produced"
        committed = consumer.commit(asynchronous=False)
        bad = [(tp.partition, str(tp.error)) for tp in committed if tp.error]
        assert not bad, f"group {group}: commit failed for {bad}"
        return got
    finally:
        consumer.close()


def committed_offsets(broker, group, partitions):
    consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group,
                         "enable.auto.commit": False, "socket.timeout.ms": 10000})
    try:
        tps = consumer.committed([TopicPartition(ORDERS, p) for p in range(partitions)], timeout=15)
    finally:
        consumer.close()
    bad = [(tp.partition, str(tp.error)) for tp in tps if tp.error]
    assert not bad, f"group {group}: committed() errors {bad}"
    return {tp.partition: tp.offset for tp in tps}


def test_produce_via_broker_2_consume_in_groups_via_broker_3(cluster, orders):
    records = [(i % ORDERS_PARTITIONS, f"k{i}".encode(), f"v{i}".encode()) for i in range(600)]
    reports = produce_all(c_producer(cluster[1]), ORDERS, records)
    per_partition = Counter(p for _e, p, _o, _v in reports)
    assert per_partition == {p: 100 for p in range(ORDERS_PARTITIONS)}, per_partition
    for p in range(ORDERS_PARTITIONS):
        offsets = sorted(o for _e, q, o, _v in reports if q == p)
        assert offsets == list(range(100)), f"partition {p} (leader {orders[p]}): offsets {offsets[:5]}..."
    values = [v for _p, _k, v in records]

    bootstrap_id = 3
    # A group whose coordinator is not the consumer's bootstrap broker.
    other = None
    for i in range(60):
        if find_coordinator(cluster[0], f"g-{i}") != bootstrap_id:
            other = f"g-{i}"
            break
    assert other, f"every group g-0..g-59 is coordinated by broker {bootstrap_id}"

    for group in ("g-orders", other):
        consume_group(cluster[bootstrap_id - 1], group, values)
        a = c_admin(cluster[0])
        desc = a.describe_consumer_groups([group], request_timeout=10)[group].result(timeout=15)
        assert desc.coordinator is not None and desc.coordinator.id in IDS, \
            f"group {group}: coordinator {desc.coordinator}"
        assert desc.coordinator.id == find_coordinator(cluster[1], group), \
            f"group {group}: DescribeGroups and FindCoordinator disagree on the coordinator"
        if group == other:
            assert desc.coordinator.id != bootstrap_id
        print(f"group {group}: coordinator broker {desc.coordinator.id}")
        assert committed_offsets(cluster[0], group, ORDERS_PARTITIONS) == \
            {p: 100 for p in range(ORDERS_PARTITIONS)}, f"group {group}: committed offsets"


def test_kcat_sees_the_cluster_and_produces_through_a_non_leader(cluster, orders):
    for b in cluster:
        md = json.loads(kcat(b.bootstrap, "-L", "-J", "-t", ORDERS).stdout)
        n = node_id(cluster, b)
        assert sorted(x["id"] for x in md["brokers"]) == [1, 2, 3], f"kcat via broker {n}: {md['brokers']}"
        ports = sorted(int(x["name"].rsplit(":", 1)[1]) for x in md["brokers"])
        assert ports == sorted(c.port for c in cluster), f"kcat via broker {n}: {md['brokers']}"
        [topic] = [t for t in md["topics"] if t["topic"] == ORDERS]
        parts = {p["partition"]: p for p in topic["partitions"]}
        assert sorted(parts) == list(range(ORDERS_PARTITIONS)), f"kcat via broker {n}: {topic}"
        for p, desc in parts.items():
            assert sorted(r["id"] for r in desc["replicas"]) == [1, 2, 3], f"broker {n}, partition {p}: {desc}"
            assert sorted(r["id"] for r in desc["isrs"]) == [1, 2, 3], f"broker {n}, partition {p}: {desc}"
            assert desc["leader"] == orders[p], f"broker {n}, partition {p}: {desc} (leaders {orders})"

    p = next(p for p, leader in sorted(orders.items()) if leader != 1)
    kcat(cluster[0].bootstrap, "-t", ORDERS, "-p", str(p), "-P", "-K:",
         stdin="ka:first via broker 1\nkb:second via broker 1\n")
    out = kcat(cluster[2].bootstrap, "-t", ORDERS, "-p", str(p), "-C", "-o", "beginning", "-e",
               "-f", "%k=%s @%o\n").stdout
    assert out.splitlines() == ["ka=first via broker 1 @0", "kb=second via broker 1 @1"], \
        f"partition {p} (leader {orders[p]}): {out!r}"


def test_kafka_python_produces_via_one_broker_and_consumes_in_a_group_via_another(cluster, orders):
    producer = KafkaProducer(bootstrap_servers=cluster[0].bootstrap, acks="all",
                             request_timeout_ms=15000, max_block_ms=20000)
    try:
        futures = [(i % ORDERS_PARTITIONS, producer.send(ORDERS, key=f"k{i}".encode(),
                                                          value=f"kp{i}".encode(),
                                                          partition=i % ORDERS_PARTITIONS))
                   for i in range(300)]
        producer.flush(timeout=25)
        metas = [(p, f.get(timeout=5)) for p, f in futures]
    finally:
        producer.close(timeout=5)
    assert all(m.partition == p for p, m in metas)
    for p in range(ORDERS_PARTITIONS):
        assert sorted(m.offset for q, m in metas if q == p) == list(range(50)), f"partition {p}"

    consumer = KafkaConsumer(ORDERS, bootstrap_servers=cluster[1].bootstrap, group_id="kp-group",
                             auto_offset_reset="earliest", enable_auto_commit=False,
                             request_timeout_ms=20000, session_timeout_ms=10000,
                             heartbeat_interval_ms=1000, fetch_max_wait_ms=200)
    try:
        got = []
        deadline = time.monotonic() + 40
        while len(got) < 300:
            assert time.monotonic() < deadline, f"kafka-python consumer: {len(got)} of 300 messages in 40s"
            for recs in consumer.poll(timeout_ms=500).values():
                got += [(r.partition, r.value) for r in recs]
        assert sorted(v for _p, v in got) == sorted(f"kp{i}".encode() for i in range(300))
        assert Counter(p for p, _v in got) == {p: 50 for p in range(ORDERS_PARTITIONS)}
        consumer.commit()
        tps = [KTopicPartition(ORDERS, p) for p in range(ORDERS_PARTITIONS)]
        assert {tp.partition: consumer.committed(tp) for tp in tps} == \
            {p: 50 for p in range(ORDERS_PARTITIONS)}
    finally:
        consumer.close()


def test_a_killed_broker_is_fenced_and_its_partitions_move(cluster, orders):
    controller = wait_until(lambda: (v := confluent_view(cluster[0])) and v[1], 10, "a controller")
    victim = next(n for n in (1, 2, 3) if n != controller)
    led = sorted(p for p, leader in orders.items() if leader == victim)
    assert len(led) == 2, f"broker {victim} should lead 2 of the 6 partitions: {orders}"
    survivors = [b for b in cluster if node_id(cluster, b) != victim]
    alive = sorted(IDS - {victim})

    cluster[victim - 1].stop(graceful=False)
    killed = time.monotonic()
    unlisted_after = None
    views = {}

    def fenced():
        nonlocal unlisted_after
        for b in survivors:
            views[node_id(cluster, b)] = topic_view(b, ORDERS)
        vs = list(views.values())
        if unlisted_after is None and all(v and v["brokers"] == alive for v in vs):
            unlisted_after = time.monotonic() - killed
        return unlisted_after is not None and all(
            v and v["brokers"] == alive and sorted(v["partitions"]) == list(range(ORDERS_PARTITIONS))
            and all(leader in alive and victim not in isrs and leader in isrs
                    for leader, _replicas, isrs in v["partitions"].values())
            and leaders(v) == leaders(vs[0])
            for v in vs)

    try:
        poll_for(lambda: fenced() or dict(views), lambda ok: ok is True, 20,
                 f"survivors {alive} to stop listing broker {victim}, to move its partitions {led} "
                 f"and to drop it from every ISR")
    finally:
        print(f"broker {victim} (controller {controller}) killed; unlisted after "
              f"{unlisted_after if unlisted_after is None else round(unlisted_after, 2)}s; "
              f"leaders before {orders}, after {({n: leaders(v) if v else None for n, v in views.items()})}")
    moved = leaders(views[alive[0]])
    for p in range(ORDERS_PARTITIONS):
        if p not in led:
            assert moved[p] == orders[p], f"partition {p} changed leader {orders[p]} -> {moved[p]} " \
                                          f"though broker {victim} did not lead it"
    print(f"fencing plus leader moves took {time.monotonic() - killed:.2f}s; ISRs now "
          f"{ {p: v[2] for p, v in views[alive[0]]['partitions'].items()} }")

    # A producer bootstrapped from a survivor reaches every partition.
    produce_all(c_producer(survivors[0], **{"retries": 1000, "retry.backoff.ms": 200}), ORDERS,
                [(p, b"after", f"after-kill-{p}".encode()) for p in range(ORDERS_PARTITIONS)])

    cluster[victim - 1].start()
    restarted = time.monotonic()
    poll_for(lambda: [(v or {}).get("brokers") for v in (topic_view(b, ORDERS) for b in cluster)],
             lambda seen: all(s == [1, 2, 3] for s in seen), 20,
             f"broker {victim} to be listed again by every broker after its restart")
    print(f"broker {victim} listed again {time.monotonic() - restarted:.2f}s after restart")


def txn_coordinator(broker, transactional_id, timeout=15):
    """The node id of `transactional_id`'s coordinator (FindCoordinator with
    key type 1 through kafka-python's protocol classes)."""
    from kafka.protocol.find_coordinator import FindCoordinatorRequest
    kadmin = KafkaAdminClient(bootstrap_servers=broker.bootstrap, request_timeout_ms=10000)
    try:
        deadline = time.monotonic() + timeout
        while True:
            request = FindCoordinatorRequest[1](transactional_id, 1)
            future = kadmin._send_request_to_node(kadmin._client.least_loaded_node(), request)
            kadmin._wait_for_futures([future])
            response = future.value
            if response.error_code == 0:
                return response.coordinator_id
            assert time.monotonic() < deadline, f"no coordinator for {transactional_id}: {response}"
            time.sleep(0.2)
    finally:
        kadmin.close()


def read_committed(broker, topic, partitions, timeout=30):
    """Every value a read_committed consumer reads from `topic` (all
    partitions, from the start) until it has reached the end of each."""
    consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": f"rc-{time.monotonic_ns()}",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False,
                         "isolation.level": "read_committed", "enable.partition.eof": True,
                         "socket.timeout.ms": 10000, "fetch.wait.max.ms": 200})
    try:
        consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
        values, at_end = [], set()
        deadline = time.monotonic() + timeout
        while len(at_end) < partitions:
            assert time.monotonic() < deadline, (
                f"read_committed consumer reached the end of only {sorted(at_end)} within {timeout}s")
            m = consumer.poll(0.5)
            if m is None:
                continue
            if m.error():
                if m.error().code() == KafkaError._PARTITION_EOF:
                    at_end.add(m.partition())
                continue
            at_end.discard(m.partition())
            values.append(m.value())
        return values
    finally:
        consumer.close()


def test_a_transaction_spanning_brokers_commits_and_aborts_as_one(cluster, orders):
    # A transactional id coordinated by a broker that does not lead every
    # partition written, through a bootstrap broker that is not its
    # coordinator: markers must reach the other leaders.
    tid = next(f"tx-{i}" for i in range(50) if txn_coordinator(cluster[0], f"tx-{i}") != 1)
    coordinator = txn_coordinator(cluster[0], tid)
    producer = Producer({"bootstrap.servers": cluster[0].bootstrap, "transactional.id": tid,
                         "message.timeout.ms": 20000, "socket.timeout.ms": 10000,
                         "transaction.timeout.ms": 30000})
    producer.init_transactions(20)
    # Offsets committed in the transaction, for a group whose coordinator
    # is another broker than the transaction's.
    group = next(f"txg-{i}" for i in range(50) if find_coordinator(cluster[0], f"txg-{i}") != coordinator)
    member = Consumer({"bootstrap.servers": cluster[1].bootstrap, "group.id": group,
                       "enable.auto.commit": False, "socket.timeout.ms": 10000})
    member.subscribe([ORDERS])
    member.poll(1)
    producer.begin_transaction()
    for i in range(60):
        producer.produce(ORDERS, value=f"commit-{i}".encode(), partition=i % ORDERS_PARTITIONS)
    producer.send_offsets_to_transaction([TopicPartition(ORDERS, 0, 7)],
                                         member.consumer_group_metadata(), 20)
    producer.commit_transaction(30)
    member.close()
    assert committed_offsets(cluster[2], group, ORDERS_PARTITIONS)[0] == 7
    producer.begin_transaction()
    for i in range(60):
        producer.produce(ORDERS, value=f"abort-{i}".encode(), partition=i % ORDERS_PARTITIONS)
    producer.flush(20)
    producer.abort_transaction(30)
    producer.begin_transaction()
    producer.produce(ORDERS, value=b"last", partition=0)
    producer.commit_transaction(30)

    # From any broker, read_committed sees the committed records and
    # reaches the end of every partition (the markers moved each one's
    # last stable offset).
    for broker in cluster:
        values = sorted(v.decode() for v in read_committed(broker, ORDERS, ORDERS_PARTITIONS))
        expected = sorted([f"commit-{i}" for i in range(60)] + ["last"])
        assert values == expected, (
            f"through broker {node_id(cluster, broker)} (coordinator {coordinator}): "
            f"{len(values)} values, e.g. {values[:5]}")
