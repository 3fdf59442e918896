//! Validating a compressed batch does not hold its decompressed records:
//! an allocation-counting allocator measures what `validate_batch` takes
//! for a batch whose records decompress to 10 MiB, against what the
//! whole-payload path takes. One test only, so no other thread allocates
//! while it measures.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::alloc::System;

use stats_alloc::{Region, StatsAlloc, INSTRUMENTED_SYSTEM};
use wharf_protocol::batch::{self, BatchHeader, SimpleRecord};
use wharf_protocol::compression::Compression;

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

const RECORDS: usize = 160;
const RECORD_LEN: usize = 64 * 1024;
const LIMIT: usize = 64 << 20;

/// Bytes the allocator handed out in `f`, growth by realloc included.
fn allocated_by(f: impl FnOnce()) -> usize {
    let region = Region::new(GLOBAL);
    f();
    let change = region.change();
    change.bytes_allocated + change.bytes_reallocated.max(0) as usize
}

#[test]
fn streamed_validation_allocates_a_window_not_the_payload() {
    // Compressible but not trivial: each value repeats its own 4 KiB pattern.
    let values: Vec<Vec<u8>> = (0..RECORDS)
        .map(|i| {
            let pattern: Vec<u8> = (0..4096u32)
                .map(|j| b'a' + ((j.wrapping_mul(2_654_435_761) ^ i as u32) >> 13) as u8 % 26)
                .collect();
            pattern.repeat(RECORD_LEN / 4096)
        })
        .collect();
    let records: Vec<SimpleRecord<'_>> = values
        .iter()
        .map(|v| (Some(b"key".as_slice()), Some(v.as_slice()), 1))
        .collect();
    let decompressed = RECORDS * RECORD_LEN;
    for codec in [
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ] {
        let built = batch::build_batch(0, &records, codec).unwrap();
        assert!(built.len() < decompressed / 4, "{codec} compresses");
        let streamed = allocated_by(|| {
            batch::validate_batch(&built, LIMIT).unwrap();
        });
        let whole = allocated_by(|| {
            let header = BatchHeader::parse(&built).unwrap();
            let payload = batch::records_payload(&built, &header, LIMIT).unwrap();
            assert!(payload.len() > decompressed);
        });
        eprintln!("{codec}: streamed validation allocated {streamed} bytes; whole payload {whole}");
        assert!(whole > decompressed, "{codec}: {whole}");
        // A window of a few records plus the codec's own state: measured at
        // 230-360 KiB for 10 MiB of records.
        assert!(
            streamed < 1 << 20,
            "{codec}: streamed validation allocated {streamed} bytes for {decompressed}"
        );
    }
}
