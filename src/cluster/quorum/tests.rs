//! In-process tests of the quorum: several `Quorum`s on 127.0.0.1 port-0
//! listeners with temporary directories. Every test stops what it starts,
//! and every wait is bounded.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tempfile::TempDir;
use tokio::net::TcpListener;
use wharf_coordinator::metadata::records::{ConfigRecord, CONFIG_RESOURCE_BROKER};
use wharf_coordinator::metadata::{ConfigResource, MetadataRecord};

use super::*;

/// A bound on every wait in these tests.
pub(super) const WAIT: Duration = Duration::from_secs(20);

pub(super) fn setting(key: &str, value: &str) -> MetadataRecord {
    MetadataRecord::Config(ConfigRecord {
        resource_type: CONFIG_RESOURCE_BROKER,
        resource_name: String::new(),
        name: key.to_string(),
        value: Some(value.to_string()),
    })
}

/// The cluster-wide broker settings in a node's image.
pub(super) fn settings(q: &Quorum) -> BTreeMap<String, String> {
    q.image()
        .configs(&ConfigResource::Broker(String::new()))
        .cloned()
        .unwrap_or_default()
}

/// Binds `addr`, retrying while a just-closed listener still holds it.
async fn bind(addr: SocketAddr) -> TcpListener {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match TcpListener::bind(addr).await {
            Ok(l) => return l,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => panic!("binding {addr}: {e}"),
        }
    }
}

/// A test cluster: one directory and one address per voter, and the
/// running nodes.
pub(super) struct Cluster {
    _dirs: Vec<TempDir>,
    pub(super) configs: BTreeMap<i32, QuorumConfig>,
    pub(super) addrs: BTreeMap<i32, SocketAddr>,
    pub(super) nodes: BTreeMap<i32, Quorum>,
}

impl Cluster {
    /// Binds `n` listeners and makes a directory and a configuration for
    /// each voter.
    async fn prepare(
        n: i32,
        tune: impl Fn(&mut QuorumConfig),
    ) -> (Cluster, Vec<(i32, TcpListener)>) {
        let mut listeners = Vec::new();
        for id in 1..=n {
            listeners.push((id, TcpListener::bind("127.0.0.1:0").await.unwrap()));
        }
        let addrs: BTreeMap<i32, SocketAddr> = listeners
            .iter()
            .map(|(id, l)| (*id, l.local_addr().unwrap()))
            .collect();
        let voters: BTreeMap<i32, String> =
            addrs.iter().map(|(id, a)| (*id, a.to_string())).collect();
        let mut dirs = Vec::new();
        let mut configs = BTreeMap::new();
        for id in 1..=n {
            let dir = tempfile::tempdir().unwrap();
            let mut c = QuorumConfig::new(id, voters.clone(), "test-cluster", dir.path());
            tune(&mut c);
            configs.insert(id, c);
            dirs.push(dir);
        }
        let cluster = Cluster {
            _dirs: dirs,
            configs,
            addrs,
            nodes: BTreeMap::new(),
        };
        (cluster, listeners)
    }

    /// Starts `n` voters one after another.
    pub(super) async fn start(n: i32, tune: impl Fn(&mut QuorumConfig)) -> Cluster {
        let (mut cluster, listeners) = Cluster::prepare(n, tune).await;
        for (id, l) in listeners {
            let q = Quorum::start(cluster.configs[&id].clone(), Some(l))
                .await
                .unwrap();
            cluster.nodes.insert(id, q);
        }
        cluster
    }

    /// Starts `n` voters at the same time, so that they all race to
    /// initialise the membership.
    pub(super) async fn start_concurrently(n: i32, tune: impl Fn(&mut QuorumConfig)) -> Cluster {
        let (mut cluster, listeners) = Cluster::prepare(n, tune).await;
        let starts: Vec<_> = listeners
            .into_iter()
            .map(|(id, l)| {
                let c = cluster.configs[&id].clone();
                tokio::spawn(async move { (id, Quorum::start(c, Some(l)).await) })
            })
            .collect();
        for s in starts {
            let (id, q) = s.await.unwrap();
            cluster.nodes.insert(id, q.unwrap());
        }
        cluster
    }

    pub(super) async fn stop(&mut self, id: i32) {
        if let Some(q) = self.nodes.remove(&id) {
            q.shutdown().await;
        }
    }

    pub(super) async fn restart(&mut self, id: i32) {
        let l = bind(self.addrs[&id]).await;
        let q = Quorum::start(self.configs[&id].clone(), Some(l))
            .await
            .unwrap();
        self.nodes.insert(id, q);
    }

    pub(super) async fn stop_all(mut self) {
        let ids: Vec<i32> = self.nodes.keys().copied().collect();
        for id in ids {
            self.stop(id).await;
        }
    }

