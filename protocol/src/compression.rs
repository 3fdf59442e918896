//! Record-batch compression codecs, with Kafka's framing quirks.
//!
//! A v2 batch stores its compression codec in bits 0-2 of the attributes and,
//! when compressed, holds the records section as one compressed blob:
//!
//! - gzip: a gzip member (RFC 1952).
//! - snappy: either raw snappy, or the "xerial" framing written by the Java
//!   client (`\x82SNAPPY\x00`, two 4-byte version words, then blocks of a
//!   4-byte big-endian length followed by a raw snappy block). Both are read;
//!   the xerial framing is written, since every client understands it.
//! - lz4: the standard LZ4 frame format, independent 64 KiB blocks.
//! - zstd: a zstd frame.
//!
//! Decompression takes a limit on the output size so that a small hostile
//! input cannot make the broker allocate gigabytes ("decompression bomb").
#![deny(clippy::indexing_slicing)]

use std::fmt;
use std::io::{Read, Write};

/// The codec of a record batch (attributes bits 0-2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Compression {
    /// Records are stored as they are.
    None,
    /// gzip (codec id 1).
    Gzip,
    /// snappy (codec id 2).
    Snappy,
    /// lz4 frame format (codec id 3).
    Lz4,
    /// zstd (codec id 4).
    Zstd,
}

impl Compression {
    /// Every codec, in id order (handy for tests).
    pub const ALL: [Compression; 5] = [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ];

    /// The codec for an id taken from the low three bits of a batch's attributes.
    pub fn from_id(id: u8) -> Result<Compression, CompressionError> {
        match id {
            0 => Ok(Compression::None),
            1 => Ok(Compression::Gzip),
            2 => Ok(Compression::Snappy),
            3 => Ok(Compression::Lz4),
            4 => Ok(Compression::Zstd),
            other => Err(CompressionError::UnknownCodec(other)),
        }
    }

    /// The id stored in a batch's attributes.
    pub fn id(self) -> u8 {
        match self {
            Compression::None => 0,
            Compression::Gzip => 1,
            Compression::Snappy => 2,
            Compression::Lz4 => 3,
            Compression::Zstd => 4,
        }
    }

    /// The name Kafka's configuration uses (`compression.type`).
    pub fn name(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Snappy => "snappy",
            Compression::Lz4 => "lz4",
            Compression::Zstd => "zstd",
        }
    }
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a payload could not be compressed or decompressed.
#[derive(Debug, thiserror::Error)]
pub enum CompressionError {
    /// Attributes named a codec id Kafka does not define (5, 6 or 7).
    #[error("unknown compression codec id {0}")]
    UnknownCodec(u8),
    /// The decompressed payload would be larger than the caller allows.
    #[error("{codec} payload decompresses to more than the limit of {limit} bytes")]
    LimitExceeded {
        /// The codec being decoded.
        codec: Compression,
        /// The caller's limit, in bytes.
        limit: usize,
    },
    /// The compressed bytes are not valid for the codec.
    #[error("corrupt {codec} payload: {detail}")]
    Corrupt {
        /// The codec being decoded.
        codec: Compression,
        /// What the decoder reported.
        detail: String,
    },
    /// The encoder failed (in practice only on allocation or library errors).
    #[error("{codec} compression failed: {detail}")]
    Encode {
        /// The codec being encoded.
        codec: Compression,
        /// What the encoder reported.
        detail: String,
    },
}

/// The xerial snappy-java stream magic.
const XERIAL_MAGIC: &[u8; 8] = b"\x82SNAPPY\x00";
/// Magic plus the version and compatible-version words.
const XERIAL_HEADER_LEN: usize = 16;
/// Block size the Java client uses when writing xerial snappy.
const XERIAL_BLOCK_LEN: usize = 32 * 1024;
/// Read granularity for streaming decoders.
const READ_CHUNK: usize = 32 * 1024;
/// zstd level used when Wharf compresses (zstd's own default).
const ZSTD_LEVEL: i32 = 3;

/// Decompresses `input` with `codec`, failing with [`CompressionError::LimitExceeded`]
/// rather than producing (or allocating) more than `max_out` bytes.
pub fn decompress(
    codec: Compression,
    input: &[u8],
    max_out: usize,
) -> Result<Vec<u8>, CompressionError> {
    match codec {
        Compression::None => {
            if input.len() > max_out {
                return Err(CompressionError::LimitExceeded {
                    codec,
                    limit: max_out,
                });
            }
            Ok(input.to_vec())
        }
        Compression::Gzip => read_bounded(codec, flate2::read::GzDecoder::new(input), max_out),
        Compression::Snappy => decompress_snappy(input, max_out),
        Compression::Lz4 => read_bounded(codec, lz4_flex::frame::FrameDecoder::new(input), max_out),
        Compression::Zstd => {
            let decoder = zstd::stream::read::Decoder::new(input).map_err(|e| corrupt(codec, e))?;
            read_bounded(codec, decoder, max_out)
        }
    }
}

