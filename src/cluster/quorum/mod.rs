//! The controller quorum: a Raft group (openraft 0.9) replicating the
//! cluster metadata log, behind a narrow interface of our own so that it
//! could be swapped for Kafka's KRaft protocol later:
//!
//! - [`Quorum::propose`]: append a batch of metadata records; returns once
//!   the batch is committed and applied to this node's image;
//! - [`Quorum::image`] / [`Quorum::subscribe`]: the current
//!   [`ImageSnapshot`], and a channel that sees every new one;
//! - [`Quorum::leader`] / [`Quorum::describe`]: who leads, in which epoch,
//!   and how far each voter has come (what DescribeQuorum reports).
//!
//! Every voter applies committed records in log order to its own
//! `MetadataImage` (`state_machine`); the log, vote and snapshots are files
//! in `<data dir>/__cluster_metadata-0` owned by `wharf_storage::quorum`
//! (`log_store`); the RPCs travel on the controller listener in the framing
//! `network` documents.
//!
//! At first start every voter initialises the membership from the static
//! voter list (all with the same entry, so the race between them is
//! harmless; a node that already has a log or a vote skips it) and records
//! the cluster id, its node id and the voters in `quorum.properties`. A
//! restart with another cluster id, node id or voter list refuses to start.
//!
//! A single voter (a `wharf serve` without quorum flags) takes the same
//! path and elects itself at once; it needs no listener.

mod config;
mod log_store;
mod network;
mod state_machine;
mod types;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_faults;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use openraft::error::{ClientWriteError, Fatal, InitializeError, RaftError};
use openraft::{BasicNode, Config, Raft, SnapshotPolicy};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use wharf_coordinator::metadata::{ImageSnapshot, MetadataRecord};
use wharf_storage::quorum::{self as disk, QuorumDir, QuorumProperties, METADATA_LOG_DIR};

pub use config::{parse_voters, QuorumConfig, VotersError, SINGLE_VOTER_ADDR};
pub use network::{
    render_voters, ControllerApis, API_KEY_APPEND_ENTRIES, API_KEY_INSTALL_SNAPSHOT, API_KEY_VOTE,
};
pub use types::{MetadataBatch, TypeConfig};

use log_store::LogStore;
use network::{Identity, NetShared, NetworkFactory};
use state_machine::StateMachine;
use types::{kafka_id, raft_id};

/// What can go wrong starting or using the quorum. Each message is one line
/// naming the problem.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuorumError {
    /// This node does not lead; `leader` is the one it knows of.
    #[error("not the active controller (leader: {})", leader.map_or("unknown".to_string(), |l| l.to_string()))]
    NotLeader { leader: Option<i32> },
    /// The proposal was not committed in time (no majority, or a leader change).
    #[error("metadata write timed out waiting for a majority of the controller quorum")]
    Timeout,
    /// The records of one proposal are too large for one log entry.
    #[error("metadata batch of {bytes} bytes exceeds the limit of {max} bytes")]
    TooLarge { bytes: usize, max: usize },
    /// The quorum is stopping or has stopped.
    #[error("the controller quorum is shutting down")]
    ShuttingDown,
    /// `--node-id` is not among the voters.
    #[error("node id {node_id} is not in --controller-quorum-voters ({voters})")]
    NotAVoter { node_id: i32, voters: String },
    /// Several voters and no controller listener to reach them on.
    #[error("a controller quorum of {0} voters needs --controller-listen")]
    NoListener(usize),
    /// The data directory was formatted for another cluster.
    #[error("data directory {dir} belongs to cluster {found}, not {expected}")]
    ClusterIdMismatch {
        dir: String,
        found: String,
        expected: String,
    },
    /// The data directory belongs to another node.
    #[error("data directory {dir} belongs to node {found}, not node {expected}")]
    NodeIdMismatch {
        dir: String,
        found: i32,
        expected: i32,
    },
    /// The voter list differs from the one this directory was started with.
    #[error("--controller-quorum-voters {given} differs from {persisted} recorded in {dir}")]
    VotersChanged {
        dir: String,
        persisted: String,
        given: String,
    },
    /// The configuration is invalid (timeouts, empty cluster id, ...).
    #[error("invalid controller quorum configuration: {0}")]
    Config(String),
    /// Reading or writing the quorum's files failed.
    #[error("controller quorum storage failed: {0}")]
    Storage(String),
    /// The Raft library failed.
    #[error("controller quorum failed: {0}")]
    Raft(String),
}

