//! AllocateProducerIds, with the behaviour of Kafka's
//! `ProducerIdControlManager.generateNextProducerId`: a broker with a
//! current registration takes the next block of [`PRODUCER_ID_BLOCK_SIZE`]
//! ids, recorded as a ProducerIdsRecord naming the first id after it.

use kafka_protocol::ResponseError;

use super::controller::ControllerError;
use super::image::MetadataImage;
use super::records::{MetadataRecord, ProducerIdsRecord};

/// Ids per block, as Kafka's `ProducerIdsBlock.PRODUCER_ID_BLOCK_SIZE`.
pub const PRODUCER_ID_BLOCK_SIZE: i32 = 1000;

/// A block of producer ids handed to one broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerIdBlock {
    pub first: i64,
    pub len: i32,
}

/// Decides an AllocateProducerIds request from broker `broker_id` at
/// `broker_epoch`: the block and the record that takes it. A broker that is
/// not registered, or registered with another epoch, is
/// STALE_BROKER_EPOCH; an exhausted id space is UNKNOWN_SERVER_ERROR.
pub fn allocate_producer_ids(
    image: &MetadataImage,
    broker_id: i32,
    broker_epoch: i64,
) -> Result<(ProducerIdBlock, MetadataRecord), ControllerError> {
    let stale = |m: String| ControllerError::new(ResponseError::StaleBrokerEpoch, m);
    let broker = image.broker(broker_id).ok_or_else(|| {
        stale(format!(
            "No broker registration found for broker id {broker_id}"
        ))
    })?;
    if broker.epoch != broker_epoch {
        return Err(stale(format!(
            "Expected broker epoch {}, but got broker epoch {broker_epoch}",
            broker.epoch
        )));
    }
    let first = image.next_producer_id().max(0);
    let next = first
        .checked_add(i64::from(PRODUCER_ID_BLOCK_SIZE))
        .ok_or_else(|| {
            ControllerError::new(
                ResponseError::UnknownServerError,
                "Exhausted all producerIds.",
            )
        })?;
    Ok((
        ProducerIdBlock {
            first,
            len: PRODUCER_ID_BLOCK_SIZE,
        },
        MetadataRecord::ProducerIds(ProducerIdsRecord {
            broker_id,
            broker_epoch,
            next_producer_id: next,
        }),
    ))
}

#[cfg(test)]
#[path = "producer_ids_tests.rs"]
mod tests;
