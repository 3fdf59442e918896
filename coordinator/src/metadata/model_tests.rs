//! Random sequences of controller operations against one image, checking
//! after every step the invariants every reader relies on.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;

use proptest::prelude::*;
use uuid::Uuid;

use super::alter_partition::{alter_partition, AlterPartitionData, IsrMember};
use super::brokers::{
    fence_one_stale_broker, heartbeat, register_broker, unregister_broker, BrokerSessions,
    HeartbeatRequest, RegistrationRequest,
};
use super::controller::{ControllerConfig, UNCLEAN_LEADER_ELECTION_ENABLE};
use super::elections::{elect_leader, ElectionType};
use super::image::MetadataImage;
use super::placement::SeededRandom;
use super::records::{ConfigRecord, MetadataRecord, CONFIG_RESOURCE_TOPIC, NO_LEADER};
use super::topics::{create_partitions, create_topics, delete_topic, NewTopic};

#[derive(Debug, Clone)]
enum Op {
    Register {
        broker: i32,
        incarnation: u8,
    },
    Heartbeat {
        broker: i32,
        caught_up: bool,
        want_fence: bool,
        want_shut_down: bool,
    },
    Advance {
        ms: i64,
    },
    Create {
        topic: u8,
        partitions: i32,
        rf: i16,
    },
    AddPartitions {
        topic: u8,
        more: i32,
    },
    Delete {
        topic: u8,
    },
    AlterIsr {
        pick: usize,
        keep: Vec<bool>,
    },
    Elect {
        pick: usize,
        unclean: bool,
    },
    AllowUnclean {
        topic: u8,
    },
    Unregister {
        broker: i32,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0i32..5, 0u8..2).prop_map(|(broker, incarnation)| Op::Register { broker, incarnation }),
        6 => (0i32..5, prop::bool::weighted(0.8), prop::bool::weighted(0.1), prop::bool::weighted(0.1))
            .prop_map(|(broker, caught_up, want_fence, want_shut_down)| Op::Heartbeat {
                broker, caught_up, want_fence, want_shut_down
            }),
        2 => (1i64..6_000).prop_map(|ms| Op::Advance { ms }),
        3 => (0u8..4, 1i32..5, 1i16..4).prop_map(|(topic, partitions, rf)| Op::Create { topic, partitions, rf }),
        1 => (0u8..4, 1i32..3).prop_map(|(topic, more)| Op::AddPartitions { topic, more }),
        1 => (0u8..4).prop_map(|topic| Op::Delete { topic }),
        3 => (any::<usize>(), proptest::collection::vec(any::<bool>(), 5))
            .prop_map(|(pick, keep)| Op::AlterIsr { pick, keep }),
        1 => (any::<usize>(), any::<bool>()).prop_map(|(pick, unclean)| Op::Elect { pick, unclean }),
        1 => (0u8..4).prop_map(|topic| Op::AllowUnclean { topic }),
        1 => (0i32..5).prop_map(|broker| Op::Unregister { broker }),
    ]
}

/// The controller with its image, sessions, clock and log.
struct Model {
    image: MetadataImage,
    sessions: BrokerSessions,
    config: ControllerConfig,
    random: SeededRandom,
    now: i64,
    next_offset: i64,
    epochs: BTreeMap<(Uuid, i32), (i32, i32, i32)>,
}

impl Model {
    /// Appends records as the log would: each goes through the codec, is
    /// applied, and is shown to the sessions with its offset.
    fn append(&mut self, records: &[MetadataRecord]) {
        for r in records {
            let decoded = MetadataRecord::decode(&r.encode()).unwrap();
            assert_eq!(&decoded, r);
            self.image
                .apply(&decoded)
                .unwrap_or_else(|e| panic!("controller record {r:?} does not apply: {e}"));
            self.sessions.replayed(self.next_offset, &decoded);
            self.next_offset += 1;
        }
    }

    fn partition_at(&self, pick: usize) -> Option<(Uuid, String, i32)> {
        let all: Vec<_> = self
            .image
            .topics()
            .flat_map(|t| t.partitions.keys().map(|p| (t.id, t.name.clone(), *p)))
            .collect();
        (!all.is_empty()).then(|| all[pick % all.len()].clone())
    }

