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
    /// The end of the reservation: ids below it are taken.
    pub fn reserved_end(&self) -> i64 {
        self.end
    }

    pub fn after_replay(reserved_end: i64) -> Self {
        Self {
            next: reserved_end,
            end: reserved_end,
        }
    }
}

impl ProducerIdBlock {
    /// The next id; when the block is used up, first reserves the next one
    /// by calling `reserve` with its end (which must make it durable).
    fn take<E>(&mut self, reserve: impl FnOnce(i64) -> Result<(), E>) -> Result<i64, E>
    where
        E: From<BrokerError>,
    {
        if self.next >= self.end {
            let end = self.end.checked_add(BLOCK_SIZE).ok_or_else(|| {
                BrokerError::InconsistentDataDir("producer ids exhausted".to_string())
            })?;
            reserve(end)?;
            tracing::info!(from = self.end, end, "reserved a block of producer ids");
            self.next = self.end;
            self.end = end;
        }
        let id = self.next;
        self.next = id.saturating_add(1);
        Ok(id)
    }
}

impl Broker {
    /// A fresh producer id, never handed out before by this data directory.
    pub fn allocate_producer_id(&self) -> Result<i64, BrokerError> {
        let mut block = self
            .producer_ids
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        block.take(|end| {
            let mut metadata = self.metadata.lock().unwrap_or_else(PoisonError::into_inner);
            let path = metadata.path().to_path_buf();
            metadata
                .append(&MetadataRecord::ProducerIdsReserved { end })
                .map_err(|e| BrokerError::io("reserving producer ids", &path, e))
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn reserves_a_block_before_handing_out_its_first_id() {
        let mut block = ProducerIdBlock::default();
        let mut reserved = Vec::new();
        let ids: Vec<i64> = (0..2 * BLOCK_SIZE + 1)
            .map(|_| {
                block
                    .take(|end| {
                        reserved.push(end);
                        Ok::<(), BrokerError>(())
                    })
                    .unwrap()
            })
            .collect();
        assert_eq!(ids, (0..2 * BLOCK_SIZE + 1).collect::<Vec<_>>());
        assert_eq!(reserved, vec![BLOCK_SIZE, 2 * BLOCK_SIZE, 3 * BLOCK_SIZE]);
    }

    #[test]
    fn after_a_restart_ids_start_past_the_last_reserved_block() {
        let mut block = ProducerIdBlock::after_replay(2 * BLOCK_SIZE);
        let mut reserved = None;
        let id = block
            .take(|end| {
                reserved = Some(end);
                Ok::<(), BrokerError>(())
            })
            .unwrap();
        assert_eq!(id, 2 * BLOCK_SIZE);
        assert_eq!(reserved, Some(3 * BLOCK_SIZE));
    }

    #[test]
    fn a_failed_reservation_hands_out_nothing() {
        let mut block = ProducerIdBlock::default();
        let err = block.take(|_| Err(BrokerError::InconsistentDataDir("disk full".into())));
        assert!(err.is_err());
        let id = block.take(|_| Ok::<(), BrokerError>(())).unwrap();
        assert_eq!(id, 0);
    }
}
