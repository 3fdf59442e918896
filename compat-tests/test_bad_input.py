"""Hostile and malformed input over raw sockets. After every case the broker
must still answer a normal request on a new connection (and the fixture
fails the test if the process died)."""

import struct
import time

import pytest

import kafka_wire as kw

pytestmark = pytest.mark.timeout(60)


def assert_serves(b):
    """A fresh connection gets a sane ApiVersions and Metadata answer."""
    with kw.Conn(b.bootstrap) as conn:
        err, apis = kw.api_versions(conn, 0)
        assert err == kw.NONE
        assert kw.API_VERSIONS in apis and kw.PRODUCE in apis and kw.METADATA in apis
        version = kw.pick_version(apis, kw.METADATA, 1, 12)
        md = kw.metadata(conn, version, None)
        assert len(md["brokers"]) == 1 and md["controller_id"] == md["brokers"][0]["node_id"]


def ensure_topic(b, name):
    _v, md = kw.topic_metadata(b.bootstrap, [name], allow_auto_create=True)
    assert [(t["name"], t["error_code"]) for t in md["topics"]] == [(name, kw.NONE)]


def produce_version(conn):
    v = kw.negotiated(conn, kw.PRODUCE, 3, 8)
    assert v is not None, "broker offers no Produce version in 3..8"
    return v


def latest_offset(b, topic, partition=0):
    with kw.Conn(b.bootstrap) as conn:
        v = kw.negotiated(conn, kw.LIST_OFFSETS, 1, 5)
        assert v is not None
        res = kw.list_offsets(conn, v, topic, partition, kw.LATEST)
    assert res["error_code"] == kw.NONE
    return res["offset"]


# --- framing ------------------------------------------------------------------------
def test_frame_over_max_request_size_closes_connection(broker_factory):
    b = broker_factory(max_request_size=65536)
    with kw.Conn(b.bootstrap) as conn:
        conn.send_raw(struct.pack(">i", 65536 * 4) + b"\0" * 64)
        assert conn.wait_closed(5), "connection still open after an oversized frame"
    assert_serves(b)


def test_frame_under_max_request_size_is_served(broker_factory):
    b = broker_factory(max_request_size=65536)
    ensure_topic(b, "near-limit")
    batch = kw.record_batch([(b"k", b"x" * 40_000, [], None)])
    with kw.Conn(b.bootstrap) as conn:
        res = kw.produce(conn, produce_version(conn), "near-limit", 0, batch)
    assert (res["error_code"], res["base_offset"]) == (kw.NONE, 0)


def test_huge_declared_length_closes_connection(broker):
    with kw.Conn(broker.bootstrap) as conn:
        conn.send_raw(struct.pack(">i", 0x7FFFFFF0) + b"\0" * 16)
        assert conn.wait_closed(5)
    assert_serves(broker)


def test_negative_length_closes_connection(broker):
    with kw.Conn(broker.bootstrap) as conn:
        conn.send_raw(struct.pack(">i", -1) + b"\0" * 16)
        assert conn.wait_closed(5)
    assert_serves(broker)


