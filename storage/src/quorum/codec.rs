//! Byte layouts of the quorum's files: the Raft log's entry frames, and the
//! sealed form of the small files (vote, committed, log start, snapshot).
//!
//! Integers are big-endian, as in Kafka's formats. Every decoder is total:
//! short or malformed input gives `None`, never a panic.

use super::{QuorumEntry, QuorumLogId, QuorumMembership, QuorumPayload};

/// Bytes before an entry's body: body length (u32) and CRC-32C of the body (u32).
pub(crate) const ENTRY_HEADER: usize = 8;

/// The largest entry body a frame may declare (a bound on a garbage length
/// read from a torn tail, not a limit anyone should reach).
pub(crate) const MAX_ENTRY_BYTES: u32 = 64 << 20;

const PAYLOAD_BLANK: u8 = 0;
const PAYLOAD_RECORDS: u8 = 1;
const PAYLOAD_MEMBERSHIP: u8 = 2;

/// Appends big-endian integers and length-prefixed bytes to a buffer.
#[derive(Default)]
pub(crate) struct Writer {
    pub(crate) buf: Vec<u8>,
}

impl Writer {
    pub(crate) fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }
    pub(crate) fn u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }
    pub(crate) fn u64(&mut self, v: u64) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }
    /// Length (u32) then bytes. Lengths past u32 cannot occur: entries are
    /// bounded far below by the Raft layer.
    pub(crate) fn bytes(&mut self, v: &[u8]) {
        self.u32(u32::try_from(v.len()).unwrap_or(u32::MAX));
        self.buf.extend_from_slice(v);
    }
    pub(crate) fn log_id(&mut self, id: &QuorumLogId) {
        self.u64(id.term);
        self.u64(id.node_id);
        self.u64(id.index);
    }
    pub(crate) fn opt_log_id(&mut self, id: &Option<QuorumLogId>) {
        match id {
            None => self.u8(0),
            Some(id) => {
                self.u8(1);
                self.log_id(id);
            }
        }
    }
    pub(crate) fn membership(&mut self, m: &QuorumMembership) {
        self.u32(len32(m.configs.len()));
        for config in &m.configs {
            self.u32(len32(config.len()));
            for id in config {
                self.u64(*id);
            }
        }
        self.u32(len32(m.nodes.len()));
        for (id, addr) in &m.nodes {
            self.u64(*id);
            self.bytes(addr.as_bytes());
        }
    }
}

fn len32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// Reads what [`Writer`] wrote; every call checks bounds.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Reader { buf }
    }
    pub(crate) fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.buf.len() < n {
            return None;
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Some(head)
    }
    pub(crate) fn u8(&mut self) -> Option<u8> {
        self.take(1)?.first().copied()
    }
    pub(crate) fn u32(&mut self) -> Option<u32> {
        Some(u32::from_be_bytes(self.take(4)?.try_into().ok()?))
    }
    pub(crate) fn u64(&mut self) -> Option<u64> {
        Some(u64::from_be_bytes(self.take(8)?.try_into().ok()?))
    }
    pub(crate) fn bytes(&mut self) -> Option<&'a [u8]> {
        let n = self.u32()? as usize;
        self.take(n)
    }
    pub(crate) fn string(&mut self) -> Option<String> {
        String::from_utf8(self.bytes()?.to_vec()).ok()
    }
    pub(crate) fn log_id(&mut self) -> Option<QuorumLogId> {
        Some(QuorumLogId {
            term: self.u64()?,
            node_id: self.u64()?,
            index: self.u64()?,
        })
    }
    pub(crate) fn opt_log_id(&mut self) -> Option<Option<QuorumLogId>> {
        match self.u8()? {
            0 => Some(None),
            1 => Some(Some(self.log_id()?)),
            _ => None,
        }
    }
    pub(crate) fn membership(&mut self) -> Option<QuorumMembership> {
        let configs_len = self.u32()?;
        let mut configs = Vec::new();
        for _ in 0..configs_len {
            let n = self.u32()?;
            let mut config = Vec::new();
            for _ in 0..n {
                config.push(self.u64()?);
            }
            configs.push(config);
        }
        let nodes_len = self.u32()?;
        let mut nodes = Vec::new();
        for _ in 0..nodes_len {
            let id = self.u64()?;
            nodes.push((id, self.string()?));
        }
        Some(QuorumMembership { configs, nodes })
    }
}

