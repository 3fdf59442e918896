//! The quorum's small files: committed hint, snapshot and
//! `quorum.properties`. Each is replaced whole (a temporary file renamed
//! over the old one), so a crash leaves the old or the new contents.

use std::collections::BTreeMap;
use std::io;
use std::path::Path;

use super::codec::{seal, unseal, Reader, Writer};
use super::{QuorumLogId, QuorumSnapshot};
use crate::error::{Result, StorageError};
use crate::io as fio;

const COMMITTED_FILE: &str = "raft-committed";
const SNAPSHOT_FILE: &str = "raft-snapshot";
const PROPERTIES_FILE: &str = "quorum.properties";

const COMMITTED_MAGIC: &[u8; 4] = b"WQCM";
const SNAPSHOT_MAGIC: &[u8; 4] = b"WQSN";

/// Reads `path`; `None` if it does not exist.
pub(crate) fn read_optional(path: &Path) -> Result<Option<Vec<u8>>> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(StorageError::io(format!("reading {}", path.display()), e)),
    }
}

pub(crate) fn corrupt(path: &Path, reason: &str) -> StorageError {
    StorageError::CorruptSegment {
        path: path.to_path_buf(),
        position: 0,
        reason: reason.to_string(),
    }
}

/// Writes the last committed log id: a hint that lets a restarted node
/// apply its committed entries before hearing from a leader. Not fsynced:
/// losing it costs nothing but that head start.
pub fn write_committed(dir: &Path, committed: Option<QuorumLogId>) -> Result<()> {
    let mut w = Writer::default();
    w.opt_log_id(&committed);
    let path = dir.join(COMMITTED_FILE);
    let tmp = dir.join(format!("{COMMITTED_FILE}.tmp"));
    fio::write_new(&tmp, &seal(COMMITTED_MAGIC, &w.buf))
        .and_then(|_| fio::rename(&tmp, &path))
        .map_err(|e| StorageError::io(format!("writing {}", path.display()), e))
}

/// Reads the committed hint; `None` if missing or damaged (it is only a hint).
pub fn read_committed(dir: &Path) -> Result<Option<QuorumLogId>> {
    let path = dir.join(COMMITTED_FILE);
    let Some(bytes) = read_optional(&path)? else {
        return Ok(None);
    };
    match unseal(COMMITTED_MAGIC, &bytes).ok().and_then(|body| {
        let mut r = Reader::new(body);
        r.opt_log_id()
    }) {
        Some(id) => Ok(id),
        None => {
            tracing::warn!(path = %path.display(), "ignoring a damaged committed-index hint");
            Ok(None)
        }
    }
}

/// Writes the current snapshot durably, replacing the previous one.
pub fn write_snapshot(dir: &Path, snapshot: &QuorumSnapshot) -> Result<()> {
    let mut w = Writer::default();
    w.opt_log_id(&snapshot.last_log);
    w.opt_log_id(&snapshot.membership_log);
    w.membership(&snapshot.membership);
    w.bytes(snapshot.id.as_bytes());
    w.bytes(&snapshot.data);
    let path = dir.join(SNAPSHOT_FILE);
    fio::replace_file(&path, &seal(SNAPSHOT_MAGIC, &w.buf))
        .map_err(|e| StorageError::io(format!("writing {}", path.display()), e))
}

/// Reads the current snapshot; `None` if none was written.
pub fn read_snapshot(dir: &Path) -> Result<Option<QuorumSnapshot>> {
    let path = dir.join(SNAPSHOT_FILE);
    let Some(bytes) = read_optional(&path)? else {
        return Ok(None);
    };
    let body = unseal(SNAPSHOT_MAGIC, &bytes).map_err(|r| corrupt(&path, r))?;
    let mut r = Reader::new(body);
    let snapshot = (|| {
        let s = QuorumSnapshot {
            last_log: r.opt_log_id()?,
            membership_log: r.opt_log_id()?,
            membership: r.membership()?,
            id: r.string()?,
            data: r.bytes()?.to_vec(),
        };
        r.is_empty().then_some(s)
    })();
    snapshot
        .map(Some)
        .ok_or_else(|| corrupt(&path, "malformed snapshot"))
}

