//! Helpers for the metadata tests: clusters of registered, unfenced
//! brokers and topics created through the controller's own decisions.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use uuid::Uuid;

use super::controller::ControllerConfig;
use super::image::MetadataImage;
use super::placement::SeededRandom;
use super::records::{
    BrokerEndpoint, BrokerRegistrationChangeRecord, FencingChange, MetadataRecord,
    RegisterBrokerRecord,
};
use super::topics::{create_topics, NewTopic};

pub(crate) fn apply_all(image: &mut MetadataImage, records: &[MetadataRecord]) {
    for r in records {
        image
            .apply(r)
            .unwrap_or_else(|e| panic!("{r:?} does not apply: {e}"));
    }
}

pub(crate) fn incarnation(id: i32) -> Uuid {
    Uuid::from_u128(0xabc0_0000 + id as u128)
}

pub(crate) fn register_record(id: i32, epoch: i64, rack: Option<&str>) -> MetadataRecord {
    MetadataRecord::RegisterBroker(RegisterBrokerRecord {
        broker_id: id,
        is_migrating_zk_broker: false,
        incarnation_id: incarnation(id),
        broker_epoch: epoch,
        end_points: vec![BrokerEndpoint {
            name: "PLAINTEXT".into(),
            host: "localhost".into(),
            port: 9092 + id as u16,
            security_protocol: 0,
        }],
        features: vec![],
        rack: rack.map(str::to_owned),
        fenced: true,
        in_controlled_shutdown: false,
        log_dirs: vec![],
    })
}

pub(crate) fn unfence_record(id: i32, epoch: i64) -> MetadataRecord {
    MetadataRecord::BrokerRegistrationChange(BrokerRegistrationChangeRecord {
        broker_id: id,
        broker_epoch: epoch,
        fenced: FencingChange::Unfence,
        in_controlled_shutdown: false,
        log_dirs: vec![],
    })
}

/// An image with brokers `ids`, all unfenced; broker `id` has epoch
/// `100 + id`.
pub(crate) fn cluster(ids: &[i32]) -> MetadataImage {
    let mut image = MetadataImage::new();
    for id in ids {
        apply_all(
            &mut image,
            &[
                register_record(*id, 100 + i64::from(*id), None),
                unfence_record(*id, 100 + i64::from(*id)),
            ],
        );
    }
    image
}

pub(crate) fn new_topic(name: &str, partitions: i32, rf: i16) -> NewTopic {
    NewTopic {
        name: name.into(),
        num_partitions: partitions,
        replication_factor: rf,
        assignments: vec![],
        configs: vec![],
    }
}

/// Creates topics through `create_topics` and applies the records.
pub(crate) fn create(image: &mut MetadataImage, config: &ControllerConfig, topics: &[NewTopic]) {
    let outcome = create_topics(image, config, &mut SeededRandom::new(42), topics, false);
    for (name, result) in &outcome.results {
        assert!(result.is_ok(), "{name}: {result:?}");
    }
    apply_all(image, &outcome.records);
}

/// Creates a topic with the given replica lists (manual assignment).
pub(crate) fn create_assigned(
    image: &mut MetadataImage,
    name: &str,
    assignments: &[&[i32]],
) -> Uuid {
    let topic = NewTopic {
        name: name.into(),
        num_partitions: -1,
        replication_factor: -1,
        assignments: (0..)
            .zip(assignments)
            .map(|(i, a)| (i, a.to_vec()))
            .collect(),
        configs: vec![],
    };
    create(image, &ControllerConfig::default(), &[topic]);
    image.topic_id(name).unwrap()
}
