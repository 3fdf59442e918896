//! What partition replication needs from the log: the leader epoch cache
//! and its checkpoint, and followers' appends of the leader's batches.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use wharf_protocol::batch::{self, build_batch_with, BatchOptions, ControlMarker, NewRecord};
use wharf_storage::format::leader_epoch_checkpoint_path;
use wharf_storage::{Log, LogConfig, StorageError};

fn small_segments() -> LogConfig {
    LogConfig {
        segment_bytes: 600,
        index_interval_bytes: 100,
        ..LogConfig::default()
    }
}

/// A batch of `n` records at offset 0 with the given options.
fn batch_with(n: usize, ts: i64, options: &BatchOptions) -> Vec<u8> {
    let values: Vec<Vec<u8>> = (0..n)
        .map(|i| format!("value-{ts}-{i}").into_bytes())
        .collect();
    let records: Vec<_> = values
        .iter()
        .enumerate()
        .map(|(i, v)| NewRecord {
            key: Some(b"key"),
            value: Some(v),
            timestamp: ts + i as i64,
            headers: Vec::new(),
        })
        .collect();
    build_batch_with(0, &records, options).unwrap()
}

fn batch_of(n: usize, ts: i64) -> Vec<u8> {
    batch_with(n, ts, &BatchOptions::default())
}

/// Every byte of the log from its start to its end.
fn read_all(log: &Log) -> Vec<u8> {
    let mut out = Vec::new();
    let mut offset = log.log_start_offset();
    while offset < log.log_end_offset() {
        let chunk = log.read(offset, 1 << 20, true).unwrap();
        if chunk.is_empty() {
            break;
        }
        let last = batch::batches(&chunk).last().unwrap().unwrap().0;
        offset = last.next_offset();
        out.extend_from_slice(&chunk);
    }
    out
}

/// Copies the leader's batches from the follower's log end on, a fetch of
/// at most `max_bytes` at a time, as a follower's fetcher would.
fn replicate(leader: &Log, follower: &mut Log, max_bytes: usize) {
    while follower.log_end_offset() < leader.log_end_offset() {
        let mut chunk = leader
            .read(follower.log_end_offset(), max_bytes, true)
            .unwrap()
            .to_vec();
        assert!(!chunk.is_empty());
        follower.append_replicated(&mut chunk).unwrap();
    }
}

/// (base offset, partition leader epoch) of every batch in `bytes`.
fn batch_epochs(bytes: &[u8]) -> Vec<(i64, i32)> {
    batch::batches(bytes)
        .map(|b| {
            let (h, _) = b.unwrap();
            (h.base_offset(), h.partition_leader_epoch())
        })
        .collect()
}

/// A batch placed at `base_offset` under leader epoch `epoch`, as a leader
/// would have written it.
fn placed(mut bytes: Vec<u8>, base_offset: i64, epoch: i32) -> Vec<u8> {
    batch::set_base_offset(&mut bytes, base_offset).unwrap();
    batch::set_partition_leader_epoch(&mut bytes, epoch).unwrap();
    bytes
}

/// A leader log with three epochs, a transaction aborted and one
/// committed, over several small segments.
fn leader_log(dir: &std::path::Path) -> Log {
    let mut log = Log::open(dir, small_segments()).unwrap();
    let txn = |seq| BatchOptions {
        transactional: true,
        producer_id: 7,
        producer_epoch: 0,
        base_sequence: seq,
        ..BatchOptions::default()
    };
    let idempotent = |seq| BatchOptions {
        producer_id: 9,
        producer_epoch: 2,
        base_sequence: seq,
        ..BatchOptions::default()
    };
    log.append(&mut batch_of(3, 1_000), 0).unwrap();
    log.append(&mut batch_with(2, 1_010, &txn(0)), 0).unwrap();
    log.append(&mut batch_with(2, 1_020, &idempotent(0)), 0)
        .unwrap();
    let abort = ControlMarker {
        commit: false,
        coordinator_epoch: 1,
    };
    let mut marker = batch::build_marker(7, 0, abort, 1_030).unwrap();
    log.append(&mut marker, 0).unwrap();
    log.append(&mut batch_of(4, 1_040), 2).unwrap();
    log.append(&mut batch_with(1, 1_050, &txn(2)), 2).unwrap();
    log.append(&mut batch_with(3, 1_060, &idempotent(2)), 5)
        .unwrap();
    let commit = ControlMarker {
        commit: true,
        coordinator_epoch: 1,
    };
    let mut marker = batch::build_marker(7, 0, commit, 1_070).unwrap();
    log.append(&mut marker, 5).unwrap();
    for i in 0..6 {
        log.append(&mut batch_of(2, 1_100 + i), 5).unwrap();
    }
    assert!(log.segment_count() > 2, "the test wants several segments");
    log
}

