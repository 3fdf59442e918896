//! Fault injection: every write-side fail point of the log engine, armed
//! with ENOSPC or EIO. A failed write never panics, never leaves part of an
//! append readable, keeps every earlier record readable, and either leaves
//! the log writable (a full disk, cleanly rolled back) or takes it offline
//! until it is reopened, when recovery brings back exactly what was written.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::path::Path;

use wharf_protocol::batch::{self, build_batch};
use wharf_protocol::compression::Compression;
use wharf_storage::io::{self, FailPoint, Fault, InjectedError, Trigger};
use wharf_storage::{Log, LogConfig, StorageError};

/// A batch of one keyed record whose value is `value`.
fn batch_of(value: &str, ts: i64) -> Vec<u8> {
    let key = format!("k-{value}");
    let records = [(Some(key.as_bytes()), Some(value.as_bytes()), ts)];
    build_batch(0, &records, Compression::None).unwrap()
}

/// Every (offset, value) readable in the log.
fn values(log: &Log) -> Vec<(i64, String)> {
    let mut out = Vec::new();
    let mut offset = log.log_start_offset();
    while offset < log.log_end_offset() {
        let chunk = log.read(offset, 1 << 20, true).unwrap();
        if chunk.is_empty() {
            break;
        }
        for item in batch::batches(&chunk) {
            let (header, bytes) = item.unwrap();
            batch::validate(bytes, 1 << 20).unwrap();
            let payload = batch::records_payload(bytes, &header, 1 << 20).unwrap();
            for record in batch::records(&header, &payload) {
                let r = record.unwrap();
                out.push((
                    r.offset,
                    String::from_utf8(r.value.unwrap().to_vec()).unwrap(),
                ));
            }
            offset = header.next_offset();
        }
    }
    out
}

fn expected(values: &[&str]) -> Vec<(i64, String)> {
    values
        .iter()
        .enumerate()
        .map(|(i, v)| (i as i64, (*v).to_string()))
        .collect()
}

/// An index entry per batch, so index writes happen on every append.
fn config() -> LogConfig {
    LogConfig {
        index_interval_bytes: 1,
        ..LogConfig::default()
    }
}

/// Arms `point` under `dir`; the guard disarms on drop, even when a test fails.
struct Armed<'a>(&'a Path);

fn arm<'a>(dir: &'a Path, point: FailPoint, error: InjectedError, trigger: Trigger) -> Armed<'a> {
    io::arm(Fault::new(point, error, trigger).under(dir));
    Armed(dir)
}

impl Drop for Armed<'_> {
    fn drop(&mut self) {
        io::disarm(Some(self.0));
    }
}

fn log_file_len(dir: &Path) -> u64 {
    std::fs::metadata(dir.join(wharf_storage::format::log_file_name(0)))
        .unwrap()
        .len()
}

fn with_two_records(dir: &Path, cfg: LogConfig) -> Log {
    let mut log = Log::open(dir, cfg).unwrap();
    log.append(&mut batch_of("a", 1), 0).unwrap();
    log.append(&mut batch_of("b", 2), 0).unwrap();
    log
}

#[test]
fn full_disk_on_segment_write_refuses_the_append_and_the_log_stays_writable() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = with_two_records(dir.path(), config());
    let size = log_file_len(dir.path());
    {
        let _armed = arm(
            dir.path(),
            FailPoint::SegmentWrite,
            InjectedError::NoSpace,
            Trigger::Next(1),
        );
        let err = log.append(&mut batch_of("lost", 3), 0).unwrap_err();
        assert!(err.is_disk_full(), "{err}");
        // The half written by the failing call was cut off again.
        assert_eq!(log_file_len(dir.path()), size);
        assert_eq!(log.log_end_offset(), 2);
        assert_eq!(values(&log), expected(&["a", "b"]));
        assert!(log.offline_reason().is_none());
        // Space is back (the fault fired once): appends carry on at offset 2.
        assert_eq!(log.append(&mut batch_of("c", 4), 0).unwrap().base_offset, 2);
    }
    drop(log);
    let log = Log::open(dir.path(), config()).unwrap();
    assert_eq!(values(&log), expected(&["a", "b", "c"]));
}

