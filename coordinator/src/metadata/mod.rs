//! The cluster's metadata: Kafka's `__cluster_metadata` records, the image
//! they build, and the controller's decisions that produce them.

mod codec;
pub mod records;
mod wire;

pub use records::{MetadataRecord, RecordError};
