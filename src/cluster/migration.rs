//! Opening a data directory written by the single-node release.
//!
//! That release kept its topics in `metadata.log` (see
//! `broker::metadata_log`): topic creations, deletions, config changes and
//! producer id reservations. A cluster keeps the same facts as Kafka's
//! `__cluster_metadata` records. [`cluster_records`] turns the old log's
//! final state into those records — per live topic a TopicRecord, its
//! ConfigRecords and one PartitionRecord per partition, all led by this
//! node, and a ProducerIdsRecord — so the first start of a release with the
//! quorum can seed its metadata log with them and open the old partitions
//! in place, without manual steps.

use std::collections::BTreeMap;

use uuid::Uuid;
use wharf_coordinator::metadata::records::{
    ConfigRecord, PartitionRecord, ProducerIdsRecord, TopicRecord,
};
use wharf_coordinator::metadata::MetadataRecord;

use crate::broker::metadata_log::MetadataRecord as OldRecord;

/// Kafka's ConfigResource type for topics.
const TOPIC_RESOURCE: i8 = 2;

/// The `__cluster_metadata` records equivalent to the final state of a
/// single-node `metadata.log` (`old`, in log order), for node `node_id`.
pub fn cluster_records(old: &[OldRecord], node_id: i32) -> Vec<MetadataRecord> {
    struct Live {
        name: String,
        partitions: i32,
        configs: BTreeMap<String, String>,
    }
    let mut topics: BTreeMap<Uuid, Live> = BTreeMap::new();
    let mut producer_ids_end = None;
    for record in old {
        match record {
            OldRecord::TopicCreated {
                id,
                name,
                partitions,
                configs,
            } => {
                topics.insert(
                    *id,
                    Live {
                        name: name.clone(),
                        partitions: *partitions,
                        configs: configs.clone(),
                    },
                );
            }
            OldRecord::TopicDeleted { id } => {
                topics.remove(id);
            }
            OldRecord::TopicConfigsChanged { id, configs } => {
                if let Some(t) = topics.get_mut(id) {
                    t.configs = configs.clone();
                }
            }
            OldRecord::ProducerIdsReserved { end } => {
                producer_ids_end = Some(producer_ids_end.unwrap_or(0).max(*end));
            }
        }
    }
    let mut out = Vec::new();
    for (id, topic) in &topics {
        out.push(MetadataRecord::Topic(TopicRecord {
            name: topic.name.clone(),
            topic_id: *id,
        }));
        for (key, value) in &topic.configs {
            out.push(MetadataRecord::Config(ConfigRecord {
                resource_type: TOPIC_RESOURCE,
                resource_name: topic.name.clone(),
                name: key.clone(),
                value: Some(value.clone()),
            }));
        }
        for partition in 0..topic.partitions {
            out.push(MetadataRecord::Partition(PartitionRecord {
                partition_id: partition,
                topic_id: *id,
                replicas: vec![node_id],
                isr: vec![node_id],
                removing_replicas: Vec::new(),
                adding_replicas: Vec::new(),
                leader: node_id,
                leader_recovery_state: Default::default(),
                leader_epoch: 0,
                partition_epoch: 0,
                directories: Vec::new(),
                eligible_leader_replicas: None,
                last_known_elr: None,
            }));
        }
    }
    if let Some(end) = producer_ids_end {
        out.push(MetadataRecord::ProducerIds(ProducerIdsRecord {
            broker_id: node_id,
            broker_epoch: -1,
            next_producer_id: end,
        }));
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use wharf_coordinator::metadata::MetadataImage;

    #[test]
    fn the_final_state_of_an_old_log_becomes_an_image_of_the_same_topics() {
        let (a, b, c) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        let old = vec![
            OldRecord::TopicCreated {
                id: a,
                name: "orders".into(),
                partitions: 3,
                configs: BTreeMap::from([("retention.ms".into(), "1000".into())]),
            },
            OldRecord::TopicCreated {
                id: b,
                name: "gone".into(),
                partitions: 1,
                configs: BTreeMap::new(),
            },
            OldRecord::ProducerIdsReserved { end: 1000 },
            OldRecord::TopicDeleted { id: b },
            OldRecord::TopicConfigsChanged {
                id: a,
                configs: BTreeMap::from([("cleanup.policy".into(), "compact".into())]),
            },
            OldRecord::TopicCreated {
                id: c,
                name: "gone".into(),
                partitions: 2,
                configs: BTreeMap::new(),
            },
            OldRecord::ProducerIdsReserved { end: 2000 },
        ];
        let mut image = MetadataImage::new();
        for record in cluster_records(&old, 7) {
            image.apply(&record).unwrap();
        }
        let orders = image.topic_by_name("orders").unwrap();
        assert_eq!(orders.id, a);
        assert_eq!(orders.partitions.len(), 3);
        assert!(orders
            .partitions
            .values()
            .all(|p| p.leader == 7 && p.replicas == vec![7] && p.isr == vec![7]));
        assert_eq!(
            image.topic_config("orders", "cleanup.policy"),
            Some("compact")
        );
        assert_eq!(image.topic_config("orders", "retention.ms"), None);
        let gone = image.topic_by_name("gone").unwrap();
        assert_eq!((gone.id, gone.partitions.len()), (c, 2));
        assert_eq!(image.topics().count(), 2);
        assert_eq!(image.next_producer_id(), 2000);
    }

    #[test]
    fn an_empty_old_log_needs_no_records() {
        assert!(cluster_records(&[], 1).is_empty());
    }
}