#[test]
fn eio_on_segment_write_takes_the_log_offline_until_it_is_reopened() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = with_two_records(dir.path(), config());
    {
        let _armed = arm(
            dir.path(),
            FailPoint::SegmentWrite,
            InjectedError::Eio,
            Trigger::Next(1),
        );
        let err = log.append(&mut batch_of("lost", 3), 0).unwrap_err();
        assert!(matches!(err, StorageError::Io { .. }), "{err}");
    }
    assert!(log.offline_reason().is_some());
    let refused = log.append(&mut batch_of("refused", 3), 0).unwrap_err();
    assert!(
        matches!(refused, StorageError::LogOffline { .. }),
        "{refused}"
    );
    assert!(matches!(log.flush(), Err(StorageError::LogOffline { .. })));
    assert!(matches!(
        log.truncate_to(1),
        Err(StorageError::LogOffline { .. })
    ));
    assert!(matches!(
        log.advance_log_start(1),
        Err(StorageError::LogOffline { .. })
    ));
    // Reads go on.
    assert_eq!(values(&log), expected(&["a", "b"]));
    drop(log);
    let mut log = Log::open(dir.path(), config()).unwrap();
    assert_eq!(values(&log), expected(&["a", "b"]));
    assert_eq!(log.append(&mut batch_of("c", 4), 0).unwrap().base_offset, 2);
}

#[test]
fn failed_index_write_rolls_the_data_back_too() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), config()).unwrap();
    // Index entries reach the file in groups: append until the write of
    // one fails.
    let failed_at = {
        let _armed = arm(
            dir.path(),
            FailPoint::IndexWrite,
            InjectedError::NoSpace,
            Trigger::Next(1),
        );
        let mut failed_at = None;
        for i in 0..1_000i64 {
            let size = log_file_len(dir.path());
            match log.append(&mut batch_of(&format!("v{i}"), i), 0) {
                Ok(info) => assert_eq!(info.base_offset, i),
                Err(err) => {
                    assert!(err.is_disk_full(), "{err}");
                    assert_eq!(
                        log_file_len(dir.path()),
                        size,
                        "the batch was cut off again"
                    );
                    failed_at = Some(i);
                    break;
                }
            }
        }
        failed_at.expect("an index write failed")
    };
    assert!(log.offline_reason().is_none());
    assert_eq!(log.log_end_offset(), failed_at);
    assert_eq!(
        log.append(&mut batch_of("next", 0), 0).unwrap().base_offset,
        failed_at
    );
    let mut want: Vec<String> = (0..failed_at).map(|i| format!("v{i}")).collect();
    want.push("next".to_string());
    let want: Vec<&str> = want.iter().map(String::as_str).collect();
    assert_eq!(values(&log), expected(&want));
    drop(log);
    let log = Log::open(dir.path(), config()).unwrap();
    assert_eq!(values(&log), expected(&want));
}

#[test]
fn failed_rollback_takes_the_log_offline_and_recovery_cuts_the_torn_batch() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = with_two_records(dir.path(), config());
    let size = log_file_len(dir.path());
    {
        let _armed = arm(
            dir.path(),
            FailPoint::SegmentWrite,
            InjectedError::NoSpace,
            Trigger::Always,
        );
        io::arm(
            Fault::new(FailPoint::Truncate, InjectedError::Eio, Trigger::Always).under(dir.path()),
        );
        log.append(&mut batch_of("torn", 3), 0).unwrap_err();
        assert!(log.offline_reason().is_some());
        // Half a batch stays on disk but is not readable.
        assert!(log_file_len(dir.path()) > size);
        assert_eq!(values(&log), expected(&["a", "b"]));
    }
    drop(log);
    let mut log = Log::open(dir.path(), config()).unwrap();
    assert_eq!(log_file_len(dir.path()), size);
    assert_eq!(values(&log), expected(&["a", "b"]));
    assert_eq!(log.append(&mut batch_of("c", 4), 0).unwrap().base_offset, 2);
}

