//! One module per Kafka API. Each declares the versions it serves and an
//! async `handle` that decodes the body, does the work and encodes the
//! response body. Per-partition problems become error codes inside the
//! response; an `Err` means "close this connection".

pub mod add_offsets_to_txn;
pub mod add_partitions_to_txn;
pub mod alter_configs;
pub mod alter_partition_reassignments;
pub mod alter_user_scram_credentials;
pub mod api_versions;
pub mod config_resources;
pub mod consumer_group_describe;
pub mod consumer_group_heartbeat;
pub mod create_acls;
pub mod create_partitions;
pub mod create_topics;
pub mod delete_acls;
pub mod delete_groups;
pub mod delete_records;
pub mod delete_topics;
pub mod describe_acls;
pub mod describe_cluster;
pub mod describe_configs;
pub mod describe_groups;
pub mod describe_log_dirs;
pub mod describe_producers;
pub mod describe_quorum;
pub mod describe_topic_partitions;
pub mod describe_transactions;
pub mod describe_user_scram_credentials;
pub mod elect_leaders;
pub mod end_txn;
pub mod fetch;
pub mod find_coordinator;
pub mod heartbeat;
pub mod incremental_alter_configs;
pub mod init_producer_id;
pub mod join_group;
pub mod leave_group;
pub mod list_config_resources;
pub mod list_groups;
pub mod list_offsets;
pub mod list_partition_reassignments;
pub mod list_transactions;
pub mod metadata;
pub mod offset_commit;
pub mod offset_delete;
pub mod offset_fetch;
pub mod produce;
pub mod sasl_authenticate;
pub mod sasl_handshake;
pub mod sync_group;
pub mod txn_offset_commit;
pub mod update_features;
pub mod write_txn_markers;

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::ApiKey;
use kafka_protocol::protocol::{Decodable, Encodable};
use kafka_protocol::ResponseError;
use tokio::sync::watch;

use crate::broker::Broker;
use crate::budget::{ResponseBudget, ResponseCharge};

/// A decoded request header and the still-encoded body, with what a handler
/// may need from the connection.
#[derive(Debug)]
pub struct Request {
    pub broker: Arc<Broker>,
    pub api_key: ApiKey,
    pub api_version: i16,
    pub body: Bytes,
    /// Flips to true when the broker shuts down; long waits end early.
    pub shutdown: watch::Receiver<bool>,
    /// The client id from the request header ("" when null).
    pub client_id: String,
    /// The client's address as Kafka shows it in DescribeGroups ("/ip").
    pub client_host: String,
    /// The name of the listener the client connected to: brokers are
    /// advertised to it at their addresses on that listener.
    pub listener: Arc<str>,
    /// The broker-wide budget of response bytes not yet written; a Fetch
    /// answers with no more than it grants.
    pub response_budget: Arc<ResponseBudget>,
    /// Who sent it (`User:alice`, `User:ANONYMOUS`), for the authorizer
    /// (see `crate::security::authz`).
    pub principal: Arc<str>,
}

/// The encoded response body, or `None` when the client expects no answer
/// (Produce with acks=0).
pub type HandlerResult = Result<Option<ResponseBody>, HandlerError>;

/// An encoded response body. Most are one buffer; a Fetch response is a list
/// of chunks (encoded fields, and stored record batches as they are) that
/// the connection writes with one vectored write.
#[derive(Debug)]
pub enum ResponseBody {
    One(Bytes),
    Chunks(Vec<Bytes>),
    /// Chunks whose bytes are charged to the response budget until the
    /// body is dropped, once written.
    Charged(Vec<Bytes>, ResponseCharge),
}

impl ResponseBody {
    /// The chunks, in order.
    pub fn chunks(&self) -> &[Bytes] {
        match self {
            ResponseBody::One(body) => std::slice::from_ref(body),
            ResponseBody::Chunks(chunks) | ResponseBody::Charged(chunks, _) => chunks,
        }
    }

    /// Total length in bytes.
    pub fn len(&self) -> usize {
        self.chunks().iter().map(Bytes::len).sum()
    }

