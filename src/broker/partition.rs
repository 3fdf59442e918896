//! One partition: its log plus the replication concepts that sit beside it.
//!
//! An append resolves in two stages: [`Partition::append`] assigns offsets,
//! and [`Partition::wait_committed`] resolves when the high watermark passes
//! them. Without followers the high watermark moves to the log end offset
//! on every append; replication will move it as followers catch up. Fetches
//! long-poll per partition ([`Partition::wake_on_commit`]). The leader and
//! leader epoch come from the cluster's metadata image.

use std::path::Path;
use std::sync::atomic::{AtomicI32, AtomicI64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock, Weak};

use bytes::Bytes;
use wharf_storage::{
    AppendInfo, CompactionOutcome, Log, LogConfig, RetentionOutcome, StorageError, Throttle,
};

#[derive(Debug)]
pub struct Partition {
    pub index: i32,
    /// The log. Appends take the write lock; reads share it.
    log: RwLock<Log>,
    /// Epoch of the current leader; stamped into every appended batch.
    leader_epoch: AtomicI32,
    /// The node that leads this partition (from the cluster's metadata
    /// image), -1 while none does.
    leader: AtomicI32,
    /// Offsets below this are committed and visible to consumers.
    high_watermark: AtomicI64,
    /// The high watermark, for those waiting on it (see
    /// [`Partition::wait_committed`]).
    committed: tokio::sync::watch::Sender<i64>,
    /// Long-polling fetches to wake when the high watermark moves.
    waiters: Mutex<Vec<Weak<tokio::sync::Notify>>>,
    /// Offsets below this are known to be fsynced.
    durable_offset: AtomicI64,
    /// Serialises fsyncs for [`Partition::wait_durable`]: waiters queue here
    /// and most find their records already covered by the fsync before
    /// theirs (group commit).
    sync: tokio::sync::Mutex<()>,
}

impl Partition {
    pub fn open(index: i32, dir: &Path, config: LogConfig) -> Result<Self, StorageError> {
        let log = Log::open(dir, config)?;
        let end = log.log_end_offset();
        Ok(Self {
            index,
            log: RwLock::new(log),
            leader_epoch: AtomicI32::new(0),
            leader: AtomicI32::new(-1),
            high_watermark: AtomicI64::new(end),
            committed: tokio::sync::watch::Sender::new(end),
            waiters: Mutex::new(Vec::new()),
            durable_offset: AtomicI64::new(end),
            sync: tokio::sync::Mutex::new(()),
        })
    }

    /// Validates and appends the batches in `records`, assigning offsets.
    pub fn append(&self, records: &mut [u8]) -> Result<AppendInfo, StorageError> {
        let mut log = self.log.write().unwrap_or_else(PoisonError::into_inner);
        let info = log.append(records, self.leader_epoch())?;
        let end = log.log_end_offset();
        drop(log);
        // Offsets are assigned (the append's first stage). Without
        // followers, everything written is committed at once (the second
        // stage); replication will advance the high watermark instead.
        self.advance_high_watermark(end);
        Ok(info)
    }

    /// Moves the high watermark forward to `hw`, waking fetches waiting on
    /// this partition and appends waiting for their records to commit.
    fn advance_high_watermark(&self, hw: i64) {
        let previous = self.high_watermark.fetch_max(hw, Ordering::AcqRel);
        if hw <= previous {
            return;
        }
        self.committed.send_if_modified(|v| {
            let moved = *v < hw;
            *v = (*v).max(hw);
            moved
        });
        let waiters =
            std::mem::take(&mut *self.waiters.lock().unwrap_or_else(PoisonError::into_inner));
        for waiter in waiters.iter().filter_map(Weak::upgrade) {
            waiter.notify_one();
        }
    }

