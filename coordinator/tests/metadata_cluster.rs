//! A three-broker cluster's life through the metadata controller's public
//! API: brokers register and heartbeat until unfenced, a topic is created,
//! a broker goes silent and is fenced, comes back as a new process, and a
//! preferred election restores its leadership. Every record goes through
//! the wire codec into a shared image, as the metadata log will carry it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::sync::Arc;

use uuid::Uuid;
use wharf_coordinator::metadata::alter_partition::{
    alter_partition, AlterPartitionData, IsrMember,
};
use wharf_coordinator::metadata::brokers::{
    fence_one_stale_broker, heartbeat, register_broker, BrokerSessions, HeartbeatRequest,
    RegistrationRequest,
};
use wharf_coordinator::metadata::elections::{elect_leader, ElectionType};
use wharf_coordinator::metadata::placement::SeededRandom;
use wharf_coordinator::metadata::records::{BrokerEndpoint, LeaderRecoveryState};
use wharf_coordinator::metadata::topics::{create_topics, NewTopic};
use wharf_coordinator::metadata::{ControllerConfig, ImageSnapshot, MetadataImage, MetadataRecord};

/// The active controller: its working image, the log, broker sessions.
struct Controller {
    image: MetadataImage,
    log: Vec<Vec<u8>>,
    sessions: BrokerSessions,
    config: ControllerConfig,
    now: i64,
}

impl Controller {
    fn append(&mut self, records: Vec<MetadataRecord>) {
        for record in records {
            let bytes = record.encode();
            let offset = self.log.len() as i64;
            let decoded = MetadataRecord::decode(&bytes).unwrap();
            self.image.apply(&decoded).unwrap();
            self.sessions.replayed(offset, &decoded);
            self.log.push(bytes);
        }
    }

    fn end_offset(&self) -> i64 {
        self.log.len() as i64 - 1
    }

    fn register(&mut self, id: i32, incarnation: u128) -> i64 {
        let request = RegistrationRequest {
            broker_id: id,
            cluster_id: "c1".into(),
            incarnation_id: Uuid::from_u128(incarnation),
            listeners: vec![BrokerEndpoint {
                name: "PLAINTEXT".into(),
                host: format!("broker-{id}"),
                port: 9092,
                security_protocol: 0,
            }],
            features: vec![],
            rack: None,
            log_dirs: vec![],
        };
        let next = self.log.len() as i64;
        let (records, epoch) = register_broker(
            &self.image,
            &mut self.sessions,
            &self.config,
            &request,
            next,
            self.now,
        )
        .unwrap();
        self.append(records);
        epoch
    }

    fn heartbeat(&mut self, id: i32) {
        let epoch = self.image.broker(id).unwrap().epoch;
        let request = HeartbeatRequest {
            broker_id: id,
            broker_epoch: epoch,
            current_metadata_offset: self.end_offset(),
            want_fence: false,
            want_shut_down: false,
        };
        let (records, _) = heartbeat(
            &self.image,
            &mut self.sessions,
            &self.config,
            &request,
            self.now,
        )
        .unwrap();
        self.append(records);
    }

    fn leaders(&self, topic: &str) -> BTreeMap<i32, usize> {
        let mut counts = BTreeMap::new();
        for p in self.image.topic_by_name(topic).unwrap().partitions.values() {
            *counts.entry(p.leader).or_default() += 1;
        }
        counts
    }
}

