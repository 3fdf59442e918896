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
fn tombstones_stay_for_delete_retention_after_the_first_cleaning_and_young_segments_wait() {
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
    // At t=16 000 the closed segments are past the lag: older values go.
    // The latest tombstone, although its own timestamp is 6 s old, stays:
    // this first pass stamps it with a delete horizon of 16 000 + 1 000.
    let out = log.compact(16_000).unwrap();
    assert_eq!(out.records_removed, 10, "{out:?}");
    let left = contents(&log);
    assert_eq!(
        left.iter()
            .map(|r| (r.0, r.1.as_str(), r.2.is_some()))
            .collect::<Vec<_>>(),
        vec![(10, "k", true), (11, "gone", false)]
    );
    let chunk = log.read(11, 1 << 20, true).unwrap();
    let (header, bytes) = batch::batches(&chunk).next().unwrap().unwrap();
    assert!(header.has_delete_horizon());
    assert_eq!(header.base_timestamp(), 17_000);
    let payload = batch::records_payload(bytes, &header, 1 << 20).unwrap();
    let record = batch::records(&header, &payload).next().unwrap().unwrap();
    assert_eq!(
        record.timestamp, 10_005,
        "record timestamps survive the stamp"
    );
    // Before the horizon nothing is due; from it on the tombstone goes.
    assert_eq!(log.compact(16_999).unwrap().records_removed, 0);
    assert_eq!(log.compact(17_000).unwrap().records_removed, 1);
    let left = contents(&log);
    assert!(left.iter().all(|r| r.1 != "gone"), "{left:?}");
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

/// A closed segment per record: appends one (key, value) at `ts` and rolls.
fn append_rolled(log: &mut Log, key: &str, value: &str, ts: i64) {
    append(log, &[(key, Some(value))], ts, Compression::None);
    log.roll().unwrap();
}

#[test]
fn clean_log_waits_until_its_dirty_ratio_exceeds_min_cleanable_dirty_ratio() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = LogConfig {
        min_cleanable_dirty_ratio: 0.5,
        ..config()
    };
    let mut log = Log::open(dir.path(), cfg).unwrap();
    for k in ["k1", "k2", "k3", "k4"] {
        append_rolled(&mut log, k, "v0", 1);
    }
    // All dirty after opening: the pass runs (nothing to remove yet).
    assert_eq!(log.compact(10).unwrap().records_removed, 0);
    // 1 of 5 segments dirty (0.2), then 4 of 8 (0.5, not above): left alone.
    append_rolled(&mut log, "k1", "v1", 2);
    assert_eq!(log.compact(10).unwrap(), Default::default());
    for k in ["k2", "k3", "k4"] {
        append_rolled(&mut log, k, "v1", 2);
    }
    assert_eq!(log.compact(10).unwrap(), Default::default());
    assert_eq!(contents(&log).len(), 8);
    // 5 of 9 dirty: cleaned, every superseded value goes.
    append_rolled(&mut log, "k1", "v2", 3);
    assert_eq!(log.compact(10).unwrap().records_removed, 5);
    let left: Vec<_> = contents(&log)
        .into_iter()
        .map(|r| (r.1, r.2.unwrap()))
        .collect();
    let want = [("k2", "v1"), ("k3", "v1"), ("k4", "v1"), ("k1", "v2")];
    assert_eq!(
        left,
        want.map(|(k, v)| (k.to_string(), v.to_string())).to_vec()
    );
}

#[test]
fn max_compaction_lag_forces_a_pass_below_the_dirty_ratio() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = LogConfig {
        min_cleanable_dirty_ratio: 0.9,
        max_compaction_lag_ms: 1_000,
        ..config()
    };
    let mut log = Log::open(dir.path(), cfg).unwrap();
    for k in ["k1", "k2", "k3", "k4"] {
        append_rolled(&mut log, k, "v0", 1_000);
    }
    assert_eq!(log.compact(1_500).unwrap().records_removed, 0);
    append_rolled(&mut log, "k1", "v1", 5_000);
    // The dirty record is 500 ms old: below the ratio and the lag, no pass.
    assert_eq!(log.compact(5_500).unwrap(), Default::default());
    // 1 001 ms old: past max.compaction.lag.ms, cleaned anyway.
    assert_eq!(log.compact(6_001).unwrap().records_removed, 1);
    assert_eq!(contents(&log).len(), 4);
}

