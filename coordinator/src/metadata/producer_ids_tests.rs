#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::*;
use crate::metadata::testkit::{apply_all, cluster};

#[test]
fn blocks_follow_each_other_from_zero() {
    let mut image = cluster(&[1, 2]);
    let (first, record) = allocate_producer_ids(&image, 1, 101).unwrap();
    assert_eq!(
        first,
        ProducerIdBlock {
            first: 0,
            len: PRODUCER_ID_BLOCK_SIZE
        }
    );
    assert_eq!(
        record,
        MetadataRecord::ProducerIds(ProducerIdsRecord {
            broker_id: 1,
            broker_epoch: 101,
            next_producer_id: 1000,
        })
    );
    apply_all(&mut image, &[record]);
    let (second, record) = allocate_producer_ids(&image, 2, 102).unwrap();
    assert_eq!(second.first, 1000);
    apply_all(&mut image, &[record]);
    assert_eq!(image.next_producer_id(), 2000);
}

#[test]
fn an_unregistered_broker_or_a_stale_epoch_is_stale_broker_epoch() {
    let image = cluster(&[1]);
    let err = allocate_producer_ids(&image, 7, 0).unwrap_err();
    assert_eq!(err.code, ResponseError::StaleBrokerEpoch);
    let err = allocate_producer_ids(&image, 1, 100).unwrap_err();
    assert_eq!(err.code, ResponseError::StaleBrokerEpoch);
}

#[test]
fn an_exhausted_id_space_is_refused() {
    let mut image = cluster(&[1]);
    apply_all(
        &mut image,
        &[MetadataRecord::ProducerIds(ProducerIdsRecord {
            broker_id: 1,
            broker_epoch: 101,
            next_producer_id: i64::MAX - 10,
        })],
    );
    let err = allocate_producer_ids(&image, 1, 101).unwrap_err();
    assert_eq!(err.code, ResponseError::UnknownServerError);
}
