//! Fetching from the closest replica (KIP-392): with the rack-aware
//! replica selector, a partition's leader sends a consumer that gives its
//! rack to an in-sync follower in that rack, and the follower serves the
//! records it has committed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::cluster::Cluster;
use common::{produce_batch, topic_name, Client};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use wharf_protocol::batch::{batches, build_batch};
use wharf_protocol::compression::Compression;

/// One consumer Fetch v12 of partition 0 of `topic` from `offset`, giving
/// `rack`: (error, preferred read replica, records).
fn fetch(client: &mut Client, topic: &str, offset: i64, rack: &str) -> (i16, i32, Bytes) {
    let mut p = FetchPartition::default();
    p.fetch_offset = offset;
    p.partition_max_bytes = 1 << 20;
    p.current_leader_epoch = -1;
    let mut t = FetchTopic::default();
    t.topic = topic_name(topic);
    t.partitions = vec![p];
    let mut request = FetchRequest::default();
    request.replica_id = (-1).into();
    request.max_bytes = 1 << 20;
    request.session_epoch = -1;
    request.rack_id = StrBytes::from_string(rack.to_string());
    request.topics = vec![t];
    let response: FetchResponse = client.call(ApiKey::Fetch, 12, &request);
    let p = &response.responses[0].partitions[0];
    (
        p.error_code,
        p.preferred_read_replica.0,
        p.records.clone().unwrap_or_default(),
    )
}

fn record_count(records: &Bytes) -> usize {
    batches(records)
        .filter_map(Result::ok)
        .map(|(h, _)| usize::try_from(h.records_count()).unwrap())
        .sum()
}

/// Polls `f` until it returns `Some`, for at most 60 s.
fn eventually<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_consumer_reads_from_the_in_sync_follower_in_its_rack() {
    let cluster = Cluster::start_with(3, |id| {
        vec![
            "--broker-rack".to_string(),
            format!("rack-{id}"),
            "--replica-selector-class".to_string(),
            "org.apache.kafka.common.replica.RackAwareReplicaSelector".to_string(),
        ]
    });
    cluster.wait_for(&[0, 1, 2], &[1, 2, 3], Duration::from_secs(60));
    let leader = cluster.create_rf3_topic("near");
    let node = |id: i32| &cluster.nodes[usize::try_from(id - 1).unwrap()];
    let mut to_leader = node(leader).client();
    let batch = build_batch(
        0,
        &[
            (None, Some(&b"one"[..]), 1_700_000_000_000),
            (None, Some(&b"two"[..]), 1_700_000_000_000),
        ],
        Compression::None,
    )
    .unwrap();
    let produced = eventually("the leader taking the batch", || {
        let answer = produce_batch(&mut to_leader, "near", 0, batch.clone());
        (answer.0 != 3).then_some(answer)
    });
    assert_eq!(produced, (0, 0));

    // A consumer in the leader's rack reads from the leader.
    let (error, preferred, records) = fetch(&mut to_leader, "near", 0, &format!("rack-{leader}"));
    assert_eq!((error, preferred, record_count(&records)), (0, -1, 2));

    // One in a follower's rack is sent to that follower (once the leader
    // knows it has the records), which serves them.
    let follower = (1..=3).find(|id| *id != leader).unwrap();
    let rack = format!("rack-{follower}");
    eventually("the leader naming the follower", || {
        let (error, preferred, records) = fetch(&mut to_leader, "near", 0, &rack);
        assert_eq!(error, 0);
        (preferred == follower).then(|| assert!(records.is_empty()))
    });
    let mut to_follower = node(follower).client();
    let records = eventually("the follower serving the records", || {
        let (error, _, records) = fetch(&mut to_follower, "near", 0, &rack);
        assert_eq!(error, 0);
        (record_count(&records) == 2).then_some(records)
    });
    let (_, leader_preferred, from_leader) =
        fetch(&mut to_leader, "near", 0, &format!("rack-{leader}"));
    assert_eq!(leader_preferred, -1);
    assert_eq!(
        records, from_leader,
        "the follower's batches are the leader's"
    );

    // A rack with no replica: the leader serves.
    let (error, preferred, records) = fetch(&mut to_leader, "near", 0, "elsewhere");
    assert_eq!((error, preferred, record_count(&records)), (0, -1, 2));
}
