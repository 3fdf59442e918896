//! Wharf's transaction coordinator: transactional ids, their producer ids
//! and epochs, and the state machine of their transactions, persisted in
//! `__transaction_state` in Kafka's own schemas (see [`records`]).
//!
//! # Shape
//!
//! Like the group coordinator it does no I/O and reads no clock: each call
//! takes `now` (ms since the epoch) and returns what must be made durable
//! ([`TxnRecord`]s for `__transaction_state`) and, when a transaction
//! ends, a [`Completion`]: the markers to write into each partition the
//! transaction touched. The broker writes the record of the Prepare state,
//! then the markers, then calls [`TxnCoordinator::complete`] and writes
//! the record of the Complete state. A crash in between leaves the
//! transaction in PrepareCommit/PrepareAbort; replay finds it there and
//! [`TxnCoordinator::tick`] hands the completion out again.
//!
//! States and transitions follow Kafka's `TransactionState`: Empty →
//! Ongoing (first AddPartitionsToTxn) → PrepareCommit/PrepareAbort
//! (EndTxn, a timeout, or a new InitProducerId fencing the producer) →
//! CompleteCommit/CompleteAbort → Ongoing again or Empty (InitProducerId).

mod coordinator;
pub mod records;
#[cfg(test)]
mod tests;

use std::collections::BTreeSet;

pub use coordinator::{InitResult, TxnCoordinator};

/// Name of the internal topic holding transactional ids' state.
pub const TRANSACTION_STATE_TOPIC: &str = "__transaction_state";

/// Settings of the transaction coordinator, from the broker's flags.
#[derive(Debug, Clone)]
pub struct TxnConfig {
    /// Largest transaction.timeout.ms a producer may ask for
    /// (`transaction.max.timeout.ms`).
    pub max_timeout_ms: i32,
    /// Partitions of `__transaction_state`
    /// (`transaction.state.log.num.partitions`).
    pub state_partitions: i32,
    /// A Prepare state older than this is completed again by `tick`: its
    /// markers were not all written.
    pub retry_completion_ms: i64,
}

impl Default for TxnConfig {
    fn default() -> Self {
        TxnConfig {
            max_timeout_ms: 900_000,
            state_partitions: 50,
            retry_completion_ms: 5_000,
        }
    }
}

/// Kafka's transaction states, with the codes `__transaction_state` uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TxnState {
    Empty,
    Ongoing,
    PrepareCommit,
    PrepareAbort,
    CompleteCommit,
    CompleteAbort,
    Dead,
    PrepareEpochFence,
}

impl TxnState {
    /// The status byte in `__transaction_state`.
    pub fn code(self) -> i8 {
        match self {
            TxnState::Empty => 0,
            TxnState::Ongoing => 1,
            TxnState::PrepareCommit => 2,
            TxnState::PrepareAbort => 3,
            TxnState::CompleteCommit => 4,
            TxnState::CompleteAbort => 5,
            TxnState::Dead => 6,
            TxnState::PrepareEpochFence => 7,
        }
    }

    pub fn from_code(code: i8) -> Option<TxnState> {
        Some(match code {
            0 => TxnState::Empty,
            1 => TxnState::Ongoing,
            2 => TxnState::PrepareCommit,
            3 => TxnState::PrepareAbort,
            4 => TxnState::CompleteCommit,
            5 => TxnState::CompleteAbort,
            6 => TxnState::Dead,
            7 => TxnState::PrepareEpochFence,
            _ => return None,
        })
    }

    /// The name ListTransactions and DescribeTransactions use.
    pub fn name(self) -> &'static str {
        match self {
            TxnState::Empty => "Empty",
            TxnState::Ongoing => "Ongoing",
            TxnState::PrepareCommit => "PrepareCommit",
            TxnState::PrepareAbort => "PrepareAbort",
            TxnState::CompleteCommit => "CompleteCommit",
            TxnState::CompleteAbort => "CompleteAbort",
            TxnState::Dead => "Dead",
            TxnState::PrepareEpochFence => "PrepareEpochFence",
        }
    }

    /// PrepareCommit or PrepareAbort: markers are being written.
    pub fn is_prepare(self) -> bool {
        matches!(self, TxnState::PrepareCommit | TxnState::PrepareAbort)
    }
}

/// The errors Kafka's transaction coordinator returns; the broker maps each
/// to its wire code in one place (and to older codes for old versions).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TxnError {
    #[error("the coordinator is still loading its state")]
    CoordinatorLoadInProgress,
    #[error("the coordinator is not available")]
    CoordinatorNotAvailable,
    #[error("transaction timeout is not within (0, transaction.max.timeout.ms]")]
    InvalidTransactionTimeout,
    #[error("a transaction of this id is completing; retry")]
    ConcurrentTransactions,
    #[error("the producer was fenced by a newer epoch")]
    ProducerFenced,
    #[error("the producer id does not belong to this transactional id")]
    InvalidProducerIdMapping,
    #[error("the request is not valid in the transaction's current state")]
    InvalidTxnState,
    #[error("unknown transactional id")]
    TransactionalIdNotFound,
    /// Longer than `__transaction_state`'s records can hold.
    #[error("transactional id is longer than {max} bytes", max = crate::records::MAX_STRING_LEN)]
    TransactionalIdTooLong,
}

/// Something to append to `__transaction_state`, for the partition that
/// owns `transactional_id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnRecord {
    pub transactional_id: String,
    pub key: Vec<u8>,
    pub value: Option<Vec<u8>>,
}

/// The end of a transaction to carry out: write a marker for
/// `producer_id`/`producer_epoch` into every partition, then call
/// [`TxnCoordinator::complete`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completion {
    pub transactional_id: String,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub commit: bool,
    pub partitions: Vec<(String, i32)>,
}

/// A transactional id as DescribeTransactions and ListTransactions show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnSummary {
    pub transactional_id: String,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub timeout_ms: i32,
    pub state: TxnState,
    pub partitions: BTreeSet<(String, i32)>,
    /// When the ongoing transaction started; -1 when none is.
    pub start_ms: i64,
}