/// What a metadata directory belongs to: written at first start, checked at
/// every later one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumProperties {
    /// The cluster id.
    pub cluster_id: String,
    /// This node's id.
    pub node_id: i32,
    /// The voters, id to `host:port`.
    pub voters: BTreeMap<i32, String>,
}

impl QuorumProperties {
    fn render(&self) -> String {
        let voters: Vec<String> = self
            .voters
            .iter()
            .map(|(id, addr)| format!("{id}@{addr}"))
            .collect();
        format!(
            "version=0\ncluster.id={}\nnode.id={}\ncontroller.quorum.voters={}\n",
            self.cluster_id,
            self.node_id,
            voters.join(",")
        )
    }

    fn parse(text: &str) -> Option<QuorumProperties> {
        let mut map = BTreeMap::new();
        for line in text.lines().map(str::trim) {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (k, v) = line.split_once('=')?;
            map.insert(k.trim(), v.trim());
        }
        if map.get("version") != Some(&"0") {
            return None;
        }
        let mut voters = BTreeMap::new();
        for part in map.get("controller.quorum.voters")?.split(',') {
            let (id, addr) = part.split_once('@')?;
            voters.insert(id.parse().ok()?, addr.to_string());
        }
        Some(QuorumProperties {
            cluster_id: map.get("cluster.id")?.to_string(),
            node_id: map.get("node.id")?.parse().ok()?,
            voters,
        })
    }
}

/// Writes `quorum.properties` durably.
pub fn write_quorum_properties(dir: &Path, props: &QuorumProperties) -> Result<()> {
    let path = dir.join(PROPERTIES_FILE);
    fio::replace_file(&path, props.render().as_bytes())
        .map_err(|e| StorageError::io(format!("writing {}", path.display()), e))
}

/// Reads `quorum.properties`; `None` if the directory has none yet.
pub fn read_quorum_properties(dir: &Path) -> Result<Option<QuorumProperties>> {
    let path = dir.join(PROPERTIES_FILE);
    let Some(bytes) = read_optional(&path)? else {
        return Ok(None);
    };
    let text = String::from_utf8_lossy(&bytes);
    QuorumProperties::parse(&text)
        .map(Some)
        .ok_or_else(|| corrupt(&path, "malformed quorum.properties"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::quorum::QuorumMembership;

    #[test]
    fn a_damaged_committed_hint_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let id = QuorumLogId {
            term: 1,
            node_id: 1,
            index: 9,
        };
        write_committed(dir.path(), Some(id)).unwrap();
        assert_eq!(read_committed(dir.path()).unwrap(), Some(id));
        let path = dir.path().join(COMMITTED_FILE);
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        std::fs::write(&path, bytes).unwrap();
        assert_eq!(read_committed(dir.path()).unwrap(), None);
    }

    #[test]
    fn snapshot_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read_snapshot(dir.path()).unwrap(), None);
        let snapshot = QuorumSnapshot {
            last_log: Some(QuorumLogId {
                term: 4,
                node_id: 1,
                index: 100,
            }),
            membership_log: Some(QuorumLogId::default()),
            membership: QuorumMembership {
                configs: vec![vec![1, 2]],
                nodes: vec![(1, "h:1".into()), (2, "h:2".into())],
            },
            id: "4-1-100".into(),
            data: super::super::encode_record_list(&[vec![1, 2, 3], vec![4]]),
        };
        write_snapshot(dir.path(), &snapshot).unwrap();
        assert_eq!(read_snapshot(dir.path()).unwrap(), Some(snapshot));
    }

    #[test]
    fn quorum_properties_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read_quorum_properties(dir.path()).unwrap(), None);
        let props = QuorumProperties {
            cluster_id: "abc".into(),
            node_id: 2,
            voters: [(1, "h:1".to_string()), (2, "h:2".to_string())].into(),
        };
        write_quorum_properties(dir.path(), &props).unwrap();
        assert_eq!(read_quorum_properties(dir.path()).unwrap(), Some(props));
        std::fs::write(dir.path().join(PROPERTIES_FILE), "nonsense").unwrap();
        assert!(read_quorum_properties(dir.path()).is_err());
    }
}
