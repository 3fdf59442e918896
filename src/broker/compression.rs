//! Compression settings of topics (`compression.type` and the KIP-390
//! levels) and the produce-path decision to recompress.
//!
//! Here: what a topic's configs ask for ([`compression_for`]) and what that
//! means for a Produce's batches ([`prepare_records`]). The configs' names,
//! defaults and valid values are in the one config table (`configs.rs`); the
//! codecs themselves are `wharf_protocol`'s.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use wharf_protocol::batch::{self, BatchError};
use wharf_protocol::compression::{self, Compression};

use super::BrokerError;

pub const COMPRESSION_TYPE: &str = "compression.type";
pub const GZIP_LEVEL: &str = "compression.gzip.level";
pub const LZ4_LEVEL: &str = "compression.lz4.level";
pub const ZSTD_LEVEL: &str = "compression.zstd.level";

/// A `compression.type` value: keep what the producer sent, or store every
/// batch in one codec (`uncompressed` is [`Compression::None`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CompressionType {
    #[default]
    Producer,
    Codec(Compression),
}

impl FromStr for CompressionType {
    type Err = String;

    /// Kafka's topic and broker values, case-sensitive as Kafka's validator is.
    fn from_str(value: &str) -> Result<Self, String> {
        Ok(match value {
            "producer" => CompressionType::Producer,
            "uncompressed" => CompressionType::Codec(Compression::None),
            "gzip" => CompressionType::Codec(Compression::Gzip),
            "snappy" => CompressionType::Codec(Compression::Snappy),
            "lz4" => CompressionType::Codec(Compression::Lz4),
            "zstd" => CompressionType::Codec(Compression::Zstd),
            other => {
                return Err(format!(
                    "invalid value {other:?} for {COMPRESSION_TYPE}: expected one of \
                     uncompressed, zstd, lz4, snappy, gzip, producer"
                ))
            }
        })
    }
}

impl fmt::Display for CompressionType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CompressionType::Producer => "producer",
            CompressionType::Codec(Compression::None) => "uncompressed",
            CompressionType::Codec(codec) => codec.name(),
        })
    }
}

/// How the broker must store a topic's batches when it does not keep the
/// producer's codec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recompression {
    pub codec: Compression,
    /// KIP-390 level; `None` is the codec's default.
    pub level: Option<i32>,
}

/// What a topic with `configs` asks for, with `default` (the broker's
/// `--compression-type`) when it sets no `compression.type` of its own:
/// `None` to keep the producer's batches as they are.
pub fn compression_for(
    configs: &BTreeMap<String, String>,
    default: CompressionType,
) -> Option<Recompression> {
    let kind = configs
        .get(COMPRESSION_TYPE)
        .and_then(|v| v.parse().ok())
        .unwrap_or(default);
    let CompressionType::Codec(codec) = kind else {
        return None;
    };
    let level_key = match codec {
        Compression::Gzip => Some(GZIP_LEVEL),
        Compression::Lz4 => Some(LZ4_LEVEL),
        Compression::Zstd => Some(ZSTD_LEVEL),
        Compression::None | Compression::Snappy => None,
    };
    let level = level_key
        .and_then(|key| configs.get(key).map(|v| (key, v)))
        .and_then(|(key, v)| parse_level(codec, key, v).ok().flatten());
    Some(Recompression { codec, level })
}

/// A level config's value: `None` for gzip's -1 (its default).
fn parse_level(codec: Compression, key: &str, value: &str) -> Result<Option<i32>, BrokerError> {
    let (min, max) = compression::level_range(codec).unwrap_or((0, 0));
    let level = value.trim().parse::<i32>().map_err(|_| {
        BrokerError::InvalidConfig(format!(
            "invalid value {value:?} for {key}: must be an integer"
        ))
    })?;
    if codec == Compression::Gzip && level == -1 {
        return Ok(None);
    }
    if level < min || level > max {
        let also = if codec == Compression::Gzip {
            " or -1"
        } else {
            ""
        };
        return Err(BrokerError::InvalidConfig(format!(
            "invalid value {level} for {key}: must be between {min} and {max}{also}"
        )));
    }
    Ok(Some(level))
}

