//! Producer-state snapshots: opening from one derives what a full scan does.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::collections::BTreeMap;
use std::path::Path;

use wharf_protocol::batch::{
    build_batch_with, build_marker, BatchOptions, ControlMarker, NewRecord,
};

use super::*;
use crate::log::{Log, LogConfig};
use crate::producer_state::AbortedTxn;

/// A batch of `n` records from producer `pid` at `epoch` from `seq`.
fn batch(pid: i64, epoch: i16, seq: i32, n: usize, transactional: bool) -> Vec<u8> {
    let records: Vec<_> = (0..n)
        .map(|_| NewRecord {
            key: Some(b"k"),
            value: Some(b"value"),
            timestamp: 1_000,
            headers: Vec::new(),
        })
        .collect();
    let options = BatchOptions {
        transactional,
        producer_id: pid,
        producer_epoch: epoch,
        base_sequence: seq,
        ..BatchOptions::default()
    };
    build_batch_with(0, &records, &options).unwrap()
}

fn marker(log: &mut Log, pid: i64, epoch: i16, commit: bool) {
    let m = ControlMarker {
        commit,
        coordinator_epoch: 0,
    };
    log.append(&mut build_marker(pid, epoch, m, 1_000).unwrap(), 0)
        .unwrap();
}

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 400,
        index_interval_bytes: 100,
        ..LogConfig::default()
    }
}

type State = (Vec<(i64, ProducerEntry)>, Vec<AbortedTxn>);

fn state_of(states: &ProducerStates) -> State {
    let mut entries: Vec<_> = states.iter().map(|(id, e)| (id, e.clone())).collect();
    entries.sort_unstable_by_key(|(id, _)| *id);
    (entries, states.aborted().to_vec())
}