    /// Whether the body has no bytes at all.
    pub fn is_empty(&self) -> bool {
        self.chunks().iter().all(Bytes::is_empty)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    #[error("malformed {api:?} v{version} request: {reason}")]
    Malformed {
        api: ApiKey,
        version: i16,
        reason: String,
    },
    #[error("could not encode the {api:?} v{version} response: {reason}")]
    Encode {
        api: ApiKey,
        version: i16,
        reason: String,
    },
    /// The handler's work failed in a way no error code describes (a
    /// blocking task panicked).
    #[error("{0}")]
    Internal(String),
    /// A fault rule (`wharf faults add --drop-connection`) closes the
    /// connection instead of answering.
    #[error("fault injection: rule {rule} drops the connection")]
    InjectedDrop { rule: u64 },
}

impl Request {
    /// Decodes the body as `T` at the request's version.
    pub fn decode<T: Decodable>(&self) -> Result<T, HandlerError> {
        let mut body = self.body.clone();
        T::decode(&mut body, self.api_version).map_err(|e| HandlerError::Malformed {
            api: self.api_key,
            version: self.api_version,
            reason: e.to_string(),
        })
    }

    /// Encodes `response` at the request's version.
    pub fn respond<T: Encodable>(&self, response: &T) -> HandlerResult {
        let encode_err = |e: anyhow::Error| HandlerError::Encode {
            api: self.api_key,
            version: self.api_version,
            reason: e.to_string(),
        };
        let size = response
            .compute_size(self.api_version)
            .map_err(encode_err)?;
        let mut out = BytesMut::with_capacity(size);
        response
            .encode(&mut out, self.api_version)
            .map_err(encode_err)?;
        Ok(Some(ResponseBody::One(out.freeze())))
    }
}

/// Kafka's check of a client's view of the leader epoch: -1 skips it, an
/// older epoch is fenced, a newer one is not yet known here.
pub fn check_leader_epoch(
    partition: &crate::broker::Partition,
    client_epoch: i32,
) -> Result<(), ResponseError> {
    let ours = partition.leader_epoch();
    match client_epoch {
        e if e < 0 || e == ours => Ok(()),
        e if e < ours => Err(ResponseError::FencedLeaderEpoch),
        _ => Err(ResponseError::UnknownLeaderEpoch),
    }
}

/// Authorized-operations bitfields (bit N set = ACL operation N allowed).
/// Wharf has no authorizer, so, as Kafka does without one, a client that
/// asks is told every operation that applies to the resource type.
pub mod authorized_ops {
    /// Sent when the client did not ask.
    pub const OMITTED: i32 = i32::MIN;
    /// READ, WRITE, CREATE, DELETE, ALTER, DESCRIBE, DESCRIBE_CONFIGS, ALTER_CONFIGS.
    pub const TOPIC: i32 = bits(&[3, 4, 5, 6, 7, 8, 10, 11]);
    /// CREATE, ALTER, DESCRIBE, CLUSTER_ACTION, DESCRIBE_CONFIGS, ALTER_CONFIGS,
    /// IDEMPOTENT_WRITE.
    pub const CLUSTER: i32 = bits(&[5, 7, 8, 9, 10, 11, 12]);

    const fn bits(ops: &[u32]) -> i32 {
        let mut out = 0i32;
        let mut i = 0;
        while i < ops.len() {
            out |= 1 << ops[i];
            i += 1;
        }
        out
    }
}

/// How long an admin request waits for the controller: its `timeout_ms`
/// (up to 30 s; 30 s when it gives none).
pub fn admin_timeout(timeout_ms: i32) -> std::time::Duration {
    const MAX: std::time::Duration = std::time::Duration::from_secs(30);
    match u64::try_from(timeout_ms) {
        Ok(ms) if ms > 0 => std::time::Duration::from_millis(ms).min(MAX),
        _ => MAX,
    }
}

/// The error of an admin request whose time ran out: the change may still
/// be applied, whole, if the controller commits it later.
pub fn timed_out() -> crate::broker::BrokerError {
    crate::broker::BrokerError::Controller(
        kafka_protocol::ResponseError::RequestTimedOut,
        "timed out waiting for the controller; the change may still be applied".to_string(),
    )
}
