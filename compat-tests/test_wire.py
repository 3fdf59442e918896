"""Well-formed requests over raw sockets: what the broker advertises and
answers, checked field by field where the clients hide the details."""

import struct

import pytest

import kafka_wire as kw
from clients import c_consume

pytestmark = pytest.mark.timeout(60)

REQUIRED_APIS = [kw.PRODUCE, kw.FETCH, kw.LIST_OFFSETS, kw.METADATA, kw.API_VERSIONS,
                 kw.CREATE_TOPICS, kw.DELETE_TOPICS, kw.DESCRIBE_CLUSTER]


def test_api_versions_all_request_versions_agree(broker):
    answers = []
    with kw.Conn(broker.bootstrap) as conn:
        for v in range(4):
            err, apis = kw.api_versions(conn, v)
            assert err == kw.NONE, f"ApiVersions v{v}"
            answers.append(apis)
    assert all(a == answers[0] for a in answers), "ApiVersions v0..v3 list different APIs"
    apis = answers[0]
    missing = [k for k in REQUIRED_APIS if k not in apis]
    assert not missing, f"APIs not advertised: {missing}"
    for key, (lo, hi) in apis.items():
        assert 0 <= lo <= hi, f"api {key}: bad range {lo}..{hi}"
    assert apis[kw.API_VERSIONS][1] >= 3


def test_pipelined_requests_are_answered_in_order(broker):
    with kw.Conn(broker.bootstrap) as conn:
        mv = kw.negotiated(conn, kw.METADATA, 1, 8)
        frames = []
        kinds = []
        for i in range(6):
            if i % 2:
                body = kw.Writer().i32(-1).bytes()  # Metadata v1+: all topics
                if mv >= 4:
                    body += b"\x00"  # allow_auto_topic_creation = false
                if mv >= 8:
                    body += b"\x00\x00"
                _c, f = conn.encode_request(kw.METADATA, mv, body, corr=100 + i)
                kinds.append(kw.METADATA)
            else:
                _c, f = conn.encode_request(kw.API_VERSIONS, 0, b"", corr=100 + i)
                kinds.append(kw.API_VERSIONS)
            frames.append(f)
        conn.send_raw(b"".join(frames))
        got = [struct.unpack(">i", conn.recv_frame()[:4])[0] for _ in frames]
    assert got == [100 + i for i in range(6)]


def test_metadata_brokers_controller_cluster_id(broker):
    version, md = kw.topic_metadata(broker.bootstrap)
    assert [(b["node_id"], b["host"], b["port"]) for b in md["brokers"]] == [
        (1, "127.0.0.1", broker.port)]
    assert md["controller_id"] == 1
    if version >= 2:
        assert md["cluster_id"], "empty cluster id"
    assert md["topics"] == []


@pytest.mark.disk
def test_cluster_id_is_stable_across_restart(broker):
    _v, before = kw.topic_metadata(broker.bootstrap)
    broker.restart(graceful=True)
    _v, after = kw.topic_metadata(broker.bootstrap)
    assert before["cluster_id"] == after["cluster_id"]


def test_advertised_listener_and_node_id_flags(broker_factory):
    b = broker_factory(advertised_listener="wharf.invalid:19999", node_id=7)
    _v, md = kw.topic_metadata(b.bootstrap, ["adv"], allow_auto_create=True)
    assert [(x["node_id"], x["host"], x["port"]) for x in md["brokers"]] == [
        (7, "wharf.invalid", 19999)]
    assert md["controller_id"] == 7
    (topic,) = md["topics"]
    assert topic["error_code"] == kw.NONE
    assert [(p["index"], p["leader"], p["replicas"], p["isr"]) for p in topic["partitions"]] == [
        (0, 7, [7], [7])]


def test_auto_created_topic_metadata(broker_factory):
    b = broker_factory(num_partitions=5)
    version, md = kw.topic_metadata(b.bootstrap, ["auto5"], allow_auto_create=True)
    (topic,) = md["topics"]
    assert (topic["name"], topic["error_code"], topic["is_internal"]) == ("auto5", kw.NONE, False)
    assert sorted(p["index"] for p in topic["partitions"]) == [0, 1, 2, 3, 4]
    assert all(p["error_code"] == kw.NONE and p["leader"] == 1 for p in topic["partitions"])
    if version >= 10:
        assert topic["topic_id"] != b"\0" * 16, "topic id is all zeros"
    assert b.partition_dirs("auto5") == [f"auto5-{i}" for i in range(5)]


def test_raw_record_batch_round_trips_through_a_client(broker):
    kw.topic_metadata(broker.bootstrap, ["raw"], allow_auto_create=True)
    batch = kw.record_batch([
        (b"k1", b"v1", [("h", b"1")], 1_600_000_000_000),
        (None, None, [("nullh", None)], 1_600_000_000_007),
        (b"k3", b"", [], 1_600_000_000_003),
    ])
    with kw.Conn(broker.bootstrap) as conn:
        v = kw.negotiated(conn, kw.PRODUCE, 3, 8)
        res = kw.produce(conn, v, "raw", 0, batch)
        assert (res["error_code"], res["base_offset"]) == (kw.NONE, 0)
        res = kw.produce(conn, v, "raw", 0, batch)
        assert (res["error_code"], res["base_offset"]) == (kw.NONE, 3)
    msgs = c_consume(broker.bootstrap, "raw")
    assert [(m.offset(), m.key(), m.value(), m.headers(), m.timestamp()[1]) for m in msgs] == [
        (0, b"k1", b"v1", [("h", b"1")], 1_600_000_000_000),
        (1, None, None, [("nullh", None)], 1_600_000_000_007),
        (2, b"k3", b"", None, 1_600_000_000_003),
        (3, b"k1", b"v1", [("h", b"1")], 1_600_000_000_000),
        (4, None, None, [("nullh", None)], 1_600_000_000_007),
        (5, b"k3", b"", None, 1_600_000_000_003),
    ]