#[test]
fn pass_built_without_the_lock_keeps_later_appends_and_skips_segments_deleted_meanwhile() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), config()).unwrap();
    for (k, v) in [("k", "a"), ("k", "b"), ("k", "c"), ("j", "d")] {
        append_rolled(&mut log, k, v, 1);
    }
    let plan = log.plan_compaction(10).unwrap().expect("all dirty: due");
    // While the pass is built, appends carry on and DeleteRecords removes
    // the first segment.
    append(&mut log, &[("k", Some("e"))], 2, Compression::None);
    assert_eq!(log.advance_log_start(1).unwrap(), 1);
    let cleaned = plan.build(&mut wharf_storage::Throttle::new(None)).unwrap();
    let out = log.finish_compaction(cleaned).unwrap();
    // Offsets 0 and 1 (k=a, k=b) are superseded by offset 2 as planned,
    // but segment 0 is gone: only segment 1's output is swapped in. Offset
    // 2 stays, since the plan did not know of offset 4.
    assert_eq!(out.records_removed, 1);
    let left: Vec<_> = contents(&log)
        .into_iter()
        .map(|r| (r.0, r.2.unwrap()))
        .collect();
    let want = [(2, "c"), (3, "d"), (4, "e")];
    assert_eq!(left, want.map(|(o, v)| (o, v.to_string())).to_vec());
    assert_eq!(log.segment_base_offsets()[0], 1);
    let leftovers = std::fs::read_dir(dir.path())
        .unwrap()
        .filter(|e| {
            let name = e.as_ref().unwrap().file_name();
            name.to_string_lossy().ends_with(".cleaned")
        })
        .count();
    assert_eq!(leftovers, 0);
}

#[test]
fn pass_built_before_a_truncation_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), config()).unwrap();
    for v in ["a", "b", "c"] {
        append_rolled(&mut log, "k", v, 1);
    }
    let plan = log.plan_compaction(10).unwrap().expect("due");
    let cleaned = plan.build(&mut wharf_storage::Throttle::new(None)).unwrap();
    // The newest value goes: the plan's key map is wrong now, and using it
    // would drop b, the value that is newest after the truncation.
    log.truncate_to(2).unwrap();
    assert_eq!(log.finish_compaction(cleaned).unwrap(), Default::default());
    let values: Vec<_> = contents(&log).into_iter().map(|r| r.2.unwrap()).collect();
    assert_eq!(values, ["a", "b"]);
    let cleaned_files = std::fs::read_dir(dir.path())
        .unwrap()
        .filter(|e| {
            let name = e.as_ref().unwrap().file_name();
            name.to_string_lossy().ends_with(".cleaned")
        })
        .count();
    assert_eq!(cleaned_files, 0);
    // The next pass uses a fresh map.
    assert_eq!(log.compact(10).unwrap().records_removed, 1);
}

/// CRC-32C (Castagnoli), bit by bit: enough for a test to re-seal a batch.
fn crc32c(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for byte in data {
        crc ^= u32::from(*byte);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0x82F6_3B78
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// A transaction commit marker of producer 7: a control batch (attributes
/// transactional | control) holding one control record.
fn commit_marker() -> Vec<u8> {
    let key = [0u8, 0, 0, 1]; // version 0, type 1 (COMMIT)
    let value = [0u8, 0, 0, 0, 0, 0];
    let records = [(Some(&key[..]), Some(&value[..]), 5)];
    let mut b = build_batch(0, &records, Compression::None).unwrap();
    b[21..23].copy_from_slice(&0x30i16.to_be_bytes()); // attributes
    b[43..51].copy_from_slice(&7i64.to_be_bytes()); // producerId
    b[51..53].copy_from_slice(&0i16.to_be_bytes()); // producerEpoch
    let crc = crc32c(&b[21..]);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    b
}

#[test]
fn control_batches_are_kept_whole() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), config()).unwrap();
    append(&mut log, &[("k", Some("v1"))], 1, Compression::None);
    let marker = commit_marker();
    log.append(&mut marker.clone(), 0).unwrap();
    append(&mut log, &[("k", Some("v2"))], 1, Compression::None);
    log.roll().unwrap();
    assert_eq!(log.compact(10).unwrap().records_removed, 1);
    let chunk = log.read(0, 1 << 20, true).unwrap();
    let batches: Vec<_> = batch::batches(&chunk)
        .map(|b| {
            let (header, bytes) = b.unwrap();
            (header, bytes.to_vec())
        })
        .collect();
    assert_eq!(batches.len(), 2);
    let (header, bytes) = &batches[0];
    assert!(header.is_control() && header.is_transactional());
    assert_eq!(header.base_offset(), 1);
    // Past the offset and leader epoch the log stamps, the same bytes.
    assert_eq!(&bytes[16..], &marker[16..]);
    assert_eq!(batches[1].0.base_offset(), 2);
}

