//! The log maintenance task (retention, flush.ms flushes and the log
//! cleaner's compaction passes) and the log start offset checkpoint.
//!
//! Every `log.retention.check.interval.ms` the task applies each partition's
//! retention settings (the storage engine deletes expired segments), then
//! writes the log start offset of every partition to
//! `<data dir>/log-start-offset-checkpoint` in Kafka's checkpoint format:
//!
//! ```text
//! 0                  <- format version
//! 2                  <- number of entries
//! orders 0 1500      <- topic, partition, log start offset
//! orders 1 0
//! ```
//!
//! The file is written to a temporary name, fsynced and renamed over the old
//! one, so a crash leaves either the old or the new file. On start the broker
//! moves each partition's log start forward to its checkpointed offset, so a
//! DeleteRecords in the middle of a segment survives restarts.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use wharf_storage::StorageError;

use tokio::sync::watch;

use super::{Broker, BrokerError};

pub const CHECKPOINT_FILE: &str = "log-start-offset-checkpoint";
const CHECKPOINT_VERSION: &str = "0";

/// Runs retention, flush.ms flushes and the log cleaner periodically until
/// `stop` flips to true. The cleaner has a loop of its own, so a long pass
/// (paced by its I/O budget) delays neither retention nor flushes; a pass
/// still running at shutdown is cancelled.
pub async fn run(broker: Arc<Broker>, mut stop: watch::Receiver<bool>) {
    let cancel = Arc::new(AtomicBool::new(false));
    let cleaner = tokio::spawn(run_cleaner(broker.clone(), stop.clone(), cancel.clone()));
    let mut retention = ticker(broker.settings.retention_check_interval).await;
    let mut flush = ticker(broker.settings.flush_check_interval).await;
    loop {
        let b = broker.clone();
        let task = tokio::select! {
            _ = retention.tick() => tokio::task::spawn_blocking(move || b.apply_retention()),
            _ = flush.tick() => tokio::task::spawn_blocking(move || b.flush_due()),
            _ = stop.wait_for(|s| *s) => break,
        };
        if let Err(e) = task.await {
            tracing::error!("log maintenance task failed: {e}");
        }
    }
    cancel.store(true, Ordering::Relaxed);
    if let Err(e) = cleaner.await {
        tracing::error!("log cleaner task failed: {e}");
    }
}

/// The log cleaner's loop: a compaction pass every log.cleaner.backoff.ms.
async fn run_cleaner(
    broker: Arc<Broker>,
    mut stop: watch::Receiver<bool>,
    cancel: Arc<AtomicBool>,
) {
    let mut cleaner = ticker(broker.settings.cleaner_interval).await;
    loop {
        let b = broker.clone();
        let c = cancel.clone();
        let task = tokio::select! {
            _ = cleaner.tick() => tokio::task::spawn_blocking(move || b.compact_logs(c)),
            _ = stop.wait_for(|s| *s) => return,
        };
        if let Err(e) = task.await {
            tracing::error!("log cleaner task failed: {e}");
        }
    }
}

