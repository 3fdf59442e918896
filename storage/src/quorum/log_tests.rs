//! Tests of the Raft log files: append, read, truncate, purge, recovery.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use super::*;
use crate::io::{arm, disarm, FailPoint, Fault, InjectedError, Trigger};
use crate::StorageError;

fn id(term: u64, index: u64) -> QuorumLogId {
    QuorumLogId {
        term,
        node_id: 1,
        index,
    }
}

fn records(term: u64, from: u64, to: u64) -> Vec<QuorumEntry> {
    (from..to)
        .map(|i| QuorumEntry {
            log_id: id(term, i),
            payload: QuorumPayload::Records(vec![i.to_be_bytes().to_vec(), vec![term as u8]]),
        })
        .collect()
}

fn indexes(log: &QuorumLog) -> Vec<u64> {
    log.entries(..).iter().map(|e| e.log_id.index).collect()
}

fn segment_files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".raftlog"))
        .collect();
    names.sort();
    names
}

#[test]
fn appended_entries_read_back_in_order_and_after_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = QuorumLog::open(dir.path(), DEFAULT_SEGMENT_BYTES).unwrap();
    assert_eq!(log.last_log_id(), None);
    let mut all = vec![QuorumEntry {
        log_id: QuorumLogId::default(),
        payload: QuorumPayload::Membership(QuorumMembership {
            configs: vec![vec![1]],
            nodes: vec![(1, "127.0.0.1:9093".into())],
        }),
    }];
    all.push(QuorumEntry {
        log_id: id(1, 1),
        payload: QuorumPayload::Blank,
    });
    all.extend(records(1, 2, 10));
    log.append(&all[..2]).unwrap();
    log.append(&all[2..]).unwrap();
    assert_eq!(log.entries(..), all);
    assert_eq!(log.entries(3..5), all[3..5].to_vec());
    assert_eq!(log.last_log_id(), Some(id(1, 9)));
    drop(log);
    let log = QuorumLog::open(dir.path(), DEFAULT_SEGMENT_BYTES).unwrap();
    assert_eq!(log.entries(..), all);
}

#[test]
fn an_append_that_does_not_follow_the_last_entry_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = QuorumLog::open(dir.path(), DEFAULT_SEGMENT_BYTES).unwrap();
    log.append(&records(1, 0, 3)).unwrap();
    let err = log.append(&records(1, 4, 5)).unwrap_err();
    assert!(
        matches!(
            err,
            StorageError::QuorumLogGap {
                expected: 3,
                got: 4
            }
        ),
        "{err}"
    );
    let mut gap = records(1, 3, 4);
    gap.extend(records(1, 5, 6));
    assert!(log.append(&gap).is_err());
    assert_eq!(indexes(&log), vec![0, 1, 2]);
}

#[test]
fn truncating_a_conflicting_suffix_survives_reopen_across_segments() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = QuorumLog::open(dir.path(), 64).unwrap();
    for i in 0..10 {
        log.append(&records(1, i, i + 1)).unwrap();
    }
    assert!(log.segment_count() > 2, "{} segments", log.segment_count());
    log.truncate(4).unwrap();
    assert_eq!(indexes(&log), vec![0, 1, 2, 3]);
    log.append(&records(2, 4, 6)).unwrap();
    drop(log);
    let log = QuorumLog::open(dir.path(), 64).unwrap();
    assert_eq!(indexes(&log), vec![0, 1, 2, 3, 4, 5]);
    assert_eq!(log.entries(4..).first().unwrap().log_id.term, 2);
    assert_eq!(log.entries(..4).last().unwrap().log_id.term, 1);
}

#[test]
fn truncating_everything_then_appending_works() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = QuorumLog::open(dir.path(), 64).unwrap();
    log.append(&records(1, 0, 5)).unwrap();
    log.truncate(0).unwrap();
    assert_eq!(log.last_log_id(), None);
    log.append(&records(3, 0, 2)).unwrap();
    drop(log);
    let log = QuorumLog::open(dir.path(), 64).unwrap();
    assert_eq!(log.last_log_id(), Some(id(3, 1)));
}

