//! Each segment's aborted-transaction index (`.txnindex`, Kafka's layout,
//! see [`crate::format::TxnIndexEntry`]): one entry per ABORT marker in the
//! segment. An entry is appended when the marker is; on open (and after a
//! truncation) the log's scan recomputes every segment's entries, and a
//! file that is missing, corrupt or different is rewritten, and the files
//! of segments that no longer exist are removed. Reads of aborted
//! transactions are served from memory ([`crate::ProducerStates`]).

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;

use tracing::warn;

use crate::error::{Result, StorageError};
use crate::format::{self, TxnIndexEntry};
use crate::io;

/// Appends one entry to the index of the segment based at `base_offset`.
pub(crate) fn append(dir: &Path, base_offset: i64, entry: TxnIndexEntry) -> Result<()> {
    let path = format::txn_index_path(dir, base_offset);
    io::append_aux(&path, &entry.encode())
        .map_err(|e| StorageError::io(format!("appending to {}", path.display()), e))
}

/// Makes the index files agree with `expected` (entries by segment base
/// offset; segments without aborted transactions have no file).
pub(crate) fn reconcile(dir: &Path, expected: &BTreeMap<i64, Vec<TxnIndexEntry>>) -> Result<()> {
    let listing_error = |e| StorageError::io(format!("listing {}", dir.display()), e);
    let mut present = BTreeSet::new();
    for entry in fs::read_dir(dir).map_err(listing_error)? {
        let entry = entry.map_err(listing_error)?;
        if let Some(base) = entry
            .file_name()
            .to_str()
            .and_then(format::parse_txn_index_name)
        {
            present.insert(base);
        }
    }
    for base in &present {
        let path = format::txn_index_path(dir, *base);
        let wanted = expected.get(base).filter(|e| !e.is_empty());
        let Some(wanted) = wanted else {
            io::remove_file(&path)
                .map_err(|e| StorageError::io(format!("removing {}", path.display()), e))?;
            continue;
        };
        let found = fs::read(&path)
            .ok()
            .and_then(|b| TxnIndexEntry::decode_all(&b));
        if found.as_ref() != Some(wanted) {
            warn!(path = %path.display(), "rebuilding a stale or corrupt transaction index");
            write(&path, wanted)?;
        }
    }
    for (base, wanted) in expected {
        if !wanted.is_empty() && !present.contains(base) {
            write(&format::txn_index_path(dir, *base), wanted)?;
        }
    }
    Ok(())
}

fn write(path: &Path, entries: &[TxnIndexEntry]) -> Result<()> {
    let bytes: Vec<u8> = entries.iter().flat_map(|e| e.encode()).collect();
    io::write_new(path, &bytes)
        .map(drop)
        .map_err(|e| StorageError::io(format!("writing {}", path.display()), e))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn entry(first: i64) -> TxnIndexEntry {
        TxnIndexEntry {
            producer_id: 7,
            first_offset: first,
            last_offset: first + 3,
            last_stable_offset: first + 4,
        }
    }

    #[test]
    fn entries_round_trip_in_kafkas_34_byte_layout() {
        let bytes = entry(5).encode();
        assert_eq!(bytes.len(), 34);
        assert_eq!(&bytes[..2], &[0, 0]);
        assert_eq!(&bytes[2..10], &7i64.to_be_bytes());
        assert_eq!(TxnIndexEntry::decode_all(&bytes).unwrap(), vec![entry(5)]);
        assert!(TxnIndexEntry::decode_all(&bytes[..33]).is_none());
        let mut bad = bytes;
        bad[1] = 1;
        assert!(TxnIndexEntry::decode_all(&bad).is_none());
    }

    #[test]
    fn reconcile_rebuilds_missing_and_corrupt_files_and_removes_stale_ones() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        append(d, 0, entry(0)).unwrap();
        fs::write(format::txn_index_path(d, 100), b"garbage").unwrap();
        fs::write(format::txn_index_path(d, 200), entry(200).encode()).unwrap();
        let expected = BTreeMap::from([
            (0, vec![entry(0)]),
            (100, vec![entry(100), entry(110)]),
            (300, vec![entry(300)]),
        ]);
        reconcile(d, &expected).unwrap();
        for (base, entries) in &expected {
            let bytes = fs::read(format::txn_index_path(d, *base)).unwrap();
            assert_eq!(&TxnIndexEntry::decode_all(&bytes).unwrap(), entries);
        }
        assert!(!format::txn_index_path(d, 200).exists());
    }
}
