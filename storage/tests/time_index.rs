#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use wharf_protocol::batch::build_batch;
use wharf_protocol::compression::Compression;
use wharf_storage::format::{time_index_file_name, TimeEntry};
use wharf_storage::{Log, LogConfig};

/// One batch of `n` records with timestamps `ts`, `ts+1`, ...
fn batch(n: usize, ts: i64) -> Vec<u8> {
    let records: Vec<_> = (0..n)
        .map(|i| (Some(&b"k"[..]), Some(&b"value"[..]), ts + i as i64))
        .collect();
    build_batch(0, &records, Compression::None).unwrap()
}

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 2048,
        index_interval_bytes: 150,
        ..LogConfig::default()
    }
}

/// Appends 200 batches of 3 records whose timestamps wander (mostly up,
/// sometimes back), and returns every (offset, timestamp) appended.
fn fill(log: &mut Log) -> Vec<(i64, i64)> {
    let mut all = Vec::new();
    let mut ts = 1_000i64;
    for i in 0..200i64 {
        ts += if i % 7 == 3 { -40 } else { 25 };
        let info = log.append(&mut batch(3, ts), 0).unwrap();
        for j in 0..3 {
            all.push((info.base_offset + j, ts + j));
        }
    }
    all
}

/// The first (offset, ts) with ts >= target, by brute force.
fn expected(all: &[(i64, i64)], target: i64) -> Option<(i64, i64)> {
    all.iter().copied().find(|(_, ts)| *ts >= target)
}

fn check_all_targets(log: &Log, all: &[(i64, i64)]) {
    let max = all.iter().map(|(_, t)| *t).max().unwrap();
    for target in (900..=max + 5).step_by(7) {
        assert_eq!(
            log.offset_for_timestamp(target).unwrap(),
            expected(all, target),
            "target {target}"
        );
    }
}

#[test]
fn offset_for_timestamp_matches_a_full_scan_and_files_use_kafka_layout() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), config()).unwrap();
    let all = fill(&mut log);
    assert!(log.segment_count() > 3);
    check_all_targets(&log, &all);

    // The first segment's time index: 12-byte entries, strictly increasing.
    let bytes = std::fs::read(dir.path().join(time_index_file_name(0))).unwrap();
    let entries = TimeEntry::decode_all(&bytes).unwrap();
    assert!(entries.len() >= 2);
    assert!(entries
        .windows(2)
        .all(|w| w[0].timestamp < w[1].timestamp && w[0].relative_offset < w[1].relative_offset));
    // Each entry names a batch whose max timestamp is its timestamp.
    for e in &entries {
        let offset = i64::from(e.relative_offset);
        let (_, ts) = all[usize::try_from(offset).unwrap() + 2];
        assert_eq!(ts, e.timestamp);
    }
}

#[test]
fn missing_or_corrupt_time_indexes_are_rebuilt_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), config()).unwrap();
    let all = fill(&mut log);
    let bases = log.segment_base_offsets();
    drop(log);
    let first = dir.path().join(time_index_file_name(bases[0]));
    let good = std::fs::read(&first).unwrap();
    std::fs::remove_file(&first).unwrap();
    let second = dir.path().join(time_index_file_name(bases[1]));
    std::fs::write(&second, [0xFFu8; 24]).unwrap();
    let last = dir
        .path()
        .join(time_index_file_name(*bases.last().unwrap()));
    std::fs::write(&last, [1u8; 5]).unwrap();

    let log = Log::open(dir.path(), config()).unwrap();
    assert_eq!(std::fs::read(&first).unwrap(), good);
    assert_ne!(std::fs::read(&second).unwrap(), vec![0xFFu8; 24]);
    assert_eq!(std::fs::read(&last).unwrap().len() % 12, 0);
    check_all_targets(&log, &all);
}

#[test]
fn truncation_keeps_the_time_index_consistent() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), config()).unwrap();
    let mut all = fill(&mut log);
    log.truncate_to(301).unwrap();
    all.retain(|(o, _)| *o < log.log_end_offset());
    check_all_targets(&log, &all);
    drop(log);
    let log = Log::open(dir.path(), config()).unwrap();
    check_all_targets(&log, &all);
}

#[test]
fn a_full_index_rolls_the_segment() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = LogConfig {
        segment_bytes: 1 << 20,
        index_interval_bytes: 1,
        index_max_bytes: 8 * 4, // four offset-index entries
        ..LogConfig::default()
    };
    let mut log = Log::open(dir.path(), cfg).unwrap();
    for i in 0..10 {
        log.append(&mut batch(1, i), 0).unwrap();
    }
    assert!(log.segment_count() >= 2, "{}", log.segment_count());
}

#[test]
fn segment_ms_rolls_an_old_active_segment() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = LogConfig {
        segment_ms: 1,
        ..LogConfig::default()
    };
    let mut log = Log::open(dir.path(), cfg).unwrap();
    log.append(&mut batch(1, 0), 0).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(20));
    log.append(&mut batch(1, 0), 0).unwrap();
    assert_eq!(log.segment_base_offsets(), vec![0, 1]);
}
