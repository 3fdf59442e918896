//! openraft's `RaftLogStorage` over `wharf_storage::quorum`: the Raft log,
//! the vote and the committed hint. Every file operation runs on Tokio's
//! blocking pool (`spawn_blocking`), never on a worker thread.

use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};

use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{
    AnyError, Entry, LogId, OptionalSend, RaftLogReader, StorageError, StorageIOError, Vote,
};
use wharf_storage::quorum::{self as disk, QuorumDir, QuorumLog, VoteFile};

use super::types::{
    entry_from_disk, entry_to_disk, log_id_from_disk, log_id_to_disk, vote_from_disk, vote_to_disk,
    TypeConfig,
};

/// The Raft log and vote of this node. Clones share the one open log (the
/// reader openraft asks for is a clone).
#[derive(Debug, Clone)]
pub(crate) struct LogStore {
    log: Arc<Mutex<QuorumLog>>,
    vote: Arc<Mutex<VoteFile>>,
    dir: PathBuf,
}

type StoreResult<T> = Result<T, StorageError<u64>>;

/// Runs `f` on the blocking pool; a panicked or cancelled task becomes a
/// storage error, as does `f`'s own error.
pub(crate) async fn blocking<T, F>(
    f: F,
    wrap: fn(AnyError) -> StorageIOError<u64>,
) -> StoreResult<T>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, wharf_storage::StorageError> + Send + 'static,
{
    match tokio::task::spawn_blocking(f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => {
            tracing::error!(error = %e, "metadata quorum storage failed");
            Err(wrap(AnyError::new(&e)).into())
        }
        Err(e) => Err(wrap(AnyError::new(&e)).into()),
    }
}

impl LogStore {
    /// The store over an opened quorum directory `dir`.
    pub(crate) fn new(dir: PathBuf, opened: QuorumDir) -> LogStore {
        LogStore {
            log: Arc::new(Mutex::new(opened.log)),
            vote: Arc::new(Mutex::new(opened.vote)),
            dir,
        }
    }

    async fn with_log<T, F>(
        &self,
        f: F,
        wrap: fn(AnyError) -> StorageIOError<u64>,
    ) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut QuorumLog) -> Result<T, wharf_storage::StorageError> + Send + 'static,
    {
        let log = Arc::clone(&self.log);
        blocking(
            move || f(&mut log.lock().unwrap_or_else(PoisonError::into_inner)),
            wrap,
        )
        .await
    }
}

fn bounds(range: &impl RangeBounds<u64>) -> (Bound<u64>, Bound<u64>) {
    (range.start_bound().cloned(), range.end_bound().cloned())
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> StoreResult<Vec<Entry<TypeConfig>>> {
        let range = bounds(&range);
        self.with_log(move |log| Ok(log.entries(range)), StorageIOError::read_logs)
            .await
            .map(|entries| entries.into_iter().map(entry_from_disk).collect())
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> StoreResult<LogState<TypeConfig>> {
        let (purged, last) = self
            .with_log(
                |log| Ok((log.last_purged(), log.last_log_id())),
                StorageIOError::read_logs,
            )
            .await?;
        Ok(LogState {
            last_purged_log_id: purged.as_ref().map(log_id_from_disk),
            last_log_id: last.as_ref().map(log_id_from_disk),
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<u64>) -> StoreResult<()> {
        let file = Arc::clone(&self.vote);
        let vote = vote_to_disk(vote);
        blocking(
            move || {
                file.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .save(&vote)
            },
            StorageIOError::write_vote,
        )
        .await
    }

    async fn read_vote(&mut self) -> StoreResult<Option<Vote<u64>>> {
        let vote = self
            .vote
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .vote();
        Ok(vote.as_ref().map(vote_from_disk))
    }

    async fn save_committed(&mut self, committed: Option<LogId<u64>>) -> StoreResult<()> {
        let dir = self.dir.clone();
        let committed = committed.as_ref().map(log_id_to_disk);
        blocking(
            move || disk::write_committed(&dir, committed),
            StorageIOError::write,
        )
        .await
    }

    async fn read_committed(&mut self) -> StoreResult<Option<LogId<u64>>> {
        let dir = self.dir.clone();
        let committed = blocking(move || disk::read_committed(&dir), StorageIOError::read).await?;
        Ok(committed.as_ref().map(log_id_from_disk))
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> StoreResult<()>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let entries: Vec<_> = entries.into_iter().map(|e| entry_to_disk(&e)).collect();
        let result = self
            .with_log(move |log| log.append(&entries), StorageIOError::write_logs)
            .await;
        match &result {
            Ok(()) => callback.log_io_completed(Ok(())),
            Err(e) => callback.log_io_completed(Err(std::io::Error::other(e.to_string()))),
        }
        result
    }

    async fn truncate(&mut self, log_id: LogId<u64>) -> StoreResult<()> {
        self.with_log(
            move |log| log.truncate(log_id.index),
            StorageIOError::write_logs,
        )
        .await
    }

    async fn purge(&mut self, log_id: LogId<u64>) -> StoreResult<()> {
        let upto = log_id_to_disk(&log_id);
        self.with_log(move |log| log.purge(upto), StorageIOError::write_logs)
            .await
    }
}
