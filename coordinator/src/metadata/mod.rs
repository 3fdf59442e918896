//! The cluster's metadata: Kafka's `__cluster_metadata` records, the image
//! they build, and the controller's decisions that produce them.

pub mod alter_partition;
pub mod brokers;
mod codec;
pub mod controller;
pub mod elections;
pub mod image;
#[cfg(test)]
mod model_tests;
pub mod partition;
pub mod placement;
pub mod records;
#[cfg(test)]
mod testkit;
pub mod topics;
mod wire;

pub use controller::{ControllerConfig, ControllerError};
pub use image::{
    BrokerRegistration, ConfigResource, ImageError, ImageSnapshot, MetadataImage, TopicImage,
};
pub use partition::PartitionRegistration;
pub use records::{MetadataRecord, RecordError};
