"""A small, hand-written encoder/decoder for the few Kafka requests the
compat tests send over raw sockets.

Only what the tests need is here: request/response headers, ApiVersions,
Metadata, Produce (v0-v8), ListOffsets, DeleteTopics (v4-v6), legacy message
sets (magic 0/1) and v2 record batches with CRC-32C. Layouts follow the
message definitions in Apache Kafka's protocol documentation.
"""

import itertools
import socket
import struct
import time
import zlib

# --- API keys ---------------------------------------------------------------
PRODUCE = 0
FETCH = 1
LIST_OFFSETS = 2
METADATA = 3
API_VERSIONS = 18
CREATE_TOPICS = 19
DELETE_TOPICS = 20
DESCRIBE_CLUSTER = 60

# --- error codes --------------------------------------------------------------
NONE = 0
CORRUPT_MESSAGE = 2
UNKNOWN_TOPIC_OR_PARTITION = 3
INVALID_TOPIC_EXCEPTION = 17
UNSUPPORTED_VERSION = 35
TOPIC_ALREADY_EXISTS = 36
INVALID_PARTITIONS = 37
UNKNOWN_TOPIC_ID = 100

# First version of each API that uses the "flexible" (compact + tagged) encoding.
FLEXIBLE_FROM = {
    PRODUCE: 9,
    FETCH: 12,
    LIST_OFFSETS: 6,
    METADATA: 9,
    API_VERSIONS: 3,
    CREATE_TOPICS: 5,
    DELETE_TOPICS: 4,
    DESCRIBE_CLUSTER: 0,
}

# ListOffsets special timestamps
LATEST = -1
EARLIEST = -2
MAX_TIMESTAMP = -3


class ConnectionClosed(Exception):
    """The broker closed the connection (EOF or reset) while we waited."""


class ProtocolError(Exception):
    """A response did not have the layout we expected."""


def is_flexible(api_key, version):
    first = FLEXIBLE_FROM.get(api_key)
    return first is not None and version >= first


# --- primitive encoding -------------------------------------------------------
class Writer:
    def __init__(self):
        self.buf = bytearray()

    def raw(self, b):
        self.buf += b
        return self

    def i8(self, v):
        self.buf += struct.pack(">b", v)
        return self

    def boolean(self, v):
        return self.i8(1 if v else 0)

    def i16(self, v):
        self.buf += struct.pack(">h", v)
        return self

    def i32(self, v):
        self.buf += struct.pack(">i", v)
        return self

    def u32(self, v):
        self.buf += struct.pack(">I", v)
        return self

    def i64(self, v):
        self.buf += struct.pack(">q", v)
        return self

    def uuid(self, b):
        assert len(b) == 16
        self.buf += b
        return self

    def uvarint(self, v):
        assert v >= 0
        while True:
            byte = v & 0x7F
            v >>= 7
            if v:
                self.buf.append(byte | 0x80)
            else:
                self.buf.append(byte)
                return self

    def varint(self, v):
        # zig-zag, 64-bit
        return self.uvarint((v << 1) ^ (v >> 63))

    def string(self, s):
        if s is None:
            return self.i16(-1)
        b = s.encode() if isinstance(s, str) else s
        return self.i16(len(b)).raw(b)

    def bytes_(self, b):
        if b is None:
            return self.i32(-1)
        return self.i32(len(b)).raw(b)

    def compact_string(self, s):
        if s is None:
            return self.uvarint(0)
        b = s.encode() if isinstance(s, str) else s
        return self.uvarint(len(b) + 1).raw(b)

    def compact_bytes(self, b):
        if b is None:
            return self.uvarint(0)
        return self.uvarint(len(b) + 1).raw(b)

    def array(self, items, fn, compact=False):
        if items is None:
            return self.uvarint(0) if compact else self.i32(-1)
        if compact:
            self.uvarint(len(items) + 1)
        else:
            self.i32(len(items))
        for item in items:
            fn(self, item)
        return self

    def tags(self):
        return self.uvarint(0)

    def bytes(self):
        return bytes(self.buf)


