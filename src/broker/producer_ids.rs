//! Producer ids for InitProducerId. Ids are handed out from blocks; each
//! block is reserved in the metadata log (synced) before any of its ids is
//! given, so a restart starts after the last reserved block and never hands
//! out an id twice.

use std::sync::PoisonError;

use super::metadata_log::MetadataRecord;
use super::{Broker, BrokerError};

/// Ids reserved per metadata-log record (Kafka's block size).
pub const BLOCK_SIZE: i64 = 1000;

/// The block ids are currently taken from.
#[derive(Debug, Default)]
pub struct ProducerIdBlock {
    /// The next id to hand out.
    next: i64,
    /// End (exclusive) of the reserved block; `next == end` means a new
    /// block must be reserved first.
    end: i64,
}

impl ProducerIdBlock {
    /// The state after replaying the metadata log: nothing left to hand out
    /// below `reserved_end`, the highest reservation seen.
    pub fn after_replay(reserved_end: i64) -> Self {
        Self {
            next: reserved_end,
            end: reserved_end,
        }
    }
}

impl Broker {
    /// A fresh producer id, never handed out before by this data directory.
    pub fn allocate_producer_id(&self) -> Result<i64, BrokerError> {
        let mut block = self
            .producer_ids
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if block.next >= block.end {
            let end = block.end.checked_add(BLOCK_SIZE).ok_or_else(|| {
                BrokerError::InconsistentDataDir("producer ids exhausted".to_string())
            })?;
            let mut metadata = self.metadata.lock().unwrap_or_else(PoisonError::into_inner);
            let path = metadata.path().to_path_buf();
            metadata
                .append(&MetadataRecord::ProducerIdsReserved { end })
                .map_err(|e| BrokerError::io("reserving producer ids", &path, e))?;
            tracing::info!(from = block.end, end, "reserved a block of producer ids");
            block.next = block.end;
            block.end = end;
        }
        let id = block.next;
        block.next = id.saturating_add(1);
        Ok(id)
    }
}
