//! The quorum's configuration and the `--controller-quorum-voters` syntax.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// The address a single voter without a controller listener records for
/// itself (it never receives a quorum RPC).
pub const SINGLE_VOTER_ADDR: &str = "localhost:0";

/// How to run one node of the quorum.
#[derive(Debug, Clone)]
pub struct QuorumConfig {
    /// This node's id (`--node-id`).
    pub node_id: i32,
    /// The voters, id to `host:port` of their controller listeners
    /// (`--controller-quorum-voters`).
    pub voters: BTreeMap<i32, String>,
    /// The cluster id, as in `meta.properties`.
    pub cluster_id: String,
    /// The data directory; the quorum's files go under
    /// `__cluster_metadata-0` in it.
    pub data_dir: PathBuf,
    /// A follower that hears nothing from a leader for 1.5 times this long
    /// (openraft's leader lease) waits this long plus a random part of half
    /// as much again and starts an election. Kafka's
    /// `controller.quorum.election.timeout.ms` is 1000.
    pub election_timeout: Duration,
    /// How often the leader sends heartbeats (empty AppendEntries).
    pub heartbeat_interval: Duration,
    /// How long a proposal waits to be committed and applied before it
    /// fails with `Timeout`. Kafka's `controller.quorum.request.timeout.ms`
    /// is 2000.
    pub write_timeout: Duration,
    /// A snapshot is written once this many entries were applied since the
    /// last one.
    pub snapshot_after_entries: u64,
    /// Entries a snapshot covers that stay in the log anyway, so that a
    /// slightly lagging voter catches up from the log, not a snapshot.
    pub keep_entries_after_snapshot: u64,
    /// Size past which the Raft log rolls to a new segment file.
    pub segment_bytes: u64,
    /// The most bytes of encoded records one proposal may carry (Kafka's
    /// KRaft caps a metadata batch at 8 MiB too).
    pub max_batch_bytes: usize,
}

impl QuorumConfig {
    /// A node of the quorum `voters`, with Kafka-like timeouts.
    pub fn new(
        node_id: i32,
        voters: BTreeMap<i32, String>,
        cluster_id: impl Into<String>,
        data_dir: impl Into<PathBuf>,
    ) -> QuorumConfig {
        QuorumConfig {
            node_id,
            voters,
            cluster_id: cluster_id.into(),
            data_dir: data_dir.into(),
            election_timeout: Duration::from_millis(1000),
            heartbeat_interval: Duration::from_millis(200),
            write_timeout: Duration::from_millis(2000),
            snapshot_after_entries: 10_000,
            keep_entries_after_snapshot: 1000,
            segment_bytes: wharf_storage::quorum::DEFAULT_SEGMENT_BYTES,
            max_batch_bytes: 8 << 20,
        }
    }

    /// The one-node cluster of a `wharf serve` without quorum flags: its
    /// own single voter, with no controller listener.
    pub fn single_voter(
        node_id: i32,
        cluster_id: impl Into<String>,
        data_dir: impl Into<PathBuf>,
    ) -> QuorumConfig {
        let voters = [(node_id, SINGLE_VOTER_ADDR.to_string())].into();
        QuorumConfig::new(node_id, voters, cluster_id, data_dir)
    }
}

/// A `--controller-quorum-voters` value that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VotersError {
    #[error("--controller-quorum-voters is empty: expected id@host:port,...")]
    Empty,
    #[error("--controller-quorum-voters entry {entry:?} is malformed: {reason}")]
    Malformed { entry: String, reason: &'static str },
    #[error("--controller-quorum-voters names node id {0} twice")]
    DuplicateId(i32),
    #[error(
        "--controller-quorum-voters gives address {addr} to both node {first} and node {second}"
    )]
    DuplicateAddress {
        addr: String,
        first: i32,
        second: i32,
    },
}