#[test]
fn appends_start_epochs_and_the_checkpoint_is_kafkas_format() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), LogConfig::default()).unwrap();
    assert_eq!(log.latest_epoch(), None);
    log.append(&mut batch_of(2, 0), -1).unwrap();
    assert_eq!(log.latest_epoch(), None, "-1 is no epoch");
    assert!(!leader_epoch_checkpoint_path(dir.path()).exists());
    log.append(&mut batch_of(2, 0), 3).unwrap();
    log.append(&mut batch_of(2, 0), 3).unwrap();
    log.append(&mut batch_of(1, 0), 1).unwrap(); // older: ignored
    log.append(&mut batch_of(2, 0), 4).unwrap();
    assert_eq!(log.epoch_entries(), vec![(3, 2), (4, 7)]);
    assert_eq!(log.latest_epoch(), Some(4));
    let text = std::fs::read_to_string(leader_epoch_checkpoint_path(dir.path())).unwrap();
    assert_eq!(text, "0\n2\n3 2\n4 7\n");
    assert_eq!(log.end_offset_for_epoch(4), (4, 9));
    assert_eq!(log.end_offset_for_epoch(3), (3, 7));
    assert_eq!(log.end_offset_for_epoch(2), (2, 2));
    assert_eq!(log.end_offset_for_epoch(5), (-1, -1));
    assert_eq!(log.end_offset_for_epoch(-1), (-1, -1));
}

#[test]
fn the_epoch_cache_survives_a_reopen_and_is_rebuilt_when_the_checkpoint_is_bad() {
    let dir = tempfile::tempdir().unwrap();
    let log = leader_log(dir.path());
    let entries = log.epoch_entries();
    assert_eq!(entries, vec![(0, 0), (2, 8), (5, 13)]);
    drop(log);
    let log = Log::open(dir.path(), small_segments()).unwrap();
    assert_eq!(log.epoch_entries(), entries);
    drop(log);

    let path = leader_epoch_checkpoint_path(dir.path());
    for bad in ["garbage", "0\n3\n0 0\n", "0\n2\n5 0\n2 8\n", ""] {
        std::fs::write(&path, bad).unwrap();
        let log = Log::open(dir.path(), small_segments()).unwrap();
        assert_eq!(log.epoch_entries(), entries, "{bad:?}");
        drop(log);
        // The rebuilt cache was written back.
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text, "0\n3\n0 0\n2 8\n5 13\n", "{bad:?}");
    }
    std::fs::remove_file(&path).unwrap();
    let log = Log::open(dir.path(), small_segments()).unwrap();
    assert_eq!(log.epoch_entries(), entries);
    assert!(path.exists());
}

#[test]
fn a_checkpoint_naming_offsets_past_the_recovered_end_is_cut_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), LogConfig::default()).unwrap();
    log.append(&mut batch_of(5, 0), 1).unwrap();
    drop(log);
    // As after a crash between the checkpoint write and the data write.
    let path = leader_epoch_checkpoint_path(dir.path());
    std::fs::write(&path, "0\n3\n1 0\n2 5\n3 9\n").unwrap();
    let log = Log::open(dir.path(), LogConfig::default()).unwrap();
    assert_eq!(log.epoch_entries(), vec![(1, 0)]);
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "0\n1\n1 0\n");
}

#[test]
fn truncation_and_log_start_moves_follow_the_cache() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = leader_log(dir.path());
    let path = leader_epoch_checkpoint_path(dir.path());
    log.truncate_to(13).unwrap();
    assert_eq!(log.epoch_entries(), vec![(0, 0), (2, 8)]);
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "0\n2\n0 0\n2 8\n");
    log.append(&mut batch_of(2, 5_000), 6).unwrap();
    assert_eq!(log.epoch_entries(), vec![(0, 0), (2, 8), (6, 13)]);

    log.advance_log_start(10).unwrap();
    assert_eq!(log.epoch_entries(), vec![(2, 10), (6, 13)]);
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        "0\n2\n2 10\n6 13\n"
    );
    drop(log);
    let mut log = Log::open(dir.path(), small_segments()).unwrap();
    assert_eq!(log.epoch_entries(), vec![(2, 10), (6, 13)]);

    // Truncating below the log start empties the log and the cache.
    log.advance_log_start(12).unwrap();
    log.truncate_to(11).unwrap();
    assert_eq!(log.log_end_offset(), 11);
    assert_eq!(log.epoch_entries(), vec![]);
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "0\n0\n");
    drop(log);
    let log = Log::open(dir.path(), small_segments()).unwrap();
    assert_eq!(log.epoch_entries(), vec![]);
}