/// Every `.txnindex` file's name and bytes.
fn txn_indexes(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_name().to_str().unwrap().ends_with(".txnindex"))
        .map(|e| {
            (
                e.file_name().to_str().unwrap().to_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect()
}

/// What a scan of every batch derives (and the `.txnindex` files it leaves).
fn full_scan(log: &Log) -> (State, BTreeMap<String, Vec<u8>>) {
    let states =
        crate::recovery::producer_states(&log.dir, &log.older, &log.active, false).unwrap();
    (state_of(&states), txn_indexes(&log.dir))
}

/// Idempotent producers (one with an epoch bump), aborted, committed and
/// open transactions over many small segments; producers 1 and 2 only
/// wrote to segments that retention then deletes, producer 3 wrote its
/// last batches on both sides of the new log start.
fn busy_log(dir: &Path) -> Log {
    let mut log = Log::open(dir, config()).unwrap();
    log.append(&mut batch(1, 0, 0, 2, false), 0).unwrap();
    log.append(&mut batch(2, 0, 0, 1, true), 0).unwrap();
    marker(&mut log, 2, 0, false);
    log.append(&mut batch(1, 0, 2, 1, false), 0).unwrap();
    log.roll().unwrap();
    for seq in 0..12 {
        log.append(&mut batch(3, 0, seq, 1, false), 0).unwrap();
    }
    log.roll().unwrap();
    log.append(&mut batch(3, 0, 12, 1, false), 0).unwrap();
    log.append(&mut batch(3, 0, 13, 1, false), 0).unwrap();
    // Deletes every segment before the last roll.
    log.advance_log_start(log.log_end_offset() - 1).unwrap();
    for round in 0..4 {
        log.append(&mut batch(4, 0, round * 2, 2, true), 0).unwrap();
        log.append(&mut batch(5, 0, round, 1, true), 0).unwrap();
        marker(&mut log, 4, 0, round % 2 == 1);
        marker(&mut log, 5, 0, round % 2 == 0);
    }
    log.append(&mut batch(7, 0, 0, 2, false), 0).unwrap();
    log.append(&mut batch(7, 1, 0, 3, false), 0).unwrap();
    log.append(&mut batch(6, 2, 0, 1, true), 0).unwrap();
    log.append(&mut batch(6, 2, 1, 1, true), 0).unwrap();
    log
}

#[test]
fn every_kept_snapshot_resumed_derives_what_a_full_scan_does() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = busy_log(dir.path());
    assert!(log.segment_count() > 4, "the workload spans many segments");
    log.roll().unwrap();
    log.append(&mut batch(6, 2, 2, 1, true), 0).unwrap();
    let live = state_of(&log.producers);
    log.close().unwrap();
    drop(log);
    let mut log = Log::open(dir.path(), config()).unwrap();
    // Batches after the shutdown snapshot, in the same segment.
    marker(&mut log, 6, 2, false);
    log.append(&mut batch(7, 1, 3, 1, false), 0).unwrap();
    let live_after = state_of(&log.producers);
    drop(log);

    let log = Log::open(dir.path(), config()).unwrap();
    let (scanned, scanned_indexes) = full_scan(&log);
    assert_eq!(state_of(&log.producers), scanned);
    let offsets = list(dir.path()).unwrap();
    assert_eq!(offsets.len(), SNAPSHOTS_KEPT);
    let bases = log.segment_base_offsets();
    assert!(
        offsets.iter().any(|o| !bases.contains(o)),
        "one snapshot lies inside a segment: {offsets:?} {bases:?}"
    );
    for offset in offsets {
        let resumed =
            crate::recovery::resume_from_snapshot(&log.dir, &log.older, &log.active, offset)
                .unwrap()
                .unwrap_or_else(|| panic!("the snapshot at {offset} is usable"));
        assert_eq!(state_of(&resumed), scanned, "snapshot at {offset}");
        assert_eq!(
            txn_indexes(dir.path()),
            scanned_indexes,
            "snapshot at {offset}"
        );
    }
    // The scan agrees with the live state on every producer still in the log.
    let (entries, aborted) = &scanned;
    assert!(entries.iter().all(|(id, _)| *id >= 3));
    assert!(aborted.iter().all(|a| a.producer_id != 2));
    assert_eq!(entries.len(), 5);
    for (id, entry) in entries {
        let before = &live_after.0.iter().find(|(i, _)| i == id).unwrap().1;
        if *id == 3 {
            // Only its batches still in the log are remembered (the live
            // log remembered all five until it was reopened).
            let before = &live.0.iter().find(|(i, _)| i == id).unwrap().1;
            assert_eq!(before.batches.len(), 5);
            assert_eq!(entry.batches.len(), 2);
            assert!(before
                .batches
                .iter()
                .rev()
                .zip(entry.batches.iter().rev())
                .all(|(a, b)| a == b));
        } else {
            assert_eq!(before, entry, "producer {id}");
        }
    }
    assert!(aborted.iter().any(|a| a.producer_id == 6));
    assert!(live.0.iter().any(|(id, _)| *id == 1), "producer 1 was live");
    assert_eq!(
        entries
            .iter()
            .find(|(id, _)| *id == 6)
            .unwrap()
            .1
            .txn_first_offset,
        None
    );
}

#[test]
fn a_corrupt_snapshot_is_ignored_for_an_older_one_then_a_full_scan() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = busy_log(dir.path());
    log.close().unwrap();
    drop(log);
    let offsets = list(dir.path()).unwrap();
    let newest = *offsets.last().unwrap();
    let path = format::snapshot_path(dir.path(), newest);
    let mut bytes = std::fs::read(&path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x40;
    std::fs::write(&path, &bytes).unwrap();
    assert!(
        load(dir.path(), newest).is_none(),
        "the checksum catches a flipped bit"
    );

    let log = Log::open(dir.path(), config()).unwrap();
    assert_eq!(state_of(&log.producers), full_scan(&log).0);
    drop(log);

    for offset in &offsets {
        std::fs::write(format::snapshot_path(dir.path(), *offset), b"\0\x01short").unwrap();
    }
    let log = Log::open(dir.path(), config()).unwrap();
    assert_eq!(state_of(&log.producers), full_scan(&log).0);
    assert!(!log.producers.is_empty());
}

#[test]
fn truncation_below_a_snapshot_deletes_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = busy_log(dir.path());
    log.close().unwrap();
    let end = log.log_end_offset();
    assert_eq!(list(dir.path()).unwrap().last(), Some(&end));
    let cut = end - 6;
    log.truncate_to(cut).unwrap();
    let left = list(dir.path()).unwrap();
    assert!(left.iter().all(|o| *o <= log.log_end_offset()), "{left:?}");
    // Different batches now take the truncated offsets, past the old end.
    log.append(&mut batch(8, 0, 0, 4, false), 0).unwrap();
    log.append(&mut batch(8, 0, 4, 4, false), 0).unwrap();
    assert!(log.log_end_offset() > end);
    let live = state_of(&log.producers);
    drop(log);
    let log = Log::open(dir.path(), config()).unwrap();
    let (scanned, _) = full_scan(&log);
    assert_eq!(state_of(&log.producers), scanned);
    assert_eq!(state_of(&log.producers), live);
}