/// Encodes one entry as a frame: `len u32, crc32c u32, body`, where body is
/// `term u64, node_id u64, index u64, kind u8, payload`.
pub(crate) fn encode_entry(entry: &QuorumEntry, out: &mut Vec<u8>) {
    let mut body = Writer::default();
    body.log_id(&entry.log_id);
    match &entry.payload {
        QuorumPayload::Blank => body.u8(PAYLOAD_BLANK),
        QuorumPayload::Records(records) => {
            body.u8(PAYLOAD_RECORDS);
            body.u32(len32(records.len()));
            for r in records {
                body.bytes(r);
            }
        }
        QuorumPayload::Membership(m) => {
            body.u8(PAYLOAD_MEMBERSHIP);
            body.membership(m);
        }
    }
    out.extend_from_slice(&len32(body.buf.len()).to_be_bytes());
    out.extend_from_slice(&crc32c::crc32c(&body.buf).to_be_bytes());
    out.extend_from_slice(&body.buf);
}

/// The outcome of reading one frame from a log segment's bytes.
pub(crate) enum Frame {
    /// A whole, valid entry and the frame's length in bytes.
    Entry(QuorumEntry, usize),
    /// Fewer bytes than a frame header or its declared body: a torn write.
    Short,
    /// The frame is whole but its CRC or layout is wrong.
    Invalid(&'static str),
}

/// Reads the frame at the start of `buf`.
pub(crate) fn decode_entry(buf: &[u8]) -> Frame {
    let mut r = Reader::new(buf);
    let (Some(len), Some(crc)) = (r.u32(), r.u32()) else {
        return Frame::Short;
    };
    if len > MAX_ENTRY_BYTES {
        return Frame::Invalid("declared length too large");
    }
    let Some(body) = r.take(len as usize) else {
        return Frame::Short;
    };
    if crc32c::crc32c(body) != crc {
        return Frame::Invalid("CRC mismatch");
    }
    match decode_body(body) {
        Some(entry) => Frame::Entry(entry, ENTRY_HEADER + len as usize),
        None => Frame::Invalid("malformed entry body"),
    }
}

fn decode_body(body: &[u8]) -> Option<QuorumEntry> {
    let mut r = Reader::new(body);
    let log_id = r.log_id()?;
    let payload = match r.u8()? {
        PAYLOAD_BLANK => QuorumPayload::Blank,
        PAYLOAD_RECORDS => {
            let n = r.u32()?;
            let mut records = Vec::new();
            for _ in 0..n {
                records.push(r.bytes()?.to_vec());
            }
            QuorumPayload::Records(records)
        }
        PAYLOAD_MEMBERSHIP => QuorumPayload::Membership(r.membership()?),
        _ => return None,
    };
    if !r.is_empty() {
        return None;
    }
    Some(QuorumEntry { log_id, payload })
}

/// Encodes a list of records (each an encoded `MetadataRecord`) as
/// `count u32, (len u32, bytes)*`: the body of a snapshot.
pub fn encode_record_list(records: &[Vec<u8>]) -> Vec<u8> {
    let mut w = Writer::default();
    w.u32(len32(records.len()));
    for r in records {
        w.bytes(r);
    }
    w.buf
}

/// Decodes [`encode_record_list`]'s output; `None` if malformed.
pub fn decode_record_list(buf: &[u8]) -> Option<Vec<Vec<u8>>> {
    let mut r = Reader::new(buf);
    let n = r.u32()?;
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(r.bytes()?.to_vec());
    }
    r.is_empty().then_some(out)
}

