//! Batches written by real clients, captured once from a Wharf data directory
//! (`tests/data/<client>-<codec>.batch`: the segment file after one produce;
//! the broker rewrote only the base offset and leader epoch, which the CRC
//! does not cover). kcat 1.7 / librdkafka 2.0.2 writes raw snappy;
//! kafka-python 2.3.3 writes xerial-framed snappy and lz4 frames with a
//! content size. Each must validate and yield exactly the records sent.
//!
//! librdkafka sends lz4 only to brokers that list FindCoordinator, which
//! Wharf does not yet; `kcat-lz4` was captured through a small proxy that
//! added FindCoordinator to the ApiVersions answer.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use wharf_protocol::batch::{self, BatchHeader, Record};
use wharf_protocol::compression::Compression;

const LIMIT: usize = 1 << 20;

/// (key, value, header pairs) of one record.
type Expected = (
    Option<Vec<u8>>,
    Option<Vec<u8>>,
    Vec<(Vec<u8>, Option<Vec<u8>>)>,
);

fn load(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/data/{name}.batch", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn owned(r: &Record<'_>) -> Expected {
    (
        r.key.map(<[u8]>::to_vec),
        r.value.map(<[u8]>::to_vec),
        r.headers
            .iter()
            .map(|h| (h.key.to_vec(), h.value.map(<[u8]>::to_vec)))
            .collect(),
    )
}

/// Validates the one batch in `bytes` and returns its records twice: walked
/// through the streaming decoder and iterated over the whole payload.
fn check(name: &str, codec: Compression) -> (BatchHeader, Vec<Expected>) {
    let bytes = load(name);
    let mut all = batch::batches(&bytes);
    let (header, one) = all.next().unwrap().unwrap();
    assert!(all.next().is_none(), "{name}: one batch");
    assert_eq!(header.compression(), codec, "{name}");
    let validated = batch::validate_batch(one, LIMIT).unwrap();
    assert_eq!(validated.header.records_count(), 4, "{name}");
    let mut walked = Vec::new();
    batch::for_each_record(one, &header, LIMIT, |r| {
        walked.push(owned(r));
        Ok(())
    })
    .unwrap();
    let payload = batch::records_payload(one, &header, LIMIT).unwrap();
    let iterated: Vec<_> = batch::records(&header, &payload)
        .map(|r| owned(&r.unwrap()))
        .collect();
    assert_eq!(walked, iterated, "{name}");
    // Recompressing into every codec keeps the records.
    for to in Compression::ALL {
        let out = batch::recompress(one, to, None, LIMIT).unwrap();
        let h = batch::validate(&out, LIMIT).unwrap();
        let p = batch::records_payload(&out, &h, LIMIT).unwrap();
        let again: Vec<_> = batch::records(&h, &p).map(|r| owned(&r.unwrap())).collect();
        assert_eq!(again, walked, "{name} -> {to}");
    }
    (header, walked)
}

fn kv(key: Option<&[u8]>, value: Option<Vec<u8>>, headers: &[(&[u8], Option<&[u8]>)]) -> Expected {
    (
        key.map(<[u8]>::to_vec),
        value,
        headers
            .iter()
            .map(|(k, v)| (k.to_vec(), v.map(<[u8]>::to_vec)))
            .collect(),
    )
}

fn with_prefix(prefix: &str, fill: u8, n: usize) -> Option<Vec<u8>> {
    let mut v = prefix.as_bytes().to_vec();
    v.extend(std::iter::repeat_n(fill, n));
    Some(v)
}

#[test]
fn kcat_batches_validate_and_iterate() {
    let h1: &[(&[u8], Option<&[u8]>)] = &[(b"h1", Some(b"v1"))];
    let expected = vec![
        kv(Some(b"k1"), with_prefix("one ", b'a', 100), h1),
        kv(Some(b"k2"), with_prefix("two ", b'b', 100), h1),
        kv(Some(b""), with_prefix("three-null-key", 0, 0), h1),
        kv(Some(b"k4"), with_prefix("", b'x', 300), h1),
    ];
    for codec in [
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ] {
        let name = format!("kcat-{codec}");
        let (_, records) = check(&name, codec);
        assert_eq!(records, expected, "{name}");
    }
}

#[test]
fn kafka_python_batches_validate_and_iterate() {
    let expected = vec![
        kv(
            Some(b"k1"),
            with_prefix("one ", b'a', 100),
            &[(b"h1", Some(b"v1"))],
        ),
        kv(None, with_prefix("two ", b'b', 100), &[]),
        kv(Some(b"k3"), None, &[(b"h2", Some(b""))]),
        kv(Some(b"k4"), with_prefix("", b'y', 300), &[]),
    ];
    for codec in [
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ] {
        let name = format!("kafka-python-{codec}");
        let (header, records) = check(&name, codec);
        assert_eq!(records, expected, "{name}");
        assert_eq!(header.base_timestamp(), 1_700_000_000_000, "{name}");
        assert_eq!(header.max_timestamp(), 1_700_000_000_003, "{name}");
    }
}

#[test]
fn captured_batches_with_one_flipped_payload_byte_are_refused() {
    for name in [
        "kcat-gzip",
        "kcat-snappy",
        "kafka-python-lz4",
        "kafka-python-zstd",
    ] {
        let mut bytes = load(name);
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        assert!(batch::validate(&bytes, LIMIT).is_err(), "{name}");
    }
}
