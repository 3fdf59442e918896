#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use wharf_protocol::batch::build_batch;
use wharf_protocol::compression::Compression;
use wharf_storage::{Log, LogConfig, StorageError};

/// A batch of `n` records, all stamped `ts`.
fn batch_at(n: usize, ts: i64) -> Vec<u8> {
    let records: Vec<_> = (0..n)
        .map(|_| (Some(&b"k"[..]), Some(&b"value-value-value"[..]), ts))
        .collect();
    build_batch(0, &records, Compression::None).unwrap()
}

fn config(retention_ms: i64, retention_bytes: i64) -> LogConfig {
    LogConfig {
        segment_bytes: 200,
        retention_ms,
        retention_bytes,
        ..LogConfig::default()
    }
}

/// Appends 6 batches of 3 records stamped 1000, 2000, ... 6000; with
/// 200-byte segments each batch lands in its own segment.
fn filled(dir: &std::path::Path, cfg: LogConfig) -> Log {
    let mut log = Log::open(dir, cfg).unwrap();
    for i in 1..=6 {
        log.append(&mut batch_at(3, i * 1000), 0).unwrap();
    }
    assert_eq!(log.segment_count(), 6);
    log
}

#[test]
fn deletes_segments_older_than_retention_ms_and_keeps_newer() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = filled(dir.path(), config(2500, -1));
    // At t=6000 segments newest-stamped 1000, 2000 and 3000 are > 2500 ms old.
    let out = log.apply_retention(6000).unwrap();
    assert_eq!(out.segments_deleted, 3);
    assert_eq!(log.log_start_offset(), 9);
    assert_eq!(log.segment_base_offsets(), vec![9, 12, 15]);
    assert!(matches!(
        log.read(3, 1 << 20, true),
        Err(StorageError::OffsetOutOfRange { .. })
    ));
    assert!(!log.read(9, 1 << 20, true).unwrap().is_empty());
}

#[test]
fn expired_active_segment_is_rolled_then_deleted_and_offsets_continue() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = filled(dir.path(), config(10, -1));
    let out = log.apply_retention(100_000).unwrap();
    assert_eq!(out.segments_deleted, 6);
    assert_eq!(log.log_start_offset(), 18);
    assert_eq!(log.log_end_offset(), 18);
    assert_eq!(log.segment_count(), 1);
    let info = log.append(&mut batch_at(1, 100_000), 0).unwrap();
    assert_eq!(info.base_offset, 18);
    drop(log);
    let log = Log::open(dir.path(), config(10, -1)).unwrap();
    assert_eq!(log.log_start_offset(), 18);
    assert_eq!(log.log_end_offset(), 19);
}

#[test]
fn size_retention_deletes_oldest_while_the_rest_exceeds_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let log = filled(dir.path(), config(-1, -1));
    let seg = log.size_bytes() / 6;
    drop(log);
    // Kafka deletes the oldest segment while (size - limit) >= its size:
    // with room for 2.5 segments, 6 - 2.5 = 3.5 segments over, so 3 go.
    let limit = i64::try_from(seg * 5 / 2).unwrap();
    let mut log = Log::open(dir.path(), config(-1, limit)).unwrap();
    let out = log.apply_retention(0).unwrap();
    assert_eq!(out.segments_deleted, 3);
    assert_eq!(log.segment_count(), 3);
}

#[test]
fn compact_only_logs_are_not_deleted_by_retention() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = LogConfig {
        delete_retention_enabled: false,
        ..config(10, 0)
    };
    let mut log = filled(dir.path(), cfg);
    assert_eq!(log.apply_retention(1_000_000).unwrap().segments_deleted, 0);
    assert_eq!(log.log_start_offset(), 0);
}