#[test]
fn retention_lifts_the_first_epoch_to_the_new_log_start() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = leader_log(dir.path());
    let bases = log.segment_base_offsets();
    let size = log.size_bytes();
    let config = LogConfig {
        retention_bytes: i64::try_from(size).unwrap() / 2,
        retention_ms: -1,
        delete_retention_enabled: true,
        ..small_segments()
    };
    log.set_config(config);
    let outcome = log.apply_retention(0).unwrap();
    assert!(outcome.segments_deleted >= 1);
    let start = log.log_start_offset();
    assert_eq!(start, bases[outcome.segments_deleted]);
    let entries = log.epoch_entries();
    assert_eq!(entries[0].1, start, "{entries:?}");
    assert!(entries.windows(2).all(|w| w[0].1 <= w[1].1));
}

#[test]
fn a_follower_copies_the_leaders_batches_byte_for_byte() {
    let leader_dir = tempfile::tempdir().unwrap();
    let follower_dir = tempfile::tempdir().unwrap();
    let leader = leader_log(leader_dir.path());
    let mut follower = Log::open(follower_dir.path(), small_segments()).unwrap();
    replicate(&leader, &mut follower, 150);
    let bytes = read_all(&leader);
    assert_eq!(read_all(&follower), bytes);
    assert_eq!(follower.log_end_offset(), leader.log_end_offset());
    assert_eq!(follower.epoch_entries(), leader.epoch_entries());
    assert_eq!(
        batch_epochs(&read_all(&follower)),
        batch_epochs(&bytes),
        "epochs kept as sent"
    );
    // Producers and transactions as the leader has them.
    assert_eq!(
        follower.aborted_transactions(0, i64::MAX),
        leader.aborted_transactions(0, i64::MAX)
    );
    assert_eq!(follower.aborted_transactions(0, i64::MAX).len(), 1);
    assert_eq!(follower.last_stable_offset(), leader.last_stable_offset());
    for id in [7, 9] {
        let (f, l) = (
            follower.producer_states().get(id).unwrap(),
            leader.producer_states().get(id).unwrap(),
        );
        assert_eq!((f.epoch, f.last_offset), (l.epoch, l.last_offset), "{id}");
    }
    assert_eq!(follower.max_timestamp(), leader.max_timestamp());
    assert!(follower.segment_count() > 1, "the follower rolled too");

    drop(follower);
    let follower = Log::open(follower_dir.path(), small_segments()).unwrap();
    assert_eq!(read_all(&follower), bytes);
    assert_eq!(follower.epoch_entries(), leader.epoch_entries());
    assert_eq!(
        follower.aborted_transactions(0, i64::MAX),
        leader.aborted_transactions(0, i64::MAX)
    );
}

#[test]
fn replicated_appends_keep_gaps_and_empty_batches() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), small_segments()).unwrap();
    // A compacted leader's log: offsets 0..3, then a gap to 10, an empty
    // batch holding offsets 13..16 (its records cleaned away), then 20.
    let mut empty = build_batch_with(0, &[], &BatchOptions::default()).unwrap();
    empty[23..27].copy_from_slice(&2i32.to_be_bytes()); // lastOffsetDelta
    let crc = crc32c::crc32c(&empty[21..]);
    empty[17..21].copy_from_slice(&crc.to_be_bytes());
    let mut records = [
        placed(batch_of(3, 100), 0, 1),
        placed(batch_of(3, 110), 10, 1),
        placed(empty, 13, 2),
        placed(batch_of(2, 120), 20, 4),
    ]
    .concat();
    let sent = records.clone();
    let info = log.append_replicated(&mut records).unwrap();
    assert_eq!((info.base_offset, info.last_offset), (0, 21));
    assert_eq!(info.record_count, 8);
    assert_eq!(log.log_end_offset(), 22);
    assert_eq!(read_all(&log), sent);
    assert_eq!(log.epoch_entries(), vec![(1, 0), (2, 13), (4, 20)]);
    assert_eq!(log.end_offset_for_epoch(3), (2, 20));
    // The next part starts past the log end: accepted, the gap kept.
    let mut next = placed(batch_of(1, 130), 30, 4);
    log.append_replicated(&mut next).unwrap();
    assert_eq!(log.log_end_offset(), 31);
    assert_eq!(log.read(25, 1 << 20, true).unwrap().to_vec(), next);
    drop(log);
    let log = Log::open(dir.path(), small_segments()).unwrap();
    assert_eq!(log.log_end_offset(), 31);
    assert_eq!(log.epoch_entries(), vec![(1, 0), (2, 13), (4, 20)]);
}

