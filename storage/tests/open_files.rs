//! Closed segments hold no file handle of their own: reads borrow one from a
//! process-wide cache capped by `set_max_open_segment_files`.
//!
//! Every test here sets the same cap, so they agree on it when a test runner
//! shares one process between them; they also take turns (see
//! [`exclusive_cache`]), since one test's reads evict another's handles
//! from the shared cache and the tests count them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::path::Path;

use wharf_protocol::batch::{self, build_batch};
use wharf_protocol::compression::Compression;
use wharf_storage::{open_segment_files, set_max_open_segment_files, Log, LogConfig};

/// Held by each test for its whole run: the cache is process-wide.
static CACHE: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// The cache to this test alone until the guard drops.
fn exclusive_cache() -> std::sync::MutexGuard<'static, ()> {
    CACHE
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

const CAP: usize = 8;
const LOGS: usize = 3;
const SEGMENTS: usize = 20;

/// The value carried by the only record of segment `segment` of log `log`.
fn marker(log: usize, segment: usize) -> String {
    format!("marker-log{log}-segment{segment}-end")
}

/// `LOGS` logs of `SEGMENTS` segments each (the last active), one
/// single-record batch per segment, flushed.
fn build_logs(root: &Path) -> Vec<Log> {
    (0..LOGS)
        .map(|l| {
            let mut log = Log::open(&root.join(format!("p{l}")), LogConfig::default()).unwrap();
            for s in 0..SEGMENTS {
                let value = marker(l, s);
                let mut bytes = build_batch(
                    0,
                    &[(None, Some(value.as_bytes()), 1_000)],
                    Compression::None,
                )
                .unwrap();
                log.append(&mut bytes, 0).unwrap();
                if s + 1 < SEGMENTS {
                    log.roll().unwrap();
                }
            }
            log.flush().unwrap();
            assert_eq!(log.segment_count(), SEGMENTS);
            log
        })
        .collect()
}

/// Checks the read of offset `s` of log `l` starts with segment `s`'s batch.
fn check_read(log: &Log, l: usize, s: usize) {
    let bytes = log.read(s as i64, 1 << 20, true).unwrap();
    let headers: Vec<_> = batch::batches(&bytes).map(|b| b.unwrap().0).collect();
    assert!(!headers.is_empty(), "log {l} offset {s}");
    assert_eq!(headers[0].base_offset(), s as i64);
    let first = &bytes[..headers[0].total_len()];
    let want = marker(l, s);
    assert!(
        first.windows(want.len()).any(|w| w == want.as_bytes()),
        "log {l} offset {s} lacks {want}"
    );
}

/// Descriptors this process has open on `.log` files under `root`.
fn open_log_fds(root: &Path) -> usize {
    let root = root.canonicalize().unwrap();
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|entry| std::fs::read_link(entry.ok()?.path()).ok())
        .filter(|target| {
            target.starts_with(&root) && target.extension().is_some_and(|e| e == "log")
        })
        .count()
}

#[test]
fn reads_of_many_closed_segments_are_correct_with_at_most_cap_handles_open() {
    let _cache = exclusive_cache();
    set_max_open_segment_files(CAP);
    let dir = tempfile::tempdir().unwrap();
    let logs = build_logs(dir.path());
    // Only the active segments hold handles once rolled segments are synced.
    assert_eq!(open_log_fds(dir.path()), LOGS);
    for round in 0..2 {
        for (l, log) in logs.iter().enumerate() {
            for s in 0..SEGMENTS {
                check_read(log, l, s);
                assert!(open_segment_files() <= CAP, "round {round}");
                assert!(open_log_fds(dir.path()) <= CAP + LOGS, "round {round}");
            }
        }
    }
    // The reads went through the cache, which is full now.
    assert_eq!(open_log_fds(dir.path()), CAP + LOGS);
    drop(logs);
    assert_eq!(open_log_fds(dir.path()), 0);
}