    /// Has `wake` notified (once) when the high watermark next moves: a
    /// long-polling fetch registers before it reads, so no append between
    /// its read and its wait is missed.
    pub fn wake_on_commit(&self, wake: &Arc<tokio::sync::Notify>) {
        let mut waiters = self.waiters.lock().unwrap_or_else(PoisonError::into_inner);
        // Fetches that ended without a wake-up leave dead entries.
        waiters.retain(|w| w.strong_count() > 0);
        if !waiters
            .iter()
            .any(|w| std::ptr::eq(w.as_ptr(), Arc::as_ptr(wake)))
        {
            waiters.push(Arc::downgrade(wake));
        }
    }

    /// Resolves once every offset below `end` is committed (under the high
    /// watermark): the second stage of an append.
    pub async fn wait_committed(&self, end: i64) {
        let mut committed = self.committed.subscribe();
        // The sender lives as long as this partition, which the caller holds.
        let _ = committed.wait_for(|hw| *hw >= end).await;
    }

    /// Whole batches from `offset`, up to `max_bytes` (at least one batch if
    /// `min_one`), never past the high watermark.
    pub fn read(
        &self,
        offset: i64,
        max_bytes: usize,
        min_one: bool,
    ) -> Result<Bytes, StorageError> {
        let log = self.log.read().unwrap_or_else(PoisonError::into_inner);
        if offset >= self.high_watermark() && offset <= log.log_end_offset() {
            // Nothing committed to return yet (and not out of range).
            return Ok(Bytes::new());
        }
        log.read(offset, max_bytes, min_one)
    }

    /// Like [`Partition::read`], but only whole batches below `limit`
    /// (the last stable offset for a read_committed fetch).
    pub fn read_below(
        &self,
        offset: i64,
        max_bytes: usize,
        min_one: bool,
        limit: i64,
    ) -> Result<Bytes, StorageError> {
        if offset >= limit {
            // Range-check the offset all the same.
            return self.read(offset, 0, false).map(|_| Bytes::new());
        }
        let bytes = self.read(offset, max_bytes, min_one)?;
        let mut end = 0usize;
        for item in wharf_protocol::batch::batches(&bytes) {
            let Ok((header, raw)) = item else { break };
            if header.base_offset() >= limit {
                break;
            }
            end = end.saturating_add(raw.len());
        }
        Ok(bytes.slice(..end.min(bytes.len())))
    }

    /// The producers this partition's log knows (DescribeProducers).
    pub fn producers(&self) -> Vec<(i64, wharf_storage::producer_state::ProducerEntry)> {
        self.with_log(|log| {
            log.producer_states()
                .iter()
                .map(|(id, e)| (id, e.clone()))
                .collect()
        })
    }

    /// The last stable offset: below it, every transaction has ended.
    pub fn last_stable_offset(&self) -> i64 {
        self.with_log(|log| log.last_stable_offset())
            .min(self.high_watermark())
    }

    /// Aborted transactions with data in `[from, to)`.
    pub fn aborted_transactions(&self, from: i64, to: i64) -> Vec<wharf_storage::AbortedTxn> {
        self.with_log(|log| log.aborted_transactions(from, to))
    }

    /// Appends a COMMIT or ABORT marker for `producer_id` at `epoch`.
    pub fn append_marker(
        &self,
        producer_id: i64,
        epoch: i16,
        commit: bool,
        coordinator_epoch: i32,
        now_ms: i64,
    ) -> Result<AppendInfo, StorageError> {
        let marker = wharf_protocol::batch::ControlMarker {
            commit,
            coordinator_epoch,
        };
        let mut bytes = wharf_protocol::batch::build_marker(producer_id, epoch, marker, now_ms)
            .map_err(StorageError::from)?;
        self.append(&mut bytes)
    }

    pub fn high_watermark(&self) -> i64 {
        self.high_watermark.load(Ordering::Acquire)
    }

    pub fn leader_epoch(&self) -> i32 {
        self.leader_epoch.load(Ordering::Acquire)
    }

