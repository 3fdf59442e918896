"""Topic deletion and creation semantics, and auto-creation switched off."""

import pytest
from confluent_kafka import KafkaError, TopicPartition

import kafka_wire as kw
from clients import (admin, assert_delivered, c_consume, c_consumer, c_produce, c_producer,
                     create_topic, kcat)

pytestmark = pytest.mark.timeout(90)




def delete(b, name):
    a = admin(b)
    a.delete_topics([name], request_timeout=15)[name].result(timeout=20)


def fill(b, topic, partitions, per_partition=5):
    records = [dict(value=f"{topic}-{p}-{i}".encode(), partition=p)
               for p in range(partitions) for i in range(per_partition)]
    assert_delivered(c_produce(c_producer(b.bootstrap), topic, records))


@pytest.mark.disk
def test_delete_topic_removes_partition_dirs_and_metadata(broker):
    create_topic(broker, "gone", 3)
    create_topic(broker, "kept", 1)
    fill(broker, "gone", 3)
    fill(broker, "kept", 1)
    assert broker.partition_dirs("gone") == ["gone-0", "gone-1", "gone-2"]
    assert broker.partition_dirs("kept") == ["kept-0"]

    delete(broker, "gone")
    assert kw.wait_until(lambda: broker.partition_dirs("gone") == [], timeout=10), \
        f"still on disk: {broker.partition_dirs('gone')}"
    # nothing else named after the topic is left behind either
    leftovers = [p.name for p in broker.data_dir.rglob("gone*")]
    assert kw.wait_until(lambda: not list(broker.data_dir.rglob("gone*")), timeout=10), leftovers

    assert "gone" not in admin(broker).list_topics(timeout=10).topics
    _v, md = kw.topic_metadata(broker.bootstrap, ["gone"], allow_auto_create=False)
    assert [(t["name"], t["error_code"]) for t in md["topics"]] == [
        ("gone", kw.UNKNOWN_TOPIC_OR_PARTITION)]

    # the other topic is untouched
    assert broker.partition_dirs("kept") == ["kept-0"]
    assert [m.value() for m in c_consume(broker.bootstrap, "kept")] == [
        f"kept-0-{i}".encode() for i in range(5)]

    # and the deletion survives a crash
    broker.restart(graceful=False)
    assert "gone" not in admin(broker).list_topics(timeout=10).topics
    assert broker.partition_dirs("gone") == []


def test_recreated_topic_starts_empty_with_new_id(broker):
    create_topic(broker, "phoenix", 1)
    fill(broker, "phoenix", 1, per_partition=7)
    old = kw.topic_ids(broker.bootstrap, ["phoenix"])
    delete(broker, "phoenix")
    create_topic(broker, "phoenix", 2)
    c = c_consumer(broker.bootstrap)
    try:
        assert c.get_watermark_offsets(TopicPartition("phoenix", 0), timeout=10) == (0, 0)
    finally:
        c.close()
    if old is not None:
        new = kw.topic_ids(broker.bootstrap, ["phoenix"])
        assert new["phoenix"] != old["phoenix"]
        assert new["phoenix"] != b"\0" * 16
    reports = c_produce(c_producer(broker.bootstrap), "phoenix", [dict(value=b"reborn", partition=0)])
    assert_delivered(reports)
    assert reports[0][1].offset() == 0
    assert [m.value() for m in c_consume(broker.bootstrap, "phoenix")] == [b"reborn"]


def test_delete_unknown_topic_by_name(broker):
    a = admin(broker)
    fut = a.delete_topics(["nope"], request_timeout=15)["nope"]
    with pytest.raises(Exception) as ei:
        fut.result(timeout=20)
    assert ei.value.args[0].code() == KafkaError.UNKNOWN_TOPIC_OR_PART


def test_delete_topic_by_id(broker):
    create_topic(broker, "byid", 2)
    fill(broker, "byid", 2)
    with kw.Conn(broker.bootstrap) as conn:
        if kw.negotiated(conn, kw.DELETE_TOPICS, 6, 6) is None:
            pytest.skip("broker offers no DeleteTopics v6 (delete by id)")
        if kw.negotiated(conn, kw.METADATA, 10, 12) is None:
            pytest.skip("broker offers no Metadata v10+ (topic ids)")
    tid = kw.topic_ids(broker.bootstrap, ["byid"])["byid"]
    assert tid != b"\0" * 16
    with kw.Conn(broker.bootstrap) as conn:
        res = kw.delete_topics_by_id(conn, [tid])
    assert [(r["topic_id"], r["error_code"]) for r in res] == [(tid, kw.NONE)]
    assert "byid" not in admin(broker).list_topics(timeout=10).topics
    assert kw.wait_until(lambda: broker.partition_dirs("byid") == [], timeout=10)

    # the same id again is now unknown: UNKNOWN_TOPIC_ID (100)
    with kw.Conn(broker.bootstrap) as conn:
        res = kw.delete_topics_by_id(conn, [tid])
    assert [(r["topic_id"], r["error_code"]) for r in res] == [(tid, kw.UNKNOWN_TOPIC_ID)]


# --- auto-creation off -------------------------------------------------------------
@pytest.fixture
def strict(broker_factory):
    return broker_factory(auto_create=False)


def test_auto_create_off_metadata_reports_unknown_topic(strict):
    _v, md = kw.topic_metadata(strict.bootstrap, ["ghost"], allow_auto_create=True)
    assert [(t["name"], t["error_code"]) for t in md["topics"]] == [
        ("ghost", kw.UNKNOWN_TOPIC_OR_PARTITION)]
    _v, md = kw.topic_metadata(strict.bootstrap, None)
    assert "ghost" not in [t["name"] for t in md["topics"]]
    assert strict.partition_dirs("ghost") == []


def test_auto_create_off_confluent_produce_fails(strict):
    p = c_producer(strict.bootstrap, **{"message.timeout.ms": 8000,
                                        "topic.metadata.propagation.max.ms": 1000})
    reports = c_produce(p, "ghost", [dict(value=b"lost")])
    err = reports[0][0]
    assert err is not None, "produce to a missing topic was acknowledged"
    assert err.code() in (KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._UNKNOWN_TOPIC), err
    md = admin(strict).list_topics(timeout=10)
    assert "ghost" not in md.topics


def test_auto_create_off_kcat_produce_fails(strict):
    proc = kcat(strict.bootstrap, "-t", "ghost", "-P", "-X", "topic.metadata.propagation.max.ms=1000",
                "-X", "message.timeout.ms=8000", stdin="lost\n", check=False, timeout=40)
    assert proc.returncode != 0 or "nknown topic" in proc.stderr, proc.stderr
    assert "nknown topic" in proc.stderr or "UNKNOWN_TOPIC" in proc.stderr, proc.stderr


def test_auto_create_off_consumer_sees_unknown_topic(strict):
    c = c_consumer(strict.bootstrap)
    try:
        md = c.list_topics("ghost", timeout=10)
        assert md.topics["ghost"].error is not None
        assert md.topics["ghost"].error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART
    finally:
        c.close()


def test_auto_create_off_explicit_create_still_works(strict):
    create_topic(strict, "real", 2)
    assert_delivered(c_produce(c_producer(strict.bootstrap), "real", [dict(value=b"ok", partition=1)]))
    assert [m.value() for m in c_consume(strict.bootstrap, "real", partition=1)] == [b"ok"]