/// Why a Produce's records cannot be stored as the topic asks.
#[derive(Debug, thiserror::Error)]
pub enum PrepareError {
    /// zstd in a Produce older than v7, which Kafka refuses.
    #[error("zstd batches need Produce v7 or later, got v{0}")]
    ZstdNeedsV7(i16),
    /// A control batch (transaction marker): only the broker writes those.
    #[error("clients may not write control batches (transaction markers)")]
    ControlBatch,
    /// More than one batch for one partition, which Kafka refuses from v3.
    #[error("a produce request carries one record batch per partition, got {0}")]
    NotOneBatch(usize),
    /// A batch could not be parsed, validated or recompressed.
    #[error(transparent)]
    Batch(#[from] BatchError),
}

/// Checks a client's Produce `records` as Kafka does before any append (one
/// batch per partition, no control batches: only the broker writes
/// transaction markers) and applies the topic's compression: `Ok(None)` when
/// they are to be stored as they arrived, else the records with every batch
/// in another codec recompressed (see [`batch::recompress`]). Batches
/// already in the topic's codec are copied untouched. `api_version` is the
/// Produce version (zstd needs v7, as in Kafka).
pub fn prepare_records(
    records: &[u8],
    target: Option<Recompression>,
    api_version: i16,
    max_decompressed: usize,
) -> Result<Option<Vec<u8>>, PrepareError> {
    let mut needs_work = false;
    let mut count = 0usize;
    for item in batch::batches(records) {
        let (header, _) = item?;
        count = count.saturating_add(1);
        if header.is_control() {
            return Err(PrepareError::ControlBatch);
        }
        if header.compression() == Compression::Zstd && api_version < 7 {
            return Err(PrepareError::ZstdNeedsV7(api_version));
        }
        needs_work |= target.is_some_and(|t| t.codec != header.compression());
    }
    if count > 1 {
        return Err(PrepareError::NotOneBatch(count));
    }
    let Some(target) = target.filter(|_| needs_work) else {
        return Ok(None);
    };
    let mut out = Vec::with_capacity(records.len());
    for item in batch::batches(records) {
        let (header, bytes) = item?;
        if header.compression() == target.codec {
            out.extend_from_slice(bytes);
        } else {
            out.extend(batch::recompress(
                bytes,
                target.codec,
                target.level,
                max_decompressed,
            )?);
        }
    }
    Ok(Some(out))
}

/// Whether any batch in `records` is zstd-compressed (Kafka refuses those
/// to Fetch requests older than v10).
pub fn contains_zstd(records: &[u8]) -> bool {
    batch::batches(records)
        .map_while(Result::ok)
        .any(|(header, _)| header.compression() == Compression::Zstd)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn cfg(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// The compression configs are validated by the one config table.
    fn check(key: &str, value: &str) -> Result<(), BrokerError> {
        crate::broker::configs::validate_topic_configs(&cfg(&[(key, value)]))
    }

    #[test]
    fn accepts_kafkas_values_and_rejects_others() {
        for ok in ["producer", "uncompressed", "gzip", "snappy", "lz4", "zstd"] {
            assert!(check(COMPRESSION_TYPE, ok).is_ok(), "{ok}");
            assert_eq!(ok.parse::<CompressionType>().unwrap().to_string(), ok);
        }
        for bad in ["none", "GZIP", "brotli", ""] {
            let err = check(COMPRESSION_TYPE, bad).unwrap_err();
            assert!(err.to_string().contains(COMPRESSION_TYPE), "{bad}: {err}");
        }
    }

    #[test]
    fn checks_levels_against_kip_390_ranges() {
        for (key, ok, bad) in [
            (
                GZIP_LEVEL,
                &["1", "9", "-1"][..],
                &["0", "10", "-2", "x"][..],
            ),
            (LZ4_LEVEL, &["1", "17"][..], &["0", "18"][..]),
            (
                ZSTD_LEVEL,
                &["-131072", "22", "0"][..],
                &["23", "-131073"][..],
            ),
        ] {
            for v in ok {
                assert!(check(key, v).is_ok(), "{key}={v}");
            }
            for v in bad {
                assert!(check(key, v).is_err(), "{key}={v}");
            }
        }
    }

    #[test]
    fn topic_setting_overrides_the_broker_default() {
        assert_eq!(compression_for(&cfg(&[]), CompressionType::Producer), None);
        assert_eq!(
            compression_for(&cfg(&[]), CompressionType::Codec(Compression::Lz4)),
            Some(Recompression {
                codec: Compression::Lz4,
                level: None
            })
        );
        assert_eq!(
            compression_for(
                &cfg(&[(COMPRESSION_TYPE, "producer")]),
                CompressionType::Codec(Compression::Lz4)
            ),
            None
        );
        assert_eq!(
            compression_for(
                &cfg(&[
                    (COMPRESSION_TYPE, "zstd"),
                    (ZSTD_LEVEL, "7"),
                    (GZIP_LEVEL, "2")
                ]),
                CompressionType::Producer
            ),
            Some(Recompression {
                codec: Compression::Zstd,
                level: Some(7)
            })
        );
    }

    #[test]
    fn prepare_recompresses_only_batches_in_another_codec() {
        let gz = batch::build_batch(0, &[(None, Some(b"a"), 1)], Compression::Gzip).unwrap();
        let zs = batch::build_batch(0, &[(None, Some(b"b"), 2)], Compression::Zstd).unwrap();
        let target = Some(Recompression {
            codec: Compression::Gzip,
            level: Some(9),
        });
        assert!(prepare_records(&zs, None, 13, 1 << 20).unwrap().is_none());
        let out = prepare_records(&zs, target, 13, 1 << 20).unwrap().unwrap();
        let batches: Vec<_> = batch::batches(&out).map(Result::unwrap).collect();
        assert_eq!(batches.len(), 1);
        assert_eq!(batches[0].0.compression(), Compression::Gzip);
        batch::validate(batches[0].1, 1 << 20).unwrap();
        assert!(prepare_records(&gz, target, 13, 1 << 20).unwrap().is_none());
    }

    #[test]
    fn refuses_more_than_one_batch_per_partition() {
        let a = batch::build_batch(0, &[(None, Some(b"a"), 1)], Compression::None).unwrap();
        let records = [a.clone(), a].concat();
        assert!(matches!(
            prepare_records(&records, None, 9, 1 << 20),
            Err(PrepareError::NotOneBatch(2))
        ));
    }

    #[test]
    fn refuses_control_batches_from_clients() {
        let marker = batch::ControlMarker {
            commit: true,
            coordinator_epoch: 0,
        };
        let forged = batch::build_marker(7, 0, marker, 1).unwrap();
        assert!(matches!(
            prepare_records(&forged, None, 9, 1 << 20),
            Err(PrepareError::ControlBatch)
        ));
    }

    #[test]
    fn zstd_needs_produce_v7() {
        let zs = batch::build_batch(0, &[(None, Some(b"b"), 2)], Compression::Zstd).unwrap();
        assert!(matches!(
            prepare_records(&zs, None, 6, 1 << 20),
            Err(PrepareError::ZstdNeedsV7(6))
        ));
        assert!(prepare_records(&zs, None, 7, 1 << 20).is_ok());
    }
}
