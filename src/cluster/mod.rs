//! The cluster: several `wharf` processes sharing one metadata log.
//!
//! - [`quorum`]: the controller quorum, a Raft group replicating the
//!   `__cluster_metadata` log, behind a narrow interface of our own
//!   (propose records, read the image, watch it).
//! - [`controller`]: the active controller's serial decisions over that log.
//! - [`migration`]: the single-node release's `metadata.log` as cluster
//!   metadata records.
//! - [`node`]: this process as a member: registration, heartbeats, and
//!   metadata writes sent to the active controller.
//! - [`peer`]: blocking Kafka calls to other brokers' client listeners.

pub mod controller;
pub mod migration;
pub mod node;
pub mod peer;
pub mod quorum;
