//! A Fetch response encoded as a list of chunks, so stored record batches go
//! to the socket as they are.
//!
//! `kafka-protocol` encodes a `FetchResponse` into one buffer, copying every
//! partition's records into it. [`encode_chunks`] writes the same bytes
//! (byte for byte, for every version Wharf serves) but leaves each large
//! `records` field as its own chunk: a clone of the `Bytes` the handler put
//! there, which costs a reference count, not a copy. The connection then
//! writes all chunks with one vectored write.
//!
//! Nested structs (aborted transactions, tagged fields' values, node
//! endpoints) are encoded by `kafka-protocol` itself. Unknown tagged fields (which Wharf never sets) cannot be written
//! through its public API; a response carrying any is encoded whole by
//! `kafka-protocol` into a single chunk instead.

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::FetchResponse;
use kafka_protocol::protocol::Encodable;

/// Oldest Fetch version [`encode_chunks`] writes.
pub const MIN_VERSION: i16 = 4;
/// Newest Fetch version [`encode_chunks`] writes.
pub const MAX_VERSION: i16 = 18;

/// Records shorter than this are copied into the surrounding chunk: an extra
/// iovec entry costs more than copying a few hundred bytes.
const COPY_BELOW: usize = 512;

/// Why a Fetch response could not be encoded.
#[derive(Debug, thiserror::Error)]
#[error("could not encode a Fetch v{version} response: {reason}")]
pub struct EncodeError {
    pub version: i16,
    pub reason: String,
}

/// Encodes `response` at `version` as chunks whose concatenation is exactly
/// what `response.encode(buf, version)` writes.
pub fn encode_chunks(
    response: &FetchResponse,
    version: i16,
) -> std::result::Result<Vec<Bytes>, EncodeError> {
    let fail = |e: anyhow::Error| EncodeError {
        version,
        reason: e.to_string(),
    };
    if !(MIN_VERSION..=MAX_VERSION).contains(&version) {
        return Err(EncodeError {
            version,
            reason: "version out of range".to_string(),
        });
    }
    if has_unknown_tagged_fields(response) {
        let mut out = BytesMut::with_capacity(response.compute_size(version).map_err(fail)?);
        response.encode(&mut out, version).map_err(fail)?;
        return Ok(vec![out.freeze()]);
    }
    let mut writer = ChunkWriter::default();
    write_response(&mut writer, response, version).map_err(fail)?;
    Ok(writer.finish())
}

/// Collects encoded fields in `head`, cutting a chunk off before each large
/// records field.
#[derive(Default)]
struct ChunkWriter {
    chunks: Vec<Bytes>,
    head: BytesMut,
}

impl ChunkWriter {
    fn records(&mut self, records: &Bytes) {
        if records.len() < COPY_BELOW {
            self.head.put_slice(records);
        } else {
            if !self.head.is_empty() {
                self.chunks.push(self.head.split().freeze());
            }
            self.chunks.push(records.clone());
        }
    }

    fn finish(mut self) -> Vec<Bytes> {
        if !self.head.is_empty() || self.chunks.is_empty() {
            self.chunks.push(self.head.freeze());
        }
        self.chunks
    }
}

type Result<T> = anyhow::Result<T>;

fn flexible(version: i16) -> bool {
    version >= 12
}

/// An array's length: INT32 (-1 for null), or in flexible versions an
/// unsigned varint of length + 1 (0 for null).
fn array_len(out: &mut BytesMut, version: i16, len: Option<usize>) -> Result<()> {
    if flexible(version) {
        let n = match len {
            None => 0,
            Some(n) => u32::try_from(n)?.checked_add(1).ok_or_else(too_long)?,
        };
        put_uvarint(out, n);
    } else {
        let n = match len {
            None => -1,
            Some(n) => i32::try_from(n)?,
        };
        out.put_i32(n);
    }
    Ok(())
}

fn put_uvarint(out: &mut BytesMut, mut n: u32) {
    while n >= 0x80 {
        // Low seven bits with the continuation bit; truncation intended.
        out.put_u8((n as u8 & 0x7f) | 0x80);
        n >>= 7;
    }
    out.put_u8(n as u8);
}

/// A struct `kafka-protocol` encodes, as a tagged field or an array element.
fn put_struct<T: Encodable>(out: &mut BytesMut, value: &T, version: i16) -> Result<()> {
    value.encode(out, version)
}