#[test]
fn purge_removes_whole_segments_and_is_remembered() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = QuorumLog::open(dir.path(), 64).unwrap();
    for i in 0..20 {
        log.append(&records(1, i, i + 1)).unwrap();
    }
    let before = segment_files(dir.path()).len();
    log.purge(id(1, 12)).unwrap();
    assert_eq!(indexes(&log), (13..20).collect::<Vec<_>>());
    assert_eq!(log.last_purged(), Some(id(1, 12)));
    let after = segment_files(dir.path()).len();
    assert!(after < before, "{before} -> {after} segments");
    drop(log);
    let mut log = QuorumLog::open(dir.path(), 64).unwrap();
    assert_eq!(log.last_purged(), Some(id(1, 12)));
    assert_eq!(indexes(&log), (13..20).collect::<Vec<_>>());
    log.append(&records(1, 20, 21)).unwrap();
    assert_eq!(log.last_log_id(), Some(id(1, 20)));
}

#[test]
fn purge_past_the_last_entry_empties_the_log_and_appends_resume_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = QuorumLog::open(dir.path(), 64).unwrap();
    log.append(&records(1, 0, 5)).unwrap();
    log.purge(id(2, 40)).unwrap();
    assert_eq!(log.entries(..), vec![]);
    assert_eq!(log.last_log_id(), Some(id(2, 40)));
    assert!(segment_files(dir.path()).is_empty());
    log.append(&records(2, 41, 43)).unwrap();
    drop(log);
    let log = QuorumLog::open(dir.path(), 64).unwrap();
    assert_eq!(indexes(&log), vec![41, 42]);
    assert_eq!(
        segment_files(dir.path()),
        vec![format!("{:020}.raftlog", 41)]
    );
}

#[test]
fn recovery_cuts_a_torn_tail_and_keeps_what_came_before() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = QuorumLog::open(dir.path(), DEFAULT_SEGMENT_BYTES).unwrap();
    log.append(&records(1, 0, 5)).unwrap();
    drop(log);
    let seg = dir.path().join(format!("{:020}.raftlog", 0));
    let full = std::fs::read(&seg).unwrap();
    // Half of a sixth frame, as a crash mid-write leaves it.
    let mut torn = full.clone();
    let mut extra = Vec::new();
    super::codec::encode_entry(&records(1, 5, 6)[0], &mut extra);
    torn.extend_from_slice(&extra[..extra.len() / 2]);
    std::fs::write(&seg, &torn).unwrap();
    let mut log = QuorumLog::open(dir.path(), DEFAULT_SEGMENT_BYTES).unwrap();
    assert_eq!(indexes(&log), vec![0, 1, 2, 3, 4]);
    assert_eq!(std::fs::metadata(&seg).unwrap().len(), full.len() as u64);
    log.append(&records(1, 5, 6)).unwrap();
    drop(log);
    // A flipped bit in the last frame: that frame is dropped.
    let mut bytes = std::fs::read(&seg).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x10;
    std::fs::write(&seg, &bytes).unwrap();
    let log = QuorumLog::open(dir.path(), DEFAULT_SEGMENT_BYTES).unwrap();
    assert_eq!(indexes(&log), vec![0, 1, 2, 3, 4]);
}

#[test]
fn damage_in_an_earlier_segment_is_reported_not_cut() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = QuorumLog::open(dir.path(), 64).unwrap();
    for i in 0..6 {
        log.append(&records(1, i, i + 1)).unwrap();
    }
    drop(log);
    let first = dir.path().join(segment_files(dir.path())[0].clone());
    let mut bytes = std::fs::read(&first).unwrap();
    bytes[10] ^= 0xff;
    std::fs::write(&first, &bytes).unwrap();
    let err = QuorumLog::open(dir.path(), 64).unwrap_err();
    assert!(matches!(err, StorageError::CorruptSegment { .. }), "{err}");
}

#[test]
fn a_failing_write_is_an_error_and_leaves_the_log_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = QuorumLog::open(dir.path(), DEFAULT_SEGMENT_BYTES).unwrap();
    log.append(&records(1, 0, 3)).unwrap();
    arm(Fault::new(
        FailPoint::QuorumLogWrite,
        InjectedError::NoSpace,
        Trigger::Always,
    )
    .under(dir.path()));
    let err = log.append(&records(1, 3, 6));
    disarm(Some(dir.path()));
    let err = err.unwrap_err();
    assert!(err.is_disk_full(), "{err}");
    assert_eq!(indexes(&log), vec![0, 1, 2]);
    log.append(&records(1, 3, 4)).unwrap();
    drop(log);
    let log = QuorumLog::open(dir.path(), DEFAULT_SEGMENT_BYTES).unwrap();
    assert_eq!(indexes(&log), vec![0, 1, 2, 3]);
}

