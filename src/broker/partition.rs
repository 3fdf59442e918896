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

use kafka_protocol::ResponseError;
use wharf_coordinator::metadata::partition::PartitionRegistration;

use super::replica::{mono_ms, ReplicaSet};

/// The leader a follower partition copies, at the leader epoch it was
/// copying under (see [`Partition::following`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Following {
    pub leader: i32,
    pub leader_epoch: i32,
}

/// A follower's fetch of one partition, as the leader sees it.
#[derive(Debug, Clone, Copy)]
pub struct ReplicaFetch {
    pub replica: i32,
    pub fetch_offset: i64,
    pub current_leader_epoch: i32,
    pub last_fetched_epoch: i32,
    pub max_bytes: usize,
    /// Whether the metadata shows the follower able to join the ISR
    /// (registered, unfenced, not shutting down: Kafka's
    /// `isReplicaIsrEligible`); an ineligible one is not proposed.
    pub isr_eligible: bool,
}

/// The leader's answer to a follower's fetch of one partition.
#[derive(Debug, Clone)]
pub struct ReplicaRead {
    pub records: Bytes,
    pub high_watermark: i64,
    pub log_start_offset: i64,
    /// (epoch, end offset) when the follower's log diverges from this one.
    pub diverging: Option<(i32, i64)>,
    /// An ISR expansion to ask the controller for: (leader epoch,
    /// partition epoch, ISR).
    pub expand: Option<(i32, i32, Vec<i32>)>,
}

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
    /// Replicas, ISR and followers' positions (the replica layer).
    replica: Mutex<ReplicaSet>,
    /// Followers' long-polling fetches, woken when the log end moves.
    appended: Mutex<Vec<Weak<tokio::sync::Notify>>>,
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
            replica: Mutex::new(ReplicaSet::default()),
            appended: Mutex::new(Vec::new()),
        })
    }

    /// Validates and appends the batches in `records`, assigning offsets.
    pub fn append(&self, records: &mut [u8]) -> Result<AppendInfo, StorageError> {
        let mut log = self.log.write().unwrap_or_else(PoisonError::into_inner);
        {
            // Checked under the log's lock: leadership changes take it too.
            let set = lock(&self.replica);
            if set.registered && !set.is_leader(set.node) {
                return Err(StorageError::NotLeader);
            }
        }
        let info = log.append(records, self.leader_epoch())?;
        let end = log.log_end_offset();
        drop(log);
        // Offsets are assigned (the append's first stage); followers'
        // fetches commit them (the second stage), or at once when the ISR
        // is this broker alone.
        wake_all(&self.appended);
        self.recompute_high_watermark(end);
        Ok(info)
    }

    /// Moves the high watermark as far as the ISR's positions allow, given
    /// the local log end `leader_end`. A partition no image has described
    /// yet (tests, start-up) commits everything at once.
    fn recompute_high_watermark(&self, leader_end: i64) {
        let hw = {
            let set = lock(&self.replica);
            if set.registered {
                set.high_watermark(set.node, leader_end)
            } else {
                Some(leader_end)
            }
        };
        if let Some(hw) = hw {
            self.advance_high_watermark(hw);
        }
    }

    /// Lowers the high watermark to `hw` if it is above (a follower's log
    /// truncated below it, or a replicated partition just opened).
    fn lower_high_watermark(&self, hw: i64) {
        let previous = self.high_watermark.fetch_min(hw, Ordering::AcqRel);
        if hw < previous {
            self.committed.send_modify(|v| *v = (*v).min(hw));
        }
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
        wake_all(&self.waiters);
    }

    /// Has `wake` notified (once) when the high watermark next moves: a
    /// long-polling fetch registers before it reads, so no append between
    /// its read and its wait is missed.
    pub fn wake_on_commit(&self, wake: &Arc<tokio::sync::Notify>) {
        register(&self.waiters, wake);
    }

    /// Has `wake` notified (once) when the log end next moves: a follower's
    /// long-polling fetch.
    pub fn wake_on_append(&self, wake: &Arc<tokio::sync::Notify>) {
        register(&self.appended, wake);
    }

    /// Resolves once every offset below `end` is committed (under the high
    /// watermark): the second stage of an append made at leader epoch
    /// `epoch`. False when leadership changed first: the records may never
    /// be committed (the new leader may not have them).
    pub async fn wait_committed(&self, end: i64, epoch: i32) -> bool {
        let mut committed = self.committed.subscribe();
        // The sender lives as long as this partition, which the caller holds.
        let _ = committed
            .wait_for(|hw| *hw >= end || self.leader_epoch() != epoch)
            .await;
        self.leader_epoch() == epoch && self.high_watermark() >= end
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

    /// Takes the leader and leader epoch the metadata image gives, on a
    /// partition that is not replicated (tests).
    pub fn set_leadership(&self, leader: i32, leader_epoch: i32) {
        // Under the log's lock, so no append straddles the change.
        let _log = self.log.write().unwrap_or_else(PoisonError::into_inner);
        self.leader_epoch.store(leader_epoch, Ordering::Release);
        self.leader.store(leader, Ordering::Release);
    }

    /// Takes this partition's registration from the metadata image:
    /// leader, epochs, replicas and ISR. `node` is this broker.
    pub fn set_registration(&self, node: i32, reg: &PartitionRegistration, min_isr: usize) {
        {
            let set = lock(&self.replica);
            let unchanged = set.registered
                && set.leader == reg.leader
                && set.leader_epoch == reg.leader_epoch
                && set.partition_epoch == reg.partition_epoch
                && set.min_isr == min_isr.max(1);
            if unchanged {
                return;
            }
        }
        let now = mono_ms();
        let (registered, log_start, log_end) = {
            // Under the log's lock, so no append straddles a leader change.
            let mut log = self.log.write().unwrap_or_else(PoisonError::into_inner);
            let end = log.log_end_offset();
            let registered = lock(&self.replica).register(
                node,
                reg.leader,
                reg.leader_epoch,
                reg.partition_epoch,
                &reg.replicas,
                &reg.isr,
                min_isr,
                end,
                now,
            );
            if registered.became_leader {
                // Followers learn where this epoch begins from it.
                if let Err(e) = log.assign_epoch(reg.leader_epoch, end) {
                    tracing::error!(partition = self.index, "leader epoch not recorded: {e}");
                }
            }
            self.leader_epoch.store(reg.leader_epoch, Ordering::Release);
            self.leader.store(reg.leader, Ordering::Release);
            (registered, log.log_start_offset(), end)
        };
        if registered.first && reg.replicas.len() > 1 {
            // What was committed is not known after a restart: the leader
            // learns it again from its followers, a follower from its
            // leader.
            self.lower_high_watermark(log_start);
        }
        if registered.epoch_changed {
            // Appends waiting under the old epoch give up.
            self.committed.send_modify(|_| {});
            wake_all(&self.appended);
        }
        self.recompute_high_watermark(log_end);
    }

    /// For a consumer fetch at `offset` on this partition's leader: the
    /// in-sync follower it should read from instead (Kafka's rack-aware
    /// replica selector, KIP-392), given each broker's rack by `rack_of`.
    /// `None` when the leader is in the client's rack, or no in-sync
    /// follower there has the records from `offset` on; of several, the
    /// one furthest along.
    pub fn preferred_read_replica(
        &self,
        client_rack: &str,
        offset: i64,
        rack_of: impl Fn(i32) -> Option<String>,
    ) -> Option<i32> {
        // Before the replica set's lock: the log's lock comes first.
        let log_start = self.log_start_offset();
        let set = lock(&self.replica);
        if !set.registered || !set.is_leader(set.node) {
            return None;
        }
        if rack_of(set.node).as_deref() == Some(client_rack) {
            return None;
        }
        set.isr
            .iter()
            .filter(|r| **r != set.node)
            .filter_map(|r| Some((*r, set.followers.get(r)?.log_end)))
            .filter(|(r, end)| {
                *end >= offset && offset >= log_start && rack_of(*r).as_deref() == Some(client_rack)
            })
            .max_by_key(|(r, end)| (*end, -r))
            .map(|(r, _)| r)
    }

    /// Whether this broker holds a copy of the partition as a follower of
    /// a live leader (consumers may read it, up to its high watermark).
    pub fn is_readable_follower(&self) -> bool {
        self.following().is_some()
    }

    /// The leader epoch, partition epoch and ISR the image gave last.
    pub fn registration(&self) -> (i32, i32, Vec<i32>) {
        let set = lock(&self.replica);
        (set.leader_epoch, set.partition_epoch, set.isr.clone())
    }

    /// `min.insync.replicas` and the ISR's size: acks=all appends are
    /// refused while the ISR is smaller.
    pub fn in_sync(&self) -> (usize, usize) {
        let set = lock(&self.replica);
        if set.registered {
            (set.min_isr, set.isr.len())
        } else {
            (1, 1)
        }
    }

    /// Whether this broker leads the partition with fewer in-sync replicas
    /// than replicas (Kafka's UnderReplicatedPartitions).
    pub fn under_replicated(&self) -> bool {
        let set = lock(&self.replica);
        set.registered && set.leader == set.node && set.isr.len() < set.replicas.len()
    }

    /// The ISR to ask the controller for when followers have lagged for
    /// more than `lag_ms`; marks it asked for.
    pub fn shrink_isr(&self, lag_ms: i64) -> Option<(i32, i32, Vec<i32>)> {
        let now = mono_ms();
        let mut set = lock(&self.replica);
        let isr = set.shrunk_isr(set.node, now, lag_ms)?;
        set.proposed(isr.clone(), now);
        Some((set.leader_epoch, set.partition_epoch, isr))
    }

    /// The controller refused the ISR change asked for at
    /// `partition_epoch`: the committed ISR counts again, and the high
    /// watermark may advance without the member that was to join.
    pub fn isr_change_refused(&self, partition_epoch: i32) {
        if lock(&self.replica).refused(partition_epoch, mono_ms()) {
            self.recompute_high_watermark(self.log_end_offset());
        }
    }

    /// Serves a follower's fetch (the leader's side of replication):
    /// checks the follower and its epochs, finds a divergence, records its
    /// position, and reads up to the log end (not the high watermark).
    pub fn replica_fetch(&self, fetch: &ReplicaFetch) -> Result<ReplicaRead, ResponseError> {
        let now = mono_ms();
        let (end, hw_before, diverging, records) = {
            let log = self.log.read().unwrap_or_else(PoisonError::into_inner);
            let set = lock(&self.replica);
            if !set.is_leader(set.node) {
                return Err(ResponseError::NotLeaderOrFollower);
            }
            match fetch.current_leader_epoch {
                e if e < 0 || e == set.leader_epoch => {}
                e if e < set.leader_epoch => return Err(ResponseError::FencedLeaderEpoch),
                _ => return Err(ResponseError::UnknownLeaderEpoch),
            }
            if !set.is_follower(fetch.replica) {
                return Err(ResponseError::NotLeaderOrFollower);
            }
            drop(set);
            let end = log.log_end_offset();
            let diverging = (fetch.last_fetched_epoch >= 0)
                .then(|| log.end_offset_for_epoch(fetch.last_fetched_epoch))
                .filter(|(epoch, offset)| {
                    *epoch < fetch.last_fetched_epoch || *offset < fetch.fetch_offset
                });
            if diverging.is_some() {
                (end, self.high_watermark(), diverging, Bytes::new())
            } else {
                if fetch.fetch_offset > end || fetch.fetch_offset < log.log_start_offset() {
                    return Err(ResponseError::OffsetOutOfRange);
                }
                let records = log
                    .read(fetch.fetch_offset, fetch.max_bytes, true)
                    .map_err(|e| super::storage_error_code(&e))?;
                (end, self.high_watermark(), None, records)
            }
        };
        let mut expand = None;
        if diverging.is_none() {
            let mut set = lock(&self.replica);
            let wanted =
                set.follower_fetched(fetch.replica, fetch.fetch_offset, end, hw_before, now);
            if let Some(isr) = wanted.filter(|_| fetch.isr_eligible) {
                set.proposed(isr.clone(), now);
                expand = Some((set.leader_epoch, set.partition_epoch, isr));
            }
            drop(set);
            self.recompute_high_watermark(end);
        }
        Ok(ReplicaRead {
            records,
            high_watermark: self.high_watermark(),
            log_start_offset: self.log_start_offset(),
            diverging,
            expand,
        })
    }

    /// Whom this partition follows now: its leader and leader epoch, or
    /// `None` when it leads or has no leader. A fetcher takes this before
    /// it asks, and applies the answer only while it still holds
    /// ([`Partition::append_replicated`] and the rest take it).
    pub fn following(&self) -> Option<Following> {
        let set = lock(&self.replica);
        (set.registered && set.leader >= 0 && !set.is_leader(set.node)).then_some(Following {
            leader: set.leader,
            leader_epoch: set.leader_epoch,
        })
    }

    /// Runs `op` on the log if this partition still follows `of`: checked
    /// under the log's write lock, which a leadership change also takes, so
    /// an answer from a former leader (a fetch that was in flight when the
    /// leader changed) never reaches a log that now leads or follows
    /// someone else. `None` when it no longer does.
    fn as_follower<T>(
        &self,
        of: Following,
        op: impl FnOnce(&mut Log) -> Result<T, StorageError>,
    ) -> Result<Option<T>, StorageError> {
        let mut log = self.log.write().unwrap_or_else(PoisonError::into_inner);
        if self.following() != Some(of) {
            return Ok(None);
        }
        op(&mut log).map(Some)
    }

    /// The follower's append: the leader's batches, offsets and epochs
    /// kept. `None` (nothing appended) when it no longer follows `of`.
    pub fn append_replicated(
        &self,
        of: Following,
        records: &mut [u8],
    ) -> Result<Option<AppendInfo>, StorageError> {
        self.as_follower(of, |log| log.append_replicated(records))
    }

    /// The follower's side of a fetch answer: its log end, last epoch
    /// (for the next fetch) and the high watermark, capped by its log end.
    pub fn follower_position(&self) -> (i64, i32) {
        self.with_log(|log| (log.log_end_offset(), log.latest_epoch().unwrap_or(-1)))
    }

    /// Takes the leader's high watermark (capped by the local log end) and
    /// its log start (capped by the high watermark: retention and
    /// DeleteRecords on the leader move the follower's too, within what it
    /// has committed). False when it no longer follows `of`.
    pub fn follow_leader(
        &self,
        of: Following,
        leader_hw: i64,
        leader_log_start: i64,
    ) -> Result<bool, StorageError> {
        let followed = self.as_follower(of, |log| {
            let hw = leader_hw.min(log.log_end_offset());
            if hw < self.high_watermark() {
                self.lower_high_watermark(hw);
            } else {
                self.advance_high_watermark(hw);
            }
            let start = leader_log_start.min(self.high_watermark());
            if start > log.log_start_offset() {
                log.advance_log_start(start)?;
                log.forget_aborted_below_log_start();
            }
            Ok(())
        })?;
        Ok(followed.is_some())
    }

    /// Truncates a follower's log where the leader's diverging epoch says
    /// (see [`super::replica::truncation_offset`]); returns the new end,
    /// `None` when it no longer follows `of`.
    pub fn truncate_diverging(
        &self,
        of: Following,
        epoch: i32,
        end_offset: i64,
    ) -> Result<Option<i64>, StorageError> {
        self.as_follower(of, |log| {
            let own = if epoch >= 0 {
                log.end_offset_for_epoch(epoch)
            } else {
                (-1, -1)
            };
            let target = super::replica::truncation_offset(
                epoch,
                end_offset,
                own,
                log.log_end_offset(),
                self.high_watermark(),
            );
            log.truncate_to(target)?;
            let end = log.log_end_offset();
            self.lower_high_watermark(end);
            Ok(end)
        })
    }

    /// Empties a follower's log and restarts it at `offset` (the leader's
    /// log start is past everything the follower has). False when it no
    /// longer follows `of`.
    pub fn restart_at(&self, of: Following, offset: i64) -> Result<bool, StorageError> {
        let restarted = self.as_follower(of, |log| {
            log.truncate_fully_and_start_at(offset)?;
            self.lower_high_watermark(offset);
            Ok(())
        })?;
        Ok(restarted.is_some())
    }

    /// The log end offset.
    pub fn log_end_offset(&self) -> i64 {
        self.with_log(Log::log_end_offset)
    }

    /// Whole batches from `offset` up to the log end (past the high
    /// watermark): coordinators loading their state.
    pub fn read_uncommitted(
        &self,
        offset: i64,
        max_bytes: usize,
        min_one: bool,
    ) -> Result<Bytes, StorageError> {
        self.with_log(|log| log.read(offset, max_bytes, min_one))
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
    ///
    /// The partition leads no more (it is closed when this broker stops
    /// hosting it, or stops): appends waiting for their records to commit
    /// give up at once (NOT_LEADER_OR_FOLLOWER to their producers, who
    /// retry at the new leader) rather than at their request timeout.
    pub fn close(&self) -> Result<(), StorageError> {
        let closed = {
            let mut log = self.log.write().unwrap_or_else(PoisonError::into_inner);
            self.leader.store(-1, Ordering::Release);
            self.leader_epoch.store(-1, Ordering::Release);
            let end = log.log_end_offset();
            log.close().map(|()| end)
        };
        self.committed.send_modify(|_| {});
        wake_all(&self.appended);
        self.durable_offset.fetch_max(closed?, Ordering::AcqRel);
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

    /// Whether the log has gone offline after a storage failure (it takes
    /// no writes until the broker restarts).
    pub fn is_offline(&self) -> bool {
        self.with_log(|log| log.offline_reason().is_some())
    }

    /// Bytes in the partition's segment files.
    pub fn size_bytes(&self) -> u64 {
        self.with_log(|log| log.size_bytes())
    }

    fn with_log<T>(&self, f: impl FnOnce(&Log) -> T) -> T {
        f(&self.log.read().unwrap_or_else(PoisonError::into_inner))
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Adds `wake` to `list` once (dead entries of ended fetches are pruned).
fn register(list: &Mutex<Vec<Weak<tokio::sync::Notify>>>, wake: &Arc<tokio::sync::Notify>) {
    let mut waiters = lock(list);
    waiters.retain(|w| w.strong_count() > 0);
    if !waiters
        .iter()
        .any(|w| std::ptr::eq(w.as_ptr(), Arc::as_ptr(wake)))
    {
        waiters.push(Arc::downgrade(wake));
    }
}

/// Wakes (and forgets) every waiter in `list`.
fn wake_all(list: &Mutex<Vec<Weak<tokio::sync::Notify>>>) {
    let waiters = std::mem::take(&mut *lock(list));
    for waiter in waiters.iter().filter_map(Weak::upgrade) {
        waiter.notify_one();
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

    fn registration(leader: i32, leader_epoch: i32, isr: &[i32]) -> PartitionRegistration {
        PartitionRegistration {
            replicas: vec![1, 2],
            isr: isr.to_vec(),
            removing_replicas: Vec::new(),
            adding_replicas: Vec::new(),
            leader,
            leader_recovery_state: Default::default(),
            leader_epoch,
            partition_epoch: leader_epoch,
            directories: Vec::new(),
            elr: Vec::new(),
            last_known_elr: Vec::new(),
        }
    }

    /// One fetch of `follower` (broker `replica`) from `leader`, applied as
    /// the fetcher applies it; returns the leader's answer.
    fn fetch_as(leader: &Partition, follower: &Partition, replica: i32) -> ReplicaRead {
        let of = follower.following().expect("a follower");
        let read = ask(leader, follower, replica);
        if let Some((epoch, offset)) = read.diverging {
            follower
                .truncate_diverging(of, epoch, offset)
                .unwrap()
                .expect("still following");
        } else {
            if !read.records.is_empty() {
                follower
                    .append_replicated(of, &mut read.records.to_vec())
                    .unwrap()
                    .expect("still following");
            }
            assert!(follower
                .follow_leader(of, read.high_watermark, read.log_start_offset)
                .unwrap());
        }
        read
    }

    /// The leader's answer to one fetch of `follower`, not applied.
    fn ask(leader: &Partition, follower: &Partition, replica: i32) -> ReplicaRead {
        let (end, last_epoch) = follower.follower_position();
        leader
            .replica_fetch(&ReplicaFetch {
                replica,
                fetch_offset: end,
                current_leader_epoch: follower.leader_epoch(),
                last_fetched_epoch: last_epoch,
                max_bytes: 1 << 20,
                isr_eligible: true,
            })
            .unwrap()
    }

    #[tokio::test]
    async fn closing_a_partition_ends_the_appends_waiting_to_commit() {
        let dir = tempfile::tempdir().unwrap();
        let leader =
            Arc::new(Partition::open(0, &dir.path().join("l"), LogConfig::default()).unwrap());
        leader.set_registration(1, &registration(1, 1, &[1, 2]), 1);
        leader.append(&mut batch("a")).unwrap();
        let waiting = tokio::spawn({
            let leader = leader.clone();
            async move { leader.wait_committed(1, 1).await }
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished(), "the follower has not fetched");
        // This broker stops hosting the partition (a reassignment moved it).
        leader.close().unwrap();
        let committed = tokio::time::timeout(std::time::Duration::from_secs(5), waiting)
            .await
            .expect("the waiting append gives up at once")
            .unwrap();
        assert!(!committed);
        assert_eq!(leader.leader(), -1);
    }

    #[tokio::test]
    async fn a_consumer_is_sent_to_an_in_sync_follower_in_its_rack() {
        let dir = tempfile::tempdir().unwrap();
        let leader = Partition::open(0, &dir.path().join("l"), LogConfig::default()).unwrap();
        let follower = Partition::open(0, &dir.path().join("f"), LogConfig::default()).unwrap();
        leader.set_registration(1, &registration(1, 1, &[1, 2]), 1);
        follower.set_registration(2, &registration(1, 1, &[1, 2]), 1);
        let rack_of = |id: i32| Some(format!("rack-{id}"));
        leader.append(&mut batch("a")).unwrap();
        // The follower has not fetched: it is not known to have offset 0.
        assert_eq!(leader.preferred_read_replica("rack-2", 0, rack_of), None);
        fetch_as(&leader, &follower, 2);
        assert_eq!(leader.preferred_read_replica("rack-2", 0, rack_of), Some(2));
        // Not past what it has, not in another rack, not when the leader
        // is in the consumer's rack, and never on the follower itself.
        assert_eq!(leader.preferred_read_replica("rack-2", 2, rack_of), None);
        assert_eq!(leader.preferred_read_replica("rack-9", 0, rack_of), None);
        assert_eq!(leader.preferred_read_replica("rack-1", 0, rack_of), None);
        assert_eq!(follower.preferred_read_replica("rack-2", 0, rack_of), None);
        assert!(follower.is_readable_follower());
        assert!(!leader.is_readable_follower());
        // Out of the ISR: back to the leader.
        leader.set_registration(
            1,
            &PartitionRegistration {
                partition_epoch: 2,
                ..registration(1, 1, &[1])
            },
            1,
        );
        assert_eq!(leader.preferred_read_replica("rack-2", 0, rack_of), None);
    }

    #[tokio::test]
    async fn an_answer_from_a_former_leader_never_reaches_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let old = Partition::open(0, &dir.path().join("l"), LogConfig::default()).unwrap();
        let new = Partition::open(0, &dir.path().join("f"), LogConfig::default()).unwrap();
        old.set_registration(1, &registration(1, 1, &[1, 2]), 1);
        new.set_registration(2, &registration(1, 1, &[1, 2]), 1);
        old.append(&mut batch("committed")).unwrap();
        fetch_as(&old, &new, 2);
        fetch_as(&old, &new, 2);
        assert_eq!(new.high_watermark(), 1);

        // A fetch is in flight when broker 2 is elected at epoch 2; the old
        // leader's uncommitted tail comes back after the election.
        old.append(&mut batch("uncommitted")).unwrap();
        let of = new.following().unwrap();
        assert_eq!(
            of,
            Following {
                leader: 1,
                leader_epoch: 1
            }
        );
        let late = ask(&old, &new, 2);
        assert!(!late.records.is_empty());
        new.set_registration(2, &registration(2, 2, &[2]), 1);
        assert_eq!(new.following(), None, "a leader follows no one");

        assert!(new
            .append_replicated(of, &mut late.records.to_vec())
            .unwrap()
            .is_none());
        assert!(!new.follow_leader(of, 2, 0).unwrap());
        assert!(new.truncate_diverging(of, 1, 0).unwrap().is_none());
        assert!(!new.restart_at(of, 5).unwrap());
        assert_eq!(
            new.follower_position(),
            (1, 2),
            "the new leader's log is untouched: its end, and its own epoch from there"
        );

        // Its own appends carry its epoch from where its log ended.
        new.append(&mut batch("new leader")).unwrap();
        assert_eq!(new.follower_position(), (2, 2));
    }

    #[tokio::test]
    async fn a_follower_copies_its_leader_and_acks_all_waits_for_it() {
        let dir = tempfile::tempdir().unwrap();
        let leader = Partition::open(0, &dir.path().join("l"), LogConfig::default()).unwrap();
        let follower = Partition::open(0, &dir.path().join("f"), LogConfig::default()).unwrap();
        leader.set_registration(1, &registration(1, 1, &[1, 2]), 1);
        follower.set_registration(2, &registration(1, 1, &[1, 2]), 1);
        // A follower's log takes only its leader's batches.
        assert!(matches!(
            follower.append(&mut batch("no")),
            Err(StorageError::NotLeader)
        ));

        leader.append(&mut batch("a")).unwrap();
        leader.append(&mut batch("b")).unwrap();
        assert_eq!(leader.high_watermark(), 0, "the follower has not fetched");
        let first = fetch_as(&leader, &follower, 2);
        assert_eq!(first.high_watermark, 0);
        // The next fetch reports the follower's new end: committed.
        fetch_as(&leader, &follower, 2);
        assert_eq!(leader.high_watermark(), 2);
        tokio::time::timeout(
            std::time::Duration::from_secs(1),
            leader.wait_committed(2, 1),
        )
        .await
        .map(|ok| assert!(ok))
        .expect("committed");
        fetch_as(&leader, &follower, 2);
        assert_eq!(follower.high_watermark(), 2);
        assert_eq!(
            leader.read_uncommitted(0, 1 << 20, true).unwrap(),
            follower.read_uncommitted(0, 1 << 20, true).unwrap(),
            "byte-identical copies"
        );

        // A stale leader epoch is fenced, a newer one unknown; a broker
        // that is not a replica is refused.
        let fetch = |replica, epoch| ReplicaFetch {
            replica,
            fetch_offset: 2,
            current_leader_epoch: epoch,
            last_fetched_epoch: 1,
            max_bytes: 100,
            isr_eligible: true,
        };
        assert_eq!(
            leader.replica_fetch(&fetch(2, 0)).err(),
            Some(ResponseError::FencedLeaderEpoch)
        );
        assert_eq!(
            leader.replica_fetch(&fetch(2, 5)).err(),
            Some(ResponseError::UnknownLeaderEpoch)
        );
        assert_eq!(
            leader.replica_fetch(&fetch(7, 1)).err(),
            Some(ResponseError::NotLeaderOrFollower)
        );
        assert_eq!(
            follower.replica_fetch(&fetch(1, 1)).err(),
            Some(ResponseError::NotLeaderOrFollower)
        );
    }

    #[tokio::test]
    async fn a_deposed_leaders_uncommitted_tail_is_truncated_when_it_follows() {
        let dir = tempfile::tempdir().unwrap();
        let a = Partition::open(0, &dir.path().join("a"), LogConfig::default()).unwrap();
        let b = Partition::open(0, &dir.path().join("b"), LogConfig::default()).unwrap();
        // Epoch 1: a leads, b follows; two records committed.
        a.set_registration(1, &registration(1, 1, &[1, 2]), 1);
        b.set_registration(2, &registration(1, 1, &[1, 2]), 1);
        a.append(&mut batch("c0")).unwrap();
        a.append(&mut batch("c1")).unwrap();
        fetch_as(&a, &b, 2);
        fetch_as(&a, &b, 2);
        assert_eq!(a.high_watermark(), 2);
        // a takes two more it never replicates, and waiters give up when
        // leadership moves.
        a.append(&mut batch("lost0")).unwrap();
        a.append(&mut batch("lost1")).unwrap();
        let waiting = a.wait_committed(4, 1);
        // Epoch 2: b leads (a was fenced), writes its own record.
        let b_leads = registration(2, 2, &[2]);
        b.set_registration(2, &b_leads, 1);
        a.set_registration(1, &b_leads, 1);
        assert!(!waiting.await, "leadership moved: not committed");
        b.append(&mut batch("new")).unwrap();
        assert_eq!(b.high_watermark(), 3, "b alone in the ISR");
        // a follows b: told where epoch 1 ends, truncates, catches up.
        let first = fetch_as(&b, &a, 1);
        assert_eq!(first.diverging, Some((1, 2)));
        assert_eq!(a.log_end_offset(), 2, "the uncommitted tail is gone");
        fetch_as(&b, &a, 1);
        assert_eq!(a.log_end_offset(), 3);
        assert_eq!(
            a.read_uncommitted(0, 1 << 20, true).unwrap(),
            b.read_uncommitted(0, 1 << 20, true).unwrap()
        );
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
        tokio::time::timeout(std::time::Duration::from_secs(5), a.wait_committed(1, 0))
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
            tokio::time::timeout(std::time::Duration::from_millis(50), a.wait_committed(2, 0))
                .await
                .is_err()
        );
    }
}
