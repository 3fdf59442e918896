//! The transaction coordinator's state machine. Cheap calls under one
//! mutex, never held across an await or an I/O call.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use super::records::{self, TxnLogValue};
use super::{Completion, TxnConfig, TxnError, TxnRecord, TxnState, TxnSummary};

/// Highest epoch handed out before a producer id is replaced by a new one
/// (Kafka keeps `Short.MaxValue` free for the fencing bump).
const MAX_EPOCH: i16 = i16::MAX - 1;

/// One transactional id.
#[derive(Debug, Clone)]
struct TxnMetadata {
    producer_id: i64,
    producer_epoch: i16,
    /// The epoch before the last bump, so a retried InitProducerId that
    /// already succeeded is recognised (KIP-360).
    last_producer_epoch: i16,
    timeout_ms: i32,
    state: TxnState,
    partitions: BTreeSet<(String, i32)>,
    /// When the ongoing transaction started (-1 when none is).
    start_ms: i64,
    last_update_ms: i64,
}

impl TxnMetadata {
    fn record(&self, transactional_id: &str) -> TxnRecord {
        TxnRecord {
            transactional_id: transactional_id.to_string(),
            key: records::encode_key(transactional_id),
            value: Some(records::encode_value(&TxnLogValue {
                producer_id: self.producer_id,
                producer_epoch: self.producer_epoch,
                timeout_ms: self.timeout_ms,
                state: self.state,
                partitions: self.partitions.clone(),
                last_update_ms: self.last_update_ms,
                start_ms: self.start_ms,
            })),
        }
    }

    fn completion(&self, transactional_id: &str) -> Completion {
        Completion {
            transactional_id: transactional_id.to_string(),
            producer_id: self.producer_id,
            producer_epoch: self.producer_epoch,
            commit: self.state == TxnState::PrepareCommit,
            partitions: self.partitions.iter().cloned().collect(),
        }
    }

    fn summary(&self, transactional_id: &str) -> TxnSummary {
        TxnSummary {
            transactional_id: transactional_id.to_string(),
            producer_id: self.producer_id,
            producer_epoch: self.producer_epoch,
            timeout_ms: self.timeout_ms,
            state: self.state,
            partitions: self.partitions.clone(),
            start_ms: self.start_ms,
        }
    }

    /// The producer id and epoch of a request must be the current ones.
    fn check_producer(&self, producer_id: i64, epoch: i16) -> Result<(), TxnError> {
        if producer_id != self.producer_id {
            return Err(TxnError::InvalidProducerIdMapping);
        }
        if epoch != self.producer_epoch {
            return Err(TxnError::ProducerFenced);
        }
        Ok(())
    }

    /// Moves an ongoing transaction to PrepareCommit or PrepareAbort.
    fn prepare(&mut self, commit: bool, now: i64) {
        self.state = if commit {
            TxnState::PrepareCommit
        } else {
            TxnState::PrepareAbort
        };
        self.last_update_ms = now;
    }
}

/// What InitProducerId for a transactional id came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InitResult {
    /// The producer id and epoch to hand out, once `record` is written.
    Granted {
        producer_id: i64,
        producer_epoch: i16,
        record: TxnRecord,
    },
    /// An ongoing transaction of the previous producer must be aborted
    /// first (its epoch is bumped, fencing it): write `record`, carry out
    /// `completion`, then ask again.
    AbortFirst {
        record: TxnRecord,
        completion: Completion,
    },
}

#[derive(Debug, Default)]
struct Inner {
    txns: HashMap<String, TxnMetadata>,
    /// Transactional id of each current producer id.
    by_producer: HashMap<i64, String>,
}

impl Inner {
    fn set_producer(&mut self, id: &str, old: Option<i64>, new: i64) {
        if let Some(old) = old.filter(|o| *o != new) {
            self.by_producer.remove(&old);
        }
        self.by_producer.insert(new, id.to_string());
    }
}