#[test]
fn an_entry_too_large_to_recover_is_refused_before_writing() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = QuorumLog::open(dir.path(), DEFAULT_SEGMENT_BYTES).unwrap();
    log.append(&records(1, 0, 1)).unwrap();
    let huge = QuorumEntry {
        log_id: id(1, 1),
        payload: QuorumPayload::Records(vec![vec![0u8; 64 << 20]]),
    };
    let err = log.append(&[huge]).unwrap_err();
    assert!(matches!(err, StorageError::BatchTooLarge { .. }), "{err}");
    assert_eq!(
        log.size_bytes(),
        std::fs::metadata(dir.path().join(format!("{:020}.raftlog", 0)))
            .unwrap()
            .len()
    );
    log.append(&records(1, 1, 2)).unwrap();
    assert_eq!(indexes(&log), vec![0, 1]);
}

#[test]
fn a_failing_fsync_is_an_error_too() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = QuorumLog::open(dir.path(), DEFAULT_SEGMENT_BYTES).unwrap();
    log.append(&records(1, 0, 1)).unwrap();
    arm(Fault::new(
        FailPoint::QuorumLogSync,
        InjectedError::Eio,
        Trigger::Next(1),
    )
    .under(dir.path()));
    let err = log.append(&records(1, 1, 2));
    disarm(Some(dir.path()));
    assert!(err.is_err());
    assert_eq!(indexes(&log), vec![0]);
}

#[test]
fn faults_armed_for_partition_logs_leave_the_quorum_log_alone() {
    let dir = tempfile::tempdir().unwrap();
    arm(Fault::new(FailPoint::SegmentSync, InjectedError::Eio, Trigger::Always).under(dir.path()));
    arm(Fault::new(FailPoint::DirSync, InjectedError::Eio, Trigger::Always).under(dir.path()));
    let opened = QuorumLog::open(dir.path(), DEFAULT_SEGMENT_BYTES)
        .map(|mut log| log.append(&records(1, 0, 1)).map(|_| indexes(&log)));
    disarm(Some(dir.path()));
    assert_eq!(opened.unwrap().unwrap(), vec![0]);
}

mod model {
    //! Random sequences of append, truncate, purge and reopen, checked
    //! against a model after every step.

    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;

    #[derive(Debug, Clone)]
    enum Op {
        Append(u8),
        Truncate(u8),
        Purge(u8),
        Reopen,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (1u8..6).prop_map(Op::Append),
            1 => any::<u8>().prop_map(Op::Truncate),
            1 => any::<u8>().prop_map(Op::Purge),
            1 => Just(Op::Reopen),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn the_log_matches_a_model_through_appends_truncations_purges_and_reopens(
            ops in proptest::collection::vec(op(), 1..40)
        ) {
            let dir = tempfile::tempdir().unwrap();
            let mut log = QuorumLog::open(dir.path(), 96).unwrap();
            let mut model: BTreeMap<u64, QuorumEntry> = BTreeMap::new();
            let mut purged: Option<QuorumLogId> = None;
            let mut term = 1;
            for op in ops {
                let last = model.keys().next_back().copied().or(purged.map(|p| p.index));
                match op {
                    Op::Append(n) => {
                        let from = last.map_or(0, |l| l + 1);
                        let entries = records(term, from, from + u64::from(n));
                        log.append(&entries).unwrap();
                        for e in entries {
                            model.insert(e.log_id.index, e);
                        }
                    }
                    Op::Truncate(at) => {
                        if let (Some(first), Some(last)) = (model.keys().next().copied(), model.keys().next_back().copied()) {
                            let from = first + u64::from(at) % (last - first + 1);
                            log.truncate(from).unwrap();
                            model.split_off(&from);
                            term += 1;
                        }
                    }
                    Op::Purge(at) => {
                        let start = purged.map_or(0, |p| p.index + 1);
                        let upto = start + u64::from(at) % (last.map_or(0, |l| l + 1).saturating_sub(start) + 3);
                        let id = model.get(&upto).map_or(QuorumLogId { term, node_id: 1, index: upto }, |e| e.log_id);
                        log.purge(id).unwrap();
                        model = model.split_off(&(upto + 1));
                        purged = Some(id);
                    }
                    Op::Reopen => {
                        drop(log);
                        log = QuorumLog::open(dir.path(), 96).unwrap();
                    }
                }
                let expected: Vec<QuorumEntry> = model.values().cloned().collect();
                prop_assert_eq!(log.entries(..), expected);
                prop_assert_eq!(log.last_purged(), purged);
                prop_assert_eq!(
                    log.last_log_id(),
                    model.values().next_back().map(|e| e.log_id).or(purged)
                );
            }
            drop(log);
            let reopened = QuorumLog::open(dir.path(), 96).unwrap();
            prop_assert_eq!(reopened.entries(..), model.values().cloned().collect::<Vec<_>>());
        }
    }
}

