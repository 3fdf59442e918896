//! The single voter, restarts from disk, refusals and fail points.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use wharf_storage::io::{arm, disarm, FailPoint, Fault, InjectedError, Trigger};

use super::tests::{quick, setting, settings, Cluster};
use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_voter_leads_at_once_proposes_and_restarts_with_its_image() {
    let dir = tempfile::tempdir().unwrap();
    let config = QuorumConfig::single_voter(1, "solo", dir.path());
    let started = Instant::now();
    let q = Quorum::start(config.clone(), None).await.unwrap();
    let to_leader = started.elapsed();
    assert_eq!(q.leader().map(|l| l.0), Some(1), "leads when start returns");
    let proposed = Instant::now();
    for i in 0..10 {
        q.propose(vec![setting(&format!("k{i}"), "v")])
            .await
            .unwrap();
    }
    println!(
        "single voter: start to leadership {to_leader:?} (fresh directory); 10 proposals {:?}",
        proposed.elapsed()
    );
    assert_eq!(settings(&q).len(), 10);
    let before = q.image();
    q.shutdown().await;

    let started = Instant::now();
    let q = Quorum::start(config, None).await.unwrap();
    let to_leader = started.elapsed();
    assert_eq!(q.leader().map(|l| l.0), Some(1));
    println!("single voter: restart to leadership {to_leader:?}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while *q.image() != *before {
        assert!(
            Instant::now() < deadline,
            "image not recovered after restart"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    q.propose(vec![setting("after-restart", "v")])
        .await
        .unwrap();
    assert_eq!(settings(&q).len(), 11);
    q.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_recovers_the_image_from_a_snapshot_and_a_purged_log() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = QuorumConfig::single_voter(1, "solo", dir.path());
    config.snapshot_after_entries = 4;
    config.keep_entries_after_snapshot = 0;
    config.segment_bytes = 256;
    let q = Quorum::start(config.clone(), None).await.unwrap();
    for i in 0..25 {
        q.propose(vec![setting(&format!("k{i:02}"), &i.to_string())])
            .await
            .unwrap();
    }
    let meta = dir.path().join(METADATA_LOG_DIR);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !meta.join("raft-log-start").exists() {
        assert!(Instant::now() < deadline, "no purge after snapshots");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(meta.join("raft-snapshot").exists());
    let segments = std::fs::read_dir(&meta)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".raftlog")
        })
        .count();
    let before = q.image();
    q.shutdown().await;

    let q = Quorum::start(config, None).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while *q.image() != *before {
        assert!(
            Instant::now() < deadline,
            "image not recovered from snapshot + log"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(settings(&q).len(), 25);
    assert!(
        !std::fs::read_dir(&meta)
            .unwrap()
            .any(|e| e.unwrap().file_name().to_string_lossy() == format!("{:020}.raftlog", 0)),
        "the first segment was purged ({segments} segments before restart)"
    );
    q.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_metadata_log_write_fails_the_proposal_and_nothing_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = QuorumConfig::single_voter(1, "solo", dir.path());
    config.write_timeout = Duration::from_secs(3);
    let q = Quorum::start(config.clone(), None).await.unwrap();
    q.propose(vec![setting("before", "1")]).await.unwrap();
    arm(Fault::new(
        FailPoint::QuorumLogWrite,
        InjectedError::NoSpace,
        Trigger::Always,
    )
    .under(dir.path()));
    let err = q.propose(vec![setting("during", "1")]).await;
    disarm(Some(dir.path()));
    let err = err.unwrap_err();
    println!("proposal during an armed quorum-log-write fault: {err}");
    assert!(
        matches!(err, QuorumError::Storage(_) | QuorumError::ShuttingDown),
        "{err}"
    );
    // The node's Raft stopped on the failed write; later proposals say so.
    assert!(q.propose(vec![setting("later", "1")]).await.is_err());
    assert!(!settings(&q).contains_key("during"));
    q.shutdown().await;

    let q = Quorum::start(config, None).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !settings(&q).contains_key("before") {
        assert!(Instant::now() < deadline, "the committed record is gone");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(!settings(&q).contains_key("during"));
    q.propose(vec![setting("after", "1")]).await.unwrap();
    q.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_with_another_voter_list_cluster_or_node_id_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let voters = parse_voters("1@127.0.0.1:1,2@127.0.0.1:2,3@127.0.0.1:3").unwrap();
    let config = QuorumConfig::new(1, voters, "c1", dir.path());
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    Quorum::start(config.clone(), Some(l))
        .await
        .unwrap()
        .shutdown()
        .await;

    let mut changed = config.clone();
    changed.voters = parse_voters("1@127.0.0.1:1,2@127.0.0.1:2,4@127.0.0.1:4").unwrap();
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let err = Quorum::start(changed, Some(l)).await.unwrap_err();
    assert!(matches!(err, QuorumError::VotersChanged { .. }), "{err}");
    let line = err.to_string();
    assert!(
        !line.contains('\n') && line.contains("4@127.0.0.1:4"),
        "{line}"
    );

    let mut other_cluster = config.clone();
    other_cluster.cluster_id = "c2".into();
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let err = Quorum::start(other_cluster, Some(l)).await.unwrap_err();
    assert!(err.to_string().contains("belongs to cluster c1"), "{err}");

    let mut not_a_voter = config.clone();
    not_a_voter.node_id = 5;
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let err = Quorum::start(not_a_voter, Some(l)).await.unwrap_err();
    assert!(err.to_string().contains("node id 5 is not in"), "{err}");

    let err = Quorum::start(config, None).await.unwrap_err();
    assert_eq!(err, QuorumError::NoListener(3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn voters_that_disagree_on_the_voter_list_refuse_each_other() {
    // Nodes 1 and 2 share an address book but node 2 thinks a third voter
    // exists: each refuses the other's requests, so no leader emerges.
    let l1 = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let l2 = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let a1 = l1.local_addr().unwrap().to_string();
    let a2 = l2.local_addr().unwrap().to_string();
    let d1 = tempfile::tempdir().unwrap();
    let d2 = tempfile::tempdir().unwrap();
    let mut c1 = QuorumConfig::new(
        1,
        parse_voters(&format!("1@{a1},2@{a2}")).unwrap(),
        "c",
        d1.path(),
    );
    let mut c2 = QuorumConfig::new(
        2,
        parse_voters(&format!("1@{a1},2@{a2},3@127.0.0.1:1")).unwrap(),
        "c",
        d2.path(),
    );
    quick(&mut c1);
    quick(&mut c2);
    let q1 = Quorum::start(c1, Some(l1)).await.unwrap();
    let q2 = Quorum::start(c2, Some(l2)).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while q1.describe().refused_requests == 0 || q2.describe().refused_requests == 0 {
        assert!(Instant::now() < deadline, "no refusal seen");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for q in [&q1, &q2] {
        let reason = q.describe().last_refusal.unwrap();
        assert!(reason.contains("voters disagree"), "{reason}");
        assert!(!reason.contains('\n'));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        q1.leader(),
        None,
        "node 1 must not win over a node that disagrees"
    );
    assert_eq!(q2.leader(), None);
    assert!(matches!(
        q1.propose(vec![setting("x", "1")]).await,
        Err(QuorumError::NotLeader { leader: None })
    ));
    q1.shutdown().await;
    q2.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn describe_reports_each_voters_lag_on_the_leader() {
    let mut cluster = Cluster::start(3, quick).await;
    let (leader, epoch) = cluster.leader().await;
    let behind = *cluster.nodes.keys().find(|id| **id != leader).unwrap();
    cluster.stop(behind).await;
    for i in 0..5 {
        cluster.nodes[&leader]
            .propose(vec![setting(&format!("k{i}"), "v")])
            .await
            .unwrap();
    }
    let d = cluster.nodes[&leader].describe();
    assert_eq!((d.leader, d.epoch), (Some(leader), epoch));
    let lag = |id: i32| d.voters.iter().find(|v| v.node_id == id).unwrap().lag;
    assert_eq!(lag(leader), Some(0));
    assert!(lag(behind).unwrap() >= 5, "{d:?}");
    cluster.stop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_on_the_controller_listener_is_refused_and_the_quorum_goes_on() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    let cluster = Cluster::start(3, quick).await;
    let (leader, _) = cluster.leader().await;
    let addr = cluster.addrs[&leader];
    let closed = |mut s: TcpStream| async move {
        let mut buf = [0u8; 64];
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
            .await
            .expect("the listener answers or closes in time");
        assert!(
            matches!(n, Ok(0) | Err(_)),
            "connection should close, read {n:?}"
        );
    };

    // An api key the listener does not serve (ApiVersions), a negative
    // length, and a length past the frame limit: the connection closes.
    let mut s = TcpStream::connect(addr).await.unwrap();
    let mut frame = vec![0, 0, 0, 10, 0, 18, 0, 0, 0, 0, 0, 1, 0, 0];
    s.write_all(&frame).await.unwrap();
    closed(s).await;
    for len in [-5i32, i32::MAX] {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(&len.to_be_bytes()).await.unwrap();
        closed(s).await;
    }

    // A quorum api key with a body that is not JSON: a Refused reply.
    let mut s = TcpStream::connect(addr).await.unwrap();
    frame = Vec::new();
    let body = b"not json";
    let header: Vec<u8> = [
        &API_KEY_VOTE.to_be_bytes()[..],
        &0i16.to_be_bytes(),
        &42i32.to_be_bytes(),
        &0i16.to_be_bytes(),
    ]
    .concat();
    frame.extend_from_slice(&((header.len() + body.len()) as i32).to_be_bytes());
    frame.extend_from_slice(&header);
    frame.extend_from_slice(body);
    s.write_all(&frame).await.unwrap();
    let mut len = [0u8; 4];
    tokio::time::timeout(Duration::from_secs(5), s.read_exact(&mut len))
        .await
        .unwrap()
        .unwrap();
    let mut reply = vec![0u8; i32::from_be_bytes(len) as usize];
    s.read_exact(&mut reply).await.unwrap();
    assert_eq!(&reply[..4], &42i32.to_be_bytes());
    let text = String::from_utf8_lossy(&reply[4..]);
    assert!(
        text.contains("Refused") && text.contains("malformed"),
        "{text}"
    );

    cluster.nodes[&leader]
        .propose(vec![setting("still-working", "1")])
        .await
        .unwrap();
    cluster.converge(|s| s.contains_key("still-working")).await;
    cluster.stop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proposal_past_the_batch_limit_is_refused_and_nothing_is_applied() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = QuorumConfig::single_voter(1, "solo", dir.path());
    config.max_batch_bytes = 1000;
    let q = Quorum::start(config, None).await.unwrap();
    let big = "x".repeat(2000);
    let err = q
        .propose(vec![setting("small", "1"), setting("big", &big)])
        .await
        .unwrap_err();
    assert!(
        matches!(err, QuorumError::TooLarge { max: 1000, .. }),
        "{err}"
    );
    assert_eq!(
        err.response_error(),
        kafka_protocol::ResponseError::RecordListTooLarge
    );
    assert!(settings(&q).is_empty());
    q.propose(vec![setting("small", "1")]).await.unwrap();
    q.shutdown().await;
}