/// All transactional ids of this broker.
#[derive(Debug)]
pub struct TxnCoordinator {
    config: TxnConfig,
    inner: Mutex<Inner>,
    /// False until `__transaction_state` has been replayed.
    loaded: AtomicBool,
}

impl TxnCoordinator {
    pub fn new(config: TxnConfig) -> Self {
        TxnCoordinator {
            config,
            inner: Mutex::new(Inner::default()),
            loaded: AtomicBool::new(false),
        }
    }

    pub fn config(&self) -> &TxnConfig {
        &self.config
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn is_loaded(&self) -> bool {
        self.loaded.load(Ordering::Acquire)
    }

    fn check_loaded(&self) -> Result<(), TxnError> {
        if self.is_loaded() {
            Ok(())
        } else {
            Err(TxnError::CoordinatorLoadInProgress)
        }
    }

    /// Forgets the transactional ids `moved` selects (their partition is
    /// led by another broker now); returns how many.
    pub fn unload(&self, moved: impl Fn(&str) -> bool) -> usize {
        let mut inner = self.lock();
        let before = inner.txns.len();
        inner.txns.retain(|id, _| !moved(id));
        let Inner { txns, by_producer } = &mut *inner;
        by_producer.retain(|_, id| txns.contains_key(id));
        before - inner.txns.len()
    }

    /// Applies one `__transaction_state` record during the replay; records
    /// that do not decode are logged and skipped.
    pub fn replay(&self, key: &[u8], value: Option<&[u8]>) {
        let id = match records::decode_key(key) {
            Ok(id) => id,
            Err(e) => {
                tracing::warn!("skipping a __transaction_state record with a bad key: {e}");
                return;
            }
        };
        let mut inner = self.lock();
        let Some(value) = value else {
            if let Some(old) = inner.txns.remove(&id) {
                inner.by_producer.remove(&old.producer_id);
            }
            return;
        };
        let v = match records::decode_value(value) {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(transactional_id = %id, "skipping an unreadable transaction state: {e}");
                return;
            }
        };
        let old = inner.txns.get(&id).map(|m| m.producer_id);
        inner.set_producer(&id, old, v.producer_id);
        let last_producer_epoch = inner
            .txns
            .get(&id)
            .map_or(-1, |m| m.producer_epoch)
            .min(v.producer_epoch);
        inner.txns.insert(
            id,
            TxnMetadata {
                producer_id: v.producer_id,
                producer_epoch: v.producer_epoch,
                last_producer_epoch,
                timeout_ms: v.timeout_ms,
                state: v.state,
                partitions: v.partitions,
                start_ms: v.start_ms,
                last_update_ms: v.last_update_ms,
            },
        );
    }

    /// Marks the replay done; returns the transactions caught between
    /// Prepare and Complete, whose markers must be written (again).
    pub fn finish_loading(&self) -> Vec<Completion> {
        let inner = self.lock();
        let pending = inner
            .txns
            .iter()
            .filter(|(_, m)| m.state.is_prepare())
            .map(|(id, m)| m.completion(id))
            .collect();
        drop(inner);
        self.loaded.store(true, Ordering::Release);
        pending
    }

