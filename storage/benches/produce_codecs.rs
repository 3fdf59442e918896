//! Produce-path throughput per codec, with 1 KiB records.
//!
//! - `append/<codec>`: what a Produce of a batch in `<codec>` costs when the
//!   topic keeps the producer's codec: full validation (CRC-32C, every
//!   record walked through the streaming decoder) and the append to a log.
//! - `recompress/<from>-to-<to>`: what a topic whose `compression.type`
//!   differs adds: validate the batch, then stream its records into the
//!   topic's codec.
//!
//! Throughput is in uncompressed record bytes (16 records of 1 KiB each per
//! batch, half-compressible text as real payloads tend to be).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use wharf_protocol::batch::{self, NewRecord};
use wharf_protocol::compression::Compression;
use wharf_storage::{Log, LogConfig};

const RECORDS: usize = 16;
const RECORD_LEN: usize = 1024;

/// 1 KiB values: a few words from a small vocabulary (compressible) and a
/// counter-derived noise tail (not).
fn values() -> Vec<Vec<u8>> {
    let words = [
        "order", "created", "customer", "amount", "EUR", "status", "shipped",
    ];
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    (0..RECORDS)
        .map(|i| {
            let mut v = Vec::with_capacity(RECORD_LEN);
            while v.len() < RECORD_LEN / 2 {
                v.extend_from_slice(words[(v.len() + i) % words.len()].as_bytes());
                v.push(b' ');
            }
            while v.len() < RECORD_LEN {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                v.push(b'a' + (state % 26) as u8);
            }
            v.truncate(RECORD_LEN);
            v
        })
        .collect()
}

fn batch_in(codec: Compression, values: &[Vec<u8>]) -> Vec<u8> {
    let records: Vec<NewRecord<'_>> = values
        .iter()
        .enumerate()
        .map(|(i, v)| NewRecord {
            key: Some(b"customer-42"),
            value: Some(v),
            timestamp: 1_700_000_000_000 + i as i64,
            headers: vec![(b"source".as_slice(), Some(b"bench".as_slice()))],
        })
        .collect();
    let options = batch::BatchOptions {
        compression: codec,
        ..batch::BatchOptions::default()
    };
    batch::build_batch_with(0, &records, &options).unwrap()
}

fn append(c: &mut Criterion) {
    let values = values();
    let mut group = c.benchmark_group("append");
    group.throughput(Throughput::Bytes((RECORDS * RECORD_LEN) as u64));
    group.sample_size(20);
    group.measurement_time(Duration::from_secs(3));
    for codec in Compression::ALL {
        let batch = batch_in(codec, &values);
        group.bench_function(BenchmarkId::from_parameter(codec), |b| {
            // A fresh log per sample, so the data written stays small.
            b.iter_custom(|iters| {
                let dir = tempfile::tempdir().unwrap();
                let mut log = Log::open(dir.path(), LogConfig::default()).unwrap();
                let mut buf = batch.clone();
                let start = Instant::now();
                for _ in 0..iters {
                    log.append(&mut buf, 0).unwrap();
                }
                start.elapsed()
            });
        });
    }
    group.finish();
}

fn recompress(c: &mut Criterion) {
    let values = values();
    let mut group = c.benchmark_group("recompress");
    group.throughput(Throughput::Bytes((RECORDS * RECORD_LEN) as u64));
    group.sample_size(20);
    group.measurement_time(Duration::from_secs(3));
    let pairs = [
        (Compression::None, Compression::Zstd),
        (Compression::Gzip, Compression::Zstd),
        (Compression::Zstd, Compression::Gzip),
        (Compression::Snappy, Compression::Lz4),
        (Compression::Lz4, Compression::Snappy),
        (Compression::Zstd, Compression::None),
    ];
    for (from, to) in pairs {
        let batch = batch_in(from, &values);
        group.bench_function(
            BenchmarkId::from_parameter(format!("{from}-to-{to}")),
            |b| {
                b.iter(|| batch::recompress(&batch, to, None, 64 << 20).unwrap());
            },
        );
    }
    group.finish();
}

criterion_group!(benches, append, recompress);
criterion_main!(benches);
