//! The single-node release's metadata log: an append-only file of topic
//! records that release replayed on start. Releases with the cluster keep
//! metadata in `__cluster_metadata-0` instead: on the first start of a lone
//! voter, the records of this file are migrated there (see
//! `cluster::migration`) and the file is renamed `metadata.log.migrated`.
//! The writer stays for tests that build such a directory.
//!
//! File layout: a sequence of records, each
//! `[payload length: u32 BE][CRC-32C of payload: u32 BE][payload]`.
//! Payload: a kind byte, then the kind's fields (big-endian integers,
//! strings as u32 length + UTF-8 bytes):
//! - 1 `TopicCreated`: topic id (16 bytes), name, partition count (i32),
//!   config count (u32), then each config's key and value.
//! - 2 `TopicDeleted`: topic id (16 bytes).
//! - 3 `TopicConfigsChanged`: topic id (16 bytes), config count (u32), then
//!   each config's key and value: the topic's complete new set of overrides.
//! - 4 `ProducerIdsReserved`: the end (exclusive) of the block of producer
//!   ids reserved (i64): ids below it are never handed out again.
//!
//! A torn or corrupt tail (a crash mid-append) is cut off on open.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use uuid::Uuid;

pub const FILE_NAME: &str = "metadata.log";
/// What the file is renamed to once migrated.
pub const MIGRATED_NAME: &str = "metadata.log.migrated";

/// The records of `dir`'s legacy metadata log, in order (none when there is
/// no such file); a torn tail is ignored.
pub fn read_legacy(dir: &Path) -> io::Result<Vec<MetadataRecord>> {
    match std::fs::read(dir.join(FILE_NAME)) {
        Ok(bytes) => Ok(decode_all(&bytes).0),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

/// Renames `dir`'s legacy metadata log to [`MIGRATED_NAME`] and syncs the
/// directory.
pub fn retire(dir: &Path) -> io::Result<()> {
    std::fs::rename(dir.join(FILE_NAME), dir.join(MIGRATED_NAME))?;
    File::open(dir)?.sync_all()
}

const KIND_TOPIC_CREATED: u8 = 1;
const KIND_TOPIC_DELETED: u8 = 2;
const KIND_TOPIC_CONFIGS_CHANGED: u8 = 3;
const KIND_PRODUCER_IDS_RESERVED: u8 = 4;
/// No single record is this large; a length beyond it marks corruption.
const MAX_RECORD: usize = 64 * 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetadataRecord {
    TopicCreated {
        id: Uuid,
        name: String,
        partitions: i32,
        configs: BTreeMap<String, String>,
    },
    TopicDeleted {
        id: Uuid,
    },
    /// A topic's config overrides were replaced by `configs`.
    TopicConfigsChanged {
        id: Uuid,
        configs: BTreeMap<String, String>,
    },
    /// Producer ids below `end` are taken (InitProducerId hands out a
    /// block at a time).
    ProducerIdsReserved {
        end: i64,
    },
}

#[derive(Debug)]
pub struct MetadataLog {
    path: PathBuf,
    file: File,
}

impl MetadataLog {
    /// Opens (or creates) the log in `dir` and returns it with every valid
    /// record in order, having truncated any invalid tail.
    pub fn open(dir: &Path) -> io::Result<(Self, Vec<MetadataRecord>)> {
        let path = dir.join(FILE_NAME);
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&path)?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        let (records, valid_len) = decode_all(&bytes);
        if valid_len < bytes.len() {
            tracing::warn!(
                path = %path.display(),
                kept = valid_len,
                cut = bytes.len() - valid_len,
                "metadata log has a torn or corrupt tail; truncating it"
            );
            file.set_len(valid_len as u64)?;
            file.sync_all()?;
        }
        Ok((Self { path, file }, records))
    }

    /// Appends a record and syncs it to disk.
    pub fn append(&mut self, record: &MetadataRecord) -> io::Result<()> {
        let buf = frame(record)?;
        self.file.write_all(&buf)?;
        self.file.sync_data()
    }
}

/// A record as the file holds it: length, checksum, payload.
fn frame(record: &MetadataRecord) -> io::Result<Vec<u8>> {
    let payload = encode_payload(record);
    // Replay treats a longer record as a corrupt tail and cuts it (and
    // everything after it): refuse it here instead of acknowledging it.
    let len = u32::try_from(payload.len())
        .ok()
        .filter(|_| payload.len() <= MAX_RECORD)
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "metadata record of {} bytes is over the {MAX_RECORD}-byte limit",
                    payload.len()
                ),
            )
        })?;
    let mut buf = Vec::with_capacity(8 + payload.len());
    buf.extend_from_slice(&len.to_be_bytes());
    buf.extend_from_slice(&crc32c::crc32c(&payload).to_be_bytes());
    buf.extend_from_slice(&payload);
    Ok(buf)
}