    /// InitProducerId with a transactional id. `expected` is the producer
    /// id and epoch a v3+ client names to recover (KIP-360), `None` for -1.
    /// `allocate` hands out a fresh producer id when one is needed.
    pub fn init_producer_id(
        &self,
        transactional_id: &str,
        timeout_ms: i32,
        expected: Option<(i64, i16)>,
        now: i64,
        allocate: impl FnOnce() -> Option<i64>,
    ) -> Result<InitResult, TxnError> {
        self.check_loaded()?;
        if !crate::records::fits(transactional_id) {
            return Err(TxnError::TransactionalIdTooLong);
        }
        if timeout_ms <= 0 || timeout_ms > self.config.max_timeout_ms {
            return Err(TxnError::InvalidTransactionTimeout);
        }
        let mut inner = self.lock();
        let Some(meta) = inner.txns.get_mut(transactional_id) else {
            let producer_id = allocate().ok_or(TxnError::CoordinatorNotAvailable)?;
            let meta = TxnMetadata {
                producer_id,
                producer_epoch: 0,
                last_producer_epoch: -1,
                timeout_ms,
                state: TxnState::Empty,
                partitions: BTreeSet::new(),
                start_ms: -1,
                last_update_ms: now,
            };
            let record = meta.record(transactional_id);
            inner.txns.insert(transactional_id.to_string(), meta);
            inner.set_producer(transactional_id, None, producer_id);
            return Ok(InitResult::Granted {
                producer_id,
                producer_epoch: 0,
                record,
            });
        };
        if let Some((pid, epoch)) = expected {
            let current = pid == meta.producer_id && epoch == meta.producer_epoch;
            let retried = pid == meta.producer_id
                && epoch == meta.last_producer_epoch
                && meta.state == TxnState::Empty;
            if retried {
                // The client retries an InitProducerId that already bumped
                // the epoch: answer it the same way again.
                return Ok(InitResult::Granted {
                    producer_id: meta.producer_id,
                    producer_epoch: meta.producer_epoch,
                    record: meta.record(transactional_id),
                });
            }
            if !current {
                return Err(TxnError::ProducerFenced);
            }
        }
        match meta.state {
            TxnState::PrepareCommit | TxnState::PrepareAbort | TxnState::PrepareEpochFence => {
                return Err(TxnError::ConcurrentTransactions)
            }
            TxnState::Ongoing => {
                // Fence the old producer: bump the epoch and abort its
                // transaction with the new one.
                meta.last_producer_epoch = meta.producer_epoch;
                meta.producer_epoch = meta.producer_epoch.saturating_add(1);
                meta.prepare(false, now);
                return Ok(InitResult::AbortFirst {
                    record: meta.record(transactional_id),
                    completion: meta.completion(transactional_id),
                });
            }
            TxnState::Dead => return Err(TxnError::ConcurrentTransactions),
            TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort => {}
        }
        let old_id = meta.producer_id;
        if meta.producer_epoch >= MAX_EPOCH {
            meta.producer_id = allocate().ok_or(TxnError::CoordinatorNotAvailable)?;
            meta.last_producer_epoch = -1;
            meta.producer_epoch = 0;
        } else {
            meta.last_producer_epoch = meta.producer_epoch;
            meta.producer_epoch = meta.producer_epoch.saturating_add(1);
        }
        meta.timeout_ms = timeout_ms;
        meta.state = TxnState::Empty;
        meta.partitions.clear();
        meta.start_ms = -1;
        meta.last_update_ms = now;
        let (producer_id, producer_epoch) = (meta.producer_id, meta.producer_epoch);
        let record = meta.record(transactional_id);
        inner.set_producer(transactional_id, Some(old_id), producer_id);
        Ok(InitResult::Granted {
            producer_id,
            producer_epoch,
            record,
        })
    }

    /// AddPartitionsToTxn (and AddOffsetsToTxn, with the group's
    /// `__consumer_offsets` partition): the transaction becomes (or stays)
    /// Ongoing with these partitions. Returns the record to write, if the
    /// state changed.
    pub fn add_partitions(
        &self,
        transactional_id: &str,
        producer_id: i64,
        epoch: i16,
        partitions: &[(String, i32)],
        now: i64,
    ) -> Result<Option<TxnRecord>, TxnError> {
        self.check_loaded()?;
        let mut inner = self.lock();
        let meta = inner
            .txns
            .get_mut(transactional_id)
            .ok_or(TxnError::InvalidProducerIdMapping)?;
        meta.check_producer(producer_id, epoch)?;
        match meta.state {
            TxnState::PrepareCommit | TxnState::PrepareAbort | TxnState::PrepareEpochFence => {
                return Err(TxnError::ConcurrentTransactions)
            }
            TxnState::Dead => return Err(TxnError::InvalidTxnState),
            TxnState::Ongoing
                if partitions
                    .iter()
                    .all(|p| meta.partitions.contains(&(p.0.clone(), p.1))) =>
            {
                return Ok(None)
            }
            TxnState::Ongoing => {}
            TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort => {
                meta.partitions.clear();
                meta.start_ms = now;
                meta.state = TxnState::Ongoing;
            }
        }
        meta.partitions.extend(partitions.iter().cloned());
        meta.last_update_ms = now;
        Ok(Some(meta.record(transactional_id)))
    }