/// Compresses `input` with `codec` in the framing Kafka clients expect.
pub fn compress(codec: Compression, input: &[u8]) -> Result<Vec<u8>, CompressionError> {
    let encode_err = |e: &dyn fmt::Display| CompressionError::Encode {
        codec,
        detail: e.to_string(),
    };
    match codec {
        Compression::None => Ok(input.to_vec()),
        Compression::Gzip => {
            let mut encoder =
                flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            encoder.write_all(input).map_err(|e| encode_err(&e))?;
            encoder.finish().map_err(|e| encode_err(&e))
        }
        Compression::Snappy => compress_xerial_snappy(input),
        Compression::Lz4 => {
            let info = lz4_flex::frame::FrameInfo::new()
                .block_size(lz4_flex::frame::BlockSize::Max64KB)
                .block_mode(lz4_flex::frame::BlockMode::Independent);
            let mut encoder = lz4_flex::frame::FrameEncoder::with_frame_info(info, Vec::new());
            encoder.write_all(input).map_err(|e| encode_err(&e))?;
            encoder.finish().map_err(|e| encode_err(&e))
        }
        Compression::Zstd => zstd::bulk::compress(input, ZSTD_LEVEL).map_err(|e| encode_err(&e)),
    }
}

fn corrupt(codec: Compression, e: impl fmt::Display) -> CompressionError {
    CompressionError::Corrupt {
        codec,
        detail: e.to_string(),
    }
}

/// Reads a decoder to its end, never holding more than `max_out` bytes.
///
/// Capacity grows by doubling but is clamped to `max_out`, so a bomb fails
/// before the allocation does.
fn read_bounded(
    codec: Compression,
    mut reader: impl Read,
    max_out: usize,
) -> Result<Vec<u8>, CompressionError> {
    let mut out: Vec<u8> = Vec::new();
    let mut chunk = vec![0u8; READ_CHUNK];
    loop {
        let n = match reader.read(&mut chunk) {
            Ok(0) => return Ok(out),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(corrupt(codec, e)),
        };
        let needed = out.len().saturating_add(n);
        if needed > max_out {
            return Err(CompressionError::LimitExceeded {
                codec,
                limit: max_out,
            });
        }
        if needed > out.capacity() {
            let target = out.capacity().saturating_mul(2).max(needed).min(max_out);
            out.reserve_exact(target.saturating_sub(out.len()));
        }
        let read = chunk
            .get(..n)
            .ok_or_else(|| corrupt(codec, "reader overran buffer"))?;
        out.extend_from_slice(read);
    }
}

fn decompress_snappy(input: &[u8], max_out: usize) -> Result<Vec<u8>, CompressionError> {
    let codec = Compression::Snappy;
    if !input.starts_with(XERIAL_MAGIC) {
        return decompress_raw_snappy(input, max_out, Vec::new());
    }
    let mut rest = input
        .get(XERIAL_HEADER_LEN..)
        .ok_or_else(|| corrupt(codec, "truncated xerial header"))?;
    let mut out = Vec::new();
    while !rest.is_empty() {
        let (len_bytes, tail) = rest
            .split_first_chunk::<4>()
            .ok_or_else(|| corrupt(codec, "truncated xerial block length"))?;
        let len = u32::from_be_bytes(*len_bytes) as usize;
        let block = tail
            .get(..len)
            .ok_or_else(|| corrupt(codec, "xerial block longer than the payload"))?;
        rest = tail.get(len..).unwrap_or_default();
        let remaining = max_out.saturating_sub(out.len());
        out = decompress_raw_snappy(block, remaining, out)?;
    }
    Ok(out)
}

/// Decompresses one raw snappy block, appending it to `out`; `max_out` bounds
/// the bytes this block may add.
fn decompress_raw_snappy(
    block: &[u8],
    max_out: usize,
    mut out: Vec<u8>,
) -> Result<Vec<u8>, CompressionError> {
    let codec = Compression::Snappy;
    let len = snap::raw::decompress_len(block).map_err(|e| corrupt(codec, e))?;
    if len > max_out {
        return Err(CompressionError::LimitExceeded {
            codec,
            limit: max_out,
        });
    }
    let start = out.len();
    out.resize(start.saturating_add(len), 0);
    let dest = out
        .get_mut(start..)
        .ok_or_else(|| corrupt(codec, "output buffer too small"))?;
    let written = snap::raw::Decoder::new()
        .decompress(block, dest)
        .map_err(|e| corrupt(codec, e))?;
    out.truncate(start.saturating_add(written));
    Ok(out)
}