#[test]
fn a_reopened_log_keeps_closed_segments_handles_within_the_cap() {
    let _cache = exclusive_cache();
    set_max_open_segment_files(CAP);
    let dir = tempfile::tempdir().unwrap();
    drop(build_logs(dir.path()));
    let logs: Vec<Log> = (0..LOGS)
        .map(|l| Log::open(&dir.path().join(format!("p{l}")), LogConfig::default()).unwrap())
        .collect();
    // Recovery reads closed segments' headers through the cache too.
    assert!(open_log_fds(dir.path()) <= CAP + LOGS);
    for (l, log) in logs.iter().enumerate() {
        for s in (0..SEGMENTS).rev() {
            check_read(log, l, s);
        }
    }
    assert!(open_log_fds(dir.path()) <= CAP + LOGS);
}

#[test]
fn concurrent_reads_stay_correct_while_their_handles_are_evicted() {
    let _cache = exclusive_cache();
    set_max_open_segment_files(CAP);
    let dir = tempfile::tempdir().unwrap();
    let logs = build_logs(dir.path());
    // Eight threads reading sixty segments through eight slots: nearly
    // every read evicts a handle another thread may be reading with.
    std::thread::scope(|scope| {
        for t in 0..8usize {
            let logs = &logs;
            scope.spawn(move || {
                for i in 0..300usize {
                    let n = (i * 7 + t * 13) % (LOGS * SEGMENTS);
                    let (l, s) = (n / SEGMENTS, n % SEGMENTS);
                    check_read(&logs[l], l, s);
                    assert!(open_segment_files() <= CAP);
                }
            });
        }
    });
    assert!(open_log_fds(dir.path()) <= CAP + LOGS);
}

#[test]
fn a_truncation_back_into_a_closed_segment_makes_it_writable_again() {
    let _cache = exclusive_cache();
    set_max_open_segment_files(CAP);
    let dir = tempfile::tempdir().unwrap();
    let mut logs = build_logs(dir.path());
    let log = &mut logs[0];
    // Offset 5 is the only batch of segment 5: truncating to 6 makes
    // segment 5 the active one again, appended to without a roll.
    log.truncate_to(6).unwrap();
    assert_eq!(log.segment_count(), 6);
    let value = b"appended-after-truncation";
    let mut bytes = build_batch(0, &[(None, Some(&value[..]), 2_000)], Compression::None).unwrap();
    assert_eq!(log.append(&mut bytes, 0).unwrap().base_offset, 6);
    log.flush().unwrap();
    assert_eq!(log.segment_count(), 6);
    for s in 0..6 {
        check_read(log, 0, s);
    }
    let read = log.read(6, 1 << 20, true).unwrap();
    assert!(read.windows(value.len()).any(|w| w == value));
    let path = log.dir().to_path_buf();
    drop(logs);
    let reopened = Log::open(&path, LogConfig::default()).unwrap();
    assert_eq!(reopened.log_end_offset(), 7);
    for s in 0..6 {
        check_read(&reopened, 0, s);
    }
}

#[test]
fn rolled_segments_close_their_file_before_any_fsync() {
    let _cache = exclusive_cache();
    set_max_open_segment_files(CAP);
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), LogConfig::default()).unwrap();
    for s in 0..SEGMENTS {
        let value = marker(0, s);
        let mut bytes = build_batch(
            0,
            &[(None, Some(value.as_bytes()), 1_000)],
            Compression::None,
        )
        .unwrap();
        log.append(&mut bytes, 0).unwrap();
        log.roll().unwrap();
        // Nothing was fsynced (no flush.messages or flush.ms), yet only
        // the active segment holds its file.
        assert_eq!(open_log_fds(dir.path()), 1, "after roll {s}");
    }
    // The flush reopens each rolled segment to fsync it, then closes it.
    log.flush().unwrap();
    assert_eq!(open_log_fds(dir.path()), 1);
    let path = log.dir().to_path_buf();
    drop(log);
    let reopened = Log::open(&path, LogConfig::default()).unwrap();
    for s in 0..SEGMENTS {
        check_read(&reopened, 0, s);
    }
}