def test_acks_zero_produce_gets_no_response(broker):
    kw.topic_metadata(broker.bootstrap, ["fire"], allow_auto_create=True)
    batch = kw.record_batch([(None, b"fire-and-forget", [], None)])
    with kw.Conn(broker.bootstrap) as conn:
        v = kw.negotiated(conn, kw.PRODUCE, 3, 8)
        conn.send_request(kw.PRODUCE, v, kw.produce_body(v, "fire", 0, batch, acks=0))
        # The next response on the wire must be the ApiVersions one: Kafka
        # sends nothing back for an acks=0 produce.
        err, _ = kw.api_versions(conn, 0)
        assert err == kw.NONE
    assert [m.value() for m in c_consume(broker.bootstrap, "fire")] == [b"fire-and-forget"]


def test_list_offsets_earliest_latest_by_time_and_max_timestamp(broker):
    kw.topic_metadata(broker.bootstrap, ["times"], allow_auto_create=True)
    with kw.Conn(broker.bootstrap) as conn:
        pv = kw.negotiated(conn, kw.PRODUCE, 3, 8)
        for ts in (1000, 5000, 3000):  # offsets 0, 1, 2; the max timestamp is at offset 1
            res = kw.produce(conn, pv, "times", 0, kw.record_batch([(None, b"x", [], ts)]))
            assert res["error_code"] == kw.NONE

        lv = kw.negotiated(conn, kw.LIST_OFFSETS, 1, 7)
        assert lv is not None

        def query(ts):
            r = kw.list_offsets(conn, lv, "times", 0, ts)
            assert r["error_code"] == kw.NONE, r
            return r

        assert query(kw.EARLIEST)["offset"] == 0
        assert query(kw.LATEST)["offset"] == 3
        r = query(2000)
        assert (r["offset"], r["timestamp"]) == (1, 5000)
        r = query(1000)
        assert (r["offset"], r["timestamp"]) == (0, 1000)
        r = query(5001)
        assert r["offset"] == -1
        if lv >= 7:
            r = query(kw.MAX_TIMESTAMP)
            assert (r["offset"], r["timestamp"]) == (1, 5000)

        r = kw.list_offsets(conn, lv, "times", 9, kw.LATEST)
        assert r["error_code"] == kw.UNKNOWN_TOPIC_OR_PARTITION


# Every version the broker advertises must actually work: clients pick the
# highest version both sides know, so an advertised but broken version breaks
# some client (librdkafka 2.0.2 in kcat, for instance, uses ListOffsets v2).
@pytest.mark.parametrize("version", range(1, 8))
def test_list_offsets_every_advertised_version(broker, version):
    kw.topic_metadata(broker.bootstrap, ["lo"], allow_auto_create=True)
    with kw.Conn(broker.bootstrap) as conn:
        if kw.negotiated(conn, kw.LIST_OFFSETS, version, version) is None:
            pytest.skip(f"ListOffsets v{version} not advertised")
        pv = kw.negotiated(conn, kw.PRODUCE, 3, 8)
        res = kw.produce(conn, pv, "lo", 0, kw.record_batch(
            [(None, b"a", [], 1000), (None, b"b", [], 2000)]))
        assert res["error_code"] == kw.NONE
        earliest = kw.list_offsets(conn, version, "lo", 0, kw.EARLIEST)
        latest = kw.list_offsets(conn, version, "lo", 0, kw.LATEST)
        by_time = kw.list_offsets(conn, version, "lo", 0, 1500)
    assert (earliest["error_code"], earliest["offset"]) == (kw.NONE, 0)
    assert (latest["error_code"], latest["offset"]) == (kw.NONE, 2)
    assert (by_time["error_code"], by_time["offset"], by_time["timestamp"]) == (kw.NONE, 1, 2000)


@pytest.mark.parametrize("version", range(1, 13))
def test_metadata_every_advertised_version(broker, version):
    with kw.Conn(broker.bootstrap) as conn:
        if kw.negotiated(conn, kw.METADATA, version, version) is None:
            pytest.skip(f"Metadata v{version} not advertised")
        # v1-v3 cannot ask for auto-creation; create through v4+ first if possible
        md = kw.metadata(conn, version, ["mdv"], allow_auto_create=True)
        if version < 4:
            assert [t["name"] for t in md["topics"]] == ["mdv"]
            return
    (topic,) = md["topics"]
    assert (topic["name"], topic["error_code"]) == ("mdv", kw.NONE)
    assert [p["index"] for p in topic["partitions"]] == [0]
    assert [(b["node_id"], b["port"]) for b in md["brokers"]] == [(1, broker.port)]


@pytest.mark.parametrize("version", range(3, 9))
def test_produce_every_advertised_version(broker, version):
    kw.topic_metadata(broker.bootstrap, ["pv"], allow_auto_create=True)
    with kw.Conn(broker.bootstrap) as conn:
        if kw.negotiated(conn, kw.PRODUCE, version, version) is None:
            pytest.skip(f"Produce v{version} not advertised")
        for expect_offset in (0, 2):
            res = kw.produce(conn, version, "pv", 0, kw.record_batch(
                [(b"k", b"v1", [], None), (b"k", b"v2", [], None)]))
            assert (res["error_code"], res["base_offset"]) == (kw.NONE, expect_offset)
