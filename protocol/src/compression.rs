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

mod decoder;
mod encoder;

pub use decoder::Decoder;
pub use encoder::{compress_from, compress_with_level, level_range};

/// The xerial snappy-java stream magic.
const XERIAL_MAGIC: &[u8; 8] = b"\x82SNAPPY\x00";
/// Magic plus the version and compatible-version words.
const XERIAL_HEADER_LEN: usize = 16;
/// Block size the Java client uses when writing xerial snappy.
const XERIAL_BLOCK_LEN: usize = 32 * 1024;
/// Read granularity for streaming decoders and encoders.
const READ_CHUNK: usize = 32 * 1024;

/// Decompresses `input` with `codec`, failing with [`CompressionError::LimitExceeded`]
/// rather than producing (or allocating) more than `max_out` bytes.
///
/// Prefer [`Decoder`] when the output can be consumed piece by piece.
pub fn decompress(
    codec: Compression,
    input: &[u8],
    max_out: usize,
) -> Result<Vec<u8>, CompressionError> {
    let mut decoder = Decoder::new(codec, input, max_out)?;
    let mut out: Vec<u8> = Vec::new();
    let mut chunk = vec![0u8; READ_CHUNK];
    loop {
        let n = decoder.read(&mut chunk)?;
        if n == 0 {
            return Ok(out);
        }
        // The decoder enforces the limit, so `out` never grows past `max_out`.
        out.extend_from_slice(chunk.get(..n).unwrap_or_default());
    }
}

/// Compresses `input` with `codec` at the codec's default level, in the
/// framing Kafka clients expect.
pub fn compress(codec: Compression, input: &[u8]) -> Result<Vec<u8>, CompressionError> {
    compress_with_level(codec, None, input)
}

fn corrupt(codec: Compression, e: impl fmt::Display) -> CompressionError {
    CompressionError::Corrupt {
        codec,
        detail: e.to_string(),
    }
}

fn encode_error(codec: Compression, e: impl fmt::Display) -> CompressionError {
    CompressionError::Encode {
        codec,
        detail: e.to_string(),
    }
}

#[cfg(test)]
mod tests;
