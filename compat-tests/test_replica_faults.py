"""Replicas that fail, on three wharf brokers: a follower whose disk fails
leaves the ISR while the partition stays writable with acks=all; a
partition whose only in-sync replica is lost stays offline unless an
unclean election is asked for (ElectLeaders UNCLEAN) or allowed
(`unclean.leader.election.enable`), and the returning replica then
truncates to the new leader's log."""

import time

import pytest
from confluent_kafka import ElectionType, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from test_replication import (bootstrap, consume_all, log_bytes, partition_state, poll_for,
                              produce, start_cluster, wait_for_brokers)

pytestmark = pytest.mark.timeout(300)


def topic_on(cluster, name, replicas, config=None):
    wait_for_brokers(cluster)
    admin = AdminClient({"bootstrap.servers": bootstrap(cluster)})
    admin.create_topics([NewTopic(name, num_partitions=1, replica_assignment=[replicas],
                                  config=config or {})],
                        operation_timeout=30)[name].result(timeout=40)
    poll_for(lambda: partition_state(cluster[0], name),
             lambda s: s and s[0] == replicas[0] and s[2] == sorted(replicas), 30,
             f"{name} on {replicas} with a full ISR")


def test_a_follower_whose_disk_fails_leaves_the_isr_and_writes_go_on(broker_factory):
    # Broker 3's segment writes fail with EIO after its first ten.
    cluster = start_cluster(broker_factory, lag_ms=3000,
                            extra_for={3: ["--fault-injection", "segment-write=eio@after:10"]})
    topic_on(cluster, "faulty", [1, 2, 3])
    acked = []
    for i in range(30):
        # One batch per call: broker 3 fails part way through.
        results = produce(cluster, "faulty", [b"r%03d" % i])
        assert all(err is None for err, _ in results), results
        acked.append(b"r%03d" % i)
    state = poll_for(lambda: partition_state(cluster[0], "faulty"),
                     lambda s: s and s[2] == [1, 2], 30, "broker 3 leaving the ISR")
    assert state[0] in (1, 2), state
    more = [b"m%03d" % i for i in range(100)]
    results = produce(cluster, "faulty", more)
    assert all(err is None for err, _ in results), [e for e, _ in results if e][:3]
    acked += more
    read = [v for _, v in consume_all(cluster, "faulty", len(acked))]
    assert read == acked
    assert cluster[2].is_running(), "the broker with the failed disk stays up"
    log = cluster[2].log()
    assert "log goes offline" in log or "offline" in log, log[-3000:]
    failures = log.count("appending the leader's records failed")
    assert 1 <= failures <= 3, f"{failures} failed appends: the replica kept fetching"
    # Broker 3's copy stopped where its disk failed; the others go on.
    assert len(log_bytes(cluster[2], "faulty")) < len(log_bytes(cluster[0], "faulty"))


def test_an_offline_partition_elects_outside_the_isr_only_when_asked_or_allowed(broker_factory):
    cluster = start_cluster(broker_factory, extra=["--auto-leader-rebalance-enable", "false"])
    topic_on(cluster, "strict", [1, 2])
    topic_on(cluster, "loose", [1, 2], config={"unclean.leader.election.enable": "true"})
    # Broker 2 stops: broker 1 alone is in sync and takes records broker 2
    # never sees.
    cluster[1].stop(graceful=True)
    for topic in ("strict", "loose"):
        poll_for(lambda t=topic: partition_state(cluster[0], t), lambda s: s and s[2] == [1], 30,
                 f"{topic}'s ISR shrinking to [1]")
        results = produce(cluster, topic, [b"only-on-1-%d" % i for i in range(10)])
        assert all(err is None for err, _ in results), results
    # Broker 1 dies; broker 2 returns (with broker 3 the quorum has a
    # majority again).
    cluster[0].stop(graceful=False)
    cluster[1].start()
    # "loose" allows it: broker 2 leads, with the ISR reset to itself.
    poll_for(lambda: partition_state(cluster[2], "loose"),
             lambda s: s and s[0] == 2 and s[2] == [2], 30, "loose led by broker 2 (unclean)")
    # "strict" does not: no leader, the ISR still names broker 1.
    time.sleep(3)
    assert partition_state(cluster[2], "strict")[0] == -1, partition_state(cluster[2], "strict")
    admin = AdminClient({"bootstrap.servers": bootstrap(cluster, only=[1, 2])})
    result = admin.elect_leaders(ElectionType.UNCLEAN,
                                 [TopicPartition("strict", 0)]).result(timeout=30)
    assert list(result.values()) == [None], result
    poll_for(lambda: partition_state(cluster[2], "strict"),
             lambda s: s and s[0] == 2 and s[2] == [2], 30, "strict led by broker 2 after asking")
    # Both take writes again; what only broker 1 had is gone (the price of
    # an unclean election), and broker 1 drops it when it returns.
    for topic in ("strict", "loose"):
        results = produce(cluster, topic, [b"after-%d" % i for i in range(5)])
        assert all(err is None for err, _ in results), results
    cluster[0].start()
    for topic in ("strict", "loose"):
        poll_for(lambda t=topic: partition_state(cluster[2], t), lambda s: s and s[2] == [1, 2],
                 30, f"broker 1 back in {topic}'s ISR")
        read = [v for _, v in consume_all(cluster, topic, 5)]
        assert read == [b"after-%d" % i for i in range(5)], read
        poll_for(lambda t=topic: (log_bytes(cluster[0], t), log_bytes(cluster[1], t)),
                 lambda c: c[0] and c[0] == c[1], 30, f"identical copies of {topic}")