    /// Waits until every running node names the same leader, itself running.
    pub(super) async fn leader(&self) -> (i32, u64) {
        let deadline = Instant::now() + WAIT;
        loop {
            let seen: Vec<Option<(i32, u64)>> = self.nodes.values().map(Quorum::leader).collect();
            if let Some(Some((l, epoch))) = seen.first().copied() {
                if self.nodes.contains_key(&l) && seen.iter().all(|s| *s == Some((l, epoch))) {
                    return (l, epoch);
                }
            }
            assert!(Instant::now() < deadline, "no agreed leader: {seen:?}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Waits until every running node's settings satisfy `pred`.
    pub(super) async fn converge(&self, pred: impl Fn(&BTreeMap<String, String>) -> bool) {
        let deadline = Instant::now() + WAIT;
        loop {
            if self.nodes.values().all(|q| pred(&settings(q))) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "images did not converge: {:?}",
                self.nodes
                    .iter()
                    .map(|(id, q)| (*id, settings(q)))
                    .collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Asserts every running node's image equals the first one's.
    pub(super) fn assert_images_equal(&self) {
        let images: Vec<_> = self.nodes.values().map(|q| q.image()).collect();
        for image in &images {
            assert_eq!(**image, *images[0]);
        }
    }
}

/// Faster timeouts for tests that do not measure failover.
pub(super) fn quick(c: &mut QuorumConfig) {
    c.election_timeout = Duration::from_millis(400);
    c.heartbeat_interval = Duration::from_millis(80);
    c.write_timeout = Duration::from_secs(5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_voters_elect_a_leader_and_every_voter_applies_proposals_in_order() {
    let started = Instant::now();
    let cluster = Cluster::start(3, |_| {}).await;
    let (leader, epoch) = cluster.leader().await;
    println!(
        "three voters (election timeout 1000 ms): leader {leader} in epoch {epoch} after {:?}",
        started.elapsed()
    );
    let q = &cluster.nodes[&leader];
    let mut last = 0;
    let proposing = Instant::now();
    for i in 0..20 {
        let offset = q
            .propose(vec![
                setting("last", &i.to_string()),
                setting(&format!("k{i:02}"), "x"),
            ])
            .await
            .unwrap();
        assert!(offset > last, "offsets grow: {offset} after {last}");
        last = offset;
    }
    println!(
        "three voters: 20 proposals one after another in {:?}",
        proposing.elapsed()
    );
    // Applied on the leader before propose returns.
    assert_eq!(settings(q).get("last").map(String::as_str), Some("19"));
    cluster
        .converge(|s| s.get("last").map(String::as_str) == Some("19") && s.len() == 21)
        .await;
    cluster.assert_images_equal();

    let follower = *cluster.nodes.keys().find(|id| **id != leader).unwrap();
    let err = cluster.nodes[&follower]
        .propose(vec![setting("from-follower", "1")])
        .await
        .unwrap_err();
    assert_eq!(
        err,
        QuorumError::NotLeader {
            leader: Some(leader)
        }
    );
    assert!(!settings(&cluster.nodes[&leader]).contains_key("from-follower"));

    // The description comes from the Raft metrics, which follow commits
    // asynchronously: wait for them to show the last proposal.
    let waited = Instant::now();
    let d = loop {
        let d = cluster.nodes[&leader].describe();
        if d.high_watermark > last || waited.elapsed() > Duration::from_secs(5) {
            break d;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert_eq!(d.leader, Some(leader));
    assert_eq!(d.epoch, epoch);
    assert_eq!(d.voters.len(), 3);
    assert!(d.high_watermark > last, "{d:?}");
    assert_eq!(
        err.response_error(),
        kafka_protocol::ResponseError::NotController
    );
    assert_eq!(
        QuorumError::Timeout.response_error(),
        kafka_protocol::ResponseError::RequestTimedOut
    );
    for v in &d.voters {
        assert!(v.log_end_offset.is_some(), "{d:?}");
        assert!(v.last_ack_ms.is_some(), "{d:?}");
    }
    cluster.stop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_leader_is_replaced_within_seconds_and_no_committed_record_is_lost() {
    let mut cluster = Cluster::start(3, |_| {}).await;
    let (old, old_epoch) = cluster.leader().await;
    for i in 0..10 {
        cluster.nodes[&old]
            .propose(vec![setting(&format!("before{i}"), "1")])
            .await
            .unwrap();
    }
    cluster.converge(|s| s.len() == 10).await;

    let killed = Instant::now();
    cluster.stop(old).await;
    let (new, new_epoch) = cluster.leader().await;
    let failover = killed.elapsed();
    println!("failover (election timeout 1000 ms, heartbeat 200 ms): node {new} leads epoch {new_epoch} {failover:?} after node {old} stopped");
    assert_ne!(new, old);
    assert!(new_epoch > old_epoch);
    for q in cluster.nodes.values() {
        assert_eq!(
            settings(q).len(),
            10,
            "committed records survive the failover"
        );
    }
    cluster.nodes[&new]
        .propose(vec![setting("after", "1")])
        .await
        .unwrap();

    cluster.restart(old).await;
    cluster
        .converge(|s| s.len() == 11 && s.contains_key("after"))
        .await;
    cluster.assert_images_equal();
    let (leader, _) = cluster.leader().await;
    assert_eq!(
        cluster.nodes[&old].leader().map(|l| l.0),
        Some(leader),
        "the restarted node follows the new leader"
    );
    cluster.stop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_majority_proposals_time_out_and_nothing_is_applied() {
    let mut cluster = Cluster::start(3, |c| {
        quick(c);
        c.write_timeout = Duration::from_millis(1500);
    })
    .await;
    let (leader, _) = cluster.leader().await;
    cluster.nodes[&leader]
        .propose(vec![setting("committed", "1")])
        .await
        .unwrap();
    cluster.converge(|s| s.contains_key("committed")).await;
    let followers: Vec<i32> = cluster
        .nodes
        .keys()
        .copied()
        .filter(|id| *id != leader)
        .collect();
    for f in &followers {
        cluster.stop(*f).await;
    }
    let before = cluster.nodes[&leader].image();
    let err = cluster.nodes[&leader]
        .propose(vec![setting("pending", "1"), setting("pending2", "1")])
        .await
        .unwrap_err();
    println!("proposal on leader {leader} with both followers stopped: {err}");
    assert!(
        matches!(err, QuorumError::Timeout | QuorumError::NotLeader { .. }),
        "{err}"
    );
    assert_eq!(
        *cluster.nodes[&leader].image(),
        *before,
        "nothing is applied without a majority"
    );
    // Reads keep answering from the last image.
    assert_eq!(
        settings(&cluster.nodes[&leader])
            .get("committed")
            .map(String::as_str),
        Some("1")
    );

    cluster.restart(followers[0]).await;
    let (leader, _) = cluster.leader().await;
    cluster.nodes[&leader]
        .propose(vec![setting("after-recovery", "1")])
        .await
        .unwrap();
    cluster.converge(|s| s.contains_key("after-recovery")).await;
    // The timed-out batch is in every image or in none, and whole.
    cluster.assert_images_equal();
    let s = settings(&cluster.nodes[&leader]);
    assert_eq!(
        s.contains_key("pending"),
        s.contains_key("pending2"),
        "{s:?}"
    );
    cluster.stop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lagging_voter_catches_up_from_a_snapshot_after_the_leader_purged_its_log() {
    let mut cluster = Cluster::start(3, |c| {
        quick(c);
        c.snapshot_after_entries = 5;
        c.keep_entries_after_snapshot = 0;
    })
    .await;
    let (leader, _) = cluster.leader().await;
    let lagging = *cluster.nodes.keys().find(|id| **id != leader).unwrap();
    cluster.stop(lagging).await;
    for i in 0..30 {
        cluster.nodes[&leader]
            .propose(vec![setting(&format!("k{i:02}"), &i.to_string())])
            .await
            .unwrap();
    }
    let dir = cluster.configs[&leader].data_dir.join(METADATA_LOG_DIR);
    let deadline = Instant::now() + WAIT;
    while !dir.join("raft-log-start").exists() {
        assert!(Instant::now() < deadline, "the leader never purged its log");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(dir.join("raft-snapshot").exists());
    cluster.restart(lagging).await;
    cluster.converge(|s| s.len() == 30).await;
    cluster.assert_images_equal();
    cluster.stop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_record_is_skipped_on_every_voter_and_followers_see_new_images() {
    use wharf_coordinator::metadata::records::PartitionChangeRecord;

    let cluster = Cluster::start(3, quick).await;
    let (leader, _) = cluster.leader().await;
    let follower = *cluster.nodes.keys().find(|id| **id != leader).unwrap();
    let mut rx = cluster.nodes[&follower].subscribe();
    rx.borrow_and_update();
    let refused =
        MetadataRecord::PartitionChange(PartitionChangeRecord::new(uuid::Uuid::new_v4(), 0));
    cluster.nodes[&leader]
        .propose(vec![refused, setting("next", "1")])
        .await
        .unwrap();
    let seen = tokio::time::timeout(WAIT, async {
        loop {
            rx.changed().await.unwrap();
            let image = rx.borrow_and_update().clone();
            if image
                .configs(&ConfigResource::Broker(String::new()))
                .is_some_and(|c| c.contains_key("next"))
            {
                return image;
            }
        }
    })
    .await
    .expect("the follower publishes the new image");
    assert_eq!(seen.topics().count(), 0);
    cluster.converge(|s| s.contains_key("next")).await;
    cluster.assert_images_equal();
    cluster.stop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn voters_started_at_once_all_initialise_and_agree_on_one_leader_and_log() {
    for round in 0..2 {
        let started = Instant::now();
        let cluster = Cluster::start_concurrently(3, quick).await;
        let (leader, epoch) = cluster.leader().await;
        println!(
            "round {round}: three voters started at once (election timeout 400 ms): leader {leader} in epoch {epoch} after {:?}",
            started.elapsed()
        );
        cluster.nodes[&leader]
            .propose(vec![setting("k", &round.to_string())])
            .await
            .unwrap();
        cluster.converge(|s| s.contains_key("k")).await;
        cluster.assert_images_equal();
        // Every voter holds the same membership: the one from the voter list.
        for q in cluster.nodes.values() {
            let m = q.raft.metrics().borrow().membership_config.clone();
            let ids: Vec<u64> = m.voter_ids().collect();
            assert_eq!(ids, vec![1, 2, 3]);
        }
        cluster.stop_all().await;
    }
}