#[test]
fn a_far_gap_starts_a_segment_named_after_the_batch() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), LogConfig::default()).unwrap();
    log.append_replicated(&mut placed(batch_of(2, 0), 0, 0))
        .unwrap();
    let far = 5 + i64::from(i32::MAX);
    let mut records = placed(batch_of(2, 0), far, 0);
    log.append_replicated(&mut records).unwrap();
    assert_eq!(log.segment_base_offsets(), vec![0, far]);
    assert_eq!(log.log_end_offset(), far + 2);
    assert_eq!(log.read(far, 1 << 20, true).unwrap().to_vec(), records);

    // From an empty log too.
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), LogConfig::default()).unwrap();
    let mut records = placed(batch_of(2, 0), far, 0);
    log.append_replicated(&mut records).unwrap();
    assert_eq!(log.segment_base_offsets(), vec![far]);
    drop(log);
    let log = Log::open(dir.path(), LogConfig::default()).unwrap();
    assert_eq!(log.log_end_offset(), far + 2);
    assert_eq!(log.read(far, 1 << 20, true).unwrap().to_vec(), records);
}

#[test]
fn replicated_appends_below_the_log_end_or_out_of_order_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), LogConfig::default()).unwrap();
    log.append_replicated(&mut placed(batch_of(3, 0), 0, 1))
        .unwrap();
    let err = log
        .append_replicated(&mut placed(batch_of(3, 0), 2, 1))
        .unwrap_err();
    assert!(
        matches!(
            err,
            StorageError::ReplicaBelowLogEnd {
                base_offset: 2,
                log_end: 3
            }
        ),
        "{err}"
    );
    let mut overlapping = [placed(batch_of(2, 0), 3, 1), placed(batch_of(2, 0), 4, 1)].concat();
    let err = log.append_replicated(&mut overlapping).unwrap_err();
    assert!(
        matches!(err, StorageError::ReplicaOffsetsNotIncreasing { .. }),
        "{err}"
    );
    let mut negative = placed(batch_of(1, 0), -4, 1);
    assert!(log.append_replicated(&mut negative).is_err());
    // A corrupt batch is refused whole.
    let mut corrupt = [placed(batch_of(2, 0), 3, 1), placed(batch_of(2, 0), 5, 1)].concat();
    let last = corrupt.len() - 1;
    corrupt[last] ^= 0xFF;
    assert!(matches!(
        log.append_replicated(&mut corrupt),
        Err(StorageError::CorruptBatch(_))
    ));
    assert!(matches!(
        log.append_replicated(&mut []),
        Err(StorageError::EmptyAppend)
    ));
    // Nothing of any of them was written, and the log still accepts.
    assert_eq!(log.log_end_offset(), 3);
    assert_eq!(log.epoch_entries(), vec![(1, 0)]);
    log.append_replicated(&mut placed(batch_of(2, 0), 3, 2))
        .unwrap();
    assert_eq!(log.epoch_entries(), vec![(1, 0), (2, 3)]);
}

#[test]
fn replicated_appends_skip_the_leaders_checks_on_producers_and_keys() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        compact: true,
        max_batch_bytes: 64,
        ..LogConfig::default()
    };
    let mut log = Log::open(dir.path(), config).unwrap();
    let idempotent = |epoch, seq| BatchOptions {
        producer_id: 3,
        producer_epoch: epoch,
        base_sequence: seq,
        ..BatchOptions::default()
    };
    // Out of sequence, an older epoch, a repeated batch, keyless records,
    // and bigger than max_batch_bytes: the leader took them all.
    let keyless = NewRecord {
        key: None,
        value: Some(b"no key here"),
        timestamp: 5,
        headers: Vec::new(),
    };
    let mut records = [
        placed(batch_with(2, 0, &idempotent(4, 10)), 0, 0),
        placed(batch_with(2, 0, &idempotent(4, 10)), 2, 0),
        placed(batch_with(1, 0, &idempotent(3, 50)), 4, 0),
        placed(
            build_batch_with(0, &[keyless], &BatchOptions::default()).unwrap(),
            5,
            0,
        ),
    ]
    .concat();
    let info = log.append_replicated(&mut records).unwrap();
    assert!(!info.duplicate);
    assert_eq!(log.log_end_offset(), 6);
    let entry = log.producer_states().get(3).unwrap();
    assert_eq!((entry.epoch, entry.last_offset), (3, 4));
}