impl QuorumError {
    /// The Kafka error a request failing with this error answers: a
    /// follower's or a stopping node's NOT_CONTROLLER (clients look for the
    /// active controller and retry), REQUEST_TIMED_OUT when no majority
    /// committed in time, KAFKA_STORAGE_ERROR for a failed disk.
    pub fn response_error(&self) -> kafka_protocol::ResponseError {
        use kafka_protocol::ResponseError;
        match self {
            QuorumError::NotLeader { .. } | QuorumError::ShuttingDown => {
                ResponseError::NotController
            }
            QuorumError::Timeout => ResponseError::RequestTimedOut,
            QuorumError::Storage(_) => ResponseError::KafkaStorageError,
            QuorumError::TooLarge { .. } => ResponseError::RecordListTooLarge,
            _ => ResponseError::UnknownServerError,
        }
    }
}

/// One voter's progress, as DescribeQuorum reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VoterDescription {
    pub node_id: i32,
    /// `host:port` of its controller listener.
    pub address: String,
    /// The offset after its last log entry, as far as this node knows
    /// (on the leader: the replication's matched index plus one).
    pub log_end_offset: Option<u64>,
    /// The leader's log end offset minus this voter's.
    pub lag: Option<u64>,
    /// Wall-clock ms of its last answer to the leader (the leader's own
    /// entry: now).
    pub last_ack_ms: Option<u64>,
}

/// The quorum's state, as DescribeQuorum reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumDescription {
    /// The node answering.
    pub node_id: i32,
    pub leader: Option<i32>,
    /// Kafka's leader epoch: the Raft term.
    pub epoch: u64,
    /// Offset after the last applied entry (committed entries are applied
    /// at once, so on the leader this is the committed end).
    pub high_watermark: u64,
    pub voters: Vec<VoterDescription>,
    /// Quorum RPCs refused (sent or received) for a cluster id, voter set
    /// or node id mismatch.
    pub refused_requests: u64,
    /// Why the last one was refused: one line naming the problem (e.g.
    /// "controller quorum voters disagree: ..."). Such a node never forms a
    /// quorum with the peer that disagrees; the broker may stop with it.
    pub last_refusal: Option<String>,
}

/// A running node of the controller quorum.
pub struct Quorum {
    raft: Raft<TypeConfig>,
    node_id: i32,
    voters: BTreeMap<i32, String>,
    image: watch::Receiver<ImageSnapshot>,
    shared: Arc<NetShared>,
    /// The controller listener's task (none for a single voter without one).
    server: Option<JoinHandle<()>>,
    write_timeout: Duration,
    max_batch_bytes: usize,
}

impl std::fmt::Debug for Quorum {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Quorum")
            .field("node_id", &self.node_id)
            .field("voters", &self.voters)
            .finish_non_exhaustive()
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(millis)
        .unwrap_or(0)
}