#[test]
fn a_fresh_quorum_dir_gets_its_files_at_once_and_reopens_with_log_and_vote() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join(METADATA_LOG_DIR);
    let props = QuorumProperties {
        cluster_id: "c".into(),
        node_id: 1,
        voters: [(1, "h:1".to_string())].into(),
    };
    let mut opened = QuorumDir::open(&dir, DEFAULT_SEGMENT_BYTES, Some(&props)).unwrap();
    assert_eq!(read_quorum_properties(&dir).unwrap(), Some(props));
    assert_eq!(segment_files(&dir), vec![format!("{:020}.raftlog", 0)]);
    assert!(dir.join("raft-vote").exists());
    assert_eq!(opened.vote.vote(), None);
    opened.log.append(&records(1, 0, 2)).unwrap();
    let vote = QuorumVote {
        term: 1,
        node_id: 1,
        committed: true,
    };
    opened.vote.save(&vote).unwrap();
    drop(opened);
    let opened = QuorumDir::open(&dir, DEFAULT_SEGMENT_BYTES, None).unwrap();
    assert_eq!(indexes(&opened.log), vec![0, 1]);
    assert_eq!(opened.vote.vote(), Some(vote));
}

mod damage {
    //! Arbitrary damage to the files never panics: the last segment keeps a
    //! valid prefix, and a damaged vote or snapshot is an error.

    use proptest::prelude::*;

    use super::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        #[test]
        fn a_damaged_last_segment_recovers_to_a_prefix_of_what_was_written(
            cut in any::<prop::sample::Index>(),
            flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..4),
            tail in proptest::collection::vec(any::<u8>(), 0..64),
        ) {
            let dir = tempfile::tempdir().unwrap();
            let mut log = QuorumLog::open(dir.path(), DEFAULT_SEGMENT_BYTES).unwrap();
            let written = records(1, 0, 8);
            log.append(&written).unwrap();
            drop(log);
            let seg = dir.path().join(format!("{:020}.raftlog", 0));
            let mut bytes = std::fs::read(&seg).unwrap();
            bytes.truncate(cut.index(bytes.len() + 1));
            for (at, bits) in flips {
                if !bytes.is_empty() {
                    let i = at.index(bytes.len());
                    bytes[i] ^= bits;
                }
            }
            bytes.extend_from_slice(&tail);
            std::fs::write(&seg, &bytes).unwrap();
            let log = QuorumLog::open(dir.path(), DEFAULT_SEGMENT_BYTES).unwrap();
            let got = log.entries(..);
            prop_assert!(got.len() <= written.len());
            prop_assert_eq!(&got[..], &written[..got.len()]);
        }

        #[test]
        fn arbitrary_vote_and_snapshot_files_give_errors_not_panics(
            bytes in proptest::collection::vec(any::<u8>(), 0..200),
        ) {
            let dir = tempfile::tempdir().unwrap();
            std::fs::write(dir.path().join("raft-vote"), &bytes).unwrap();
            std::fs::write(dir.path().join("raft-snapshot"), &bytes).unwrap();
            std::fs::write(dir.path().join("raft-log-start"), &bytes).unwrap();
            std::fs::write(dir.path().join("raft-committed"), &bytes).unwrap();
            let _ = VoteFile::open(dir.path());
            let _ = read_snapshot(dir.path());
            let _ = read_committed(dir.path());
            let _ = QuorumLog::open(dir.path(), DEFAULT_SEGMENT_BYTES);
        }
    }
}
