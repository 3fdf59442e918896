//! What one broker must change locally when the image moves on: the
//! partitions it must open or remove, and the configs and roles that
//! changed (Kafka's `TopicsDelta.localChanges`).
//!
//! A broker keeps a log for every partition that lists it as a replica. A
//! topic is identified by its id: a topic deleted and created again under
//! the same name is a removal and a creation.

use std::collections::BTreeMap;

use uuid::Uuid;

use super::image::{ConfigResource, MetadataImage};
use super::partition::PartitionRegistration;

/// This broker's part in one partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Leader { leader_epoch: i32 },
    Follower { leader: i32, leader_epoch: i32 },
}

impl Role {
    fn of(node: i32, p: &PartitionRegistration) -> Option<Role> {
        if !p.replicas.contains(&node) {
            return None;
        }
        Some(if p.leader == node {
            Role::Leader {
                leader_epoch: p.leader_epoch,
            }
        } else {
            Role::Follower {
                leader: p.leader,
                leader_epoch: p.leader_epoch,
            }
        })
    }
}

/// A partition this broker hosts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalPartition {
    pub topic_id: Uuid,
    pub topic: String,
    pub partition: i32,
    pub role: Role,
}

/// The local changes between two images, in the order to carry them out:
/// removals first (a name may be reused by a new topic), then creations.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LocalChanges {
    /// Topics (id, name) of which this broker held replicas and no longer
    /// does: the topic was deleted, or every local replica moved away.
    pub removed_topics: Vec<(Uuid, String)>,
    /// Single partitions this broker no longer hosts, of topics that stay.
    pub removed_partitions: Vec<(Uuid, String, i32)>,
    /// Partitions this broker hosts now and did not before.
    pub added: Vec<LocalPartition>,
    /// Partitions whose role or leader epoch changed.
    pub role_changes: Vec<LocalPartition>,
    /// Topics whose config overrides changed, with the new set.
    pub config_changes: Vec<(String, BTreeMap<String, String>)>,
}

impl LocalChanges {
    pub fn is_empty(&self) -> bool {
        self == &LocalChanges::default()
    }
}

/// The partitions `node` hosts in `image`, keyed by (topic id, partition).
fn hosted(image: &MetadataImage, node: i32) -> BTreeMap<(Uuid, i32), LocalPartition> {
    let mut out = BTreeMap::new();
    for topic in image.topics() {
        for (&partition, p) in &topic.partitions {
            if let Some(role) = Role::of(node, p) {
                out.insert(
                    (topic.id, partition),
                    LocalPartition {
                        topic_id: topic.id,
                        topic: topic.name.clone(),
                        partition,
                        role,
                    },
                );
            }
        }
    }
    out
}

