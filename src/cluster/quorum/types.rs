//! openraft's type configuration for the metadata quorum, and the
//! conversions between openraft's log types and the plain types
//! `wharf_storage::quorum` keeps on disk.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Cursor;

use openraft::{BasicNode, CommittedLeaderId, Entry, EntryPayload, LogId, Membership, Vote};
use serde::{Deserialize, Serialize};
use wharf_storage::quorum::{
    QuorumEntry, QuorumLogId, QuorumMembership, QuorumPayload, QuorumVote,
};

/// The application data of one log entry: a batch of metadata records,
/// each encoded with `MetadataRecord::encode`, applied together in order.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct MetadataBatch {
    /// Encoded records.
    pub records: Vec<Vec<u8>>,
}

impl std::fmt::Display for MetadataBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} metadata records", self.records.len())
    }
}

openraft::declare_raft_types!(
    /// The metadata quorum's Raft types.
    pub TypeConfig:
        D = MetadataBatch,
        R = (),
        NodeId = u64,
        Node = BasicNode,
        Entry = Entry<TypeConfig>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);

/// openraft's node id for a Kafka node id (validated non-negative).
pub(crate) fn raft_id(node_id: i32) -> u64 {
    u64::try_from(node_id).unwrap_or(0)
}

/// The Kafka node id of an openraft node id.
pub(crate) fn kafka_id(id: u64) -> i32 {
    i32::try_from(id).unwrap_or(i32::MAX)
}

pub(crate) fn log_id_to_disk(id: &LogId<u64>) -> QuorumLogId {
    QuorumLogId {
        term: id.leader_id.term,
        node_id: id.leader_id.node_id,
        index: id.index,
    }
}

pub(crate) fn log_id_from_disk(id: &QuorumLogId) -> LogId<u64> {
    LogId::new(CommittedLeaderId::new(id.term, id.node_id), id.index)
}

pub(crate) fn vote_to_disk(vote: &Vote<u64>) -> QuorumVote {
    QuorumVote {
        term: vote.leader_id.term,
        node_id: vote.leader_id.node_id,
        committed: vote.committed,
    }
}

pub(crate) fn vote_from_disk(vote: &QuorumVote) -> Vote<u64> {
    if vote.committed {
        Vote::new_committed(vote.term, vote.node_id)
    } else {
        Vote::new(vote.term, vote.node_id)
    }
}

pub(crate) fn membership_to_disk(m: &Membership<u64, BasicNode>) -> QuorumMembership {
    QuorumMembership {
        configs: m
            .get_joint_config()
            .iter()
            .map(|c| c.iter().copied().collect())
            .collect(),
        nodes: m.nodes().map(|(id, n)| (*id, n.addr.clone())).collect(),
    }
}

pub(crate) fn membership_from_disk(m: &QuorumMembership) -> Membership<u64, BasicNode> {
    let configs: Vec<BTreeSet<u64>> = m
        .configs
        .iter()
        .map(|c| c.iter().copied().collect())
        .collect();
    let nodes: BTreeMap<u64, BasicNode> = m
        .nodes
        .iter()
        .map(|(id, addr)| (*id, BasicNode::new(addr)))
        .collect();
    Membership::new(configs, nodes)
}

pub(crate) fn entry_to_disk(entry: &Entry<TypeConfig>) -> QuorumEntry {
    QuorumEntry {
        log_id: log_id_to_disk(&entry.log_id),
        payload: match &entry.payload {
            EntryPayload::Blank => QuorumPayload::Blank,
            EntryPayload::Normal(batch) => QuorumPayload::Records(batch.records.clone()),
            EntryPayload::Membership(m) => QuorumPayload::Membership(membership_to_disk(m)),
        },
    }
}

pub(crate) fn entry_from_disk(entry: QuorumEntry) -> Entry<TypeConfig> {
    Entry {
        log_id: log_id_from_disk(&entry.log_id),
        payload: match entry.payload {
            QuorumPayload::Blank => EntryPayload::Blank,
            QuorumPayload::Records(records) => EntryPayload::Normal(MetadataBatch { records }),
            QuorumPayload::Membership(m) => EntryPayload::Membership(membership_from_disk(&m)),
        },
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn entries_votes_and_memberships_survive_the_disk_form() {
        let membership = Membership::new(
            vec![[1u64, 2, 3].into_iter().collect()],
            [1u64, 2, 3]
                .into_iter()
                .map(|id| (id, BasicNode::new(format!("127.0.0.1:{}", 9000 + id))))
                .collect::<BTreeMap<_, _>>(),
        );
        let log_id = LogId::new(CommittedLeaderId::new(4, 2), 17);
        for payload in [
            EntryPayload::Blank,
            EntryPayload::Normal(MetadataBatch {
                records: vec![vec![1, 2], vec![3]],
            }),
            EntryPayload::Membership(membership),
        ] {
            let entry = Entry::<TypeConfig> { log_id, payload };
            let back = entry_from_disk(entry_to_disk(&entry));
            assert_eq!(format!("{back:?}"), format!("{entry:?}"));
        }
        for vote in [Vote::new(3, 1), Vote::new_committed(5, 2)] {
            assert_eq!(vote_from_disk(&vote_to_disk(&vote)), vote);
        }
    }
}