#[test]
fn advance_log_start_hides_records_and_drops_whole_segments() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = filled(dir.path(), config(-1, -1));
    assert_eq!(log.advance_log_start(7).unwrap(), 7);
    // Segments [0,3) and [3,6) are wholly below 7; [6,9) stays.
    assert_eq!(log.segment_base_offsets()[0], 6);
    assert!(log.read(6, 1 << 20, true).is_err());
    assert!(!log.read(7, 1 << 20, true).unwrap().is_empty());
    // Going back is a no-op; past the end is out of range.
    assert_eq!(log.advance_log_start(2).unwrap(), 7);
    assert!(log.advance_log_start(19).is_err());
    // To the end: everything goes and the log continues at 18.
    assert_eq!(log.advance_log_start(18).unwrap(), 18);
    assert_eq!(log.segment_count(), 1);
    assert_eq!(log.append(&mut batch_at(1, 0), 0).unwrap().base_offset, 18);
}

#[test]
fn batches_over_max_batch_bytes_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = LogConfig {
        max_batch_bytes: 100,
        ..LogConfig::default()
    };
    let mut log = Log::open(dir.path(), cfg).unwrap();
    let mut big = batch_at(10, 0);
    assert!(matches!(
        log.append(&mut big, 0),
        Err(StorageError::BatchTooLarge { max: 100, .. })
    ));
    assert_eq!(log.log_end_offset(), 0);
    let mut cfg = log.config().clone();
    cfg.max_batch_bytes = 10_000;
    log.set_config(cfg);
    assert_eq!(log.append(&mut big, 0).unwrap().base_offset, 0);
}

#[test]
fn flush_messages_and_flush_ms_trigger_fsyncs() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = LogConfig {
        flush_messages: 5,
        flush_ms: 1_000,
        ..LogConfig::default()
    };
    let mut log = Log::open(dir.path(), cfg).unwrap();
    log.append(&mut batch_at(3, 0), 0).unwrap();
    assert_eq!(log.unflushed_messages(), 3);
    log.append(&mut batch_at(3, 0), 0).unwrap();
    assert_eq!(log.unflushed_messages(), 0, "6 >= flush.messages flushed");
    log.append(&mut batch_at(1, 0), 0).unwrap();
    let now = wharf_now();
    assert!(!log.flush_if_due(now).unwrap(), "not yet due");
    assert!(log.flush_if_due(now + 2_000).unwrap());
    assert_eq!(log.unflushed_messages(), 0);
    assert!(
        !log.flush_if_due(now + 10_000).unwrap(),
        "nothing left to flush"
    );
}

fn wharf_now() -> i64 {
    i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap()
}

#[test]
fn logs_requiring_keys_refuse_keyless_records_even_compressed() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = LogConfig {
        compact: true,
        ..LogConfig::default()
    };
    let mut log = Log::open(dir.path(), cfg).unwrap();
    let keyless = [
        (Some(&b"k"[..]), Some(&b"v"[..]), 0),
        (None, Some(&b"v"[..]), 0),
        (Some(&b"k"[..]), Some(&b"v"[..]), 0),
        (None, None, 0),
    ];
    for codec in [Compression::None, Compression::Gzip] {
        let mut bytes = build_batch(0, &keyless, codec).unwrap();
        match log.append(&mut bytes, 0) {
            Err(StorageError::KeylessRecords { indexes }) => assert_eq!(indexes, vec![1, 3]),
            other => panic!("expected the keyless records named, got {other:?}"),
        }
    }
    assert_eq!(log.log_end_offset(), 0);
    // A tombstone has a key and is accepted.
    let mut tombstone = build_batch(0, &[(Some(&b"k"[..]), None, 0)], Compression::None).unwrap();
    assert_eq!(log.append(&mut tombstone, 0).unwrap().base_offset, 0);
}

#[test]
fn a_prepared_sync_completes_after_more_appends_and_segment_deletion() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = filled(dir.path(), config(10, -1));
    let pending = log.prepare_sync().unwrap();
    assert_eq!(log.unflushed_messages(), 0);
    log.append(&mut batch_at(2, 0), 0).unwrap();
    assert_eq!(log.unflushed_messages(), 2);
    // Retention deletes every file the pending sync holds handles to.
    log.apply_retention(1_000_000).unwrap();
    pending.sync().unwrap();
    log.prepare_sync().unwrap().sync().unwrap();
    assert_eq!(log.log_end_offset(), 20);
}