/// Checks `quorum.properties` against the configuration and opens the
/// directory (writing the properties at first start).
fn open_directory(
    dir: &std::path::Path,
    props: QuorumProperties,
    segment_bytes: u64,
) -> Result<QuorumDir, QuorumError> {
    let storage = |e: wharf_storage::StorageError| QuorumError::Storage(e.to_string());
    let shown = dir.display().to_string();
    let first_start = match disk::read_quorum_properties(dir).map_err(storage)? {
        None => Some(&props),
        Some(found) if found.cluster_id != props.cluster_id => {
            return Err(QuorumError::ClusterIdMismatch {
                dir: shown,
                found: found.cluster_id,
                expected: props.cluster_id,
            })
        }
        Some(found) if found.node_id != props.node_id => {
            return Err(QuorumError::NodeIdMismatch {
                dir: shown,
                found: found.node_id,
                expected: props.node_id,
            })
        }
        Some(found) if found.voters != props.voters => {
            return Err(QuorumError::VotersChanged {
                dir: shown,
                persisted: render_voters(&found.voters),
                given: render_voters(&props.voters),
            })
        }
        Some(_) => None,
    };
    QuorumDir::open(dir, segment_bytes, first_start).map_err(storage)
}

impl Quorum {
    /// Starts this node: checks and opens its directory, recovers its log
    /// and image, serves quorum RPCs on `listener`, and initialises the
    /// membership at first start. A single voter returns once it leads
    /// (a few ms); others return at once and elect in the background.
    pub async fn start(
        config: QuorumConfig,
        listener: Option<TcpListener>,
    ) -> Result<Quorum, QuorumError> {
        if config.cluster_id.is_empty() {
            return Err(QuorumError::Config("the cluster id is empty".into()));
        }
        if !config.voters.contains_key(&config.node_id) {
            return Err(QuorumError::NotAVoter {
                node_id: config.node_id,
                voters: render_voters(&config.voters),
            });
        }
        if config.voters.len() > 1 && listener.is_none() {
            return Err(QuorumError::NoListener(config.voters.len()));
        }
        let dir = config.data_dir.join(METADATA_LOG_DIR);
        let props = QuorumProperties {
            cluster_id: config.cluster_id.clone(),
            node_id: config.node_id,
            voters: config.voters.clone(),
        };
        let d = dir.clone();
        let segment_bytes = config.segment_bytes;
        let opened = tokio::task::spawn_blocking(move || open_directory(&d, props, segment_bytes))
            .await
            .map_err(|e| QuorumError::Storage(e.to_string()))??;
        let log_store = LogStore::new(dir.clone(), opened);
        let (state_machine, image) = StateMachine::open(dir)
            .await
            .map_err(|e| QuorumError::Storage(e.to_string()))?;

        let election = millis(config.election_timeout).max(2);
        let raft_config = Config {
            cluster_name: config.cluster_id.clone(),
            heartbeat_interval: millis(config.heartbeat_interval).clamp(1, election - 1),
            election_timeout_min: election,
            // openraft waits a leader lease of election_timeout_max after
            // the last heartbeat, then its random election timeout in
            // [min, max): with Kafka's 1000 ms that is 2.25 to 2.5 s, close
            // to Kafka's fetch timeout (2 s) plus a first election. A
            // quarter of the timeout still spreads the candidates' timers
            // far wider than a vote's round trip.
            election_timeout_max: election.saturating_add(election / 4),
            snapshot_policy: SnapshotPolicy::LogsSinceLast(config.snapshot_after_entries.max(1)),
            max_in_snapshot_log_to_keep: config.keep_entries_after_snapshot,
            ..Config::default()
        }
        .validate()
        .map_err(|e| QuorumError::Config(e.to_string()))?;

        let shared = NetShared::new(Identity {
            cluster_id: config.cluster_id.clone(),
            node_id: config.node_id,
            voters: config.voters.clone(),
        });
        let id = raft_id(config.node_id);
        let raft = Raft::new(
            id,
            Arc::new(raft_config),
            NetworkFactory {
                shared: Arc::clone(&shared),
            },
            log_store,
            state_machine,
        )
        .await
        .map_err(|e| QuorumError::Raft(e.to_string()))?;
        let server = listener.map(|l| network::serve(l, raft.clone(), Arc::clone(&shared)));
        let quorum = Quorum {
            raft,
            node_id: config.node_id,
            voters: config.voters.clone(),
            image,
            shared,
            server,
            write_timeout: config.write_timeout,
            max_batch_bytes: config.max_batch_bytes,
        };
        quorum.initialize().await?;
        if config.voters.len() == 1 {
            let wait = quorum
                .raft
                .wait(Some(config.election_timeout.saturating_mul(3)))
                .current_leader(id, "single voter elects itself")
                .await;
            if let Err(e) = wait {
                tracing::warn!(error = %e, "the single controller voter has not elected itself yet");
            }
        }
        tracing::info!(
            node_id = config.node_id,
            voters = %render_voters(&config.voters),
            "controller quorum started"
        );
        Ok(quorum)
    }