#[test]
fn a_snapshot_above_the_recovered_log_end_is_deleted_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = busy_log(dir.path());
    log.close().unwrap();
    let end = log.log_end_offset();
    let active = log.active.base_offset();
    drop(log);
    // A crash lost the tail of the active segment.
    let path = format::log_path(dir.path(), active);
    let len = std::fs::metadata(&path).unwrap().len();
    let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    file.set_len(len - 10).unwrap();
    let log = Log::open(dir.path(), config()).unwrap();
    assert!(log.log_end_offset() < end);
    assert!(!format::snapshot_path(dir.path(), end).exists());
    assert_eq!(state_of(&log.producers), full_scan(&log).0);
}

#[test]
fn snapshot_round_trips_and_refuses_damage() {
    let mut states = ProducerStates::default();
    let dir = tempfile::tempdir().unwrap();
    let mut log = busy_log(dir.path());
    std::mem::swap(&mut states, &mut log.producers);
    let (entries, _) = state_of(&states);
    let refs: Vec<_> = entries.iter().map(|(id, e)| (*id, e)).collect();
    let bytes = format::encode_producer_snapshot(42, &refs);
    assert_eq!(&bytes[..2], &1i16.to_be_bytes());
    assert_eq!(
        format::decode_producer_snapshot(&bytes),
        Some((42, entries))
    );
    for cut in [0, 10, bytes.len() - 1] {
        assert!(format::decode_producer_snapshot(&bytes[..cut]).is_none());
    }
    let mut longer = bytes.clone();
    longer.push(0);
    assert!(format::decode_producer_snapshot(&longer).is_none());
}

#[test]
fn a_failed_transaction_index_write_stops_snapshots_until_a_full_scan() {
    use crate::io::{arm, disarm, FailPoint, Fault, InjectedError, Trigger};
    let dir = tempfile::tempdir().unwrap();
    let mut log = busy_log(dir.path());
    log.roll().unwrap();
    assert!(!list(dir.path()).unwrap().is_empty());
    let index = format::txn_index_path(dir.path(), log.active.base_offset());
    arm(Fault::new(FailPoint::AuxWrite, InjectedError::Eio, Trigger::Always).under(&index));
    log.append(&mut batch(6, 2, 2, 1, true), 0).unwrap();
    marker(&mut log, 6, 2, false);
    disarm(Some(&index));
    assert!(!index.exists(), "the abort did not reach its index");
    assert!(list(dir.path()).unwrap().is_empty());
    log.roll().unwrap();
    log.close().unwrap();
    assert!(
        list(dir.path()).unwrap().is_empty(),
        "no snapshot until reopened"
    );
    let live = state_of(&log.producers);
    drop(log);
    let log = Log::open(dir.path(), config()).unwrap();
    let rebuilt = format::TxnIndexEntry::decode_all(&std::fs::read(&index).unwrap()).unwrap();
    assert_eq!(rebuilt.len(), 1, "the full scan rebuilt the index");
    assert_eq!(rebuilt[0].producer_id, 6);
    let start = log.log_start_offset();
    let live_aborted: Vec<_> = live
        .1
        .into_iter()
        .filter(|a| a.last_offset >= start)
        .collect();
    assert_eq!(log.producers.aborted(), &live_aborted[..]);
}
