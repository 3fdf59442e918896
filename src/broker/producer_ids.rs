//! Producer ids for InitProducerId. Ids are handed out from blocks the
//! active controller allocates (Kafka's AllocateProducerIds): each block is
//! committed to the cluster's metadata log (a ProducerIdsRecord) before any
//! of its ids is given, so no id is handed out twice, by this broker or any
//! other, across restarts and controller changes.

use std::sync::PoisonError;

use super::{Broker, BrokerError};

/// The block ids are currently taken from.
#[derive(Debug, Default)]
pub struct ProducerIdBlock {
    /// The next id to hand out.
    next: i64,
    /// End (exclusive) of the block; `next == end` means a new block is
    /// needed first.
    end: i64,
}

impl ProducerIdBlock {
    /// The next id of the current block, if any is left.
    fn take(&mut self) -> Option<i64> {
        (self.next < self.end).then(|| {
            let id = self.next;
            self.next = id.saturating_add(1);
            id
        })
    }

    /// Replaces a used-up block with `len` ids from `first`.
    fn refill(&mut self, first: i64, len: i32) {
        if self.next >= self.end {
            self.next = first;
            self.end = first.saturating_add(i64::from(len.max(0)));
        }
    }
}

impl Broker {
    /// A fresh producer id, never handed out before in this cluster: from
    /// the current block, or from a new one the controller allocates.
    pub async fn allocate_producer_id(&self) -> Result<i64, BrokerError> {
        loop {
            if let Some(id) = self.lock_producer_ids().take() {
                return Ok(id);
            }
            // One request for a block at a time; the others wait for it.
            let _fetching = self.producer_id_fetch.lock().await;
            let left = {
                let block = self.lock_producer_ids();
                block.next < block.end
            };
            if left {
                continue;
            }
            let node = self.node().await.map_err(|e| {
                BrokerError::Controller(
                    kafka_protocol::ResponseError::CoordinatorNotAvailable,
                    e.to_string(),
                )
            })?;
            let (first, len) = node
                .allocate_producer_ids()
                .await
                .map_err(|e| BrokerError::Controller(e.code, e.message))?;
            tracing::info!(first, len, "allocated a block of producer ids");
            self.lock_producer_ids().refill(first, len);
        }
    }

    fn lock_producer_ids(&self) -> std::sync::MutexGuard<'_, ProducerIdBlock> {
        self.producer_ids
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn hands_out_a_block_in_order_then_asks_for_another() {
        let mut block = ProducerIdBlock::default();
        assert_eq!(block.take(), None);
        block.refill(2000, 3);
        assert_eq!(
            (0..4).map(|_| block.take()).collect::<Vec<_>>(),
            vec![Some(2000), Some(2001), Some(2002), None]
        );
        block.refill(5000, 1000);
        assert_eq!(block.take(), Some(5000));
        // A block with ids left is kept (a racing refill is ignored).
        block.refill(9000, 1000);
        assert_eq!(block.take(), Some(5001));
    }
}