/// Seals a small file's body: `magic (4 bytes), version u8, len u32,
/// crc32c u32, body`.
pub(crate) fn seal(magic: &[u8; 4], body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 13);
    out.extend_from_slice(magic);
    out.push(0);
    out.extend_from_slice(&len32(body.len()).to_be_bytes());
    out.extend_from_slice(&crc32c::crc32c(body).to_be_bytes());
    out.extend_from_slice(body);
    out
}

/// The body of a file [`seal`]ed with `magic`, if it is whole and valid.
pub(crate) fn unseal<'a>(magic: &[u8; 4], bytes: &'a [u8]) -> Result<&'a [u8], &'static str> {
    let mut r = Reader::new(bytes);
    if r.take(4) != Some(magic.as_slice()) {
        return Err("wrong magic");
    }
    if r.u8() != Some(0) {
        return Err("unknown version");
    }
    let (Some(len), Some(crc)) = (r.u32(), r.u32()) else {
        return Err("truncated header");
    };
    let body = r.take(len as usize).ok_or("truncated body")?;
    if !r.is_empty() {
        return Err("trailing bytes");
    }
    if crc32c::crc32c(body) != crc {
        return Err("CRC mismatch");
    }
    Ok(body)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn entry(index: u64, payload: QuorumPayload) -> QuorumEntry {
        QuorumEntry {
            log_id: QuorumLogId {
                term: 3,
                node_id: 2,
                index,
            },
            payload,
        }
    }

    #[test]
    fn entries_of_every_kind_round_trip() {
        let membership = QuorumMembership {
            configs: vec![vec![1, 2, 3]],
            nodes: vec![(1, "a:1".into()), (2, "b:2".into()), (3, "c:3".into())],
        };
        for e in [
            entry(0, QuorumPayload::Membership(membership)),
            entry(1, QuorumPayload::Blank),
            entry(2, QuorumPayload::Records(vec![vec![1, 2], vec![], vec![9]])),
        ] {
            let mut buf = Vec::new();
            encode_entry(&e, &mut buf);
            match decode_entry(&buf) {
                Frame::Entry(back, n) => {
                    assert_eq!(back, e);
                    assert_eq!(n, buf.len());
                }
                _ => panic!("did not decode"),
            }
        }
    }

    #[test]
    fn a_short_frame_is_short_and_a_flipped_bit_is_invalid() {
        let mut buf = Vec::new();
        encode_entry(
            &entry(5, QuorumPayload::Records(vec![vec![7; 40]])),
            &mut buf,
        );
        for cut in [0, 3, 8, buf.len() - 1] {
            assert!(
                matches!(decode_entry(&buf[..cut]), Frame::Short),
                "cut {cut}"
            );
        }
        let last = buf.len() - 1;
        buf[last] ^= 1;
        assert!(matches!(decode_entry(&buf), Frame::Invalid(_)));
    }

    #[test]
    fn sealed_files_reject_damage() {
        let sealed = seal(b"TEST", b"hello");
        assert_eq!(unseal(b"TEST", &sealed).unwrap(), b"hello");
        assert!(unseal(b"OTHR", &sealed).is_err());
        assert!(unseal(b"TEST", &sealed[..sealed.len() - 1]).is_err());
        let mut bad = sealed.clone();
        let last = bad.len() - 1;
        bad[last] ^= 0x40;
        assert_eq!(unseal(b"TEST", &bad), Err("CRC mismatch"));
    }

    #[test]
    fn record_lists_round_trip_and_reject_trailing_bytes() {
        let list = vec![vec![1u8, 2, 3], vec![], vec![4]];
        let buf = encode_record_list(&list);
        assert_eq!(decode_record_list(&buf).unwrap(), list);
        let mut longer = buf.clone();
        longer.push(0);
        assert!(decode_record_list(&longer).is_none());
        assert!(decode_record_list(&buf[..buf.len() - 1]).is_none());
    }
}
