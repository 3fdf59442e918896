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
//! - [`ClusterClient`]: a whole cluster: bootstrap, Metadata, routing to
//!   leaders, the controller and group coordinators, bounded retries.
//! - [`admin`]: topics, offsets, configs and groups on a `ClusterClient`.
//! - [`producer`] and [`consumer`]: records in and out of one topic;
//!   [`group_member`]: a classic consumer group member, with the
//!   [`assignor`]s `range` and `cooperative-sticky`.
//! - [`cli`]: the `wharf topic|produce|consume|group|cluster|config`
//!   subcommands.

pub mod acls;
pub mod admin;
pub mod assignor;
pub mod cli;
pub mod cluster_client;
mod connection;
pub mod consumer;
mod error;
pub mod group_member;
pub mod partitioner;
pub mod producer;
pub mod scram;
mod versions;

pub use cluster_client::{ClusterClient, RetryPolicy};
pub use connection::{Connection, ConnectionOptions};
pub use error::{error_name, is_retriable_code, ClientError};
pub use versions::ApiVersionRanges;