class Reader:
    def __init__(self, data, pos=0):
        self.data = data
        self.pos = pos

    def _take(self, n):
        if n < 0 or self.pos + n > len(self.data):
            raise ProtocolError(
                f"need {n} bytes at {self.pos}, frame has {len(self.data)}")
        b = self.data[self.pos:self.pos + n]
        self.pos += n
        return b

    def remaining(self):
        return len(self.data) - self.pos

    def i8(self):
        return struct.unpack(">b", self._take(1))[0]

    def boolean(self):
        return self.i8() != 0

    def i16(self):
        return struct.unpack(">h", self._take(2))[0]

    def i32(self):
        return struct.unpack(">i", self._take(4))[0]

    def i64(self):
        return struct.unpack(">q", self._take(8))[0]

    def uuid(self):
        return bytes(self._take(16))

    def uvarint(self):
        shift = 0
        result = 0
        while True:
            byte = self._take(1)[0]
            result |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return result
            shift += 7
            if shift > 63:
                raise ProtocolError("varint too long")

    def varint(self):
        u = self.uvarint()
        return (u >> 1) ^ -(u & 1)

    def string(self, compact=False):
        n = self.uvarint() - 1 if compact else self.i16()
        if n < 0:
            return None
        return bytes(self._take(n)).decode()

    def bytes_(self, compact=False):
        n = self.uvarint() - 1 if compact else self.i32()
        if n < 0:
            return None
        return bytes(self._take(n))

    def array(self, fn, compact=False):
        n = self.uvarint() - 1 if compact else self.i32()
        if n < 0:
            return None
        return [fn(self) for _ in range(n)]

    def tags(self):
        for _ in range(self.uvarint()):
            self.uvarint()  # tag
            self._take(self.uvarint())

    def expect_end(self):
        if self.remaining():
            raise ProtocolError(f"{self.remaining()} unread bytes at end of response")


# --- checksums ----------------------------------------------------------------
def _crc32c_table():
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_CRC32C = _crc32c_table()


