//! Model test of follower truncation by leader epoch (KIP-101, KIP-279):
//! random leader and follower histories that share a prefix and then
//! diverge, the follower reconciling with the OffsetsForLeaderEpoch loop.
//! After it the follower must be a prefix of the leader, never cut below
//! the last batch they shared, and catch up to an identical copy.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use proptest::prelude::*;
use wharf_protocol::batch::{self, build_batch};
use wharf_protocol::compression::Compression;
use wharf_storage::{Log, LogConfig};

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 400,
        index_interval_bytes: 100,
        ..LogConfig::default()
    }
}

/// A batch of `n` records whose values name who wrote it (`tag`), so
/// divergent batches differ in their bytes.
fn batch_of(n: usize, tag: &str, seq: usize) -> Vec<u8> {
    let values: Vec<Vec<u8>> = (0..n)
        .map(|i| format!("{tag}-{seq}-{i}").into_bytes())
        .collect();
    let records: Vec<_> = values
        .iter()
        .map(|v| (Some(&b"k"[..]), Some(&v[..]), 1_000 + seq as i64))
        .collect();
    build_batch(0, &records, Compression::None).unwrap()
}

fn read_all(log: &Log) -> Vec<u8> {
    let mut out = Vec::new();
    let mut offset = log.log_start_offset();
    while offset < log.log_end_offset() {
        let chunk = log.read(offset, 1 << 20, true).unwrap();
        let last = batch::batches(&chunk).last().unwrap().unwrap().0;
        offset = last.next_offset();
        out.extend_from_slice(&chunk);
    }
    out
}

fn replicate(leader: &Log, follower: &mut Log, max_bytes: usize) {
    while follower.log_end_offset() < leader.log_end_offset() {
        let mut chunk = leader
            .read(follower.log_end_offset(), max_bytes, true)
            .unwrap()
            .to_vec();
        follower.append_replicated(&mut chunk).unwrap();
    }
}

/// The follower's side of KIP-279: ask the leader where the follower's
/// latest epoch ended; when the leader answers with an epoch the follower
/// does not have, cut to the follower's own end of that epoch and ask
/// again. Returns the number of requests made.
fn reconcile(leader: &Log, follower: &mut Log) -> Result<usize, TestCaseError> {
    for round in 1..=64 {
        let Some(epoch) = follower.latest_epoch() else {
            return Ok(round);
        };
        let end = follower.log_end_offset();
        let (leader_epoch, leader_end) = leader.end_offset_for_epoch(epoch);
        prop_assert!(leader_epoch >= 0, "the leader knows no epoch <= {epoch}");
        match follower.end_offset_for_epoch(leader_epoch) {
            (-1, _) => {
                follower.truncate_to(leader_end.min(end)).unwrap();
                return Ok(round);
            }
            (own_epoch, own_end) if own_epoch != leader_epoch => {
                // Not known here: cut to where the older epoch ended and ask again.
                follower.truncate_to(own_end.min(end)).unwrap();
            }
            (_, own_end) => {
                follower
                    .truncate_to(own_end.min(leader_end).min(end))
                    .unwrap();
                return Ok(round);
            }
        }
    }
    Err(TestCaseError::fail("the truncation loop did not converge"))
}

#[derive(Debug, Clone)]
struct History {
    /// Shared batches: (epoch increment, records).
    prefix: Vec<(i32, usize)>,
    /// The follower's batches in the last shared epoch, which the leader missed.
    follower_continues: Vec<usize>,
    /// Each later epoch in turn: whether the leader (else the follower)
    /// led it, and the batches it wrote then.
    later: Vec<(bool, Vec<usize>)>,
    /// Reopen the follower before it reconciles.
    reopen: bool,
    /// Fetch size while replicating.
    fetch_bytes: usize,
}

fn history() -> impl Strategy<Value = History> {
    (
        prop::collection::vec((0i32..3, 1usize..4), 0..6),
        prop::collection::vec(1usize..4, 0..3),
        prop::collection::vec(
            (any::<bool>(), prop::collection::vec(1usize..4, 0..3)),
            1..5,
        ),
        any::<bool>(),
        prop::sample::select(vec![100usize, 300, 1 << 20]),
    )
        .prop_map(
            |(prefix, follower_continues, mut later, reopen, fetch_bytes)| {
                // The current leader holds the newest epoch and wrote in it.
                if let Some(last) = later.last_mut() {
                    last.0 = true;
                    if last.1.is_empty() {
                        last.1.push(1);
                    }
                }
                History {
                    prefix,
                    follower_continues,
                    later,
                    reopen,
                    fetch_bytes,
                }
            },
        )
}