/// An interval timer whose first tick is one period from now.
async fn ticker(period: std::time::Duration) -> tokio::time::Interval {
    let mut ticker = tokio::time::interval(period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker.tick().await; // the first tick is immediate; skip it
    ticker
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

impl Broker {
    /// One retention pass over every partition, then a checkpoint.
    pub fn apply_retention(&self) {
        let now = now_ms();
        for topic in self.topics() {
            for partition in &topic.partitions {
                match partition.apply_retention(now) {
                    Ok(out) if out.segments_deleted > 0 => tracing::info!(
                        topic = %topic.name,
                        partition = partition.index,
                        segments = out.segments_deleted,
                        log_start = out.log_start_offset,
                        "retention deleted segments"
                    ),
                    Ok(_) => {}
                    Err(e) => tracing::error!(
                        topic = %topic.name,
                        partition = partition.index,
                        "retention failed: {e}"
                    ),
                }
            }
        }
        if let Err(e) = self.write_log_start_checkpoint() {
            tracing::error!("{e}");
        }
    }

    /// One compaction pass over every compacted partition; stops early
    /// once `cancel` is set.
    pub fn compact_logs(&self, cancel: Arc<AtomicBool>) {
        let now = now_ms();
        // One budget for the whole pass, as Kafka's cleaner thread has one.
        let mut throttle =
            wharf_storage::Throttle::new(self.settings.cleaner_io_max_bytes_per_second)
                .with_cancel(cancel);
        for topic in self.topics() {
            for partition in &topic.partitions {
                match partition.compact(now, &mut throttle) {
                    Ok(out) if out.records_removed > 0 => tracing::info!(
                        topic = %topic.name,
                        partition = partition.index,
                        segments = out.segments_rewritten,
                        records = out.records_removed,
                        "compaction removed records"
                    ),
                    Ok(_) => {}
                    Err(StorageError::Cancelled) => {
                        tracing::info!("compaction pass cancelled");
                        return;
                    }
                    Err(e) => tracing::error!(
                        topic = %topic.name,
                        partition = partition.index,
                        "compaction failed: {e}"
                    ),
                }
            }
        }
    }

    /// Flushes every partition whose unflushed records are older than its
    /// flush.ms.
    pub fn flush_due(&self) {
        let now = now_ms();
        for topic in self.topics() {
            for partition in &topic.partitions {
                if let Err(e) = partition.flush_if_due(now) {
                    tracing::error!(topic = %topic.name, partition = partition.index, "flush failed: {e}");
                }
            }
        }
    }

    /// Writes every partition's log start offset to the checkpoint file.
    pub fn write_log_start_checkpoint(&self) -> Result<(), BrokerError> {
        let mut entries = Vec::new();
        for topic in self.topics() {
            for partition in &topic.partitions {
                entries.push((
                    topic.name.to_string(),
                    partition.index,
                    partition.log_start_offset(),
                ));
            }
        }
        let path = self.settings.data_dir.join(CHECKPOINT_FILE);
        write_checkpoint(&path, &entries)
            .map_err(|e| BrokerError::io("writing the log start offset checkpoint", &path, e))
    }

    /// Moves each partition's log start to its checkpointed offset.
    pub(super) fn restore_log_start_offsets(&self) {
        let path = self.settings.data_dir.join(CHECKPOINT_FILE);
        let entries = match std::fs::read_to_string(&path) {
            Ok(text) => match parse_checkpoint(&text) {
                Some(entries) => entries,
                None => {
                    tracing::warn!(path = %path.display(), "ignoring a malformed log start offset checkpoint");
                    return;
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
            Err(e) => {
                tracing::warn!(path = %path.display(), "cannot read the log start offset checkpoint: {e}");
                return;
            }
        };
        for ((name, index), offset) in entries {
            let Some(partition) = self.topic(&name).and_then(|t| t.partition(index).cloned())
            else {
                continue;
            };
            // A crash may have cut the log below its checkpointed start.
            let offset = offset.min(partition.high_watermark());
            if offset <= partition.log_start_offset() {
                continue;
            }
            if let Err(e) = partition.advance_log_start(offset) {
                tracing::warn!(topic = %name, partition = index, offset, "checkpointed log start not applied: {e}");
            }
        }
    }
}

fn write_checkpoint(path: &Path, entries: &[(String, i32, i64)]) -> std::io::Result<()> {
    let mut text = format!("{CHECKPOINT_VERSION}\n{}\n", entries.len());
    for (topic, partition, offset) in entries {
        text.push_str(&format!("{topic} {partition} {offset}\n"));
    }
    wharf_storage::io::replace_file(path, text.as_bytes())
}

/// Parses Kafka's checkpoint format; `None` if anything is off.
fn parse_checkpoint(text: &str) -> Option<HashMap<(String, i32), i64>> {
    let mut lines = text.lines();
    if lines.next()? != CHECKPOINT_VERSION {
        return None;
    }
    let count: usize = lines.next()?.trim().parse().ok()?;
    let mut out = HashMap::with_capacity(count);
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

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn checkpoint_round_trips_in_kafka_format() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(CHECKPOINT_FILE);
        write_checkpoint(&path, &[("a".into(), 0, 15), ("b.c".into(), 3, 0)]).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text, "0\n2\na 0 15\nb.c 3 0\n");
        let parsed = parse_checkpoint(&text).unwrap();
        assert_eq!(parsed[&("a".to_string(), 0)], 15);
        assert_eq!(parsed.len(), 2);
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
}