def crc32c(data):
    c = 0xFFFFFFFF
    for b in data:
        c = _CRC32C[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


assert crc32c(b"123456789") == 0xE3069283


# --- record formats -----------------------------------------------------------
def record_batch(records, base_offset=0, base_timestamp=None):
    """Encode an uncompressed magic-2 record batch.

    records: list of (key, value, headers, timestamp_ms); headers is a list of
    (str, bytes|None); timestamp may be None (then base_timestamp/now is used).
    """
    now = int(time.time() * 1000)
    stamps = [r[3] if r[3] is not None else (base_timestamp or now) for r in records]
    first_ts = base_timestamp if base_timestamp is not None else min(stamps)
    body = Writer()
    for delta, (key, value, headers, _ts) in enumerate(records):
        rec = Writer()
        rec.i8(0)  # attributes
        rec.varint(stamps[delta] - first_ts)
        rec.varint(delta)
        for blob in (key, value):
            if blob is None:
                rec.varint(-1)
            else:
                rec.varint(len(blob)).raw(blob)
        rec.varint(len(headers))
        for hk, hv in headers:
            hkb = hk.encode()
            rec.varint(len(hkb)).raw(hkb)
            if hv is None:
                rec.varint(-1)
            else:
                rec.varint(len(hv)).raw(hv)
        encoded = rec.bytes()
        body.varint(len(encoded)).raw(encoded)

    after_crc = Writer()
    after_crc.i16(0)  # attributes: no compression, CreateTime, not transactional
    after_crc.i32(len(records) - 1)  # last offset delta
    after_crc.i64(first_ts)
    after_crc.i64(max(stamps))
    after_crc.i64(-1)  # producer id
    after_crc.i16(-1)  # producer epoch
    after_crc.i32(-1)  # base sequence
    after_crc.i32(len(records))
    after_crc.raw(body.bytes())
    tail = after_crc.bytes()

    out = Writer()
    out.i64(base_offset)
    out.i32(4 + 1 + 4 + len(tail))  # partition leader epoch + magic + crc + rest
    out.i32(-1)  # partition leader epoch
    out.i8(2)  # magic
    out.u32(crc32c(tail))
    out.raw(tail)
    return out.bytes()


# Byte offset of the CRC field inside a v2 batch (after baseOffset, batchLength,
# partitionLeaderEpoch and magic).
BATCH_CRC_OFFSET = 8 + 4 + 4 + 1


def legacy_message_set(records, magic):
    """Encode a magic 0 or 1 message set (what Produce v0-v2 carries)."""
    out = Writer()
    now = int(time.time() * 1000)
    for i, (key, value) in enumerate(records):
        msg = Writer()
        msg.i8(magic).i8(0)
        if magic >= 1:
            msg.i64(now)
        msg.bytes_(key).bytes_(value)
        content = msg.bytes()
        full = struct.pack(">I", zlib.crc32(content) & 0xFFFFFFFF) + content
        out.i64(i).i32(len(full)).raw(full)
    return out.bytes()


def parse_record_batches(data):
    """Decode uncompressed v2 batches from a Fetch's records blob.

    Returns a list of dicts (offset, timestamp, key, value, headers). A
    trailing partial batch, which Fetch is allowed to return, is ignored.
    """
    out = []
    r = Reader(data)
    while r.remaining() >= 12:
        base_offset = r.i64()
        length = r.i32()
        if r.remaining() < length:
            break
        b = Reader(r._take(length))
        b.i32()  # partition leader epoch
        magic = b.i8()
        if magic != 2:
            raise ProtocolError(f"unexpected magic {magic}")
        b.i32()  # crc
        attributes = b.i16()
        if attributes & 0x7:
            raise ProtocolError("compressed batch; parse_record_batches only reads plain ones")
        b.i32()
        first_ts = b.i64()
        b.i64()
        b.i64()
        b.i16()
        b.i32()
        count = b.i32()
        for _ in range(count):
            b.varint()  # length
            b.i8()
            ts_delta = b.varint()
            off_delta = b.varint()
            klen = b.varint()
            key = bytes(b._take(klen)) if klen >= 0 else None
            vlen = b.varint()
            value = bytes(b._take(vlen)) if vlen >= 0 else None
            headers = []
            for _ in range(b.varint()):
                hk = bytes(b._take(b.varint())).decode()
                hvlen = b.varint()
                headers.append((hk, bytes(b._take(hvlen)) if hvlen >= 0 else None))
            out.append(dict(offset=base_offset + off_delta, timestamp=first_ts + ts_delta,
                            key=key, value=value, headers=headers))
    return out


# --- connection -----------------------------------------------------------------
class Conn:
    """One TCP connection speaking length-prefixed Kafka frames."""

    def __init__(self, bootstrap, timeout=10.0, client_id="wharf-compat"):
        host, port = bootstrap.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=timeout)
        self.sock.settimeout(timeout)
        self.client_id = client_id
        self._corr = itertools.count(1)

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def send_raw(self, data):
        self.sock.sendall(data)

    def encode_request(self, api_key, version, body, corr=None, header_version=None):
        if corr is None:
            corr = next(self._corr)
        if header_version is None:
            header_version = 2 if is_flexible(api_key, version) else 1
        h = Writer().i16(api_key).i16(version).i32(corr).string(self.client_id)
        if header_version >= 2:
            h.tags()
        payload = h.bytes() + body
        return corr, struct.pack(">i", len(payload)) + payload

    def send_request(self, api_key, version, body, corr=None, header_version=None):
        corr, frame = self.encode_request(api_key, version, body, corr, header_version)
        self.send_raw(frame)
        return corr

    def _recv_exact(self, n):
        chunks = bytearray()
        while len(chunks) < n:
            try:
                chunk = self.sock.recv(n - len(chunks))
            except (ConnectionResetError, BrokenPipeError) as e:
                raise ConnectionClosed(str(e)) from e
            if not chunk:
                raise ConnectionClosed(f"EOF after {len(chunks)} of {n} bytes")
            chunks += chunk
        return bytes(chunks)

    def recv_frame(self):
        (size,) = struct.unpack(">i", self._recv_exact(4))
        if size < 4 or size > 64 * 1024 * 1024:
            raise ProtocolError(f"implausible response frame size {size}")
        return self._recv_exact(size)

    def recv_response(self, api_key, version, corr):
        """Read one response and return a Reader positioned at its body."""
        frame = self.recv_frame()
        r = Reader(frame)
        got = r.i32()
        if got != corr:
            raise ProtocolError(f"correlation id {got}, expected {corr}")
        # ApiVersions responses always use header v0 (no tagged fields).
        if api_key != API_VERSIONS and is_flexible(api_key, version):
            r.tags()
        return r

    def request(self, api_key, version, body):
        corr = self.send_request(api_key, version, body)
        return self.recv_response(api_key, version, corr)

    def wait_closed(self, timeout=5.0):
        """True if the peer closes (EOF/reset) within timeout, reading and
        discarding anything it sends first; False if it stays open."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                return False
            except (ConnectionResetError, BrokenPipeError):
                return True
            if not chunk:
                return True


# --- APIs -------------------------------------------------------------------------
def api_versions_body(version):
    if version >= 3:
        return Writer().compact_string("wharf-compat").compact_string("1.0").tags().bytes()
    return b""


def parse_api_versions(r, version):
    """Return (error_code, {api_key: (min, max)})."""
    flexible = version >= 3
    error = r.i16()

    def entry(rr):
        key, lo, hi = rr.i16(), rr.i16(), rr.i16()
        if flexible:
            rr.tags()
        return key, (lo, hi)

    entries = r.array(entry, compact=flexible) or []
    if version >= 1:
        r.i32()  # throttle
    if flexible:
        r.tags()
    return error, dict(entries)


def api_versions(conn, version=0):
    r = conn.request(API_VERSIONS, version, api_versions_body(version))
    return parse_api_versions(r, version)


def pick_version(supported, api_key, lo, hi):
    """Highest version in [lo, hi] the broker advertises, or None."""
    if api_key not in supported:
        return None
    blo, bhi = supported[api_key]
    v = min(hi, bhi)
    return v if v >= max(lo, blo) else None


def metadata(conn, version, topics=None, allow_auto_create=True, topic_ids=None):
    """Metadata v1-v12. topics=None asks for all topics."""
    flex = version >= 9
    w = Writer()
    if topic_ids is not None:
        names = [(tid, None) for tid in topic_ids]
    elif topics is not None:
        names = [(b"\0" * 16, t) for t in topics]
    else:
        names = None

    def topic_entry(ww, item):
        tid, name = item
        if version >= 10:
            ww.uuid(tid)
        if flex:
            ww.compact_string(name)
            ww.tags()
        else:
            ww.string(name)

    w.array(names, topic_entry, compact=flex)
    if version >= 4:
        w.boolean(allow_auto_create)
    if 8 <= version <= 10:
        w.boolean(False)
    if version >= 8:
        w.boolean(False)
    if flex:
        w.tags()
    r = conn.request(METADATA, version, w.bytes())

    out = {}
    if version >= 3:
        r.i32()

    def broker(rr):
        b = dict(node_id=rr.i32(), host=rr.string(flex), port=rr.i32())
        b["rack"] = rr.string(flex)
        if flex:
            rr.tags()
        return b

    out["brokers"] = r.array(broker, flex)
    out["cluster_id"] = r.string(flex) if version >= 2 else None
    out["controller_id"] = r.i32()

    def int_array(rr):
        return rr.array(lambda x: x.i32(), flex)

    def partition(rr):
        p = dict(error_code=rr.i16(), index=rr.i32(), leader=rr.i32())
        if version >= 7:
            p["leader_epoch"] = rr.i32()
        p["replicas"] = int_array(rr)
        p["isr"] = int_array(rr)
        if version >= 5:
            p["offline"] = int_array(rr)
        if flex:
            rr.tags()
        return p

    def topic(rr):
        t = dict(error_code=rr.i16(), name=rr.string(flex))
        t["topic_id"] = rr.uuid() if version >= 10 else None
        t["is_internal"] = rr.boolean()
        t["partitions"] = rr.array(partition, flex)
        if version >= 8:
            rr.i32()
        if flex:
            rr.tags()
        return t

    out["topics"] = r.array(topic, flex)
    if 8 <= version <= 10:
        r.i32()
    if flex:
        r.tags()
    r.expect_end()
    return out


def produce_body(version, topic, partition, records, acks=-1, timeout_ms=5000):
    """Produce request body, v0-v8 (non-flexible)."""
    assert version <= 8
    w = Writer()
    if version >= 3:
        w.string(None)  # transactional id
    w.i16(acks).i32(timeout_ms)
    w.i32(1).string(topic)
    w.i32(1).i32(partition).bytes_(records)
    return w.bytes()


def parse_produce_response(r, version):
    """Return {(topic, partition): error_code/base_offset dict}."""
    out = {}
    for _ in range(r.i32()):
        name = r.string()
        for _ in range(r.i32()):
            p = dict(index=r.i32(), error_code=r.i16(), base_offset=r.i64())
            if version >= 2:
                p["log_append_time"] = r.i64()
            if version >= 5:
                p["log_start_offset"] = r.i64()
            if version >= 8:
                r.array(lambda x: (x.i32(), x.string()))
                p["error_message"] = r.string()
            out[(name, p["index"])] = p
    if version >= 1:
        r.i32()
    r.expect_end()
    return out


def produce(conn, version, topic, partition, records, acks=-1):
    r = conn.request(PRODUCE, version, produce_body(version, topic, partition, records, acks))
    return parse_produce_response(r, version)[(topic, partition)]


def list_offsets(conn, version, topic, partition, timestamp):
    """ListOffsets v1-v7 for one partition: returns dict(error_code, timestamp, offset)."""
    flex = version >= 6
    w = Writer().i32(-1)
    if version >= 2:
        w.i8(0)

    def part(ww, _):
        ww.i32(partition)
        if version >= 4:
            ww.i32(-1)
        ww.i64(timestamp)
        if flex:
            ww.tags()

    def top(ww, _):
        ww.compact_string(topic) if flex else ww.string(topic)
        ww.array([None], part, flex)
        if flex:
            ww.tags()

    w.array([None], top, flex)
    if flex:
        w.tags()
    r = conn.request(LIST_OFFSETS, version, w.bytes())
    if version >= 2:
        r.i32()
    result = {}

    def rpart(rr):
        p = dict(index=rr.i32(), error_code=rr.i16(), timestamp=rr.i64(), offset=rr.i64())
        if version >= 4:
            p["leader_epoch"] = rr.i32()
        if flex:
            rr.tags()
        result[p["index"]] = p

    def rtop(rr):
        rr.string(flex)
        rr.array(rpart, flex)
        if flex:
            rr.tags()

    r.array(rtop, flex)
    if flex:
        r.tags()
    r.expect_end()
    return result[partition]


def delete_topics_by_id(conn, topic_ids, version=6, timeout_ms=5000):
    """DeleteTopics v6: returns list of dicts (name, topic_id, error_code)."""
    w = Writer()
    w.array(topic_ids, lambda ww, tid: ww.compact_string(None).uuid(tid).tags(), compact=True)
    w.i32(timeout_ms).tags()
    r = conn.request(DELETE_TOPICS, version, w.bytes())
    r.i32()

    def resp(rr):
        d = dict(name=rr.string(True), topic_id=rr.uuid(), error_code=rr.i16(),
                 error_message=rr.string(True))
        rr.tags()
        return d

    out = r.array(resp, True)
    r.tags()
    r.expect_end()
    return out


def wait_until(pred, timeout=10.0, interval=0.1):
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            return v
        time.sleep(interval)


def negotiated(conn, api_key, lo, hi):
    """Ask ApiVersions (v0) and pick the highest version of api_key in [lo, hi]."""
    _err, supported = api_versions(conn, 0)
    return pick_version(supported, api_key, lo, hi)


def topic_metadata(bootstrap, topics=None, allow_auto_create=False):
    """Metadata at the highest version in 1..12 the broker offers.

    Returns (version, parsed response)."""
    with Conn(bootstrap) as conn:
        version = negotiated(conn, METADATA, 1, 12)
        assert version is not None, "broker offers no Metadata version in 1..12"
        return version, metadata(conn, version, topics, allow_auto_create)


def topic_ids(bootstrap, names):
    """{name: 16-byte topic id} via Metadata v10+, or None if the broker
    offers no Metadata version that carries topic ids."""
    version, md = topic_metadata(bootstrap, names)
    if version < 10:
        return None
    return {t["name"]: t["topic_id"] for t in md["topics"]}