    /// The node leading this partition, -1 for none.
    pub fn leader(&self) -> i32 {
        self.leader.load(Ordering::Acquire)
    }

    /// Takes the leader and leader epoch the metadata image gives.
    pub fn set_leadership(&self, leader: i32, leader_epoch: i32) {
        // Under the log's lock, so no append straddles the change.
        let _log = self.log.write().unwrap_or_else(PoisonError::into_inner);
        self.leader_epoch.store(leader_epoch, Ordering::Release);
        self.leader.store(leader, Ordering::Release);
    }

    pub fn log_start_offset(&self) -> i64 {
        self.with_log(|log| log.log_start_offset())
    }

    /// (offset, timestamp) of the first record with a timestamp at or after `ts`.
    pub fn offset_for_timestamp(&self, ts: i64) -> Result<Option<(i64, i64)>, StorageError> {
        self.with_log(|log| log.offset_for_timestamp(ts))
    }

    /// (timestamp, offset) of the record with the largest timestamp.
    pub fn max_timestamp(&self) -> Option<(i64, i64)> {
        self.with_log(|log| log.max_timestamp())
    }

    /// Applies new log settings (a topic config change).
    pub fn set_config(&self, config: LogConfig) {
        self.log
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .set_config(config);
    }

    /// Deletes the segments retention no longer keeps.
    pub fn apply_retention(&self, now_ms: i64) -> Result<RetentionOutcome, StorageError> {
        let mut log = self.log.write().unwrap_or_else(PoisonError::into_inner);
        let outcome = log.apply_retention(now_ms)?;
        log.forget_aborted_below_log_start();
        Ok(outcome)
    }

    /// One compaction pass (a no-op unless the topic is compacted and due).
    /// Only deciding and swapping take the log's lock; the rewriting, paced
    /// by `throttle`, runs without it, so appends and fetches carry on.
    pub fn compact(
        &self,
        now_ms: i64,
        throttle: &mut Throttle,
    ) -> Result<CompactionOutcome, StorageError> {
        let plan = self.with_log(|log| log.plan_compaction(now_ms))?;
        let Some(plan) = plan else {
            return Ok(CompactionOutcome::default());
        };
        let cleaned = plan.build(throttle)?;
        self.log
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .finish_compaction(cleaned)
    }

    /// Moves the log start offset forward (DeleteRecords); returns the new
    /// log start. Offsets past the high watermark are out of range.
    pub fn advance_log_start(&self, offset: i64) -> Result<i64, StorageError> {
        let mut log = self.log.write().unwrap_or_else(PoisonError::into_inner);
        let hw = self.high_watermark();
        if offset > hw {
            return Err(StorageError::OffsetOutOfRange {
                requested: offset,
                log_start: log.log_start_offset(),
                log_end: hw,
            });
        }
        let start = log.advance_log_start(offset)?;
        log.forget_aborted_below_log_start();
        Ok(start)
    }

    /// Flushes the log and snapshots its producers' state (see
    /// `Log::close`), at shutdown.
    pub fn close(&self) -> Result<(), StorageError> {
        let mut log = self.log.write().unwrap_or_else(PoisonError::into_inner);
        let end = log.log_end_offset();
        log.close()?;
        self.durable_offset.fetch_max(end, Ordering::AcqRel);
        Ok(())
    }

    /// Like [`Partition::close`] without the snapshot, but fsyncs after releasing the log lock,
    /// so appends carry on during the fsync.
    fn sync_without_lock(&self) -> Result<(), StorageError> {
        let (end, pending) = {
            let mut log = self.log.write().unwrap_or_else(PoisonError::into_inner);
            (log.log_end_offset(), log.prepare_sync()?)
        };
        if let Err(e) = pending.sync() {
            // The log may have lost pages the kernel could not write: it
            // takes no more writes until a restart recovers it.
            self.log
                .write()
                .unwrap_or_else(PoisonError::into_inner)
                .take_offline(&e);
            return Err(e);
        }
        self.durable_offset.fetch_max(end, Ordering::AcqRel);
        Ok(())
    }

