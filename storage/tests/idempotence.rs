//! Idempotent producers: duplicate batches, sequence gaps, epochs, and the
//! state rebuilt when a log is reopened.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::fs::OpenOptions;

use wharf_protocol::batch::{build_batch_with, BatchOptions, NewRecord};
use wharf_protocol::compression::Compression;
use wharf_storage::format::log_file_name;
use wharf_storage::{Log, LogConfig, StorageError};

/// A batch of `n` records from producer `pid` at `epoch`, starting at `seq`.
fn batch(pid: i64, epoch: i16, seq: i32, n: usize) -> Vec<u8> {
    keyed_batch(pid, epoch, seq, &vec![&b"k"[..]; n])
}

/// A batch from producer `pid` with one record per key.
fn keyed_batch(pid: i64, epoch: i16, seq: i32, keys: &[&[u8]]) -> Vec<u8> {
    let n = keys.len();
    let values: Vec<Vec<u8>> = (0..n).map(|i| format!("v{seq}-{i}").into_bytes()).collect();
    let records: Vec<_> = values
        .iter()
        .zip(keys)
        .enumerate()
        .map(|(i, (v, k))| NewRecord {
            key: Some(k),
            value: Some(v),
            timestamp: 1_000 + i as i64,
            headers: Vec::new(),
        })
        .collect();
    let options = BatchOptions {
        compression: Compression::Lz4,
        producer_id: pid,
        producer_epoch: epoch,
        base_sequence: seq,
        ..BatchOptions::default()
    };
    build_batch_with(0, &records, &options).unwrap()
}

fn small_segments() -> LogConfig {
    LogConfig {
        segment_bytes: 400,
        index_interval_bytes: 100,
        ..LogConfig::default()
    }
}

#[test]
fn retried_batch_is_acknowledged_with_its_original_offsets_and_not_written() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), LogConfig::default()).unwrap();
    let first = log.append(&mut batch(7, 0, 0, 3), 0).unwrap();
    let second = log.append(&mut batch(7, 0, 3, 2), 0).unwrap();
    assert_eq!((second.base_offset, second.last_offset), (3, 4));
    let again = log.append(&mut batch(7, 0, 0, 3), 0).unwrap();
    assert!(again.duplicate);
    assert_eq!((again.base_offset, again.last_offset), (0, 2));
    assert_eq!(first.base_offset, again.base_offset);
    let again = log.append(&mut batch(7, 0, 3, 2), 0).unwrap();
    assert!(again.duplicate);
    assert_eq!(again.base_offset, 3);
    assert_eq!(log.log_end_offset(), 5);
    // The next batch still follows on.
    assert_eq!(
        log.append(&mut batch(7, 0, 5, 1), 0).unwrap().base_offset,
        5
    );
}

#[test]
fn only_the_last_five_batches_are_remembered() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), LogConfig::default()).unwrap();
    for seq in 0..6 {
        log.append(&mut batch(1, 0, seq, 1), 0).unwrap();
    }
    // seq 1..=5 are remembered; seq 0 is too old and is neither a
    // duplicate nor in sequence.
    let dup = log.append(&mut batch(1, 0, 1, 1), 0).unwrap();
    assert!(dup.duplicate);
    assert_eq!(dup.base_offset, 1);
    let err = log.append(&mut batch(1, 0, 0, 1), 0).unwrap_err();
    assert!(
        matches!(err, StorageError::OutOfOrderSequence { .. }),
        "{err}"
    );
    assert_eq!(log.log_end_offset(), 6);
}

#[test]
fn sequence_gap_is_refused_as_out_of_order() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), LogConfig::default()).unwrap();
    log.append(&mut batch(3, 0, 0, 2), 0).unwrap();
    let err = log.append(&mut batch(3, 0, 3, 1), 0).unwrap_err();
    assert!(
        matches!(
            err,
            StorageError::OutOfOrderSequence {
                sequence: 3,
                expected: 2,
                ..
            }
        ),
        "{err}"
    );
    // A batch overlapping the previous one but not equal to it is no duplicate.
    let err = log.append(&mut batch(3, 0, 1, 1), 0).unwrap_err();
    assert!(
        matches!(err, StorageError::OutOfOrderSequence { .. }),
        "{err}"
    );
    assert_eq!(log.log_end_offset(), 2);
    // Other producers are unaffected.
    assert_eq!(
        log.append(&mut batch(4, 0, 0, 1), 0).unwrap().base_offset,
        2
    );
}

