//! The cluster: several `wharf` processes sharing one metadata log.
//!
//! - [`quorum`]: the controller quorum, a Raft group replicating the
//!   `__cluster_metadata` log, behind a narrow interface of our own
//!   (propose records, read the image, watch it).

pub mod quorum;