#[test]
fn failed_fsync_after_flush_messages_fails_the_append_and_takes_the_log_offline() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = LogConfig {
        flush_messages: 1,
        ..config()
    };
    let mut log = with_two_records(dir.path(), cfg.clone());
    {
        let _armed = arm(
            dir.path(),
            FailPoint::SegmentSync,
            InjectedError::Eio,
            Trigger::Next(1),
        );
        let err = log.append(&mut batch_of("unsynced", 3), 0).unwrap_err();
        assert!(matches!(err, StorageError::Io { .. }), "{err}");
    }
    // The fault is gone, but after a failed fsync nothing more is written.
    assert!(matches!(
        log.append(&mut batch_of("refused", 3), 0),
        Err(StorageError::LogOffline { .. })
    ));
    let read = values(&log);
    assert_eq!(read[..2], expected(&["a", "b"])[..]);
    drop(log);
    // What reached the file (here: all of it, the page cache kept it) is
    // recovered; what was acknowledged is there.
    let log = Log::open(dir.path(), cfg).unwrap();
    assert_eq!(values(&log)[..2], expected(&["a", "b"])[..]);
}

#[test]
fn failed_directory_fsync_takes_the_log_offline() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = with_two_records(dir.path(), config());
    {
        let _armed = arm(
            dir.path(),
            FailPoint::DirSync,
            InjectedError::Eio,
            Trigger::Always,
        );
        assert!(matches!(log.flush(), Err(StorageError::Io { .. })));
    }
    assert!(log.offline_reason().is_some());
    assert_eq!(values(&log), expected(&["a", "b"]));
}

#[test]
fn failed_deferred_sync_reports_the_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = with_two_records(dir.path(), config());
    let pending = log.prepare_sync().unwrap();
    let _armed = arm(
        dir.path(),
        FailPoint::SegmentSync,
        InjectedError::Eio,
        Trigger::Always,
    );
    let err = pending.sync().unwrap_err();
    assert!(matches!(err, StorageError::Io { .. }), "{err}");
    // The caller (the broker) takes the log offline with that error.
    log.take_offline(&err);
    assert!(matches!(
        log.prepare_sync(),
        Err(StorageError::LogOffline { .. })
    ));
    assert!(!log.flush_if_due(i64::MAX).unwrap());
}

#[test]
fn full_disk_when_rolling_refuses_the_append_and_a_later_roll_succeeds() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = LogConfig {
        segment_bytes: 100,
        ..config()
    };
    let mut log = Log::open(dir.path(), cfg.clone()).unwrap();
    log.append(&mut batch_of("a", 1), 0).unwrap();
    {
        let _armed = arm(
            dir.path(),
            FailPoint::SegmentCreate,
            InjectedError::NoSpace,
            Trigger::Next(1),
        );
        let err = log.append(&mut batch_of("b", 2), 0).unwrap_err();
        assert!(err.is_disk_full(), "{err}");
        assert_eq!(log.segment_count(), 1);
    }
    assert!(log.offline_reason().is_none());
    log.append(&mut batch_of("b", 2), 0).unwrap();
    assert_eq!(log.segment_count(), 2);
    drop(log);
    let log = Log::open(dir.path(), cfg).unwrap();
    assert_eq!(values(&log), expected(&["a", "b"]));
}

