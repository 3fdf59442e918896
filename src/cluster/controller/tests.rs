//! The controller over an in-memory metadata log.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Mutex as StdMutex;

use wharf_coordinator::metadata::records::BrokerEndpoint;
use wharf_coordinator::metadata::MetadataImage;

use super::*;

/// A log that commits at once, unless told to fail or to not lead.
struct MemLog {
    image: StdMutex<ImageSnapshot>,
    next: AtomicI64,
    /// The term this node leads in; `None` when it does not lead.
    term: StdMutex<Option<u64>>,
    fail: StdMutex<Option<QuorumError>>,
    /// The former leader and when this node last heard from it.
    former: StdMutex<Option<(i32, i64)>>,
}

impl MemLog {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            image: StdMutex::new(Arc::new(MetadataImage::new())),
            next: AtomicI64::new(1),
            term: StdMutex::new(Some(1)),
            fail: StdMutex::new(None),
            former: StdMutex::new(None),
        })
    }
}

impl MetadataLog for MemLog {
    fn propose(
        &self,
        records: Vec<MetadataRecord>,
    ) -> impl Future<Output = Result<i64, QuorumError>> + Send {
        let result = (|| {
            if let Some(e) = self.fail.lock().unwrap().clone() {
                return Err(e);
            }
            let mut guard = self.image.lock().unwrap();
            let mut next = (**guard).clone();
            for r in &records {
                next.apply(r).unwrap();
            }
            *guard = Arc::new(next);
            Ok(self.next.fetch_add(1, Ordering::SeqCst))
        })();
        async move { result }
    }

    fn image(&self) -> ImageSnapshot {
        self.image.lock().unwrap().clone()
    }

    fn next_offset(&self) -> i64 {
        self.next.load(Ordering::SeqCst)
    }

    fn leader_term(&self) -> Option<u64> {
        *self.term.lock().unwrap()
    }

    fn take_former_leader_contact(&self) -> Option<(i32, i64)> {
        self.former.lock().unwrap().take()
    }
}

struct Harness {
    log: Arc<MemLog>,
    controller: Controller<MemLog>,
    clock: Arc<AtomicI64>,
}

fn harness() -> Harness {
    let log = MemLog::new();
    let clock = Arc::new(AtomicI64::new(1_000_000));
    let read = clock.clone();
    let config = ControllerConfig {
        cluster_id: "c1".to_string(),
        default_replication_factor: 3,
        ..ControllerConfig::default()
    };
    let controller = Controller::new(
        log.clone(),
        config,
        Arc::new(move || read.load(Ordering::SeqCst)),
    );
    Harness {
        log,
        controller,
        clock,
    }
}

fn registration(id: i32) -> RegistrationRequest {
    RegistrationRequest {
        broker_id: id,
        cluster_id: "c1".to_string(),
        incarnation_id: Uuid::new_v4(),
        listeners: vec![BrokerEndpoint {
            name: "PLAINTEXT".to_string(),
            host: "127.0.0.1".to_string(),
            port: 9092 + u16::try_from(id).unwrap(),
            security_protocol: 0,
        }],
        features: Vec::new(),
        rack: None,
        log_dirs: Vec::new(),
    }
}