    /// KIP-890's verification: whether each partition is in the producer's
    /// ongoing transaction.
    pub fn verify_partitions(
        &self,
        transactional_id: &str,
        producer_id: i64,
        epoch: i16,
        partitions: &[(String, i32)],
    ) -> Result<Vec<Result<(), TxnError>>, TxnError> {
        self.check_loaded()?;
        let inner = self.lock();
        let meta = inner
            .txns
            .get(transactional_id)
            .ok_or(TxnError::InvalidProducerIdMapping)?;
        meta.check_producer(producer_id, epoch)?;
        Ok(partitions
            .iter()
            .map(|p| {
                if meta.state == TxnState::Ongoing && meta.partitions.contains(p) {
                    Ok(())
                } else {
                    Err(TxnError::InvalidTxnState)
                }
            })
            .collect())
    }

    /// Whether a transactional batch of `producer_id` at `epoch` may be
    /// written to this partition: the producer is current and the partition
    /// was added to its ongoing transaction.
    pub fn check_produce(
        &self,
        producer_id: i64,
        epoch: i16,
        topic: &str,
        partition: i32,
    ) -> Result<(), TxnError> {
        let inner = self.lock();
        let meta = inner
            .by_producer
            .get(&producer_id)
            .and_then(|id| inner.txns.get(id))
            .ok_or(TxnError::InvalidProducerIdMapping)?;
        if epoch < meta.producer_epoch {
            return Err(TxnError::ProducerFenced);
        }
        let added = meta.state == TxnState::Ongoing
            && meta.partitions.contains(&(topic.to_string(), partition));
        if epoch != meta.producer_epoch || !added {
            return Err(TxnError::InvalidTxnState);
        }
        Ok(())
    }

    /// EndTxn: commit (or abort) the ongoing transaction. Returns the
    /// Prepare record to write and the completion to carry out; both
    /// `None` for a retry of an end already done.
    pub fn end_txn(
        &self,
        transactional_id: &str,
        producer_id: i64,
        epoch: i16,
        commit: bool,
        now: i64,
    ) -> Result<Option<(TxnRecord, Completion)>, TxnError> {
        self.check_loaded()?;
        let mut inner = self.lock();
        let meta = inner
            .txns
            .get_mut(transactional_id)
            .ok_or(TxnError::InvalidProducerIdMapping)?;
        meta.check_producer(producer_id, epoch)?;
        match (meta.state, commit) {
            (TxnState::Ongoing, _) => {
                meta.prepare(commit, now);
                Ok(Some((
                    meta.record(transactional_id),
                    meta.completion(transactional_id),
                )))
            }
            (TxnState::CompleteCommit, true) | (TxnState::CompleteAbort, false) => Ok(None),
            (TxnState::PrepareCommit, true) | (TxnState::PrepareAbort, false) => {
                Err(TxnError::ConcurrentTransactions)
            }
            (TxnState::PrepareEpochFence, _) => Err(TxnError::ConcurrentTransactions),
            _ => Err(TxnError::InvalidTxnState),
        }
    }