    /// Flushes if unflushed records are older than flush.ms.
    pub fn flush_if_due(&self, now_ms: i64) -> Result<(), StorageError> {
        let mut log = self.log.write().unwrap_or_else(PoisonError::into_inner);
        let end = log.log_end_offset();
        if log.flush_if_due(now_ms)? {
            self.durable_offset.fetch_max(end, Ordering::AcqRel);
        }
        Ok(())
    }

    /// Returns once every offset below `end` is fsynced. One caller at a
    /// time fsyncs, covering everything appended by then; callers queued
    /// behind it usually find their offsets covered and return at once.
    pub async fn wait_durable(self: &Arc<Self>, end: i64) -> Result<(), StorageError> {
        if self.durable_offset.load(Ordering::Acquire) >= end {
            return Ok(());
        }
        let _turn = self.sync.lock().await;
        if self.durable_offset.load(Ordering::Acquire) >= end {
            return Ok(());
        }
        let partition = self.clone();
        tokio::task::spawn_blocking(move || partition.sync_without_lock())
            .await
            .map_err(|e| StorageError::Io {
                context: "fsync task".to_string(),
                source: std::io::Error::other(e.to_string()),
            })?
    }

    fn with_log<T>(&self, f: impl FnOnce(&Log) -> T) -> T {
        f(&self.log.read().unwrap_or_else(PoisonError::into_inner))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn batch(value: &str) -> Vec<u8> {
        wharf_protocol::batch::build_batch(
            0,
            &[(Some(&b"k"[..]), Some(value.as_bytes()), 1_700_000_000_000)],
            wharf_protocol::compression::Compression::None,
        )
        .unwrap()
    }

    #[tokio::test]
    async fn an_append_commits_in_two_stages_and_wakes_only_its_partitions_fetches() {
        let dir = tempfile::tempdir().unwrap();
        let a =
            Arc::new(Partition::open(0, &dir.path().join("a-0"), LogConfig::default()).unwrap());
        let b =
            Arc::new(Partition::open(0, &dir.path().join("b-0"), LogConfig::default()).unwrap());
        let on_a = Arc::new(tokio::sync::Notify::new());
        let on_b = Arc::new(tokio::sync::Notify::new());
        a.wake_on_commit(&on_a);
        b.wake_on_commit(&on_b);
        // Registering twice keeps one entry.
        a.wake_on_commit(&on_a);
        assert_eq!(a.waiters.lock().unwrap().len(), 1);

        let info = a.append(&mut batch("x")).unwrap();
        assert_eq!(info.base_offset, 0);
        // Stage two: committed once the high watermark passes the records.
        tokio::time::timeout(std::time::Duration::from_secs(5), a.wait_committed(1))
            .await
            .expect("committed");
        assert_eq!(a.high_watermark(), 1);
        // The append woke a's fetch, not b's.
        tokio::time::timeout(std::time::Duration::from_secs(5), on_a.notified())
            .await
            .expect("a's waiter woken");
        assert!(
            tokio::time::timeout(std::time::Duration::from_millis(50), on_b.notified())
                .await
                .is_err()
        );
        // A waiter is woken once per registration; dropped ones are pruned.
        assert!(a.waiters.lock().unwrap().is_empty());
        drop(on_b);
        let next = Arc::new(tokio::sync::Notify::new());
        b.wake_on_commit(&next);
        let live: Vec<bool> = b
            .waiters
            .lock()
            .unwrap()
            .iter()
            .map(|w| w.strong_count() > 0)
            .collect();
        assert_eq!(live, vec![true]);
        // Not yet committed offsets keep waiting.
        assert!(
            tokio::time::timeout(std::time::Duration::from_millis(50), a.wait_committed(2))
                .await
                .is_err()
        );
    }
}