#[test]
fn a_truncated_follower_takes_a_different_tail() {
    let leader_dir = tempfile::tempdir().unwrap();
    let follower_dir = tempfile::tempdir().unwrap();
    let mut leader = Log::open(leader_dir.path(), small_segments()).unwrap();
    let mut follower = Log::open(follower_dir.path(), small_segments()).unwrap();
    for i in 0..4 {
        leader.append(&mut batch_of(2, i), 1).unwrap();
    }
    replicate(&leader, &mut follower, 1 << 20);
    // The follower led epoch 2 for a while; the leader never saw it.
    for i in 0..5 {
        follower.append(&mut batch_of(3, 100 + i), 2).unwrap();
    }
    // The leader moved on in epoch 3.
    for i in 0..6 {
        leader.append(&mut batch_of(1, 200 + i), 3).unwrap();
    }
    assert_eq!(follower.epoch_entries(), vec![(1, 0), (2, 8)]);
    let (epoch, end) = leader.end_offset_for_epoch(follower.latest_epoch().unwrap());
    assert_eq!((epoch, end), (1, 8));
    let (own_epoch, own_end) = follower.end_offset_for_epoch(epoch);
    assert_eq!((own_epoch, own_end), (1, 8));
    follower.truncate_to(end.min(own_end)).unwrap();
    assert_eq!(follower.epoch_entries(), vec![(1, 0)]);
    // The divergent tail is refused until the truncation: now it fits.
    replicate(&leader, &mut follower, 200);
    assert_eq!(read_all(&follower), read_all(&leader));
    assert_eq!(follower.epoch_entries(), leader.epoch_entries());
    drop(follower);
    let follower = Log::open(follower_dir.path(), small_segments()).unwrap();
    assert_eq!(read_all(&follower), read_all(&leader));
    assert_eq!(follower.epoch_entries(), vec![(1, 0), (3, 8)]);
}

#[test]
fn an_offline_log_refuses_replicated_appends() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), LogConfig::default()).unwrap();
    log.take_offline(&"test");
    let err = log
        .append_replicated(&mut placed(batch_of(1, 0), 0, 0))
        .unwrap_err();
    assert!(matches!(err, StorageError::LogOffline { .. }), "{err}");
}

#[test]
fn delete_removes_the_checkpoint_with_the_directory() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("topic-0");
    let mut log = Log::open(&dir, LogConfig::default()).unwrap();
    log.append(&mut batch_of(1, 0), 2).unwrap();
    assert!(leader_epoch_checkpoint_path(&dir).exists());
    log.delete().unwrap();
    assert!(!dir.exists());
}

#[test]
fn a_fetch_bigger_than_a_segment_is_written_over_several() {
    let leader_dir = tempfile::tempdir().unwrap();
    let follower_dir = tempfile::tempdir().unwrap();
    let mut leader = Log::open(leader_dir.path(), LogConfig::default()).unwrap();
    for i in 0..20 {
        leader.append(&mut batch_of(3, i), (i / 7) as i32).unwrap();
    }
    assert_eq!(leader.segment_count(), 1);
    let mut follower = Log::open(follower_dir.path(), small_segments()).unwrap();
    let mut everything = read_all(&leader);
    assert!(everything.len() > 600);
    let info = follower.append_replicated(&mut everything).unwrap();
    assert_eq!(info.last_offset, 59);
    assert!(follower.segment_count() > 2);
    assert_eq!(read_all(&follower), read_all(&leader));
    assert_eq!(follower.epoch_entries(), vec![(0, 0), (1, 21), (2, 42)]);
    // A single batch larger than a segment cannot be written.
    let big = placed(batch_of(40, 0), 60, 2);
    assert!(big.len() > 600);
    let err = follower.append_replicated(&mut big.clone()).unwrap_err();
    assert!(matches!(err, StorageError::BatchTooLarge { .. }), "{err}");
}

