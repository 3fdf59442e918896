//! Idempotent producers' state in one partition: per producer id, its
//! epoch and its last five batches (sequence range and offsets), as Kafka
//! keeps them. Appends are checked against it: a retried batch is found and
//! acknowledged with its original offsets, a sequence gap or an old epoch is
//! refused.
//!
//! The state is derived from batch headers alone (producer id, epoch, base
//! sequence, last offset delta) and transaction markers. On open it is
//! loaded from the latest producer-state snapshot (`.snapshot`, see
//! `snapshot`) and brought up to date by scanning the batches after
//! it, or rebuilt by scanning every segment when no snapshot is usable.

use std::collections::{HashMap, VecDeque};

use wharf_protocol::batch::BatchHeader;

use crate::error::{Result, StorageError};

/// How many batches per producer are remembered for duplicate detection
/// (Kafka's, and the most a client keeps in flight).
pub const BATCHES_KEPT: usize = 5;

/// One remembered batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchMeta {
    /// Sequence of the batch's first record.
    pub first_seq: i32,
    /// Sequence of the batch's last record (wrapped at `i32::MAX`).
    pub last_seq: i32,
    /// Offset given to the batch's first record.
    pub first_offset: i64,
    /// Offset given to the batch's last record.
    pub last_offset: i64,
}

/// What the log knows of one producer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProducerEntry {
    /// The producer's current epoch.
    pub epoch: i16,
    /// Its latest batches, oldest first, at most [`BATCHES_KEPT`].
    pub batches: VecDeque<BatchMeta>,
    /// The next batch's sequence is not checked against the last one: the
    /// entry was rebuilt from a closed segment of a compacted log, where
    /// compaction may have cut the end off the producer's last batch (so
    /// its true last sequence is unknown). Duplicates and epochs are still
    /// checked; the next accepted batch clears it.
    pub lenient: bool,
    /// Offset of the first batch of the producer's open transaction in
    /// this log, until a marker closes it.
    pub txn_first_offset: Option<i64>,
    /// Offset of the producer's latest batch or transaction marker in this
    /// log (so a snapshot can tell which producers retention has removed).
    pub last_offset: i64,
}

impl ProducerEntry {
    fn push(&mut self, meta: BatchMeta) {
        if self.batches.len() == BATCHES_KEPT {
            self.batches.pop_front();
        }
        self.batches.push_back(meta);
    }
}

/// A transaction of this log that ended with an ABORT marker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AbortedTxn {
    /// The transactional producer.
    pub producer_id: i64,
    /// Offset of the transaction's first batch in this log.
    pub first_offset: i64,
    /// Offset of the ABORT marker.
    pub last_offset: i64,
    /// The last stable offset once the transaction ended.
    pub last_stable_offset: i64,
}

impl From<AbortedTxn> for crate::format::TxnIndexEntry {
    fn from(a: AbortedTxn) -> Self {
        crate::format::TxnIndexEntry {
            producer_id: a.producer_id,
            first_offset: a.first_offset,
            last_offset: a.last_offset,
            last_stable_offset: a.last_stable_offset,
        }
    }
}

impl From<crate::format::TxnIndexEntry> for AbortedTxn {
    fn from(e: crate::format::TxnIndexEntry) -> Self {
        AbortedTxn {
            producer_id: e.producer_id,
            first_offset: e.first_offset,
            last_offset: e.last_offset,
            last_stable_offset: e.last_stable_offset,
        }
    }
}

/// The producer ids seen in one log and their entries, and the log's
/// aborted transactions (for read_committed fetches).
#[derive(Debug, Clone, Default)]
pub struct ProducerStates {
    /// Entry per producer id.
    entries: HashMap<i64, ProducerEntry>,
    /// Aborted transactions, in the order of their markers.
    aborted: Vec<AbortedTxn>,
}

/// The outcome of checking one batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SequenceCheck {
    /// The batch is new and in sequence (or carries no producer id).
    Accept,
    /// The batch was already written, at these offsets.
    Duplicate(BatchMeta),
}

/// The sequence of the last record of a batch starting at `base` with
/// `delta` more records, wrapping past `i32::MAX` to 0 as Kafka does.
pub fn last_sequence(base: i32, delta: i32) -> i32 {
    if delta <= 0 {
        return base;
    }
    if base > i32::MAX - delta {
        delta - (i32::MAX - base) - 1
    } else {
        base + delta
    }
}

