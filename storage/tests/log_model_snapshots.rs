//! Operation-sequence test of producer-state snapshots: random idempotent
//! and transactional appends, markers, rolls, clean and unclean reopens,
//! torn tails, truncations and DeleteRecords; after every reopen the state
//! the log derived (from a snapshot and the batches after it) must equal
//! what a full scan of a copy of the directory without snapshots derives.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::path::Path;

use proptest::prelude::*;
use wharf_protocol::batch::{
    build_batch_with, build_marker, BatchOptions, ControlMarker, NewRecord,
};
use wharf_storage::producer_state::ProducerEntry;
use wharf_storage::{AbortedTxn, Log, LogConfig};

#[derive(Debug, Clone)]
enum Op {
    /// A batch of 1 + n % 3 records from producer p % 4 (3: transactional).
    Append(u8, u8),
    /// A marker for the transactional producer: commit or abort.
    Marker(bool),
    Roll,
    /// Close (flush and snapshot), then reopen.
    CloseReopen,
    /// Drop without closing, then reopen.
    Reopen,
    /// Cut the last segment's last n % 20 + 1 bytes, then reopen.
    TornTail(u8),
    /// Truncate to end - n % 8.
    Truncate(u8),
    /// Move the log start to end - n % 8.
    DeleteRecords(u8),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (any::<u8>(), any::<u8>()).prop_map(|(p, n)| Op::Append(p, n)),
        2 => any::<bool>().prop_map(Op::Marker),
        1 => Just(Op::Roll),
        2 => Just(Op::CloseReopen),
        1 => Just(Op::Reopen),
        1 => any::<u8>().prop_map(Op::TornTail),
        1 => any::<u8>().prop_map(Op::Truncate),
        1 => any::<u8>().prop_map(Op::DeleteRecords),
    ]
}

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 300,
        index_interval_bytes: 100,
        ..LogConfig::default()
    }
}

type State = (Vec<(i64, ProducerEntry)>, Vec<AbortedTxn>);

fn state(log: &Log) -> State {
    let states = log.producer_states();
    let mut entries: Vec<_> = states.iter().map(|(id, e)| (id, e.clone())).collect();
    entries.sort_unstable_by_key(|(id, _)| *id);
    (entries, states.aborted().to_vec())
}

/// The state a full scan derives: the directory is copied without its
/// snapshots and opened.
fn full_scan(dir: &Path) -> State {
    let copy = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e != "snapshot") {
            std::fs::copy(&path, copy.path().join(path.file_name().unwrap())).unwrap();
        }
    }
    state(&Log::open(copy.path(), config()).unwrap())
}

fn reopen(dir: &Path, start: i64) -> Result<Log, TestCaseError> {
    let mut log = Log::open(dir, config()).unwrap();
    let expected = full_scan(dir);
    prop_assert_eq!(state(&log), expected);
    if start > log.log_start_offset() && start <= log.log_end_offset() {
        log.advance_log_start(start).unwrap();
    }
    Ok(log)
}

fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), config()).unwrap();
    // Next sequence per producer (a fresh epoch after a refusal).
    let mut seqs = [0i32; 4];
    let mut epochs = [0i16; 4];
    for op in ops {
        match op {
            Op::Append(p, n) => {
                let p = usize::from(p % 4);
                let n = usize::from(n % 3) + 1;
                let records: Vec<_> = (0..n)
                    .map(|_| NewRecord {
                        key: Some(&b"k"[..]),
                        value: Some(&b"value"[..]),
                        timestamp: 1_000,
                        headers: Vec::new(),
                    })
                    .collect();
                let options = BatchOptions {
                    transactional: p == 3,
                    producer_id: p as i64,
                    producer_epoch: epochs[p],
                    base_sequence: seqs[p],
                    ..BatchOptions::default()
                };
                let mut bytes = build_batch_with(0, &records, &options).unwrap();
                if log.append(&mut bytes, 0).is_ok() {
                    seqs[p] += n as i32;
                } else {
                    // Truncation forgot its last batches: start a new epoch.
                    epochs[p] += 1;
                    seqs[p] = 0;
                }
            }
            Op::Marker(commit) => {
                let marker = ControlMarker {
                    commit,
                    coordinator_epoch: 0,
                };
                let mut bytes = build_marker(3, epochs[3], marker, 1_000).unwrap();
                log.append(&mut bytes, 0).unwrap();
            }
            Op::Roll => log.roll().unwrap(),
            Op::CloseReopen => {
                log.close().unwrap();
                let start = log.log_start_offset();
                drop(log);
                log = reopen(dir.path(), start)?;
            }
            Op::Reopen => {
                let start = log.log_start_offset();
                drop(log);
                log = reopen(dir.path(), start)?;
            }
            Op::TornTail(n) => {
                let start = log.log_start_offset();
                let last = *log.segment_base_offsets().last().unwrap();
                drop(log);
                let path = dir.path().join(wharf_storage::format::log_file_name(last));
                let len = std::fs::metadata(&path).unwrap().len();
                let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
                file.set_len(len.saturating_sub(u64::from(n % 20) + 1))
                    .unwrap();
                drop(file);
                log = reopen(dir.path(), start)?;
            }
            Op::Truncate(n) => {
                let to = (log.log_end_offset() - i64::from(n % 8)).max(log.log_start_offset());
                log.truncate_to(to).unwrap();
            }
            Op::DeleteRecords(n) => {
                let to = (log.log_end_offset() - i64::from(n % 8)).max(log.log_start_offset());
                log.advance_log_start(to).unwrap();
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn state_opened_from_snapshots_matches_a_full_scan(ops in proptest::collection::vec(op(), 1..50)) {
        run(ops)?;
    }
}

/// Found by the proptest: a truncation to the log start reuses the first
/// segment, whose `.txnindex` must not survive into an open that trusts it.
#[test]
fn truncation_to_the_log_start_leaves_no_stale_aborted_transaction() {
    run(vec![
        Op::Append(3, 0),
        Op::Append(0, 0),
        Op::TornTail(0),
        Op::Marker(false),
        Op::Truncate(2),
        Op::Append(0, 1),
        Op::Roll,
        Op::CloseReopen,
    ])
    .unwrap();
}