fn put_array<T: Encodable>(out: &mut BytesMut, items: Option<&[T]>, version: i16) -> Result<()> {
    array_len(out, version, items.map(<[T]>::len))?;
    for item in items.unwrap_or_default() {
        put_struct(out, item, version)?;
    }
    Ok(())
}

fn too_long() -> anyhow::Error {
    anyhow::anyhow!("length does not fit the wire format")
}

fn write_response(w: &mut ChunkWriter, r: &FetchResponse, version: i16) -> Result<()> {
    w.head.put_i32(r.throttle_time_ms);
    if version >= 7 {
        w.head.put_i16(r.error_code);
        w.head.put_i32(r.session_id);
    } else if r.session_id != 0 {
        anyhow::bail!("session_id needs Fetch v7 or later");
    }
    array_len(&mut w.head, version, Some(r.responses.len()))?;
    for topic in &r.responses {
        write_topic(w, topic, version)?;
    }
    if flexible(version) {
        let endpoints = version >= 16 && !r.node_endpoints.is_empty();
        put_uvarint(&mut w.head, u32::from(endpoints));
        if endpoints {
            let mut field = BytesMut::new();
            put_array(&mut field, Some(&r.node_endpoints), version)?;
            put_uvarint(&mut w.head, 0);
            put_uvarint(&mut w.head, u32::try_from(field.len())?);
            w.head.put_slice(&field);
        }
    }
    Ok(())
}

fn write_topic(w: &mut ChunkWriter, t: &FetchableTopicResponse, version: i16) -> Result<()> {
    if version >= 13 {
        w.head.put_slice(t.topic_id.as_bytes());
    } else {
        let name = t.topic.as_bytes();
        if flexible(version) {
            let n = u32::try_from(name.len())?
                .checked_add(1)
                .ok_or_else(too_long)?;
            put_uvarint(&mut w.head, n);
        } else {
            w.head.put_i16(i16::try_from(name.len())?);
        }
        w.head.put_slice(name);
    }
    array_len(&mut w.head, version, Some(t.partitions.len()))?;
    for p in &t.partitions {
        write_partition(w, p, version)?;
    }
    if flexible(version) {
        put_uvarint(&mut w.head, 0);
    }
    Ok(())
}

fn write_partition(w: &mut ChunkWriter, p: &PartitionData, version: i16) -> Result<()> {
    let out = &mut w.head;
    out.put_i32(p.partition_index);
    out.put_i16(p.error_code);
    out.put_i64(p.high_watermark);
    out.put_i64(p.last_stable_offset);
    if version >= 5 {
        out.put_i64(p.log_start_offset);
    }
    put_array(out, p.aborted_transactions.as_deref(), version)?;
    if version >= 11 {
        out.put_i32(p.preferred_read_replica.0);
    } else if p.preferred_read_replica != -1 {
        anyhow::bail!("preferred_read_replica needs Fetch v11 or later");
    }
    array_len(out, version, p.records.as_ref().map(Bytes::len))?;
    if let Some(records) = &p.records {
        w.records(records);
    }
    if flexible(version) {
        write_partition_tags(&mut w.head, p, version)?;
    }
    Ok(())
}

/// The partition's tagged fields, each written only when it differs from its default.
fn write_partition_tags(out: &mut BytesMut, p: &PartitionData, version: i16) -> Result<()> {
    let diverging = p.diverging_epoch != Default::default();
    let leader = p.current_leader != Default::default();
    let snapshot = p.snapshot_id != Default::default();
    put_uvarint(
        out,
        u32::from(diverging) + u32::from(leader) + u32::from(snapshot),
    );
    if diverging {
        tagged(out, 0, &p.diverging_epoch, version)?;
    }
    if leader {
        tagged(out, 1, &p.current_leader, version)?;
    }
    if snapshot {
        tagged(out, 2, &p.snapshot_id, version)?;
    }
    Ok(())
}

fn tagged<T: Encodable>(out: &mut BytesMut, tag: u32, value: &T, version: i16) -> Result<()> {
    put_uvarint(out, tag);
    put_uvarint(out, u32::try_from(value.compute_size(version)?)?);
    put_struct(out, value, version)
}

/// Whether a level this module writes itself carries unknown tagged fields
/// (nested structs are written by `kafka-protocol`, theirs included).
fn has_unknown_tagged_fields(r: &FetchResponse) -> bool {
    !r.unknown_tagged_fields.is_empty()
        || r.responses.iter().any(|t| {
            !t.unknown_tagged_fields.is_empty()
                || t.partitions
                    .iter()
                    .any(|p| !p.unknown_tagged_fields.is_empty())
        })
}
