//! Records of the `__consumer_offsets` topic, in Apache Kafka's own schemas
//! (the `OffsetCommitKey`/`OffsetCommitValue` and
//! `GroupMetadataKey`/`GroupMetadataValue` message definitions), so tools
//! that read that topic understand what Wharf writes.
//!
//! Every key and value starts with an int16 schema version. Wharf writes
//! offset commit key v1, offset commit value v3, group metadata key v2 and
//! group metadata value v3 (all non-flexible: int16-length strings, int32
//! length byte arrays and arrays). It reads offset values v0-v3 and group
//! values v0-v3.

use bytes::Bytes;

/// Key version of an offset commit.
pub const OFFSET_KEY_VERSION: i16 = 1;
/// Key version of group metadata.
pub const GROUP_KEY_VERSION: i16 = 2;
/// Value version Wharf writes for an offset commit.
pub const OFFSET_VALUE_VERSION: i16 = 3;
/// Value version Wharf writes for group metadata.
pub const GROUP_VALUE_VERSION: i16 = 3;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RecordError {
    #[error("record ends early")]
    Truncated,
    #[error("unknown key version {0}")]
    UnknownKeyVersion(i16),
    #[error("unknown value version {0}")]
    UnknownValueVersion(i16),
    #[error("string is not UTF-8")]
    NotUtf8,
    #[error("negative length {0}")]
    NegativeLength(i32),
}

/// The key of a `__consumer_offsets` record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordKey {
    Offset {
        group: String,
        topic: String,
        partition: i32,
    },
    Group {
        group: String,
    },
}

impl RecordKey {
    pub fn group(&self) -> &str {
        match self {
            RecordKey::Offset { group, .. } | RecordKey::Group { group } => group,
        }
    }
}

/// An offset commit's value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetValue {
    pub offset: i64,
    /// -1 when unknown.
    pub leader_epoch: i32,
    pub metadata: String,
    pub commit_timestamp: i64,
}

/// One member in a group metadata value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberValue {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout: i32,
    pub session_timeout: i32,
    pub subscription: Bytes,
    pub assignment: Bytes,
}

/// A group metadata value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupValue {
    pub protocol_type: String,
    pub generation: i32,
    pub protocol: Option<String>,
    pub leader: Option<String>,
    pub current_state_timestamp: i64,
    pub members: Vec<MemberValue>,
}

pub fn encode_key(key: &RecordKey) -> Vec<u8> {
    let mut out = Vec::new();
    match key {
        RecordKey::Offset {
            group,
            topic,
            partition,
        } => {
            put_i16(&mut out, OFFSET_KEY_VERSION);
            put_str(&mut out, group);
            put_str(&mut out, topic);
            out.extend_from_slice(&partition.to_be_bytes());
        }
        RecordKey::Group { group } => {
            put_i16(&mut out, GROUP_KEY_VERSION);
            put_str(&mut out, group);
        }
    }
    out
}

pub fn decode_key(buf: &[u8]) -> Result<RecordKey, RecordError> {
    let mut r = Reader(buf);
    match r.i16()? {
        0 | 1 => Ok(RecordKey::Offset {
            group: r.string()?,
            topic: r.string()?,
            partition: r.i32()?,
        }),
        2 => Ok(RecordKey::Group { group: r.string()? }),
        v => Err(RecordError::UnknownKeyVersion(v)),
    }
}

pub fn encode_offset_value(v: &OffsetValue) -> Vec<u8> {
    let mut out = Vec::new();
    put_i16(&mut out, OFFSET_VALUE_VERSION);
    out.extend_from_slice(&v.offset.to_be_bytes());
    out.extend_from_slice(&v.leader_epoch.to_be_bytes());
    put_str(&mut out, &v.metadata);
    out.extend_from_slice(&v.commit_timestamp.to_be_bytes());
    out
}

pub fn decode_offset_value(buf: &[u8]) -> Result<OffsetValue, RecordError> {
    let mut r = Reader(buf);
    let version = r.i16()?;
    if !(0..=3).contains(&version) {
        return Err(RecordError::UnknownValueVersion(version));
    }
    let offset = r.i64()?;
    let leader_epoch = if version >= 3 { r.i32()? } else { -1 };
    let metadata = r.string()?;
    let commit_timestamp = r.i64()?;
    if version == 1 {
        let _expire_timestamp = r.i64()?;
    }
    Ok(OffsetValue {
        offset,
        leader_epoch,
        metadata,
        commit_timestamp,
    })
}