    /// Initialises the membership from the voter list, unless this node
    /// already has a log or a vote (restart, or another voter got there
    /// first).
    async fn initialize(&self) -> Result<(), QuorumError> {
        let initialized = self
            .raft
            .is_initialized()
            .await
            .map_err(|e| QuorumError::Raft(e.to_string()))?;
        if initialized {
            return Ok(());
        }
        let members: BTreeMap<u64, BasicNode> = self
            .voters
            .iter()
            .map(|(id, addr)| (raft_id(*id), BasicNode::new(addr)))
            .collect();
        match self.raft.initialize(members).await {
            Ok(()) => Ok(()),
            Err(RaftError::APIError(InitializeError::NotAllowed(e))) => {
                tracing::debug!(reason = %e, "metadata quorum already initialised");
                Ok(())
            }
            Err(e) => Err(QuorumError::Raft(e.to_string())),
        }
    }

    /// Proposes `records` as one batch. Returns the batch's log index once
    /// it is committed and applied here; fails with `NotLeader` on a
    /// follower and `Timeout` when no majority commits it within the write
    /// timeout (the batch may still commit later, whole, if a majority
    /// returns with this leader's entry; it is never applied in part).
    pub async fn propose(&self, records: Vec<MetadataRecord>) -> Result<u64, QuorumError> {
        let batch = MetadataBatch {
            records: records.iter().map(MetadataRecord::encode).collect(),
        };
        let bytes: usize = batch.records.iter().map(Vec::len).sum();
        if bytes > self.max_batch_bytes {
            return Err(QuorumError::TooLarge {
                bytes,
                max: self.max_batch_bytes,
            });
        }
        match tokio::time::timeout(self.write_timeout, self.raft.client_write(batch)).await {
            Err(_) => Err(QuorumError::Timeout),
            Ok(Ok(resp)) => Ok(resp.log_id.index),
            Ok(Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f)))) => {
                Err(QuorumError::NotLeader {
                    leader: f.leader_id.map(kafka_id),
                })
            }
            Ok(Err(RaftError::APIError(e))) => Err(QuorumError::Raft(e.to_string())),
            Ok(Err(RaftError::Fatal(Fatal::StorageError(e)))) => {
                // openraft stops this node's Raft on a storage failure; a
                // restart recovers the log from disk.
                tracing::error!(error = %e, "controller quorum stopped after a storage failure");
                Err(QuorumError::Storage(e.to_string()))
            }
            Ok(Err(RaftError::Fatal(e))) => {
                tracing::debug!(error = %e, "proposal on a stopped controller quorum");
                Err(QuorumError::ShuttingDown)
            }
        }
    }

    /// The image after the last applied entry.
    pub fn image(&self) -> ImageSnapshot {
        self.image.borrow().clone()
    }

    /// A receiver that sees every new image.
    pub fn subscribe(&self) -> watch::Receiver<ImageSnapshot> {
        self.image.clone()
    }

    /// The leader this node knows of and its epoch (the Raft term).
    pub fn leader(&self) -> Option<(i32, u64)> {
        let m = self.raft.metrics();
        let m = m.borrow();
        m.current_leader.map(|l| (kafka_id(l), m.current_term))
    }

    /// The node that led before this one took over and when, in
    /// wall-clock ms, its last AppendEntries arrived here; taken once (see
    /// `NetShared::take_leader_contact`).
    pub fn take_former_leader_contact(&self) -> Option<(i32, i64)> {
        self.shared
            .take_leader_contact()
            .filter(|(id, _)| *id != raft_id(self.node_id()))
            .map(|(id, ms)| (kafka_id(id), i64::try_from(ms).unwrap_or(i64::MAX)))
    }

    /// The offset after this node's last log entry: on the leader, the
    /// index the next proposal's batch will take.
    pub fn log_end_offset(&self) -> u64 {
        self.raft
            .metrics()
            .borrow()
            .last_log_index
            .map_or(0, |i| i + 1)
    }

    /// Installs the server of the Kafka requests (BrokerRegistration,
    /// BrokerHeartbeat, ...) that reach the controller listener; until then
    /// they close their connection. Only the first call counts.
    pub fn set_controller_apis(&self, apis: Arc<dyn network::ControllerApis>) {
        let _ = self.shared.controller_apis.set(apis);
    }

    /// This node's id.
    pub fn node_id(&self) -> i32 {
        self.node_id
    }

    /// What DescribeQuorum reports, from this node's view. Only the leader
    /// knows the other voters' progress.
    pub fn describe(&self) -> QuorumDescription {
        let m = self.raft.metrics();
        let m = m.borrow();
        let me = raft_id(self.node_id);
        let own_end = m.last_log_index.map_or(0, |i| i + 1);
        let is_leader = m.current_leader == Some(me);
        let voters = self
            .voters
            .iter()
            .map(|(id, addr)| {
                let rid = raft_id(*id);
                let (log_end_offset, last_ack_ms) = if rid == me {
                    (Some(own_end), Some(now_ms()))
                } else if is_leader {
                    let matched = m
                        .replication
                        .as_ref()
                        .and_then(|r| r.get(&rid).cloned())
                        .flatten();
                    (
                        Some(matched.map_or(0, |l| l.index + 1)),
                        self.shared.last_ack_ms(rid),
                    )
                } else {
                    (None, None)
                };
                VoterDescription {
                    node_id: *id,
                    address: addr.clone(),
                    log_end_offset,
                    lag: if is_leader {
                        log_end_offset.map(|e| own_end.saturating_sub(e))
                    } else {
                        None
                    },
                    last_ack_ms,
                }
            })
            .collect();
        QuorumDescription {
            node_id: self.node_id,
            leader: m.current_leader.map(kafka_id),
            epoch: m.current_term,
            high_watermark: m.last_applied.map_or(0, |l| l.index + 1),
            voters,
            refused_requests: self.shared.refused(),
            last_refusal: self.shared.last_refusal(),
        }
    }

    /// The voter ids.
    pub fn voter_ids(&self) -> BTreeSet<i32> {
        self.voters.keys().copied().collect()
    }

    /// Stops this node's Raft but not its listener: to the other voters
    /// it looks like a voter that died (tests of leader changes where the
    /// quorum is shared and cannot be shut down by value).
    #[cfg(test)]
    pub(crate) async fn stop_raft(&self) {
        if let Err(e) = self.raft.shutdown().await {
            tracing::warn!(error = %e, "controller quorum did not stop cleanly");
        }
    }

    /// Stops the node: Raft's tasks, the controller listener and its
    /// connections. openraft 0.9 has no leadership hand-off, so to the
    /// other voters a stopping leader looks like one that died: they elect
    /// a new one after the election timeout.
    pub async fn shutdown(mut self) {
        if let Err(e) = self.raft.shutdown().await {
            tracing::warn!(error = %e, "controller quorum did not stop cleanly");
        }
        if let Some(server) = self.server.take() {
            server.abort();
            let _ = server.await;
        }
        tracing::info!(node_id = self.node_id, "controller quorum stopped");
    }
}

impl Drop for Quorum {
    fn drop(&mut self) {
        if let Some(server) = self.server.take() {
            server.abort();
        }
    }
}
