"""`wharf consume --group` with the cooperative-sticky assignor beside a
confluent-kafka (librdkafka) consumer that asks for it too: the group picks
cooperative-sticky, whichever member leads, the partitions are split
between them and each record is read once."""

import pytest

from clients import (assert_shared_once, c_consumer, create_topic, produce_and_share,
                     run_command, spawn_wharf_member, stop_both, wait_for_group,
                     wharf_partitions_of)

pytestmark = pytest.mark.timeout(120)


def wharf(wharf_bin, broker, *args, check=True):
    return run_command([str(wharf_bin), *args, "--bootstrap-server", broker.bootstrap],
                       timeout=60, check=check)


def test_wharf_and_librdkafka_share_a_cooperative_sticky_group(wharf_bin, broker):
    create_topic(broker, "coop", partitions=6)
    proc, from_wharf, reader = spawn_wharf_member(wharf_bin, broker, "coop", "coop-group")
    consumer = c_consumer(broker.bootstrap, **{"group.id": "coop-group",
                                               "partition.assignment.strategy":
                                                   "cooperative-sticky",
                                               "auto.offset.reset": "earliest",
                                               "enable.partition.eof": False})
    try:
        consumer.subscribe(["coop"])
        d = wait_for_group(
            lambda: wharf(wharf_bin, broker, "group", "describe", "coop-group", "--output", "json",
                          check=False),
            consumer,
            lambda d: d["state"] == "Stable" and
            sorted(len(m["assignment"]) for m in d["members"]) == [3, 3],
            timeout=60)
        assert d["protocol"] == "cooperative-sticky", d
        wharf_partitions = wharf_partitions_of(d)
        assert len(wharf_partitions) == 3, d

        from_librdkafka = produce_and_share(broker, "coop", 60, consumer, from_wharf)
    finally:
        stop_both(consumer, proc, reader)

    assert_shared_once(from_wharf, from_librdkafka, wharf_partitions, 60)
