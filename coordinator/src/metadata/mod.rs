//! The cluster's metadata: Kafka's `__cluster_metadata` records, the image
//! they build, and the controller's decisions that produce them. Sans-io:
//! no sockets, no files, no clock; time (`now_ms`), log offsets and
//! randomness come from the caller.
//!
//! # What is Kafka's
//!
//! - [`records`]: the record schemas of Kafka's
//!   `metadata/src/main/resources/common/metadata/*.json` (api keys,
//!   versions, field order, tagged-field tags and defaults, "no change"
//!   sentinels) and the value framing of `AbstractApiMessageSerde`, so a
//!   Wharf metadata log reads like Kafka's.
//! - [`image`] / [`partition`]: replay semantics of Kafka's controller and
//!   image classes: `PartitionRegistration.merge` derives the epochs (a
//!   PartitionChangeRecord always bumps the partition epoch; its leader
//!   field, even naming the same leader, bumps the leader epoch), broker
//!   changes must name the current broker epoch, removing a topic removes
//!   its configs. Feature levels: see [`features`] (a level 0 record is kept).
//! - The decisions ([`topics`], [`configs`], [`producer_ids`], [`placement`],
//!   [`elections`], [`brokers`], [`alter_partition`]) follow `ReplicationControlManager`,
//!   `ClusterControlManager`, `BrokerHeartbeatManager`,
//!   `PartitionChangeBuilder` and `StripedReplicaPlacer`, with Kafka's error
//!   codes (kafka-protocol's `ResponseError`). Each module says where it
//!   departs from Kafka; in short: no eligible leader replicas (KIP-966), no
//!   reassignment, no log-directory assignment; a new incarnation of a
//!   registered broker leaves every ISR first; a broker fenced at the end of
//!   its controlled shutdown stays fenced until it registers again.
//!
//! # How Wharf uses it
//!
//! The active controller keeps a working [`MetadataImage`] and
//! [`brokers::BrokerSessions`]. For each request it calls the matching
//! decision, proposes the returned records to the metadata log (Raft), and
//! applies them to its working image at once, so the next decision sees
//! them; it feeds every applied record and its offset to
//! `BrokerSessions::replayed`. Every node applies committed records in log
//! order to its own image and publishes it as an [`ImageSnapshot`]
//! (`Arc<MetadataImage>`): the one source the Metadata, DescribeCluster,
//! FindCoordinator, CreateTopics and DescribeConfigs handlers read.
//! [`MetadataImage::to_records`] is the snapshot form: applying it to an
//! empty image gives an equal image.
//!
//! The single-node metadata log (`src/broker/metadata_log.rs`) maps onto
//! these records: a topic creation becomes a TopicRecord, its
//! ConfigRecords and one PartitionRecord per partition; a deletion a
//! RemoveTopicRecord; a config change ConfigRecords (a `None` value for a
//! removed key); a producer id reservation a ProducerIdsRecord.

pub mod alter_partition;
pub mod brokers;
mod codec;
pub mod configs;
pub mod controller;
pub mod delta;
pub mod elections;
pub mod features;
pub mod image;
#[cfg(test)]
mod model_tests;
pub mod partition;
pub mod placement;
pub mod producer_ids;
pub mod reassignment;
pub mod records;
pub mod scram;
#[cfg(test)]
mod testkit;
pub mod topic_names;
pub mod topics;
mod wire;

pub use controller::{ControllerConfig, ControllerError};
pub use image::{
    BrokerRegistration, ConfigResource, ImageError, ImageSnapshot, MetadataImage, TopicImage,
};
pub use partition::PartitionRegistration;
pub use records::{MetadataRecord, RecordError};
