//! The cluster: several `wharf` processes sharing one metadata log.
//!
//! - [`quorum`]: the controller quorum, a Raft group replicating the
//!   `__cluster_metadata` log, behind a narrow interface of our own
//!   (propose records, read the image, watch it).
//! - [`controller`]: the active controller's serial decisions over that log.
//! - [`migration`]: the single-node release's `metadata.log` as cluster
//!   metadata records.

pub mod controller;
pub mod migration;
pub mod node;
pub mod quorum;