/// Whether `next` directly follows `last`.
fn in_sequence(last: i32, next: i32) -> bool {
    (last != i32::MAX && next == last + 1) || (last == i32::MAX && next == 0)
}

impl ProducerStates {
    /// The entry of `producer_id`, if any.
    pub fn get(&self, producer_id: i64) -> Option<&ProducerEntry> {
        self.entries.get(&producer_id)
    }

    /// Every producer and its entry, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (i64, &ProducerEntry)> {
        self.entries.iter().map(|(id, e)| (*id, e))
    }

    /// Number of producers tracked.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no producer is tracked.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Marks every producer lenient (see [`ProducerEntry::lenient`]).
    pub fn mark_lenient(&mut self) {
        for entry in self.entries.values_mut() {
            entry.lenient = true;
        }
    }

    /// Forgets every producer and aborted transaction.
    pub fn clear(&mut self) {
        self.entries.clear();
        self.aborted.clear();
    }

    /// Closes `producer_id`'s open transaction with the marker written at
    /// `marker_offset` by `epoch` (which may be a bumped one: older
    /// epochs are then fenced). An ABORT of a transaction that wrote here
    /// is remembered for read_committed fetches, and returned.
    pub fn end_txn(
        &mut self,
        producer_id: i64,
        epoch: i16,
        marker_offset: i64,
        commit: bool,
    ) -> Option<AbortedTxn> {
        let entry = self.entries.entry(producer_id).or_default();
        entry.last_offset = marker_offset;
        if epoch > entry.epoch {
            entry.epoch = epoch;
            entry.batches.clear();
        }
        let first_offset = entry.txn_first_offset.take()?;
        if commit {
            return None;
        }
        let aborted = AbortedTxn {
            producer_id,
            first_offset,
            last_offset: marker_offset,
            last_stable_offset: self
                .first_unstable_offset()
                .unwrap_or(marker_offset.saturating_add(1)),
        };
        self.aborted.push(aborted);
        Some(aborted)
    }

    /// The first offset of the oldest transaction still open in this log:
    /// the last stable offset, when there is one.
    pub fn first_unstable_offset(&self) -> Option<i64> {
        self.entries
            .values()
            .filter_map(|e| e.txn_first_offset)
            .min()
    }

    /// Forgets aborted transactions that end before `offset` (their data
    /// is gone with deleted segments).
    pub fn forget_aborted_before(&mut self, offset: i64) {
        self.aborted.retain(|t| t.last_offset >= offset);
    }

    /// Aborted transactions with data in `[from, to)`.
    pub fn aborted_between(&self, from: i64, to: i64) -> Vec<AbortedTxn> {
        self.aborted
            .iter()
            .filter(|t| t.last_offset >= from && t.first_offset < to)
            .copied()
            .collect()
    }

    /// Checks a batch (by its header) against `current`, the producer's entry
    /// as it stands before the batch, following Kafka: a different epoch is
    /// fenced when older and must start at sequence 0 when newer; a batch
    /// matching one of the last five is a duplicate; otherwise its first
    /// sequence must follow the last one. An unknown producer may start at
    /// any sequence (its state may have gone with deleted segments).
    pub fn check(current: Option<&ProducerEntry>, header: &BatchHeader) -> Result<SequenceCheck> {
        let producer_id = header.producer_id();
        if producer_id < 0 || header.is_control() {
            return Ok(SequenceCheck::Accept);
        }
        let epoch = header.producer_epoch();
        let first = header.base_sequence();
        let Some(entry) = current else {
            return Ok(SequenceCheck::Accept);
        };
        if epoch < entry.epoch {
            return Err(StorageError::InvalidProducerEpoch {
                producer_id,
                epoch,
                current: entry.epoch,
            });
        }
        if first < 0 {
            // No sequence (a coordinator's batch, such as transactional
            // offsets): only the epoch is checked, as Kafka does.
            return Ok(SequenceCheck::Accept);
        }
        if epoch > entry.epoch {
            if first != 0 {
                return Err(StorageError::OutOfOrderSequence {
                    producer_id,
                    sequence: first,
                    expected: 0,
                });
            }
            return Ok(SequenceCheck::Accept);
        }
        let last = last_sequence(first, header.last_offset_delta());
        if let Some(meta) = entry
            .batches
            .iter()
            .find(|m| m.first_seq == first && m.last_seq == last)
        {
            return Ok(SequenceCheck::Duplicate(*meta));
        }
        match entry.batches.back() {
            Some(prev) if !entry.lenient && !in_sequence(prev.last_seq, first) => {
                Err(StorageError::OutOfOrderSequence {
                    producer_id,
                    sequence: first,
                    expected: last_sequence(prev.last_seq, 1),
                })
            }
            _ => Ok(SequenceCheck::Accept),
        }
    }

    /// Records a batch written at `header`'s offsets (its base offset set).
    pub fn record(&mut self, header: &BatchHeader) {
        let producer_id = header.producer_id();
        if producer_id < 0 || header.is_control() {
            return;
        }
        let entry = self.entries.entry(producer_id).or_default();
        apply(entry, header, header.base_offset());
    }

    /// Checks the batches of one append in order, each against the state
    /// the batches before it leave; the append will place its first batch
    /// at `next_offset`. Returns the first duplicate found (the append is
    /// then a retry and is not written), or the producers' entries as they
    /// will be after the append.
    pub fn check_append<'a>(
        &self,
        next_offset: i64,
        headers: impl Iterator<Item = &'a BatchHeader>,
    ) -> Result<AppendCheck> {
        let mut staged: HashMap<i64, ProducerEntry> = HashMap::new();
        let mut first_offset = next_offset;
        for header in headers {
            let producer_id = header.producer_id();
            let current = staged
                .get(&producer_id)
                .or_else(|| self.entries.get(&producer_id));
            match Self::check(current, header)? {
                SequenceCheck::Duplicate(meta) => return Ok(AppendCheck::Duplicate(meta)),
                SequenceCheck::Accept if producer_id >= 0 && !header.is_control() => {
                    let mut entry = current.cloned().unwrap_or_default();
                    apply(&mut entry, header, first_offset);
                    staged.insert(producer_id, entry);
                }
                SequenceCheck::Accept => {}
            }
            first_offset = first_offset
                .saturating_add(i64::from(header.last_offset_delta()))
                .saturating_add(1);
        }
        Ok(AppendCheck::Accept(staged))
    }

    /// Every aborted transaction, in the order of their markers.
    pub fn aborted(&self) -> &[AbortedTxn] {
        &self.aborted
    }

    /// Rebuilds the state from a snapshot's producers and the aborted
    /// transactions before its offset.
    pub(crate) fn restore(entries: Vec<(i64, ProducerEntry)>, aborted: Vec<AbortedTxn>) -> Self {
        ProducerStates {
            entries: entries.into_iter().collect(),
            aborted,
        }
    }

    /// Forgets what a scan starting at `log_start` (the first segment's base
    /// offset) would not see: producers whose last batch or marker is below
    /// it, and remembered batches below it. Returns false, leaving the state
    /// unusable, when an open transaction began below it (a scan would date
    /// it from its first batch still in the log, which only a scan finds).
    pub(crate) fn forget_below(&mut self, log_start: i64) -> bool {
        self.entries.retain(|_, e| e.last_offset >= log_start);
        for entry in self.entries.values_mut() {
            entry.batches.retain(|b| b.first_offset >= log_start);
        }
        self.entries
            .values()
            .all(|e| e.txn_first_offset.is_none_or(|t| t >= log_start))
    }

    /// Installs entries staged by [`ProducerStates::check_append`].
    pub fn commit(&mut self, staged: HashMap<i64, ProducerEntry>) {
        self.entries.extend(staged);
    }
}