impl MetadataLog {
    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn encode_payload(record: &MetadataRecord) -> Vec<u8> {
    let mut out = Vec::new();
    match record {
        MetadataRecord::TopicCreated {
            id,
            name,
            partitions,
            configs,
        } => {
            out.push(KIND_TOPIC_CREATED);
            out.extend_from_slice(id.as_bytes());
            put_str(&mut out, name);
            out.extend_from_slice(&partitions.to_be_bytes());
            put_configs(&mut out, configs);
        }
        MetadataRecord::TopicDeleted { id } => {
            out.push(KIND_TOPIC_DELETED);
            out.extend_from_slice(id.as_bytes());
        }
        MetadataRecord::TopicConfigsChanged { id, configs } => {
            out.push(KIND_TOPIC_CONFIGS_CHANGED);
            out.extend_from_slice(id.as_bytes());
            put_configs(&mut out, configs);
        }
        MetadataRecord::ProducerIdsReserved { end } => {
            out.push(KIND_PRODUCER_IDS_RESERVED);
            out.extend_from_slice(&end.to_be_bytes());
        }
    }
    out
}

fn put_configs(out: &mut Vec<u8>, configs: &BTreeMap<String, String>) {
    out.extend_from_slice(&(configs.len() as u32).to_be_bytes());
    for (k, v) in configs {
        put_str(out, k);
        put_str(out, v);
    }
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u32).to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// Decodes records from the front of `bytes`; returns them and the length of
/// the valid prefix.
fn decode_all(bytes: &[u8]) -> (Vec<MetadataRecord>, usize) {
    let mut records = Vec::new();
    let mut pos = 0;
    while let Some((record, len)) = bytes.get(pos..).and_then(decode_one) {
        records.push(record);
        pos += len;
    }
    (records, pos)
}

fn decode_one(bytes: &[u8]) -> Option<(MetadataRecord, usize)> {
    let mut r = Reader(bytes);
    let len = r.u32()? as usize;
    let crc = r.u32()?;
    if len > MAX_RECORD {
        return None;
    }
    let payload = r.take(len)?;
    if crc32c::crc32c(payload) != crc {
        return None;
    }
    let mut p = Reader(payload);
    let record = match p.u8()? {
        KIND_TOPIC_CREATED => {
            let id = p.uuid()?;
            let name = p.string()?;
            let partitions = p.i32()?;
            let configs = p.configs()?;
            MetadataRecord::TopicCreated {
                id,
                name,
                partitions,
                configs,
            }
        }
        KIND_TOPIC_DELETED => MetadataRecord::TopicDeleted { id: p.uuid()? },
        KIND_TOPIC_CONFIGS_CHANGED => MetadataRecord::TopicConfigsChanged {
            id: p.uuid()?,
            configs: p.configs()?,
        },
        KIND_PRODUCER_IDS_RESERVED => MetadataRecord::ProducerIdsReserved {
            end: i64::from_be_bytes(p.array()?),
        },
        _ => return None,
    };
    Some((record, 8 + len))
}

/// A bounds-checked cursor: every read returns `None` past the end.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Some(head)
    }
    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N)?.try_into().ok()
    }
    fn u8(&mut self) -> Option<u8> {
        Some(self.array::<1>()?[0])
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_be_bytes(self.array()?))
    }
    fn i32(&mut self) -> Option<i32> {
        Some(i32::from_be_bytes(self.array()?))
    }
    fn uuid(&mut self) -> Option<Uuid> {
        Some(Uuid::from_bytes(self.array()?))
    }
    fn configs(&mut self) -> Option<BTreeMap<String, String>> {
        let count = self.u32()?;
        let mut configs = BTreeMap::new();
        for _ in 0..count {
            let k = self.string()?;
            let v = self.string()?;
            configs.insert(k, v);
        }
        Some(configs)
    }
    fn string(&mut self) -> Option<String> {
        let len = self.u32()? as usize;
        String::from_utf8(self.take(len)?.to_vec()).ok()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn refuses_a_record_that_replay_would_cut() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _) = MetadataLog::open(dir.path()).unwrap();
        let big = MetadataRecord::TopicConfigsChanged {
            id: Uuid::new_v4(),
            configs: BTreeMap::from([("k".to_string(), "v".repeat(MAX_RECORD))]),
        };
        assert!(log.append(&big).is_err());
        let small = MetadataRecord::ProducerIdsReserved { end: 7 };
        log.append(&small).unwrap();
        drop(log);
        let (_, records) = MetadataLog::open(dir.path()).unwrap();
        assert_eq!(records, vec![small]);
    }

    fn created(name: &str) -> MetadataRecord {
        MetadataRecord::TopicCreated {
            id: Uuid::new_v4(),
            name: name.to_string(),
            partitions: 3,
            configs: BTreeMap::from([("retention.ms".to_string(), "1000".to_string())]),
        }
    }

    #[test]
    fn replays_records_in_order_after_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let a = created("a");
        let del = MetadataRecord::TopicDeleted { id: Uuid::new_v4() };
        let changed = MetadataRecord::TopicConfigsChanged {
            id: Uuid::new_v4(),
            configs: BTreeMap::from([("cleanup.policy".to_string(), "compact".to_string())]),
        };
        let ids = MetadataRecord::ProducerIdsReserved { end: 1 << 40 };
        {
            let (mut log, records) = MetadataLog::open(dir.path()).unwrap();
            assert!(records.is_empty());
            log.append(&a).unwrap();
            log.append(&del).unwrap();
            log.append(&changed).unwrap();
            log.append(&ids).unwrap();
        }
        let (_, records) = MetadataLog::open(dir.path()).unwrap();
        assert_eq!(records, vec![a, del, changed, ids]);
    }

    #[test]
    fn truncates_torn_tail_and_keeps_appending() {
        let dir = tempfile::tempdir().unwrap();
        let a = created("a");
        {
            let (mut log, _) = MetadataLog::open(dir.path()).unwrap();
            log.append(&a).unwrap();
            log.append(&created("b")).unwrap();
        }
        let path = dir.path().join(FILE_NAME);
        let full = std::fs::metadata(&path).unwrap().len();
        // Cut the second record in half.
        let file = OpenOptions::new().write(true).open(&path).unwrap();
        file.set_len(full - 5).unwrap();
        drop(file);
        let c = created("c");
        {
            let (mut log, records) = MetadataLog::open(dir.path()).unwrap();
            assert_eq!(records, vec![a.clone()]);
            log.append(&c).unwrap();
        }
        let (_, records) = MetadataLog::open(dir.path()).unwrap();
        assert_eq!(records, vec![a, c]);
    }

    #[test]
    fn stops_at_a_record_with_a_bad_checksum() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (mut log, _) = MetadataLog::open(dir.path()).unwrap();
            log.append(&created("a")).unwrap();
        }
        let path = dir.path().join(FILE_NAME);
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        std::fs::write(&path, &bytes).unwrap();
        let (_, records) = MetadataLog::open(dir.path()).unwrap();
        assert!(records.is_empty());
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 0);
    }
}