#[test]
fn older_epoch_is_fenced_and_new_epoch_must_start_at_zero() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), LogConfig::default()).unwrap();
    log.append(&mut batch(9, 1, 0, 2), 0).unwrap();
    let err = log.append(&mut batch(9, 0, 2, 1), 0).unwrap_err();
    assert!(
        matches!(
            err,
            StorageError::InvalidProducerEpoch {
                epoch: 0,
                current: 1,
                ..
            }
        ),
        "{err}"
    );
    let err = log.append(&mut batch(9, 2, 5, 1), 0).unwrap_err();
    assert!(
        matches!(err, StorageError::OutOfOrderSequence { expected: 0, .. }),
        "{err}"
    );
    assert_eq!(
        log.append(&mut batch(9, 2, 0, 1), 0).unwrap().base_offset,
        2
    );
    // The old epoch is now fenced too.
    let err = log.append(&mut batch(9, 1, 2, 1), 0).unwrap_err();
    assert!(
        matches!(err, StorageError::InvalidProducerEpoch { .. }),
        "{err}"
    );
}

#[test]
fn unknown_producer_may_start_at_any_sequence_as_in_kafka() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), LogConfig::default()).unwrap();
    assert_eq!(
        log.append(&mut batch(5, 0, 42, 2), 0).unwrap().base_offset,
        0
    );
    assert_eq!(
        log.append(&mut batch(5, 0, 44, 1), 0).unwrap().base_offset,
        2
    );
}

#[test]
fn sequences_wrap_at_i32_max() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), LogConfig::default()).unwrap();
    // Records i32::MAX - 1, i32::MAX, 0: the batch's last sequence wraps.
    log.append(&mut batch(2, 0, i32::MAX - 1, 3), 0).unwrap();
    let dup = log.append(&mut batch(2, 0, i32::MAX - 1, 3), 0).unwrap();
    assert!(dup.duplicate);
    assert_eq!(
        log.append(&mut batch(2, 0, 1, 1), 0).unwrap().base_offset,
        3
    );
}

#[test]
fn producers_without_an_id_are_never_deduplicated() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), LogConfig::default()).unwrap();
    log.append(&mut batch(-1, -1, -1, 2), 0).unwrap();
    let again = log.append(&mut batch(-1, -1, -1, 2), 0).unwrap();
    assert!(!again.duplicate);
    assert_eq!(again.base_offset, 2);
    assert!(log.producer_states().is_empty());
}

#[test]
fn state_is_rebuilt_on_reopen_across_segments() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut log = Log::open(dir.path(), small_segments()).unwrap();
        // Producer 1 writes only into what become older segments.
        for seq in 0..4 {
            log.append(&mut batch(1, 0, seq * 2, 2), 0).unwrap();
        }
        for seq in 0..8 {
            log.append(&mut batch(2, 3, seq, 1), 0).unwrap();
        }
        assert!(log.segment_count() > 2, "{}", log.segment_count());
    }
    let mut log = Log::open(dir.path(), small_segments()).unwrap();
    assert_eq!(log.producer_states().len(), 2);
    let end = log.log_end_offset();
    let dup = log.append(&mut batch(1, 0, 6, 2), 0).unwrap();
    assert!(dup.duplicate);
    assert_eq!((dup.base_offset, dup.last_offset), (6, 7));
    let dup = log.append(&mut batch(2, 3, 7, 1), 0).unwrap();
    assert!(dup.duplicate);
    assert_eq!(dup.base_offset, end - 1);
    let err = log.append(&mut batch(2, 2, 8, 1), 0).unwrap_err();
    assert!(
        matches!(err, StorageError::InvalidProducerEpoch { .. }),
        "{err}"
    );
    let err = log.append(&mut batch(1, 0, 9, 1), 0).unwrap_err();
    assert!(
        matches!(err, StorageError::OutOfOrderSequence { .. }),
        "{err}"
    );
    assert_eq!(
        log.append(&mut batch(1, 0, 8, 1), 0).unwrap().base_offset,
        end
    );
}

#[test]
fn torn_tail_batch_is_forgotten_on_reopen_so_its_retry_is_written() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut log = Log::open(dir.path(), LogConfig::default()).unwrap();
        log.append(&mut batch(1, 0, 0, 2), 0).unwrap();
        log.append(&mut batch(1, 0, 2, 2), 0).unwrap();
        log.flush().unwrap();
    }
    // Tear the second batch: the crash happened before it was complete.
    let path = dir.path().join(log_file_name(0));
    let len = std::fs::metadata(&path).unwrap().len();
    OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(len - 10)
        .unwrap();
    let mut log = Log::open(dir.path(), LogConfig::default()).unwrap();
    assert_eq!(log.log_end_offset(), 2);
    // The producer retries the torn batch: it is new again and written.
    let retry = log.append(&mut batch(1, 0, 2, 2), 0).unwrap();
    assert!(!retry.duplicate);
    assert_eq!(retry.base_offset, 2);
    // The surviving batch is still known as a duplicate.
    assert!(log.append(&mut batch(1, 0, 0, 2), 0).unwrap().duplicate);
}