impl Harness {
    fn run<T>(&self, f: impl Future<Output = T>) -> T {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    /// Registers brokers and heartbeats them until unfenced; their epochs.
    fn live_brokers(&self, ids: &[i32]) -> Vec<i64> {
        let epochs: Vec<i64> = ids
            .iter()
            .map(|&id| {
                self.run(self.controller.register_broker(&registration(id)))
                    .unwrap()
            })
            .collect();
        for (&id, &epoch) in ids.iter().zip(&epochs) {
            self.heartbeat(id, epoch).unwrap();
        }
        epochs
    }

    fn heartbeat(&self, id: i32, epoch: i64) -> Result<HeartbeatReply, ControllerError> {
        let offset = self.log.next_offset();
        self.run(self.controller.heartbeat(&HeartbeatRequest {
            broker_id: id,
            broker_epoch: epoch,
            current_metadata_offset: offset,
            want_fence: false,
            want_shut_down: false,
        }))
    }

    fn create(&self, name: &str, partitions: i32) -> Result<CreatedTopic, ControllerError> {
        let topic = NewTopic {
            name: name.to_string(),
            num_partitions: partitions,
            replication_factor: -1,
            assignments: Vec::new(),
            configs: Vec::new(),
        };
        let mut results = self.run(self.controller.create_topics(&[topic], false));
        results.remove(0).1
    }
}

#[test]
fn registered_brokers_are_unfenced_by_their_first_caught_up_heartbeat() {
    let h = harness();
    let epochs = h.live_brokers(&[1, 2, 3]);
    assert_eq!(epochs.len(), 3);
    assert!(epochs.windows(2).all(|w| w[0] < w[1]), "{epochs:?}");
    let image = h.log.image();
    assert_eq!(image.alive_brokers().count(), 3);
}

#[test]
fn created_topic_spreads_leaders_over_live_brokers_with_the_default_replication_factor() {
    let h = harness();
    h.live_brokers(&[1, 2, 3]);
    let created = h.create("orders", 6).unwrap();
    assert_eq!((created.num_partitions, created.replication_factor), (6, 3));
    let image = h.log.image();
    let topic = image.topic_by_name("orders").unwrap();
    let mut leaders = std::collections::BTreeMap::new();
    for p in topic.partitions.values() {
        assert_eq!(p.replicas.len(), 3);
        assert_eq!(p.isr.len(), 3);
        *leaders.entry(p.leader).or_insert(0) += 1;
    }
    assert_eq!(leaders.values().copied().collect::<Vec<_>>(), vec![2, 2, 2]);
}

#[test]
fn a_node_that_does_not_lead_answers_not_controller_and_changes_nothing() {
    let h = harness();
    h.live_brokers(&[1]);
    *h.log.term.lock().unwrap() = None;
    let err = h.create("t", 1).unwrap_err();
    assert_eq!(err.code, ResponseError::NotController);
    assert!(h.log.image().topic_by_name("t").is_none());
}

#[test]
fn a_proposal_that_does_not_commit_is_request_timed_out_and_changes_nothing() {
    let h = harness();
    h.live_brokers(&[1, 2, 3]);
    *h.log.fail.lock().unwrap() = Some(QuorumError::Timeout);
    let err = h.create("t", 1).unwrap_err();
    assert_eq!(err.code, ResponseError::RequestTimedOut);
    assert!(h.log.image().topic_by_name("t").is_none());
    *h.log.fail.lock().unwrap() = None;
    h.create("t", 1).unwrap();
}

#[test]
fn a_silent_broker_is_fenced_and_its_leaderships_move() {
    let h = harness();
    let epochs = h.live_brokers(&[1, 2, 3]);
    h.create("orders", 3).unwrap();
    let led_by_1 = h.log.image().partitions_led_by(1);
    assert!(!led_by_1.is_empty());
    // Brokers 2 and 3 keep heartbeating; broker 1 goes silent.
    for _ in 0..10 {
        h.clock.fetch_add(1_000, Ordering::SeqCst);
        h.heartbeat(2, epochs[1]).unwrap();
        h.heartbeat(3, epochs[2]).unwrap();
        h.run(h.controller.fence_stale_brokers()).unwrap();
    }
    let image = h.log.image();
    assert!(image.broker(1).unwrap().fenced);
    assert!(image.partitions_led_by(1).is_empty());
    for (topic, partition) in led_by_1 {
        let p = image.partition(topic, partition).unwrap();
        assert!(p.leader == 2 || p.leader == 3, "{p:?}");
        assert!(!p.isr.contains(&1));
    }
}

#[test]
fn a_new_tenure_gives_every_broker_a_full_session() {
    let h = harness();
    let epochs = h.live_brokers(&[1, 2]);
    h.run(h.controller.fence_stale_brokers()).unwrap();
    // This node loses the quorum; the brokers heartbeat to another
    // controller (or to none during the election) for longer than a
    // session; then this node wins a later term.
    *h.log.term.lock().unwrap() = None;
    h.clock.fetch_add(10_000, Ordering::SeqCst);
    *h.log.term.lock().unwrap() = Some(2);
    let fenced = h.run(h.controller.fence_stale_brokers()).unwrap();
    assert!(
        fenced.is_empty(),
        "fenced on last tenure's sessions: {fenced:?}"
    );
    // Within the new tenure a silent broker is still fenced.
    for _ in 0..10 {
        h.clock.fetch_add(1_000, Ordering::SeqCst);
        h.heartbeat(2, epochs[1]).unwrap();
        h.run(h.controller.fence_stale_brokers()).unwrap();
    }
    let image = h.log.image();
    assert!(image.broker(1).unwrap().fenced);
    assert!(!image.broker(2).unwrap().fenced);
}

#[test]
fn the_former_controllers_broker_is_fenced_when_the_new_tenure_starts() {
    let h = harness();
    let epochs = h.live_brokers(&[1, 2, 3]);
    h.create("a", 3).unwrap();
    h.run(h.controller.fence_stale_brokers()).unwrap();
    // Node 3 led the quorum (and ran a broker); this node last heard from
    // it, then the quorum took an election's time (longer than a broker
    // session) to elect this node.
    *h.log.term.lock().unwrap() = None;
    let last_heard = h.clock.load(Ordering::SeqCst);
    let session = ControllerConfig::default().broker_session_timeout_ms;
    h.clock.fetch_add(session + 100, Ordering::SeqCst);
    *h.log.former.lock().unwrap() = Some((3, last_heard));
    *h.log.term.lock().unwrap() = Some(2);
    let fenced = h.run(h.controller.fence_stale_brokers()).unwrap();
    assert_eq!(
        fenced,
        vec![3],
        "the former leader's broker at once, no other"
    );
    let image = h.log.image();
    assert!(image.broker(3).unwrap().fenced);
    let topic = image.topic_by_name("a").unwrap();
    assert!(
        topic.partitions.values().all(|p| p.leader != 3),
        "leaderships moved off broker 3"
    );

    // A later tenure of this node does not take that contact again: broker
    // 3 came back, and gets a full session.
    h.heartbeat(1, epochs[0]).unwrap();
    h.heartbeat(2, epochs[1]).unwrap();
    *h.log.term.lock().unwrap() = None;
    h.clock.fetch_add(500, Ordering::SeqCst);
    *h.log.term.lock().unwrap() = Some(3);
    let fenced = h.run(h.controller.fence_stale_brokers()).unwrap();
    assert!(fenced.is_empty(), "{fenced:?}");
}

#[test]
fn deleting_a_topic_removes_it_and_an_unknown_one_is_unknown_topic() {
    let h = harness();
    h.live_brokers(&[1, 2, 3]);
    h.create("a", 1).unwrap();
    let results = h.run(
        h.controller
            .delete_topics(&["a".to_string(), "missing".to_string()]),
    );
    assert!(results[0].1.is_ok());
    assert_eq!(
        results[1].1.as_ref().unwrap_err().code,
        ResponseError::UnknownTopicOrPartition
    );
    assert!(h.log.image().topic_by_name("a").is_none());
}

#[test]
fn create_partitions_grows_a_topic() {
    let h = harness();
    h.live_brokers(&[1, 2, 3]);
    h.create("a", 2).unwrap();
    h.run(h.controller.create_partitions("a", 5, None, false))
        .unwrap();
    assert_eq!(
        h.log.image().topic_by_name("a").unwrap().partitions.len(),
        5
    );
    let err = h
        .run(h.controller.create_partitions("a", 3, None, false))
        .unwrap_err();
    assert_eq!(err.code, ResponseError::InvalidPartitions);
}

fn configs_of(h: &Harness, topic: &str) -> std::collections::BTreeMap<String, String> {
    h.log
        .image()
        .configs(&wharf_coordinator::metadata::ConfigResource::Topic(
            topic.to_string(),
        ))
        .cloned()
        .unwrap_or_default()
}

#[test]
fn set_topic_configs_replaces_the_overrides_in_one_batch() {
    let h = harness();
    h.live_brokers(&[1, 2, 3]);
    h.create("a", 1).unwrap();
    let first: BTreeMap<String, String> = [("retention.ms", "1000"), ("cleanup.policy", "compact")]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let before = h.log.next_offset();
    h.run(h.controller.set_topic_configs("a", &first)).unwrap();
    assert_eq!(h.log.next_offset(), before + 1, "one batch");
    assert_eq!(configs_of(&h, "a"), first);
    let second: BTreeMap<String, String> = [("retention.ms", "2000")]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    h.run(h.controller.set_topic_configs("a", &second)).unwrap();
    assert_eq!(configs_of(&h, "a"), second);
    let err = h
        .run(h.controller.set_topic_configs("missing", &second))
        .unwrap_err();
    assert_eq!(err.code, ResponseError::UnknownTopicOrPartition);
}

#[test]
fn set_topic_configs_without_a_majority_is_request_timed_out_and_changes_nothing() {
    let h = harness();
    h.live_brokers(&[1, 2, 3]);
    h.create("a", 1).unwrap();
    *h.log.fail.lock().unwrap() = Some(QuorumError::Timeout);
    let configs: BTreeMap<String, String> = [("retention.ms".to_string(), "1".to_string())].into();
    let err = h
        .run(h.controller.set_topic_configs("a", &configs))
        .unwrap_err();
    assert_eq!(err.code, ResponseError::RequestTimedOut);
    assert!(configs_of(&h, "a").is_empty());
    *h.log.term.lock().unwrap() = None;
    let err = h
        .run(h.controller.set_topic_configs("a", &configs))
        .unwrap_err();
    assert_eq!(err.code, ResponseError::NotController);
}

#[test]
fn producer_id_blocks_are_consecutive_and_need_a_current_registration() {
    let h = harness();
    let epochs = h.live_brokers(&[1, 2]);
    let a = h
        .run(h.controller.allocate_producer_ids(1, epochs[0]))
        .unwrap();
    let b = h
        .run(h.controller.allocate_producer_ids(2, epochs[1]))
        .unwrap();
    assert_eq!((a.first, a.len), (0, 1000));
    assert_eq!((b.first, b.len), (1000, 1000));
    assert_eq!(h.log.image().next_producer_id(), 2000);
    let err = h
        .run(h.controller.allocate_producer_ids(1, epochs[0] + 1))
        .unwrap_err();
    assert_eq!(err.code, ResponseError::StaleBrokerEpoch);
    *h.log.fail.lock().unwrap() = Some(QuorumError::Timeout);
    let err = h
        .run(h.controller.allocate_producer_ids(1, epochs[0]))
        .unwrap_err();
    assert_eq!(err.code, ResponseError::RequestTimedOut);
    assert_eq!(h.log.image().next_producer_id(), 2000);
}