    /// The markers of `completion` are written: the transaction becomes
    /// CompleteCommit/CompleteAbort. Returns the record to write; `None`
    /// when the transaction had already moved on.
    pub fn complete(&self, completion: &Completion, now: i64) -> Option<TxnRecord> {
        let mut inner = self.lock();
        let meta = inner.txns.get_mut(&completion.transactional_id)?;
        let expected = if completion.commit {
            TxnState::PrepareCommit
        } else {
            TxnState::PrepareAbort
        };
        if meta.state != expected
            || meta.producer_id != completion.producer_id
            || meta.producer_epoch != completion.producer_epoch
        {
            return None;
        }
        meta.state = if completion.commit {
            TxnState::CompleteCommit
        } else {
            TxnState::CompleteAbort
        };
        meta.partitions.clear();
        meta.start_ms = -1;
        meta.last_update_ms = now;
        Some(meta.record(&completion.transactional_id))
    }

    /// Time-based work: transactions open longer than their timeout are
    /// aborted with a bumped epoch (fencing their producer, as Kafka
    /// does), and Prepare states left over (markers not all written) are
    /// handed out again. Returns (record to write first, if any; the
    /// completion).
    pub fn tick(&self, now: i64) -> Vec<(Option<TxnRecord>, Completion)> {
        if !self.is_loaded() {
            return Vec::new();
        }
        let mut out = Vec::new();
        let retry = self.config.retry_completion_ms;
        let mut inner = self.lock();
        for (id, meta) in inner.txns.iter_mut() {
            match meta.state {
                TxnState::Ongoing
                    if now.saturating_sub(meta.start_ms) > i64::from(meta.timeout_ms) =>
                {
                    tracing::info!(
                        transactional_id = %id,
                        producer_id = meta.producer_id,
                        "aborting a transaction open past its timeout"
                    );
                    if meta.producer_epoch < MAX_EPOCH {
                        meta.last_producer_epoch = meta.producer_epoch;
                        meta.producer_epoch = meta.producer_epoch.saturating_add(1);
                    }
                    meta.prepare(false, now);
                    out.push((Some(meta.record(id)), meta.completion(id)));
                }
                state if state.is_prepare() && now.saturating_sub(meta.last_update_ms) > retry => {
                    meta.last_update_ms = now;
                    out.push((None, meta.completion(id)));
                }
                _ => {}
            }
        }
        out
    }

    /// DescribeTransactions: each id's state, or TransactionalIdNotFound.
    pub fn describe(&self, ids: &[String]) -> Result<Vec<Result<TxnSummary, TxnError>>, TxnError> {
        self.check_loaded()?;
        let inner = self.lock();
        Ok(ids
            .iter()
            .map(|id| {
                inner
                    .txns
                    .get(id)
                    .map(|m| m.summary(id))
                    .ok_or(TxnError::TransactionalIdNotFound)
            })
            .collect())
    }

    /// ListTransactions: ids whose state is in `states` and producer id in
    /// `producer_ids` (an empty filter matches all), and whose ongoing
    /// transaction has lasted at least `min_duration_ms` (-1: any).
    pub fn list(
        &self,
        states: &[String],
        producer_ids: &[i64],
        min_duration_ms: i64,
        now: i64,
    ) -> Result<Vec<TxnSummary>, TxnError> {
        self.check_loaded()?;
        let inner = self.lock();
        let mut out: Vec<TxnSummary> = inner
            .txns
            .iter()
            .filter(|(_, m)| states.is_empty() || states.iter().any(|s| s == m.state.name()))
            .filter(|(_, m)| producer_ids.is_empty() || producer_ids.contains(&m.producer_id))
            .filter(|(_, m)| {
                min_duration_ms < 0
                    || (m.start_ms >= 0 && now.saturating_sub(m.start_ms) >= min_duration_ms)
            })
            .map(|(id, m)| m.summary(id))
            .collect();
        out.sort_by(|a, b| a.transactional_id.cmp(&b.transactional_id));
        Ok(out)
    }
}