pub fn encode_group_value(v: &GroupValue) -> Vec<u8> {
    let mut out = Vec::new();
    put_i16(&mut out, GROUP_VALUE_VERSION);
    put_str(&mut out, &v.protocol_type);
    out.extend_from_slice(&v.generation.to_be_bytes());
    put_nullable_str(&mut out, v.protocol.as_deref());
    put_nullable_str(&mut out, v.leader.as_deref());
    out.extend_from_slice(&v.current_state_timestamp.to_be_bytes());
    put_len(&mut out, v.members.len());
    for m in &v.members {
        put_str(&mut out, &m.member_id);
        put_nullable_str(&mut out, m.group_instance_id.as_deref());
        put_str(&mut out, &m.client_id);
        put_str(&mut out, &m.client_host);
        out.extend_from_slice(&m.rebalance_timeout.to_be_bytes());
        out.extend_from_slice(&m.session_timeout.to_be_bytes());
        put_len(&mut out, m.subscription.len());
        out.extend_from_slice(&m.subscription);
        put_len(&mut out, m.assignment.len());
        out.extend_from_slice(&m.assignment);
    }
    out
}

pub fn decode_group_value(buf: &[u8]) -> Result<GroupValue, RecordError> {
    let mut r = Reader(buf);
    let version = r.i16()?;
    if !(0..=3).contains(&version) {
        return Err(RecordError::UnknownValueVersion(version));
    }
    let protocol_type = r.string()?;
    let generation = r.i32()?;
    let protocol = r.nullable_string()?;
    let leader = r.nullable_string()?;
    let current_state_timestamp = if version >= 2 { r.i64()? } else { -1 };
    let count = r.len()?;
    let mut members = Vec::with_capacity(count.min(1024));
    for _ in 0..count {
        let member_id = r.string()?;
        let group_instance_id = if version >= 3 {
            r.nullable_string()?
        } else {
            None
        };
        let client_id = r.string()?;
        let client_host = r.string()?;
        let rebalance_timeout = if version >= 1 { r.i32()? } else { -1 };
        let session_timeout = r.i32()?;
        let subscription = Bytes::copy_from_slice(r.bytes()?);
        let assignment = Bytes::copy_from_slice(r.bytes()?);
        let rebalance_timeout = if rebalance_timeout < 0 {
            session_timeout
        } else {
            rebalance_timeout
        };
        members.push(MemberValue {
            member_id,
            group_instance_id,
            client_id,
            client_host,
            rebalance_timeout,
            session_timeout,
            subscription,
            assignment,
        });
    }
    Ok(GroupValue {
        protocol_type,
        generation,
        protocol,
        leader,
        current_state_timestamp,
        members,
    })
}

pub(crate) fn put_i16(out: &mut Vec<u8>, v: i16) {
    out.extend_from_slice(&v.to_be_bytes());
}

/// The longest string these int16-length schemas hold, in bytes.
pub const MAX_STRING_LEN: usize = i16::MAX as usize;

/// Whether `s` can be stored faithfully in a record. Flexible request
/// versions carry longer strings; the coordinators refuse those at the
/// request (INVALID_GROUP_ID, INVALID_REQUEST) so that nothing reaches
/// [`put_str`] that it would have to cut.
pub fn fits(s: &str) -> bool {
    s.len() <= MAX_STRING_LEN
}

/// Writes an int16-length string. Callers check [`fits`] at the request;
/// a longer string here would be a bug, and is cut rather than written with
/// a wrong length.
pub(crate) fn put_str(out: &mut Vec<u8>, s: &str) {
    debug_assert!(fits(s), "a {}-byte string reached a record", s.len());
    let bytes = s.as_bytes();
    let len = bytes.len().min(i16::MAX as usize);
    put_i16(out, i16::try_from(len).unwrap_or(i16::MAX));
    out.extend_from_slice(bytes.get(..len).unwrap_or_default());
}

fn put_nullable_str(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        Some(s) => put_str(out, s),
        None => put_i16(out, -1),
    }
}

fn put_len(out: &mut Vec<u8>, len: usize) {
    out.extend_from_slice(&i32::try_from(len).unwrap_or(i32::MAX).to_be_bytes());
}