/// What `node` must do to go from `old` to `new`.
pub fn local_changes(old: &MetadataImage, new: &MetadataImage, node: i32) -> LocalChanges {
    let before = hosted(old, node);
    let after = hosted(new, node);
    let mut changes = LocalChanges::default();
    let topics_before: BTreeMap<Uuid, &str> = before
        .values()
        .map(|p| (p.topic_id, p.topic.as_str()))
        .collect();
    let topics_after: BTreeMap<Uuid, ()> = after.values().map(|p| (p.topic_id, ())).collect();
    for (id, name) in &topics_before {
        if !topics_after.contains_key(id) {
            changes.removed_topics.push((*id, (*name).to_string()));
        }
    }
    for (key, p) in &before {
        if topics_after.contains_key(&key.0) && !after.contains_key(key) {
            changes
                .removed_partitions
                .push((p.topic_id, p.topic.clone(), p.partition));
        }
    }
    for (key, p) in &after {
        match before.get(key) {
            None => changes.added.push(p.clone()),
            Some(old) if old.role != p.role => changes.role_changes.push(p.clone()),
            Some(_) => {}
        }
    }
    for id in topics_after.keys() {
        let Some(topic) = new.topic(*id) else {
            continue;
        };
        let resource = ConfigResource::Topic(topic.name.clone());
        let now = new.configs(&resource);
        let existed = topics_before.contains_key(id);
        if existed && old.configs(&resource) != now {
            changes
                .config_changes
                .push((topic.name.clone(), now.cloned().unwrap_or_default()));
        }
    }
    changes
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::metadata::records::{
        ConfigRecord, MetadataRecord, PartitionChangeRecord, PartitionRecord, RemoveTopicRecord,
        TopicRecord,
    };

    fn partition(topic_id: Uuid, partition_id: i32, replicas: &[i32]) -> MetadataRecord {
        MetadataRecord::Partition(PartitionRecord {
            partition_id,
            topic_id,
            replicas: replicas.to_vec(),
            isr: replicas.to_vec(),
            removing_replicas: Vec::new(),
            adding_replicas: Vec::new(),
            leader: replicas[0],
            leader_recovery_state: Default::default(),
            leader_epoch: 0,
            partition_epoch: 0,
            directories: Vec::new(),
            eligible_leader_replicas: None,
            last_known_elr: None,
        })
    }

    fn with(image: &MetadataImage, records: &[MetadataRecord]) -> MetadataImage {
        let mut next = image.clone();
        for r in records {
            next.apply(r).unwrap();
        }
        next
    }

    fn topic(name: &str, id: Uuid) -> MetadataRecord {
        MetadataRecord::Topic(TopicRecord {
            name: name.to_string(),
            topic_id: id,
        })
    }

    #[test]
    fn a_new_topic_adds_the_partitions_that_list_this_broker() {
        let id = Uuid::new_v4();
        let empty = MetadataImage::new();
        let next = with(
            &empty,
            &[
                topic("t", id),
                partition(id, 0, &[1, 2]),
                partition(id, 1, &[2, 3]),
                partition(id, 2, &[3, 1]),
            ],
        );
        let changes = local_changes(&empty, &next, 1);
        let added: Vec<_> = changes
            .added
            .iter()
            .map(|p| (p.partition, p.role))
            .collect();
        assert_eq!(
            added,
            vec![
                (0, Role::Leader { leader_epoch: 0 }),
                (
                    2,
                    Role::Follower {
                        leader: 3,
                        leader_epoch: 0
                    }
                )
            ]
        );
        assert!(changes.removed_topics.is_empty());
        assert!(local_changes(&empty, &next, 4).is_empty());
    }

    #[test]
    fn deletion_and_recreation_under_the_same_name_are_two_changes() {
        let (old_id, new_id) = (Uuid::new_v4(), Uuid::new_v4());
        let first = with(
            &MetadataImage::new(),
            &[topic("t", old_id), partition(old_id, 0, &[1])],
        );
        let second = with(
            &first,
            &[
                MetadataRecord::RemoveTopic(RemoveTopicRecord { topic_id: old_id }),
                topic("t", new_id),
                partition(new_id, 0, &[1]),
            ],
        );
        let changes = local_changes(&first, &second, 1);
        assert_eq!(changes.removed_topics, vec![(old_id, "t".to_string())]);
        assert_eq!(changes.added.len(), 1);
        assert_eq!(changes.added[0].topic_id, new_id);
    }

    #[test]
    fn leader_changes_and_config_changes_are_reported() {
        let id = Uuid::new_v4();
        let first = with(
            &MetadataImage::new(),
            &[topic("t", id), partition(id, 0, &[1, 2])],
        );
        let mut change = PartitionChangeRecord::new(id, 0);
        change.leader = 2;
        let second = with(
            &first,
            &[
                MetadataRecord::PartitionChange(change),
                MetadataRecord::Config(ConfigRecord {
                    resource_type: 2,
                    resource_name: "t".into(),
                    name: "retention.ms".into(),
                    value: Some("5".into()),
                }),
            ],
        );
        let changes = local_changes(&first, &second, 1);
        assert_eq!(
            changes.role_changes[0].role,
            Role::Follower {
                leader: 2,
                leader_epoch: 1
            }
        );
        assert_eq!(
            changes.config_changes,
            vec![(
                "t".to_string(),
                BTreeMap::from([("retention.ms".to_string(), "5".to_string())])
            )]
        );
    }
}