#[test]
fn failed_segment_removal_in_retention_takes_the_log_offline_and_keeps_reads() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = LogConfig {
        segment_bytes: 100,
        retention_ms: 10,
        ..config()
    };
    let mut log = Log::open(dir.path(), cfg.clone()).unwrap();
    for (i, v) in ["a", "b", "c"].iter().enumerate() {
        log.append(&mut batch_of(v, i as i64 + 1), 0).unwrap();
    }
    assert_eq!(log.segment_count(), 3);
    {
        let _armed = arm(
            dir.path(),
            FailPoint::Remove,
            InjectedError::Eio,
            Trigger::Always,
        );
        assert!(matches!(
            log.apply_retention(1_000),
            Err(StorageError::Io { .. })
        ));
    }
    assert!(log.offline_reason().is_some());
    // An offline log is left alone by later passes.
    assert_eq!(log.apply_retention(1_000).unwrap().segments_deleted, 0);
    let read = values(&log);
    assert!(
        read.len() <= 3
            && read
                .iter()
                .all(|(o, v)| expected(&["a", "b", "c"])[*o as usize].1 == *v)
    );
    drop(log);
    let mut log = Log::open(dir.path(), cfg).unwrap();
    let out = log.apply_retention(1_000).unwrap();
    assert_eq!(log.log_start_offset(), 3, "{out:?}");
    assert_eq!(
        log.append(&mut batch_of("d", 2_000), 0)
            .unwrap()
            .base_offset,
        3
    );
}

fn compacted_log_with_three_values_of_one_key(dir: &Path) -> (Log, LogConfig) {
    let cfg = LogConfig {
        segment_bytes: 100,
        compact: true,
        ..config()
    };
    let mut log = Log::open(dir, cfg.clone()).unwrap();
    for v in ["a", "b", "c"] {
        let records = [(Some(&b"k"[..]), Some(v.as_bytes()), 1)];
        log.append(&mut build_batch(0, &records, Compression::None).unwrap(), 0)
            .unwrap();
    }
    (log, cfg)
}

#[test]
fn failed_compaction_output_write_keeps_the_log_writable_and_leaves_nothing_behind() {
    for point in [FailPoint::AuxWrite, FailPoint::AuxSync] {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, cfg) = compacted_log_with_three_values_of_one_key(dir.path());
        {
            let _armed = arm(dir.path(), point, InjectedError::NoSpace, Trigger::Always);
            let err = log.compact(1_000).unwrap_err();
            assert!(matches!(err, StorageError::Io { .. }), "{point}: {err}");
        }
        // Only the cleaner's own output failed: the log's files are intact.
        assert!(log.offline_reason().is_none(), "{point}");
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().ends_with(".cleaned"))
            .collect();
        assert!(leftovers.is_empty(), "{point}: {leftovers:?}");
        assert_eq!(values(&log), expected(&["a", "b", "c"]), "{point}");
        assert_eq!(log.compact(1_000).unwrap().records_removed, 2, "{point}");
        assert_eq!(values(&log), vec![(2, "c".to_string())], "{point}");
        drop(log);
        let log = Log::open(dir.path(), cfg).unwrap();
        assert_eq!(values(&log), vec![(2, "c".to_string())], "{point}");
    }
}

#[test]
fn failed_compaction_swap_takes_the_log_offline_and_reopening_keeps_every_value() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, cfg) = compacted_log_with_three_values_of_one_key(dir.path());
    {
        let _armed = arm(
            dir.path(),
            FailPoint::Rename,
            InjectedError::Eio,
            Trigger::Always,
        );
        let err = log.compact(1_000).unwrap_err();
        assert!(matches!(err, StorageError::Io { .. }), "{err}");
    }
    assert!(log.offline_reason().is_some());
    assert_eq!(values(&log), expected(&["a", "b", "c"]));
    drop(log);
    let mut log = Log::open(dir.path(), cfg).unwrap();
    assert_eq!(values(&log), expected(&["a", "b", "c"]));
    assert_eq!(log.compact(1_000).unwrap().records_removed, 2);
    assert_eq!(values(&log), vec![(2, "c".to_string())]);
}

#[test]
fn failed_truncation_takes_the_log_offline() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = with_two_records(dir.path(), config());
    {
        let _armed = arm(
            dir.path(),
            FailPoint::Truncate,
            InjectedError::Eio,
            Trigger::Always,
        );
        assert!(matches!(log.truncate_to(1), Err(StorageError::Io { .. })));
    }
    assert!(log.offline_reason().is_some());
    drop(log);
    let log = Log::open(dir.path(), config()).unwrap();
    assert_eq!(values(&log), expected(&["a", "b"]));
}