#[test]
fn a_failed_write_leaves_no_epoch_past_the_log_end() {
    use wharf_storage::io::{self, FailPoint, Fault, InjectedError, Trigger};
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), LogConfig::default()).unwrap();
    log.append(&mut batch_of(2, 0), 1).unwrap();
    io::arm(
        Fault::new(
            FailPoint::SegmentWrite,
            InjectedError::NoSpace,
            Trigger::Always,
        )
        .under(dir.path()),
    );
    let appended = log.append(&mut batch_of(2, 0), 2);
    let replicated = log.append_replicated(&mut placed(batch_of(2, 0), 2, 3));
    io::disarm(Some(dir.path()));
    assert!(appended.unwrap_err().is_disk_full());
    assert!(replicated.unwrap_err().is_disk_full());
    assert!(log.offline_reason().is_none());
    assert_eq!(log.epoch_entries(), vec![(1, 0)]);
    assert_eq!(log.end_offset_for_epoch(1), (1, 2));
    drop(log);
    let log = Log::open(dir.path(), LogConfig::default()).unwrap();
    assert_eq!(log.epoch_entries(), vec![(1, 0)]);
}

#[test]
fn a_failed_write_into_a_segment_named_past_the_log_end_moves_the_end_there() {
    use wharf_storage::io::{self, FailPoint, Fault, InjectedError, Trigger};
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), LogConfig::default()).unwrap();
    log.append_replicated(&mut placed(batch_of(2, 0), 0, 0))
        .unwrap();
    let far = 10 + i64::from(i32::MAX);
    io::arm(
        Fault::new(
            FailPoint::SegmentWrite,
            InjectedError::NoSpace,
            Trigger::Always,
        )
        .under(dir.path()),
    );
    let failed = log.append_replicated(&mut placed(batch_of(2, 0), far, 1));
    io::disarm(Some(dir.path()));
    assert!(failed.unwrap_err().is_disk_full());
    assert!(log.offline_reason().is_none());
    assert_eq!(log.segment_base_offsets(), vec![0, far]);
    assert_eq!(log.log_end_offset(), far);
    assert_eq!(log.epoch_entries(), vec![(0, 0)]);
    // Both kinds of append go on from there, and a reopen agrees.
    log.append(&mut batch_of(1, 0), 1).unwrap();
    log.append_replicated(&mut placed(batch_of(1, 0), far + 1, 1))
        .unwrap();
    assert_eq!(log.log_end_offset(), far + 2);
    drop(log);
    let log = Log::open(dir.path(), LogConfig::default()).unwrap();
    assert_eq!(log.log_end_offset(), far + 2);
    assert_eq!(log.epoch_entries(), vec![(0, 0), (1, far)]);
}

#[test]
fn a_deposed_leaders_unused_epoch_goes_when_it_truncates_at_its_end() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), LogConfig::default()).unwrap();
    log.append(&mut batch_of(3, 1_000), 4).unwrap();
    // Elected at epoch 6, deposed before its first append.
    log.assign_epoch(6, 3).unwrap();
    assert_eq!(log.epoch_entries(), vec![(4, 0), (6, 3)]);
    assert_eq!(log.end_offset_for_epoch(4), (4, 3));
    // The new leader reports epoch 4 ending at 3: nothing to cut but the
    // epoch this log never wrote under.
    log.truncate_to(3).unwrap();
    assert_eq!(log.log_end_offset(), 3);
    assert_eq!(log.epoch_entries(), vec![(4, 0)]);
    assert_eq!(log.latest_epoch(), Some(4));
    drop(log);
    let log = Log::open(dir.path(), LogConfig::default()).unwrap();
    assert_eq!(log.epoch_entries(), vec![(4, 0)]);
}

#[test]
fn a_follower_that_lost_its_leaders_start_restarts_at_the_leaders_log_start() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), LogConfig::default()).unwrap();
    log.append(&mut batch_of(3, 1_000), 2).unwrap();
    log.truncate_fully_and_start_at(50).unwrap();
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (50, 50));
    assert!(log.epoch_entries().is_empty());
    log.append_replicated(&mut placed(batch_of(2, 2_000), 50, 3))
        .unwrap();
    assert_eq!(log.log_end_offset(), 52);
    assert_eq!(log.epoch_entries(), vec![(3, 50)]);
    assert!(log.truncate_fully_and_start_at(-1).is_err());
}