    fn step(&mut self, op: &Op) {
        match op.clone() {
            Op::Register {
                broker,
                incarnation,
            } => {
                let request = RegistrationRequest {
                    broker_id: broker,
                    cluster_id: String::new(),
                    incarnation_id: Uuid::from_u128(u128::from(incarnation) + 1),
                    listeners: vec![],
                    features: vec![],
                    rack: (broker % 2 == 0).then(|| "even".to_owned()),
                    log_dirs: vec![],
                };
                let offset = self.next_offset;
                if let Ok((records, _)) = register_broker(
                    &self.image,
                    &mut self.sessions,
                    &self.config,
                    &request,
                    offset,
                    self.now,
                ) {
                    self.append(&records);
                }
            }
            Op::Heartbeat {
                broker,
                caught_up,
                want_fence,
                want_shut_down,
            } => {
                let Some(b) = self.image.broker(broker) else {
                    return;
                };
                let request = HeartbeatRequest {
                    broker_id: broker,
                    broker_epoch: b.epoch,
                    current_metadata_offset: if caught_up { self.next_offset - 1 } else { 0 },
                    want_fence,
                    want_shut_down,
                };
                if let Ok((records, reply)) = heartbeat(
                    &self.image,
                    &mut self.sessions,
                    &self.config,
                    &request,
                    self.now,
                ) {
                    self.append(&records);
                    if reply.in_controlled_shutdown {
                        self.sessions
                            .controlled_shutdown_appended(broker, self.next_offset - 1);
                    }
                }
            }
            Op::Advance { ms } => {
                self.now += ms;
                while let Some((_, records)) =
                    fence_one_stale_broker(&self.image, &mut self.sessions, &self.config, self.now)
                {
                    self.append(&records);
                }
            }
            Op::Create {
                topic,
                partitions,
                rf,
            } => {
                let new = NewTopic {
                    name: format!("t{topic}"),
                    num_partitions: partitions,
                    replication_factor: rf,
                    assignments: vec![],
                    configs: vec![],
                };
                let outcome =
                    create_topics(&self.image, &self.config, &mut self.random, &[new], false);
                self.append(&outcome.records);
            }
            Op::AddPartitions { topic, more } => {
                let name = format!("t{topic}");
                let Some(t) = self.image.topic_by_name(&name) else {
                    return;
                };
                let count = t.partitions.len() as i32 + more;
                if let Ok(records) =
                    create_partitions(&self.image, &mut self.random, &name, count, None)
                {
                    self.append(&records);
                }
            }
            Op::Delete { topic } => {
                if let Some(id) = self.image.topic_id(&format!("t{topic}")) {
                    let record = delete_topic(&self.image, id).unwrap();
                    self.append(&[record]);
                }
            }
            Op::AlterIsr { pick, keep } => {
                let Some((t, _, index)) = self.partition_at(pick) else {
                    return;
                };
                let p = self.image.partition(t, index).unwrap().clone();
                let Some(leader) = self.image.broker(p.leader).cloned() else {
                    return;
                };
                let new_isr = p
                    .replicas
                    .iter()
                    .enumerate()
                    .filter(|(i, r)| **r == p.leader || keep[*i % keep.len()])
                    .filter_map(|(_, r)| self.image.broker(*r))
                    .map(|b| IsrMember {
                        broker_id: b.id,
                        broker_epoch: b.epoch,
                    })
                    .collect();
                let data = AlterPartitionData {
                    topic_id: t,
                    partition_index: index,
                    leader_epoch: p.leader_epoch,
                    partition_epoch: p.partition_epoch,
                    new_isr,
                    leader_recovery_state: p.leader_recovery_state,
                };
                if let Ok(outcome) =
                    alter_partition(&self.image, &self.config, leader.id, leader.epoch, &data)
                {
                    self.append(
                        &outcome
                            .record
                            .into_iter()
                            .map(MetadataRecord::PartitionChange)
                            .collect::<Vec<_>>(),
                    );
                }
            }
            Op::Elect { pick, unclean } => {
                let Some((_, name, index)) = self.partition_at(pick) else {
                    return;
                };
                let kind = if unclean {
                    ElectionType::Unclean
                } else {
                    ElectionType::Preferred
                };
                if let Ok(record) = elect_leader(&self.image, &name, index, kind) {
                    self.append(&[MetadataRecord::PartitionChange(record)]);
                }
            }
            Op::AllowUnclean { topic } => {
                self.append(&[MetadataRecord::Config(ConfigRecord {
                    resource_type: CONFIG_RESOURCE_TOPIC,
                    resource_name: format!("t{topic}"),
                    name: UNCLEAN_LEADER_ELECTION_ENABLE.into(),
                    value: Some("true".into()),
                })]);
            }
            Op::Unregister { broker } => {
                if let Ok(records) = unregister_broker(&self.image, &self.config, broker) {
                    self.append(&records);
                }
            }
        }
    }

    fn check(&mut self) -> Result<(), TestCaseError> {
        let mut seen = BTreeMap::new();
        for (t, index, p) in self.image.partitions() {
            prop_assert!(!p.isr.is_empty(), "{t}-{index}: empty ISR");
            prop_assert!(
                p.isr.iter().all(|r| p.replicas.contains(r)),
                "{t}-{index}: {p:?}"
            );
            let mut isr = p.isr.clone();
            isr.sort_unstable();
            isr.dedup();
            prop_assert_eq!(isr.len(), p.isr.len());
            prop_assert!(
                p.leader == NO_LEADER
                    || (p.isr.contains(&p.leader) && self.image.is_active(p.leader)),
                "{}-{}: leader {} not a live ISR member: {:?}",
                t,
                index,
                p.leader,
                p
            );
            if let Some((leader, le, pe)) = self.epochs.get(&(t, index)) {
                prop_assert!(p.leader_epoch >= *le && p.partition_epoch >= *pe);
                if p.leader != *leader {
                    prop_assert!(p.leader_epoch > *le, "leader changed without an epoch bump");
                }
            }
            seen.insert((t, index), (p.leader, p.leader_epoch, p.partition_epoch));
        }
        self.epochs = seen;
        let mut rebuilt = MetadataImage::new();
        for r in self.image.to_records() {
            rebuilt.apply(&r).unwrap();
        }
        prop_assert_eq!(&rebuilt, &self.image);
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn random_operation_sequences_keep_the_image_consistent(
        seed in any::<u64>(),
        live_brokers in 0i32..6,
        ops in proptest::collection::vec(op(), 1..80),
    ) {
        let mut model = Model {
            image: MetadataImage::new(),
            sessions: BrokerSessions::new(),
            config: ControllerConfig::default(),
            random: SeededRandom::new(seed),
            now: 0,
            next_offset: 0,
            epochs: BTreeMap::new(),
        };
        // Start from a live cluster of brokers 0-4 most of the time.
        for broker in 0..live_brokers {
            model.step(&Op::Register { broker, incarnation: 0 });
            model.step(&Op::Heartbeat {
                broker,
                caught_up: true,
                want_fence: false,
                want_shut_down: false,
            });
        }
        model.check()?;
        for op in &ops {
            model.step(op);
            model.check()?;
        }
    }
}
