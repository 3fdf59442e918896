//! A Kafka client on Wharf's protocol crate (`wharf-protocol` framing and
//! kafka-protocol's message codecs).
//!
//! Brokers use it to talk to each other and to the controller (broker
//! registration, heartbeats, forwarded admin requests, follower fetches),
//! and the command line uses it to talk to any Kafka-compatible broker: one
//! client, not two.
//!
//! - [`Connection`]: one TCP connection: connects, negotiates versions with
//!   ApiVersions, sends typed requests and reads their responses in order,
//!   each bounded by a timeout.
//! - [`ApiVersionRanges`]: what the peer supports, and the version to use
//!   for a request type.

mod connection;
mod error;
mod versions;

pub use connection::{Connection, ConnectionOptions};
pub use error::ClientError;
pub use versions::ApiVersionRanges;