/// The outcome of [`ProducerStates::check_append`].
#[derive(Debug)]
pub enum AppendCheck {
    /// Write the append, then commit these entries.
    Accept(HashMap<i64, ProducerEntry>),
    /// The append repeats a batch already written at these offsets.
    Duplicate(BatchMeta),
}

/// Updates `entry` with a batch written from `first_offset` on: a new
/// epoch starts afresh.
fn apply(entry: &mut ProducerEntry, header: &BatchHeader, first_offset: i64) {
    let epoch = header.producer_epoch();
    if epoch != entry.epoch {
        entry.batches.clear();
        entry.epoch = epoch;
    }
    entry.lenient = false;
    entry.last_offset = first_offset.saturating_add(i64::from(header.last_offset_delta()));
    if header.is_transactional() && entry.txn_first_offset.is_none() {
        entry.txn_first_offset = Some(first_offset);
    }
    let first_seq = header.base_sequence();
    if first_seq < 0 {
        return;
    }
    entry.push(BatchMeta {
        first_seq,
        last_seq: last_sequence(first_seq, header.last_offset_delta()),
        first_offset,
        last_offset: first_offset.saturating_add(i64::from(header.last_offset_delta())),
    });
}

#[cfg(test)]
#[allow(clippy::expect_used, clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn last_sequence_wraps_past_i32_max_to_zero() {
        assert_eq!(last_sequence(0, 4), 4);
        assert_eq!(last_sequence(i32::MAX, 0), i32::MAX);
        assert_eq!(last_sequence(i32::MAX, 1), 0);
        assert_eq!(last_sequence(i32::MAX - 1, 3), 1);
    }

    fn txn_header(producer_id: i64, epoch: i16, seq: i32, offset: i64) -> BatchHeader {
        let options = wharf_protocol::batch::BatchOptions {
            transactional: true,
            producer_id,
            producer_epoch: epoch,
            base_sequence: seq,
            ..Default::default()
        };
        let record = wharf_protocol::batch::NewRecord {
            key: None,
            value: Some(b"v"),
            timestamp: 0,
            headers: Vec::new(),
        };
        let bytes =
            wharf_protocol::batch::build_batch_with(offset, &[record], &options).expect("builds");
        BatchHeader::parse(&bytes).expect("parses")
    }

    #[test]
    fn open_transaction_holds_the_stable_offset_until_its_marker() {
        let mut states = ProducerStates::default();
        states.record(&txn_header(1, 0, 0, 10));
        states.record(&txn_header(2, 0, 0, 11));
        states.record(&txn_header(1, 0, 1, 12));
        assert_eq!(states.first_unstable_offset(), Some(10));
        states.end_txn(1, 0, 13, true);
        assert_eq!(states.first_unstable_offset(), Some(11));
        states.end_txn(2, 0, 14, false);
        assert_eq!(states.first_unstable_offset(), None);
        let aborted = states.aborted_between(0, 100);
        assert_eq!(
            aborted,
            vec![AbortedTxn {
                producer_id: 2,
                first_offset: 11,
                last_offset: 14,
                last_stable_offset: 15,
            }]
        );
        assert!(states.aborted_between(15, 100).is_empty());
        assert!(states.aborted_between(0, 11).is_empty());
        states.forget_aborted_before(14);
        assert_eq!(states.aborted_between(0, 100).len(), 1);
        states.forget_aborted_before(15);
        assert!(states.aborted_between(0, 100).is_empty());
    }

    #[test]
    fn marker_with_a_bumped_epoch_fences_the_old_epoch() {
        let mut states = ProducerStates::default();
        states.record(&txn_header(1, 0, 0, 0));
        states.end_txn(1, 1, 1, false);
        let old = txn_header(1, 0, 1, 2);
        assert!(ProducerStates::check(states.get(1), &old).is_err());
    }

    #[test]
    fn batches_without_sequence_skip_sequence_checks_but_not_the_epoch() {
        let mut states = ProducerStates::default();
        let unsequenced = |epoch, offset| txn_header(3, epoch, -1, offset);
        states.record(&unsequenced(1, 0));
        for offset in 1..3 {
            let h = unsequenced(1, offset);
            assert_eq!(
                ProducerStates::check(states.get(3), &h).unwrap(),
                SequenceCheck::Accept
            );
            states.record(&h);
        }
        assert!(ProducerStates::check(states.get(3), &unsequenced(0, 3)).is_err());
    }

    #[test]
    fn zero_follows_i32_max() {
        assert!(in_sequence(i32::MAX, 0));
        assert!(in_sequence(4, 5));
        assert!(!in_sequence(4, 6));
        assert!(!in_sequence(i32::MAX, 1));
    }
}