pub(crate) struct Reader<'a>(pub(crate) &'a [u8]);

impl<'a> Reader<'a> {
    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], RecordError> {
        if self.0.len() < n {
            return Err(RecordError::Truncated);
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], RecordError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }
    pub(crate) fn i16(&mut self) -> Result<i16, RecordError> {
        Ok(i16::from_be_bytes(self.array()?))
    }
    pub(crate) fn i32(&mut self) -> Result<i32, RecordError> {
        Ok(i32::from_be_bytes(self.array()?))
    }
    pub(crate) fn i64(&mut self) -> Result<i64, RecordError> {
        Ok(i64::from_be_bytes(self.array()?))
    }
    fn nullable_string(&mut self) -> Result<Option<String>, RecordError> {
        let len = self.i16()?;
        if len < 0 {
            return Ok(None);
        }
        let raw = self.take(usize::try_from(len).unwrap_or(0))?;
        String::from_utf8(raw.to_vec())
            .map(Some)
            .map_err(|_| RecordError::NotUtf8)
    }
    pub(crate) fn string(&mut self) -> Result<String, RecordError> {
        Ok(self.nullable_string()?.unwrap_or_default())
    }
    fn len(&mut self) -> Result<usize, RecordError> {
        let len = self.i32()?;
        usize::try_from(len).map_err(|_| RecordError::NegativeLength(len))
    }
    fn bytes(&mut self) -> Result<&'a [u8], RecordError> {
        let len = self.i32()?;
        if len < 0 {
            return Ok(&[]);
        }
        self.take(usize::try_from(len).unwrap_or(0))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn offset_key_matches_kafka_layout_byte_for_byte() {
        let key = RecordKey::Offset {
            group: "g".into(),
            topic: "t".into(),
            partition: 2,
        };
        let bytes = encode_key(&key);
        assert_eq!(bytes, vec![0, 1, 0, 1, b'g', 0, 1, b't', 0, 0, 0, 2]);
        assert_eq!(decode_key(&bytes).unwrap(), key);
    }

    #[test]
    fn offset_value_round_trips_and_reads_v1_with_expiry() {
        let v = OffsetValue {
            offset: 42,
            leader_epoch: 3,
            metadata: "meta".into(),
            commit_timestamp: 1000,
        };
        assert_eq!(decode_offset_value(&encode_offset_value(&v)).unwrap(), v);
        let mut v1 = vec![0, 1];
        v1.extend_from_slice(&7i64.to_be_bytes());
        v1.extend_from_slice(&[0, 0]);
        v1.extend_from_slice(&5i64.to_be_bytes());
        v1.extend_from_slice(&9i64.to_be_bytes());
        let d = decode_offset_value(&v1).unwrap();
        assert_eq!((d.offset, d.leader_epoch, d.commit_timestamp), (7, -1, 5));
    }

    #[test]
    fn group_value_round_trips_with_members() {
        let v = GroupValue {
            protocol_type: "consumer".into(),
            generation: 4,
            protocol: Some("range".into()),
            leader: Some("m1".into()),
            current_state_timestamp: 77,
            members: vec![MemberValue {
                member_id: "m1".into(),
                group_instance_id: Some("i1".into()),
                client_id: "c".into(),
                client_host: "/127.0.0.1".into(),
                rebalance_timeout: 300,
                session_timeout: 100,
                subscription: Bytes::from_static(b"sub"),
                assignment: Bytes::from_static(b"asg"),
            }],
        };
        let bytes = encode_group_value(&v);
        assert_eq!(&bytes[..2], &[0, 3]);
        assert_eq!(decode_group_value(&bytes).unwrap(), v);
        assert_eq!(
            decode_key(&encode_key(&RecordKey::Group { group: "g".into() })).unwrap(),
            RecordKey::Group { group: "g".into() }
        );
    }

    #[test]
    fn rejects_truncated_and_unknown_versions() {
        assert_eq!(decode_key(&[0, 1, 0, 5, b'a']), Err(RecordError::Truncated));
        assert_eq!(decode_key(&[0, 9]), Err(RecordError::UnknownKeyVersion(9)));
        assert_eq!(
            decode_offset_value(&[0, 8]),
            Err(RecordError::UnknownValueVersion(8))
        );
    }
}