/// One transactional batch of producer `pid` holding `records`, sequence `seq`.
fn append_txn(log: &mut Log, pid: i64, seq: i32, records: &[(&str, &str)]) {
    let recs: Vec<_> = records
        .iter()
        .map(|(k, v)| batch::NewRecord {
            key: Some(k.as_bytes()),
            value: Some(v.as_bytes()),
            timestamp: 1,
            headers: Vec::new(),
        })
        .collect();
    let options = batch::BatchOptions {
        transactional: true,
        producer_id: pid,
        producer_epoch: 0,
        base_sequence: seq,
        ..batch::BatchOptions::default()
    };
    log.append(&mut batch::build_batch_with(0, &recs, &options).unwrap(), 0)
        .unwrap();
}

fn end_txn(log: &mut Log, pid: i64, commit: bool) {
    let marker = batch::ControlMarker {
        commit,
        coordinator_epoch: 0,
    };
    log.append(&mut batch::build_marker(pid, 0, marker, 1).unwrap(), 0)
        .unwrap();
}

#[test]
fn aborted_and_open_transactions_never_hide_the_committed_value() {
    let dir = tempfile::tempdir().unwrap();
    // Any dirty bytes make a pass due, so the second pass below runs.
    let config = LogConfig {
        min_cleanable_dirty_ratio: 0.0,
        ..config()
    };
    let mut log = Log::open(dir.path(), config).unwrap();
    append(
        &mut log,
        &[("a", Some("a1")), ("b", Some("b1")), ("c", Some("c1"))],
        1,
        Compression::None,
    );
    // Producer 10 aborts a new value of a; producer 11 commits a new b;
    // producer 12 leaves a new c open. Each producer then writes one more
    // batch, so that none of the batches above is its producer's last.
    append_txn(&mut log, 10, 0, &[("a", "a2")]);
    append_txn(&mut log, 11, 0, &[("b", "b2")]);
    append_txn(&mut log, 12, 0, &[("c", "c2")]);
    end_txn(&mut log, 10, false);
    end_txn(&mut log, 11, true);
    append_txn(&mut log, 10, 1, &[("x", "x10")]);
    end_txn(&mut log, 10, true);
    append_txn(&mut log, 11, 1, &[("y", "y11")]);
    end_txn(&mut log, 11, true);
    append_txn(&mut log, 12, 1, &[("z", "z12")]);
    log.roll().unwrap();

    let outcome = log.compact(10).unwrap();
    let data: Vec<_> = contents(&log)
        .into_iter()
        .filter(|(_, k, _, _)| k.len() == 1) // control records' keys are 4 bytes
        .map(|(o, k, v, _)| (o, k, v.unwrap()))
        .collect();
    let expect = |o: i64, k: &str, v: &str| (o, k.to_string(), v.to_string());
    assert_eq!(
        data,
        vec![
            // a1 stays: a2 aborted (and its batch is gone); b1 replaced by
            // the committed b2; c1 stays under the open c2.
            expect(0, "a", "a1"),
            expect(2, "c", "c1"),
            expect(4, "b", "b2"),
            expect(5, "c", "c2"),
            expect(8, "x", "x10"),
            expect(10, "y", "y11"),
            expect(12, "z", "z12"),
        ]
    );
    assert_eq!(outcome.records_removed, 2, "b1 and the aborted a2");

    // Once producer 12 commits, c1 goes too.
    end_txn(&mut log, 12, true);
    log.roll().unwrap();
    log.compact(20).unwrap();
    let keys: Vec<_> = contents(&log)
        .into_iter()
        .filter(|(_, k, _, _)| k == "c")
        .map(|(o, _, v, _)| (o, v.unwrap()))
        .collect();
    assert_eq!(keys, vec![(5, "c2".to_string())]);
}