#[test]
fn a_cluster_survives_a_silent_broker_and_rebalances_when_it_returns() {
    let mut c = Controller {
        image: MetadataImage::new(),
        log: Vec::new(),
        sessions: BrokerSessions::new(),
        config: ControllerConfig {
            cluster_id: "c1".into(),
            ..ControllerConfig::default()
        },
        now: 0,
    };
    for id in 1..=3 {
        c.register(id, u128::from(id as u32));
    }
    for id in 1..=3 {
        c.heartbeat(id);
    }
    assert!(c.image.brokers().all(|b| !b.fenced));

    let outcome = create_topics(
        &c.image,
        &c.config,
        &mut SeededRandom::new(11),
        &[NewTopic {
            name: "orders".into(),
            num_partitions: 6,
            replication_factor: 3,
            assignments: vec![],
            configs: vec![],
        }],
        false,
    );
    assert!(outcome.results[0].1.is_ok());
    c.append(outcome.records);
    assert_eq!(
        c.leaders("orders"),
        BTreeMap::from([(1, 2), (2, 2), (3, 2)])
    );
    let before: ImageSnapshot = Arc::new(c.image.clone());

    // Brokers 2 and 3 keep heartbeating; broker 1 goes silent.
    for t in [3_000, 6_000, 9_000, 12_000] {
        c.now = t;
        c.heartbeat(2);
        c.heartbeat(3);
        while let Some((_, records)) =
            fence_one_stale_broker(&c.image, &mut c.sessions, &c.config, c.now)
        {
            c.append(records);
        }
    }
    assert!(c.image.broker(1).unwrap().fenced);
    // Each of broker 1's partitions moved to its next in-sync replica.
    let leaders = c.leaders("orders");
    assert_eq!(leaders.get(&1), None);
    assert_eq!(
        leaders.get(&2).unwrap_or(&0) + leaders.get(&3).unwrap_or(&0),
        6
    );
    for (topic, index, p) in c.image.partitions() {
        let was = before.partition(topic, index).unwrap();
        if was.leader == 1 {
            let next = was.replicas.iter().find(|r| **r != 1).unwrap();
            assert_eq!(p.leader, *next);
            assert_eq!(p.leader_epoch, was.leader_epoch + 1);
        } else {
            assert_eq!((p.leader, p.leader_epoch), (was.leader, was.leader_epoch));
        }
    }
    for (_, _, p) in c.image.partitions() {
        assert!(!p.isr.contains(&1));
    }
    // A reader's snapshot from before is untouched.
    assert_eq!(
        before
            .partitions()
            .filter(|(_, _, p)| p.leader == 1)
            .count(),
        2
    );

    // Broker 1 restarts as a new process, catches up and is unfenced.
    let epoch = c.register(1, 100);
    c.heartbeat(1);
    assert!(!c.image.broker(1).unwrap().fenced);
    // Leaders rejoin the ISR through AlterPartition...
    let topic_id = c.image.topic_id("orders").unwrap();
    let partitions: Vec<_> = c
        .image
        .topic(topic_id)
        .unwrap()
        .partitions
        .iter()
        .map(|(i, p)| (*i, p.clone()))
        .collect();
    for (index, p) in partitions {
        let leader = c.image.broker(p.leader).unwrap().clone();
        let mut new_isr: Vec<IsrMember> = p
            .isr
            .iter()
            .map(|b| IsrMember {
                broker_id: *b,
                broker_epoch: c.image.broker(*b).unwrap().epoch,
            })
            .collect();
        new_isr.push(IsrMember {
            broker_id: 1,
            broker_epoch: epoch,
        });
        let data = AlterPartitionData {
            topic_id,
            partition_index: index,
            leader_epoch: p.leader_epoch,
            partition_epoch: p.partition_epoch,
            new_isr,
            leader_recovery_state: LeaderRecoveryState::Recovered,
        };
        let outcome = alter_partition(&c.image, &c.config, leader.id, leader.epoch, &data).unwrap();
        c.append(
            outcome
                .record
                .into_iter()
                .map(MetadataRecord::PartitionChange)
                .collect(),
        );
    }
    // ...and a preferred election gives broker 1 its partitions back.
    for index in 0..6 {
        if let Ok(record) = elect_leader(&c.image, "orders", index, ElectionType::Preferred) {
            c.append(vec![MetadataRecord::PartitionChange(record)]);
        }
    }
    assert_eq!(
        c.leaders("orders"),
        BTreeMap::from([(1, 2), (2, 2), (3, 2)])
    );

    // The whole log replays into the same image elsewhere.
    let mut follower = MetadataImage::new();
    for bytes in &c.log {
        follower
            .apply(&MetadataRecord::decode(bytes).unwrap())
            .unwrap();
    }
    assert_eq!(follower, c.image);
}