/// Parses `id@host:port,id@host:port,...` (Kafka's
/// `controller.quorum.voters`). Ids are non-negative; a host may be an IPv6
/// address in brackets (`1@[::1]:9093`).
pub fn parse_voters(spec: &str) -> Result<BTreeMap<i32, String>, VotersError> {
    let mut voters = BTreeMap::new();
    let mut addrs: BTreeMap<String, i32> = BTreeMap::new();
    if spec.trim().is_empty() {
        return Err(VotersError::Empty);
    }
    for entry in spec.split(',').map(str::trim) {
        let malformed = |reason| VotersError::Malformed {
            entry: entry.to_string(),
            reason,
        };
        if entry.is_empty() {
            return Err(malformed("empty entry"));
        }
        let (id, addr) = entry
            .split_once('@')
            .ok_or_else(|| malformed("expected id@host:port"))?;
        let id: i32 = id
            .trim()
            .parse()
            .map_err(|_| malformed("the node id is not an integer"))?;
        if id < 0 {
            return Err(malformed("the node id is negative"));
        }
        let (host, port) = addr
            .rsplit_once(':')
            .ok_or_else(|| malformed("expected host:port after @"))?;
        if host.is_empty() || host.contains('@') {
            return Err(malformed("the host is empty"));
        }
        if host.contains(':') && !(host.starts_with('[') && host.ends_with(']')) {
            return Err(malformed("an IPv6 host needs brackets"));
        }
        let port: u16 = port
            .parse()
            .map_err(|_| malformed("the port is not a number from 0 to 65535"))?;
        if port == 0 {
            return Err(malformed("the port is 0"));
        }
        let addr = format!("{host}:{port}");
        if voters.insert(id, addr.clone()).is_some() {
            return Err(VotersError::DuplicateId(id));
        }
        if let Some(first) = addrs.insert(addr.clone(), id) {
            return Err(VotersError::DuplicateAddress {
                addr,
                first,
                second: id,
            });
        }
    }
    Ok(voters)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn parses_kafka_voter_lists() {
        let voters = parse_voters("1@localhost:9093, 2@10.0.0.2:9093,3@[::1]:19093").unwrap();
        assert_eq!(
            voters,
            [
                (1, "localhost:9093".to_string()),
                (2, "10.0.0.2:9093".to_string()),
                (3, "[::1]:19093".to_string()),
            ]
            .into()
        );
    }

    #[test]
    fn refuses_duplicate_ids_and_addresses() {
        assert_eq!(
            parse_voters("1@a:1,2@b:2,1@c:3"),
            Err(VotersError::DuplicateId(1))
        );
        let err = parse_voters("1@a:1,2@a:1").unwrap_err();
        assert_eq!(
            err,
            VotersError::DuplicateAddress {
                addr: "a:1".into(),
                first: 1,
                second: 2
            }
        );
        assert!(err.to_string().contains("a:1"));
    }

    #[test]
    fn refuses_malformed_entries_with_a_reason() {
        assert_eq!(parse_voters(" "), Err(VotersError::Empty));
        for (spec, reason) in [
            ("1@a:1,", "empty entry"),
            ("a:1", "expected id@host:port"),
            ("x@a:1", "not an integer"),
            ("-1@a:1", "negative"),
            ("1@a", "expected host:port"),
            ("1@:9093", "host is empty"),
            ("1@a:port", "not a number"),
            ("1@a:70000", "not a number"),
            ("1@a:0", "port is 0"),
            ("1@::1:9093", "brackets"),
        ] {
            let err = parse_voters(spec).unwrap_err();
            assert!(
                err.to_string().contains(reason),
                "{spec}: {err} should say {reason}"
            );
        }
    }

    #[test]
    fn single_voter_config_names_itself_and_has_kafka_timeouts() {
        let c = QuorumConfig::single_voter(1, "cid", "/tmp/x");
        assert_eq!(c.voters.len(), 1);
        assert!(c.voters.contains_key(&1));
        assert_eq!(c.election_timeout, Duration::from_millis(1000));
    }
}
