//! Kafka's offset checkpoint files (`log-start-offset-checkpoint`): the
//! format, and the one writer each file has.
//!
//! ```text
//! 0                  <- format version
//! 2                  <- number of entries
//! orders 0 1500      <- topic, partition, offset
//! orders 1 0
//! ```
//!
//! A file is replaced atomically ([`crate::io::replace_file`]: a temporary
//! file, fsync, rename, directory fsync), so a crash leaves the old or the new
//! contents. Many threads may ask for a write at once (every DeleteRecords,
//! topic creation and deletion, the retention task); [`CheckpointFile`]
//! serialises them and coalesces the ones that queue up behind a write: a
//! write that starts after a request was made covers it, so that request
//! returns without writing again.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

const VERSION: &str = "0";

/// One entry: topic, partition, offset.
pub type CheckpointEntry = (String, i32, i64);

/// A parsed checkpoint: (topic, partition) to offset.
pub type Checkpoint = HashMap<(String, i32), i64>;

/// Renders `entries` in Kafka's checkpoint format.
pub fn format_checkpoint(entries: &[CheckpointEntry]) -> String {
    let mut text = format!("{VERSION}\n{}\n", entries.len());
    for (topic, partition, offset) in entries {
        text.push_str(&format!("{topic} {partition} {offset}\n"));
    }
    text
}

/// Parses Kafka's checkpoint format; `None` if anything is off.
pub fn parse_checkpoint(text: &str) -> Option<Checkpoint> {
    let mut lines = text.lines();
    if lines.next()? != VERSION {
        return None;
    }
    let count: usize = lines.next()?.trim().parse().ok()?;
    let mut out = HashMap::with_capacity(count.min(1 << 16));
    for _ in 0..count {
        let mut parts = lines.next()?.split(' ');
        let topic = parts.next()?.to_string();
        let partition: i32 = parts.next()?.parse().ok()?;
        let offset: i64 = parts.next()?.parse().ok()?;
        if parts.next().is_some() {
            return None;
        }
        out.insert((topic, partition), offset);
    }
    Some(out)
}

/// The single writer of one checkpoint file.
#[derive(Debug)]
pub struct CheckpointFile {
    path: PathBuf,
    /// Write requests made so far (a ticket per call of [`Self::write`]).
    requested: AtomicU64,
    /// Held while writing; holds the highest ticket a finished write covers.
    written: Mutex<u64>,
}

impl CheckpointFile {
    pub fn new(path: PathBuf) -> Self {
        Self {
            path,
            requested: AtomicU64::new(0),
            written: Mutex::new(0),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes the entries `snapshot` returns, unless a write that began
    /// after this call already covered it. `snapshot` is called under the
    /// writer's lock, so it sees every change made before this call.
    pub fn write(&self, snapshot: impl FnOnce() -> Vec<CheckpointEntry>) -> std::io::Result<()> {
        let ticket = self
            .requested
            .fetch_add(1, Ordering::AcqRel)
            .saturating_add(1);
        let mut written = self.written.lock().unwrap_or_else(PoisonError::into_inner);
        if *written >= ticket {
            return Ok(());
        }
        // Every request up to here was made before this snapshot is taken.
        let covers = self.requested.load(Ordering::Acquire);
        let text = format_checkpoint(&snapshot());
        crate::io::replace_file(&self.path, text.as_bytes())?;
        *written = covers;
        Ok(())
    }

    /// The file's entries: `Ok(None)` when there is no file, `Err` with
    /// a reason when it cannot be read or parsed.
    pub fn read(&self) -> Result<Option<Checkpoint>, String> {
        match std::fs::read_to_string(&self.path) {
            Ok(text) => parse_checkpoint(&text)
                .map(Some)
                .ok_or_else(|| "malformed checkpoint".to_string()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.to_string()),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicI64;
    use std::sync::Arc;

    #[test]
    fn checkpoint_round_trips_in_kafka_format() {
        let dir = tempfile::tempdir().unwrap();
        let file = CheckpointFile::new(dir.path().join("cp"));
        file.write(|| vec![("a".into(), 0, 15), ("b.c".into(), 3, 0)])
            .unwrap();
        let text = std::fs::read_to_string(file.path()).unwrap();
        assert_eq!(text, "0\n2\na 0 15\nb.c 3 0\n");
        let parsed = file.read().unwrap().unwrap();
        assert_eq!(parsed[&("a".to_string(), 0)], 15);
        assert_eq!(parsed.len(), 2);
    }

    #[test]
    fn a_missing_file_reads_as_none() {
        let dir = tempfile::tempdir().unwrap();
        let file = CheckpointFile::new(dir.path().join("cp"));
        assert_eq!(file.read(), Ok(None));
    }

    #[test]
    fn malformed_checkpoints_are_rejected() {
        for bad in [
            "",
            "1\n0\n",
            "0\n2\na 0 1\n",
            "0\n1\na x 1\n",
            "0\n1\na 0 1 2\n",
        ] {
            assert!(parse_checkpoint(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn concurrent_writers_never_fail_and_the_last_state_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let file = Arc::new(CheckpointFile::new(dir.path().join("cp")));
        let state = Arc::new(AtomicI64::new(0));
        let threads: Vec<_> = (0..16)
            .map(|_| {
                let (file, state) = (file.clone(), state.clone());
                std::thread::spawn(move || {
                    for _ in 0..50 {
                        let now = state.fetch_add(1, Ordering::SeqCst) + 1;
                        file.write(|| vec![("t".into(), 0, state.load(Ordering::SeqCst))])
                            .unwrap();
                        // What this writer changed is on disk when it returns.
                        let on_disk = file.read().unwrap().unwrap()[&("t".to_string(), 0)];
                        assert!(on_disk >= now, "{on_disk} < {now}");
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let last = file.read().unwrap().unwrap()[&("t".to_string(), 0)];
        assert_eq!(last, 16 * 50);
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("cp")]);
    }
}
