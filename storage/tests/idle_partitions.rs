//! An idle partition holds no file descriptor: active segments' write
//! handles live in a process-wide pool capped by
//! `set_max_open_active_segment_files`, and one evicted is reopened by the
//! next append.
//!
//! Every test here sets the same cap, so they agree on it when a test runner
//! shares one process between them; they also take turns (see
//! [`exclusive_pool`]), since one test's appends evict another's handles
//! from the shared pool and the tests watch them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::path::{Path, PathBuf};

use wharf_protocol::batch::build_batch;
use wharf_protocol::compression::Compression;
use wharf_storage::io::{arm, disarm, FailPoint, Fault, InjectedError, Trigger};
use wharf_storage::{
    max_open_active_segment_files, open_active_segment_files, set_max_open_active_segment_files,
    Log, LogConfig,
};

/// Held by each test for its whole run: the pool is process-wide.
static POOL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// The pool to this test alone until the guard drops.
fn exclusive_pool() -> std::sync::MutexGuard<'static, ()> {
    POOL.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

const CAP: usize = 2;
const LOGS: usize = 6;

fn value(log: usize, n: usize) -> String {
    format!("value-log{log}-record{n}-end")
}

fn append(log: &mut Log, l: usize, n: usize) -> i64 {
    let v = value(l, n);
    let mut bytes =
        build_batch(0, &[(None, Some(v.as_bytes()), 1_000)], Compression::None).unwrap();
    log.append(&mut bytes, 0).unwrap().base_offset
}

/// Whether the read at `offset` of `log` returns a batch holding `want`.
fn holds(log: &Log, offset: i64, want: &str) -> bool {
    let bytes = log.read(offset, 1 << 20, true).unwrap();
    bytes.windows(want.len()).any(|w| w == want.as_bytes())
}

/// Descriptors this process has open on `.log` files under `root`, by fd number.
fn open_log_fds(root: &Path) -> Vec<(String, PathBuf)> {
    let root = root.canonicalize().unwrap();
    let mut fds: Vec<(String, PathBuf)> = std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let target = std::fs::read_link(entry.path()).ok()?;
            Some((entry.file_name().to_string_lossy().into_owned(), target))
        })
        .filter(|(_, target)| {
            target.starts_with(&root) && target.extension().is_some_and(|e| e == "log")
        })
        .collect();
    fds.sort();
    fds
}

fn open_logs(root: &Path) -> Vec<Log> {
    (0..LOGS)
        .map(|l| Log::open(&root.join(format!("p{l}")), LogConfig::default()).unwrap())
        .collect()
}

#[test]
fn idle_active_segments_close_past_the_pool_bound_and_reopen_on_append() {
    let _pool = exclusive_pool();
    set_max_open_active_segment_files(CAP);
    assert_eq!(max_open_active_segment_files(), CAP);
    let dir = tempfile::tempdir().unwrap();
    let mut logs = open_logs(dir.path());
    assert!(open_log_fds(dir.path()).len() <= CAP, "after opening");
    for round in 0..3 {
        for (l, log) in logs.iter_mut().enumerate() {
            assert_eq!(append(log, l, round), round as i64);
            assert!(
                open_log_fds(dir.path()).len() <= CAP,
                "round {round} log {l}"
            );
            assert!(open_active_segment_files() <= CAP);
        }
    }
    // Every record is there, in the active segments whose handles were
    // closed and reopened in turn.
    for (l, log) in logs.iter().enumerate() {
        for n in 0..3 {
            assert!(holds(log, n as i64, &value(l, n)), "log {l} record {n}");
        }
    }
    drop(logs);
    assert!(open_log_fds(dir.path()).is_empty());
}

#[test]
fn a_partition_being_written_keeps_its_handle() {
    let _pool = exclusive_pool();
    set_max_open_active_segment_files(CAP);
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(&dir.path().join("hot"), LogConfig::default()).unwrap();
    append(&mut log, 0, 0);
    let before = open_log_fds(dir.path());
    assert_eq!(before.len(), 1);
    for n in 1..200 {
        append(&mut log, 0, n);
    }
    // The same descriptor all along: no reopen per append.
    assert_eq!(open_log_fds(dir.path()), before);
}

#[test]
fn records_written_before_an_eviction_survive_reopening_the_log() {
    let _pool = exclusive_pool();
    set_max_open_active_segment_files(CAP);
    let dir = tempfile::tempdir().unwrap();
    let mut logs = open_logs(dir.path());
    for (l, log) in logs.iter_mut().enumerate() {
        append(log, l, 0);
        append(log, l, 1);
    }
    // No flush: the first logs' handles were closed with writes not yet
    // fsynced. Reopening runs recovery over every log.
    drop(logs);
    let logs = open_logs(dir.path());
    assert!(open_log_fds(dir.path()).len() <= CAP);
    for (l, log) in logs.iter().enumerate() {
        assert_eq!(log.log_end_offset(), 2, "log {l}");
        assert!(holds(log, 0, &value(l, 0)));
        assert!(holds(log, 1, &value(l, 1)));
    }
}

#[test]
fn a_flush_after_the_handle_was_closed_still_fsyncs_the_segment() {
    let _pool = exclusive_pool();
    set_max_open_active_segment_files(CAP);
    let dir = tempfile::tempdir().unwrap();
    let mut logs = open_logs(dir.path());
    for (l, log) in logs.iter_mut().enumerate() {
        append(log, l, 0);
    }
    // Log 0's write handle is long gone (CAP logs were written after it).
    let segment = logs[0].dir().join("00000000000000000000.log");
    let canonical = segment.canonicalize().unwrap();
    assert!(open_log_fds(dir.path())
        .iter()
        .all(|(_, t)| *t != canonical));
    // An fsync of that file fails on purpose: if the flush reaches it, the
    // flush fails; a flush that forgot the segment was written would pass.
    arm(Fault::new(FailPoint::SegmentSync, InjectedError::Eio, Trigger::Always).under(&segment));
    let flushed = logs[0].flush();
    disarm(Some(&segment));
    let err = flushed.expect_err("the flush fsyncs the segment written before its handle closed");
    assert!(err.to_string().contains("syncing"), "{err}");
    // The other logs' flushes reopen their files too, and succeed.
    for log in &mut logs[1..] {
        log.flush().unwrap();
    }
    // prepare_sync (the fsync-before-ack path) reopens an evicted handle too.
    drop(logs);
    let mut log = Log::open(&dir.path().join("p1"), LogConfig::default()).unwrap();
    append(&mut log, 1, 1);
    let others = open_logs(&dir.path().join("others"));
    drop(others);
    let path = log.dir().join("00000000000000000000.log");
    arm(Fault::new(FailPoint::SegmentSync, InjectedError::Eio, Trigger::Always).under(&path));
    let synced = log.prepare_sync().unwrap().sync();
    disarm(Some(&path));
    assert!(synced.is_err(), "prepare_sync covers the evicted segment");
}
