#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::collections::BTreeMap;

use wharf_protocol::batch::{self, build_batch};
use wharf_protocol::compression::Compression;
use wharf_storage::{Log, LogConfig};

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 300,
        compact: true,
        delete_retention_ms: 1_000,
        ..LogConfig::default()
    }
}

/// Every (offset, key, value, codec) in the log.
fn contents(log: &Log) -> Vec<(i64, String, Option<String>, Compression)> {
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
                if r.offset >= offset {
                    out.push((
                        r.offset,
                        String::from_utf8(r.key.unwrap().to_vec()).unwrap(),
                        r.value.map(|v| String::from_utf8(v.to_vec()).unwrap()),
                        header.compression(),
                    ));
                }
            }
            offset = header.next_offset();
        }
    }
    out
}

/// Appends batches of (key, value) records, each stamped `ts`.
fn append(log: &mut Log, records: &[(&str, Option<&str>)], ts: i64, codec: Compression) {
    let recs: Vec<_> = records
        .iter()
        .map(|(k, v)| (Some(k.as_bytes()), v.map(str::as_bytes), ts))
        .collect();
    log.append(&mut build_batch(0, &recs, codec).unwrap(), 0)
        .unwrap();
}

#[test]
fn keeps_the_latest_record_per_key_at_its_offset_in_closed_segments() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), config()).unwrap();
    let codecs = [Compression::None, Compression::Gzip, Compression::Lz4];
    let mut latest = BTreeMap::new();
    for round in 0..12 {
        let codec = codecs[round % 3];
        let vals: Vec<String> = (0..4).map(|k| format!("v{round}-{k}")).collect();
        let recs: Vec<(&str, Option<&str>)> = ["a", "b", "c", "d"]
            .iter()
            .zip(&vals)
            .filter(|(k, _)| round % 2 == 0 || **k != "d") // d is written every other round
            .map(|(k, v)| (*k, Some(v.as_str())))
            .collect();
        let base = log.log_end_offset();
        append(&mut log, &recs, 1_000_000, codec);
        for (i, (k, v)) in recs.iter().enumerate() {
            latest.insert(
                k.to_string(),
                (base + i as i64, v.unwrap().to_string(), codec),
            );
        }
    }
    assert!(log.segment_count() > 3);
    let before = contents(&log);
    let end = log.log_end_offset();
    let out = log.compact(1_000_000).unwrap();
    assert!(out.segments_rewritten > 0 && out.records_removed > 0);
    let after = contents(&log);
    assert_eq!(log.log_end_offset(), end);
    assert_eq!(log.log_start_offset(), 0);
    assert!(after.len() < before.len());
    // Every latest record is still there, at its offset, with its codec.
    for (k, (offset, v, codec)) in &latest {
        assert!(
            after.contains(&(*offset, k.clone(), Some(v.clone()), *codec)),
            "{k} lost"
        );
    }
    // In closed segments no key appears twice; everything left was in the log before.
    let active_base = *log.segment_base_offsets().last().unwrap();
    let mut seen = std::collections::HashSet::new();
    for rec in after.iter().filter(|r| r.0 < active_base) {
        assert!(
            seen.insert(rec.1.clone()),
            "{} twice in closed segments",
            rec.1
        );
        assert!(before.contains(rec));
    }
    // The result survives a reopen (indexes rebuilt) and a second pass is a no-op.
    drop(log);
    let mut log = Log::open(dir.path(), config()).unwrap();
    assert_eq!(contents(&log), after);
    assert_eq!(log.compact(1_000_000).unwrap().records_removed, 0);
    // Appends continue at the old end.
    append(
        &mut log,
        &[("a", Some("new"))],
        1_000_000,
        Compression::None,
    );
    assert_eq!(log.log_end_offset(), end + 1);
}

#[test]
fn tombstones_go_after_delete_retention_and_young_segments_wait() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = LogConfig {
        min_compaction_lag_ms: 5_000,
        ..config()
    };
    let mut log = Log::open(dir.path(), cfg).unwrap();
    for i in 0..6 {
        append(
            &mut log,
            &[("k", Some("value-value-value-value"))],
            10_000 + i,
            Compression::None,
        );
        append(&mut log, &[("gone", None)], 10_000 + i, Compression::None);
        log.roll().unwrap();
    }
    // At t=12 000 everything is younger than the 5 s lag: nothing changes.
    assert_eq!(log.compact(12_000).unwrap().records_removed, 0);
    // At t=16 000 the closed segments are past the lag, and the tombstones,
    // 6 s old, are past delete.retention.ms (1 s): they go too.
    let out = log.compact(16_000).unwrap();
    assert!(out.records_removed >= 10, "{out:?}");
    let left = contents(&log);
    assert!(left.iter().all(|r| r.1 != "gone"), "{left:?}");
    assert_eq!(left.iter().filter(|r| r.1 == "k").count(), 1);
    assert_eq!(left.last().unwrap().0, 10); // k's last write
}

#[test]
fn logs_that_are_not_compacted_are_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = LogConfig {
        compact: false,
        ..config()
    };
    let mut log = Log::open(dir.path(), cfg).unwrap();
    for _ in 0..10 {
        append(&mut log, &[("k", Some("v"))], 0, Compression::None);
        log.roll().unwrap();
    }
    assert_eq!(log.compact(1_000_000).unwrap(), Default::default());
    assert_eq!(contents(&log).len(), 10);
}