fn compress_xerial_snappy(input: &[u8]) -> Result<Vec<u8>, CompressionError> {
    let mut out = Vec::with_capacity(XERIAL_HEADER_LEN + input.len() / 2 + 64);
    out.extend_from_slice(XERIAL_MAGIC);
    out.extend_from_slice(&1u32.to_be_bytes()); // version
    out.extend_from_slice(&1u32.to_be_bytes()); // minimum compatible version
    let mut encoder = snap::raw::Encoder::new();
    for block in input.chunks(XERIAL_BLOCK_LEN) {
        let compressed = encoder
            .compress_vec(block)
            .map_err(|e| CompressionError::Encode {
                codec: Compression::Snappy,
                detail: e.to_string(),
            })?;
        let len = u32::try_from(compressed.len()).map_err(|e| CompressionError::Encode {
            codec: Compression::Snappy,
            detail: e.to_string(),
        })?;
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&compressed);
    }
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample() -> Vec<u8> {
        (0..200_000u32)
            .flat_map(|i| (i % 251).to_be_bytes())
            .collect()
    }

    #[test]
    fn every_codec_round_trips() {
        let input = sample();
        for codec in Compression::ALL {
            let packed = compress(codec, &input).unwrap();
            let unpacked = decompress(codec, &packed, input.len()).unwrap();
            assert_eq!(unpacked, input, "{codec}");
        }
    }

    #[test]
    fn every_codec_round_trips_empty_input() {
        for codec in Compression::ALL {
            let packed = compress(codec, &[]).unwrap();
            assert_eq!(decompress(codec, &packed, 0).unwrap(), Vec::<u8>::new());
        }
    }

    #[test]
    fn rejects_output_over_the_limit() {
        let input = vec![0u8; 1 << 20];
        for codec in Compression::ALL {
            let packed = compress(codec, &input).unwrap();
            let err = decompress(codec, &packed, 1000).unwrap_err();
            assert!(
                matches!(err, CompressionError::LimitExceeded { limit: 1000, .. }),
                "{codec}: {err}"
            );
        }
    }

    #[test]
    fn reads_raw_snappy_without_xerial_framing() {
        let input = sample();
        let raw = snap::raw::Encoder::new().compress_vec(&input).unwrap();
        assert_eq!(
            decompress(Compression::Snappy, &raw, input.len()).unwrap(),
            input
        );
    }

    #[test]
    fn writes_xerial_snappy_framing() {
        let packed = compress(Compression::Snappy, b"hello").unwrap();
        assert!(packed.starts_with(XERIAL_MAGIC));
    }

    #[test]
    fn xerial_limit_applies_across_blocks() {
        let input = vec![7u8; XERIAL_BLOCK_LEN * 3];
        let packed = compress(Compression::Snappy, &input).unwrap();
        assert!(decompress(Compression::Snappy, &packed, XERIAL_BLOCK_LEN * 2).is_err());
        assert_eq!(
            decompress(Compression::Snappy, &packed, input.len()).unwrap(),
            input
        );
    }

    #[test]
    fn reports_corrupt_payloads() {
        for codec in [
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            let err = decompress(codec, b"definitely not compressed", 1 << 20).unwrap_err();
            assert!(matches!(err, CompressionError::Corrupt { .. }), "{codec}");
        }
    }

    #[test]
    fn rejects_unknown_codec_ids() {
        for id in 5..=7 {
            assert!(matches!(
                Compression::from_id(id),
                Err(CompressionError::UnknownCodec(i)) if i == id
            ));
        }
        for codec in Compression::ALL {
            assert_eq!(Compression::from_id(codec.id()).unwrap(), codec);
        }
    }

    proptest! {
        #[test]
        fn round_trips_arbitrary_bytes(data in proptest::collection::vec(any::<u8>(), 0..4096)) {
            for codec in Compression::ALL {
                let packed = compress(codec, &data).unwrap();
                prop_assert_eq!(decompress(codec, &packed, data.len()).unwrap(), data.clone());
            }
        }

        #[test]
        fn decompress_never_panics(data in proptest::collection::vec(any::<u8>(), 0..512)) {
            for codec in Compression::ALL {
                let _ = decompress(codec, &data, 1 << 16);
            }
        }
    }
}