#[test]
fn truncation_forgets_the_batches_it_removes() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), LogConfig::default()).unwrap();
    log.append(&mut batch(1, 0, 0, 2), 0).unwrap();
    log.append(&mut batch(1, 0, 2, 2), 0).unwrap();
    log.truncate_to(2).unwrap();
    let retry = log.append(&mut batch(1, 0, 2, 2), 0).unwrap();
    assert!(!retry.duplicate);
    assert_eq!(retry.base_offset, 2);
}

#[test]
fn a_gap_inside_one_append_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), LogConfig::default()).unwrap();
    let mut both = batch(1, 0, 0, 2);
    both.extend(batch(1, 0, 5, 1));
    let err = log.append(&mut both, 0).unwrap_err();
    assert!(
        matches!(err, StorageError::OutOfOrderSequence { .. }),
        "{err}"
    );
    assert_eq!(log.log_end_offset(), 0);
    assert!(log.producer_states().is_empty());
    let mut both = batch(1, 0, 0, 2);
    both.extend(batch(1, 0, 2, 1));
    assert_eq!(log.append(&mut both, 0).unwrap().last_offset, 2);
    let dup = log.append(&mut batch(1, 0, 2, 1), 0).unwrap();
    assert!(dup.duplicate);
    assert_eq!(dup.base_offset, 2);
}

#[test]
fn compaction_keeps_a_producers_last_batch_whole_so_its_sequence_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        compact: true,
        ..LogConfig::default()
    };
    {
        let mut log = Log::open(dir.path(), config.clone()).unwrap();
        // Producer 1's last batch: sequences 0..=2, keys a, b, c.
        log.append(&mut keyed_batch(1, 0, 0, &[b"a", b"b", b"c"]), 0)
            .unwrap();
        log.roll().unwrap();
        // Producer 2 supersedes key c, but producer 1's batch is its last:
        // compaction keeps it whole, as Kafka keeps it for producer state.
        log.append(&mut keyed_batch(2, 0, 0, &[b"c"]), 0).unwrap();
        let outcome = log.compact(i64::MAX).unwrap();
        assert_eq!(outcome.records_removed, 0);
        // The true last sequence (2) is known.
        let err = log.append(&mut batch(1, 0, 4, 1), 0).unwrap_err();
        assert!(
            matches!(err, StorageError::OutOfOrderSequence { .. }),
            "{err}"
        );
    }
    let mut log = Log::open(dir.path(), config).unwrap();
    // Rebuilt from the segment the last sequence is still 2: producer 1's
    // real next batch (sequence 3) is accepted.
    let next = log.append(&mut batch(1, 0, 3, 1), 0).unwrap();
    assert!(!next.duplicate);
    // After that, sequences are checked strictly again.
    let err = log.append(&mut batch(1, 0, 9, 1), 0).unwrap_err();
    assert!(
        matches!(err, StorageError::OutOfOrderSequence { .. }),
        "{err}"
    );
    // The duplicate check still works for the rebuilt batch.
    assert!(log.append(&mut batch(1, 0, 3, 1), 0).unwrap().duplicate);
}

#[test]
fn compaction_cuts_a_producers_earlier_batches_but_not_its_last() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        compact: true,
        ..LogConfig::default()
    };
    let mut log = Log::open(dir.path(), config).unwrap();
    log.append(&mut keyed_batch(1, 0, 0, &[b"a", b"b"]), 0)
        .unwrap();
    log.append(&mut keyed_batch(1, 0, 2, &[b"a", b"c"]), 0)
        .unwrap();
    log.roll().unwrap();
    // Key c's newer value comes from another producer; a is superseded
    // inside producer 1's own later batch.
    log.append(&mut keyed_batch(2, 0, 0, &[b"c"]), 0).unwrap();
    let outcome = log.compact(i64::MAX).unwrap();
    // Offset 0 (a, superseded by offset 2) goes; producer 1's last batch
    // (offsets 2-3) stays whole although offset 3 (c) is superseded.
    assert_eq!(outcome.records_removed, 1);
    let chunk = log.read(0, 1 << 20, true).unwrap();
    let batches: Vec<_> = wharf_protocol::batch::batches(&chunk)
        .map(|b| b.unwrap().0)
        .collect();
    assert_eq!(batches[0].base_offset(), 1);
    assert_eq!(batches[0].base_sequence(), 1);
    assert_eq!(batches[1].base_offset(), 2);
    assert_eq!(batches[1].records_count(), 2);
    assert_eq!(batches[1].base_sequence(), 2);
}
