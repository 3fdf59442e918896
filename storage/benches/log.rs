//! Append and read throughput of one partition's log, and the time to open
//! (recover) a large log.
//!
//! `cargo bench -p wharf-storage --bench log`. The recovery benchmark's log
//! size is `WHARF_BENCH_RECOVERY_MIB` (default 1024 MiB); it is built once in
//! a temporary directory before being measured. The `open` benchmark
//! opens a log of `WHARF_BENCH_OPEN_BATCHES` small batches with and without
//! a producer-state snapshot.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use wharf_protocol::batch::{build_batch, build_batch_with, BatchOptions, NewRecord};
use wharf_protocol::compression::Compression;
use wharf_storage::{Log, LogConfig};

const T0: i64 = 1_700_000_000_000;

/// A batch of `records` records of `value_len` bytes each, stamped from `ts`
/// one millisecond apart.
fn batch_at(records: usize, value_len: usize, ts: i64) -> Vec<u8> {
    let value = vec![b'v'; value_len];
    let recs: Vec<_> = (0..records)
        .map(|i| (Some(&b"key"[..]), Some(&value[..]), ts + i as i64))
        .collect();
    build_batch(0, &recs, Compression::None).unwrap()
}

fn batch(records: usize, value_len: usize) -> Vec<u8> {
    batch_at(records, value_len, T0)
}

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 128 << 20,
        ..LogConfig::default()
    }
}

fn append(c: &mut Criterion) {
    let template = batch(100, 100); // ~11 KiB batches of 100 records
    let mut group = c.benchmark_group("append");
    group.throughput(Throughput::Bytes(template.len() as u64));
    group.measurement_time(Duration::from_secs(5));
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), config()).unwrap();
    group.bench_function("100x100B batch", |b| {
        b.iter_batched_ref(
            || template.clone(),
            |bytes| log.append(bytes, 0).unwrap(),
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

fn read(c: &mut Criterion) {
    // 5 000 batches, 500 000 records, timestamps rising 1 ms per record.
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), config()).unwrap();
    for i in 0..5_000i64 {
        log.append(&mut batch_at(100, 100, T0 + i * 100), 0)
            .unwrap();
    }
    let end = log.log_end_offset();
    let mut group = c.benchmark_group("read");
    let max_bytes = 1 << 20;
    group.throughput(Throughput::Bytes(max_bytes as u64));
    group.measurement_time(Duration::from_secs(5));
    let mut offset = 0i64;
    group.bench_function("1 MiB fetch", |b| {
        b.iter(|| {
            let bytes = log.read(offset, max_bytes, true).unwrap();
            offset = (offset + 9_000) % (end - 10_000);
            bytes
        })
    });
    group.finish();
    let mut group = c.benchmark_group("lookup");
    group.bench_function("offset for timestamp in 500k records", |b| {
        let mut ts = 0i64;
        b.iter(|| {
            ts = (ts + 7_919) % 500_000;
            let found = log.offset_for_timestamp(T0 + ts).unwrap();
            assert_eq!(found.map(|(o, _)| o), Some(ts));
            found
        })
    });
    group.finish();
}

fn recovery(c: &mut Criterion) {
    let mib: u64 = std::env::var("WHARF_BENCH_RECOVERY_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024);
    let dir = tempfile::tempdir().unwrap();
    let template = batch(500, 200); // ~105 KiB batches
    let built = Instant::now();
    {
        let mut log = Log::open(dir.path(), config()).unwrap();
        while log.size_bytes() < mib << 20 {
            log.append(&mut template.clone(), 0).unwrap();
        }
        log.flush().unwrap();
        eprintln!(
            "recovery: built a {} MiB log of {} records in {} segments in {:?}",
            log.size_bytes() >> 20,
            log.log_end_offset(),
            log.segment_count(),
            built.elapsed()
        );
    }
    let mut group = c.benchmark_group("recovery");
    group.sample_size(10);
    group.throughput(Throughput::Bytes(mib << 20));
    group.bench_function(format!("open {mib} MiB log"), |b| {
        b.iter(|| Log::open(dir.path(), config()).unwrap())
    });
    group.finish();
}

/// Opening a log of many small batches from idempotent producers, with the
/// producer-state snapshot its close wrote and without it (every batch
/// header scanned). `WHARF_BENCH_OPEN_BATCHES` batches (default 1,000,000)
/// of one record, from 100 producers in turn, in 8 MiB segments.
fn open_many_batches(c: &mut Criterion) {
    let batches: u64 = std::env::var("WHARF_BENCH_OPEN_BATCHES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let config = LogConfig {
        segment_bytes: 8 << 20,
        ..LogConfig::default()
    };
    let dir = tempfile::tempdir().unwrap();
    let built = Instant::now();
    {
        let mut log = Log::open(dir.path(), config.clone()).unwrap();
        let record = [NewRecord {
            key: None,
            value: Some(&b"v"[..]),
            timestamp: T0,
            headers: Vec::new(),
        }];
        for n in 0..batches {
            let options = BatchOptions {
                producer_id: (n % 100) as i64,
                producer_epoch: 0,
                base_sequence: (n / 100) as i32,
                ..BatchOptions::default()
            };
            let mut bytes = build_batch_with(0, &record, &options).unwrap();
            log.append(&mut bytes, 0).unwrap();
        }
        log.close().unwrap();
        eprintln!(
            "open: built a log of {} batches in {} segments ({} MiB) in {:?}",
            log.log_end_offset(),
            log.segment_count(),
            log.size_bytes() >> 20,
            built.elapsed()
        );
    }
    let mut group = c.benchmark_group("open");
    group.sample_size(10);
    group.bench_function(format!("{batches} batches, from the close snapshot"), |b| {
        b.iter(|| Log::open(dir.path(), config.clone()).unwrap())
    });
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "snapshot") {
            std::fs::remove_file(path).unwrap();
        }
    }
    group.bench_function(format!("{batches} batches, full scan (no snapshot)"), |b| {
        b.iter(|| Log::open(dir.path(), config.clone()).unwrap())
    });
    group.finish();
}

criterion_group!(benches, append, read, recovery, open_many_batches);
criterion_main!(benches);
