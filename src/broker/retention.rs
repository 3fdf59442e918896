//! The log maintenance task (retention, flush.ms flushes and the log
//! cleaner's compaction passes) and the log start offset checkpoint.
//!
//! Every `log.retention.check.interval.ms`, and at once when a topic's
//! retention configs change, the task applies each partition's retention
//! settings (the storage engine deletes expired segments), then
//! writes the log start offset of every partition to
//! `<data dir>/log-start-offset-checkpoint` in Kafka's checkpoint format
//! (`wharf_storage::checkpoint`, which owns the format and serialises the
//! writers). On start the broker moves each partition's log start forward to
//! its checkpointed offset, so a DeleteRecords in the middle of a segment
//! survives restarts.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use wharf_storage::StorageError;

use tokio::sync::watch;

use super::{Broker, BrokerError};

pub const CHECKPOINT_FILE: &str = "log-start-offset-checkpoint";

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
            () = broker.retention_wake.notified() => {
                tokio::task::spawn_blocking(move || b.apply_retention())
            }
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
        let file = &self.log_start_checkpoint;
        file.write(|| {
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
            // Names only ever join this set, before the write: it holds
            // every name the file may hold (see `create_topic`).
            self.checkpoint_names(|names| {
                names.extend(entries.iter().map(|(name, _, _)| name.clone()));
            });
            entries
        })
        .map_err(|e| BrokerError::io("writing the log start offset checkpoint", file.path(), e))
    }

    /// Moves each partition's log start to its checkpointed offset.
    pub(super) fn restore_log_start_offsets(&self) {
        let path = self.log_start_checkpoint.path();
        let entries = match self.log_start_checkpoint.read() {
            Ok(Some(entries)) => entries,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(path = %path.display(), "ignoring the log start offset checkpoint: {e}");
                return;
            }
        };
        self.checkpoint_names(|names| {
            names.extend(entries.keys().map(|(name, _)| name.clone()));
        });
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