fn run(h: &History) -> Result<(), TestCaseError> {
    let leader_dir = tempfile::tempdir().unwrap();
    let follower_dir = tempfile::tempdir().unwrap();
    let mut leader = Log::open(leader_dir.path(), config()).unwrap();
    let mut follower = Log::open(follower_dir.path(), config()).unwrap();
    let mut seq = 0;
    let mut epoch = 0;
    for (increment, n) in &h.prefix {
        epoch += increment;
        seq += 1;
        leader
            .append(&mut batch_of(*n, "shared", seq), epoch)
            .unwrap();
    }
    replicate(&leader, &mut follower, h.fetch_bytes);
    let shared_end = leader.log_end_offset();
    let shared_bytes = read_all(&leader);
    prop_assert_eq!(read_all(&follower), shared_bytes.clone());

    for n in &h.follower_continues {
        seq += 1;
        follower
            .append(&mut batch_of(*n, "follower", seq), epoch)
            .unwrap();
    }
    for (leader_led, batches) in &h.later {
        epoch += 1;
        let (log, tag) = if *leader_led {
            (&mut leader, "leader")
        } else {
            (&mut follower, "follower")
        };
        for n in batches {
            seq += 1;
            log.append(&mut batch_of(*n, tag, seq), epoch).unwrap();
        }
    }
    if h.reopen {
        let entries = follower.epoch_entries();
        drop(follower);
        follower = Log::open(follower_dir.path(), config()).unwrap();
        prop_assert_eq!(follower.epoch_entries(), entries);
    }

    reconcile(&leader, &mut follower)?;
    let cut = follower.log_end_offset();
    prop_assert!(
        cut >= shared_end,
        "cut at {cut}, below the shared prefix ending at {shared_end}"
    );
    let kept = read_all(&follower);
    let leader_bytes = read_all(&leader);
    prop_assert!(
        leader_bytes.starts_with(&kept),
        "the follower is not a prefix of the leader after cutting at {cut}"
    );
    prop_assert!(kept.starts_with(&shared_bytes));

    replicate(&leader, &mut follower, h.fetch_bytes);
    prop_assert_eq!(read_all(&follower), leader_bytes);
    prop_assert_eq!(follower.epoch_entries(), leader.epoch_entries());
    drop(follower);
    let follower = Log::open(follower_dir.path(), config()).unwrap();
    prop_assert_eq!(follower.epoch_entries(), leader.epoch_entries());
    prop_assert_eq!(follower.log_end_offset(), leader.log_end_offset());
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn a_follower_reconciled_by_epoch_is_a_prefix_of_its_leader(h in history()) {
        run(&h)?;
    }
}

/// The KIP-279 example: the follower's latest epoch is one the leader never
/// saw, so it takes two requests.
#[test]
fn an_unknown_epoch_takes_a_second_request() {
    let h = History {
        prefix: vec![(0, 2), (1, 2)],
        follower_continues: vec![],
        later: vec![
            (false, vec![2, 2]),
            (true, vec![1]),
            (false, vec![3]),
            (true, vec![2, 1]),
        ],
        reopen: false,
        fetch_bytes: 1 << 20,
    };
    run(&h).unwrap();

    let leader_dir = tempfile::tempdir().unwrap();
    let follower_dir = tempfile::tempdir().unwrap();
    let mut leader = Log::open(leader_dir.path(), config()).unwrap();
    let mut follower = Log::open(follower_dir.path(), config()).unwrap();
    leader.append(&mut batch_of(2, "shared", 0), 1).unwrap();
    replicate(&leader, &mut follower, 1 << 20);
    follower.append(&mut batch_of(2, "f", 1), 2).unwrap();
    leader.append(&mut batch_of(1, "l", 2), 3).unwrap();
    follower.append(&mut batch_of(2, "f", 3), 4).unwrap();
    leader.append(&mut batch_of(1, "l", 4), 5).unwrap();
    // Asked for 4, the leader answers (3, 3): the follower has no epoch 3,
    // cuts to where its epoch 2 ended (4) and asks for 2: (1, 2).
    assert_eq!(leader.end_offset_for_epoch(4), (3, 3));
    assert_eq!(follower.end_offset_for_epoch(3), (2, 4));
    assert_eq!(reconcile(&leader, &mut follower).unwrap(), 2);
    assert_eq!(follower.log_end_offset(), 2);
}