def test_http_request_closes_connection(broker):
    with kw.Conn(broker.bootstrap) as conn:
        conn.send_raw(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        assert conn.wait_closed(5)
    assert_serves(broker)


@pytest.mark.parametrize("payload", [
    b"\xff" * 8,                    # api key -1, no room for a client id
    b"\x00\x12",                    # two bytes: not even a header
    b"\x00\x12\x00\x00\x00\x00\x00\x07\x00\xc8abc",  # client id says 200 bytes, has 3
], ids=["all-ones", "too-short", "client-id-overrun"])
def test_garbage_frame_closes_connection(broker, payload):
    with kw.Conn(broker.bootstrap) as conn:
        conn.send_raw(struct.pack(">i", len(payload)) + payload)
        assert conn.wait_closed(5)
    assert_serves(broker)


def test_truncated_frame_then_close_leaves_broker_serving(broker):
    for _ in range(3):
        with kw.Conn(broker.bootstrap) as conn:
            conn.send_raw(struct.pack(">i", 100) + b"\x00\x12\x00\x00" + b"\0" * 6)
    time.sleep(0.2)
    assert_serves(broker)


def test_unknown_api_key(broker):
    with kw.Conn(broker.bootstrap) as conn:
        corr = conn.send_request(9999, 0, b"")
        closed = False
        try:
            frame = conn.recv_frame()
        except kw.ConnectionClosed:
            closed = True
        if not closed:
            (got,) = struct.unpack(">i", frame[:4])
            assert got == corr, "reply to an unknown API key carries the wrong correlation id"
            # the connection stays usable
            err, _apis = kw.api_versions(conn, 0)
            assert err == kw.NONE
    assert_serves(broker)


def test_unsupported_version_of_known_api(broker):
    # Metadata v999 does not exist: an error answer or a closed connection.
    with kw.Conn(broker.bootstrap) as conn:
        corr = conn.send_request(kw.METADATA, 999, b"\x00", header_version=2)
        try:
            frame = conn.recv_frame()
        except kw.ConnectionClosed:
            frame = None
        if frame is not None:
            assert struct.unpack(">i", frame[:4])[0] == corr
    assert_serves(broker)


# --- ApiVersions with a version from the future -------------------------------------------
def test_api_versions_unknown_version_answers_v0_with_unsupported_version(broker):
    with kw.Conn(broker.bootstrap) as conn:
        corr = conn.send_request(kw.API_VERSIONS, 99, kw.api_versions_body(3), header_version=2)
        r = conn.recv_response(kw.API_VERSIONS, 0, corr)  # header v0
        err, apis = kw.parse_api_versions(r, 0)  # body in the v0 layout
        r.expect_end()
        assert err == kw.UNSUPPORTED_VERSION
        assert kw.API_VERSIONS in apis
        lo, hi = apis[kw.API_VERSIONS]
        assert lo == 0 and hi >= 3
        # the client retries with a version it now knows is supported
        err, apis = kw.api_versions(conn, 3)
        assert err == kw.NONE and kw.PRODUCE in apis
    assert_serves(broker)


# --- Produce edge cases -------------------------------------------------------------------
@pytest.mark.parametrize("version", [0, 1, 2])
def test_legacy_produce_versions_are_refused(broker, version):
    ensure_topic(broker, "legacy")
    records = kw.legacy_message_set([(b"k", b"old-format")], magic=0 if version < 2 else 1)
    body = kw.produce_body(version, "legacy", 0, records)
    with kw.Conn(broker.bootstrap) as conn:
        corr = conn.send_request(kw.PRODUCE, version, body)
        try:
            r = conn.recv_response(kw.PRODUCE, version, corr)
        except kw.ConnectionClosed:
            r = None
        if r is not None:
            res = kw.parse_produce_response(r, version)
            assert res[("legacy", 0)]["error_code"] == kw.UNSUPPORTED_VERSION, res
    assert latest_offset(broker, "legacy") == 0, "a refused legacy produce appended records"
    assert_serves(broker)


def test_produce_to_missing_partition(broker):
    ensure_topic(broker, "one-part")
    batch = kw.record_batch([(b"k", b"v", [], None)])
    with kw.Conn(broker.bootstrap) as conn:
        res = kw.produce(conn, produce_version(conn), "one-part", 99, batch)
        assert res["error_code"] == kw.UNKNOWN_TOPIC_OR_PARTITION
        # same connection, valid partition: accepted
        res = kw.produce(conn, produce_version(conn), "one-part", 0, batch)
        assert (res["error_code"], res["base_offset"]) == (kw.NONE, 0)
    assert_serves(broker)


def test_produce_with_corrupted_crc(broker):
    ensure_topic(broker, "crc")
    good = kw.record_batch([(b"k", b"payload", [], None), (b"k2", b"payload2", [], None)])
    bad = bytearray(good)
    bad[kw.BATCH_CRC_OFFSET] ^= 0xFF
    with kw.Conn(broker.bootstrap) as conn:
        v = produce_version(conn)
        res = kw.produce(conn, v, "crc", 0, bytes(bad))
        assert res["error_code"] == kw.CORRUPT_MESSAGE
        assert latest_offset(broker, "crc") == 0, "corrupt batch was appended"
        res = kw.produce(conn, v, "crc", 0, good)
        assert (res["error_code"], res["base_offset"]) == (kw.NONE, 0)
    assert latest_offset(broker, "crc") == 2
    assert_serves(broker)


def test_produce_with_corrupted_payload_byte(broker):
    # Flip a byte inside the records (not the CRC): the CRC no longer matches.
    ensure_topic(broker, "flip")
    good = kw.record_batch([(b"key", b"some payload bytes", [], None)])
    bad = bytearray(good)
    bad[-3] ^= 0x01
    with kw.Conn(broker.bootstrap) as conn:
        res = kw.produce(conn, produce_version(conn), "flip", 0, bytes(bad))
    assert res["error_code"] == kw.CORRUPT_MESSAGE
    assert latest_offset(broker, "flip") == 0
    assert_serves(broker)


def test_produce_to_unknown_topic_does_not_create_it(broker):
    # Kafka creates topics from Metadata requests, never from Produce.
    batch = kw.record_batch([(None, b"v", [], None)])
    with kw.Conn(broker.bootstrap) as conn:
        res = kw.produce(conn, produce_version(conn), "never-announced", 0, batch)
    assert res["error_code"] == kw.UNKNOWN_TOPIC_OR_PARTITION
    assert_serves(broker)
