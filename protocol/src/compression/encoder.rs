//! Compression in the framing Kafka clients read, with KIP-390 levels.

use std::io::Write;

use super::{
    encode_error, Compression, CompressionError, Decoder, READ_CHUNK, XERIAL_BLOCK_LEN,
    XERIAL_HEADER_LEN, XERIAL_MAGIC,
};

/// Kafka's default zstd level (zstd's own default).
const ZSTD_DEFAULT_LEVEL: i32 = 3;

/// The levels Kafka accepts for a codec (KIP-390: `compression.gzip.level`
/// 1..=9, `compression.lz4.level` 1..=17, `compression.zstd.level`
/// -131072..=22), or `None` for codecs without levels. gzip also accepts -1,
/// its default; check that separately.
pub fn level_range(codec: Compression) -> Option<(i32, i32)> {
    match codec {
        Compression::Gzip => Some((1, 9)),
        Compression::Lz4 => Some((1, 17)),
        Compression::Zstd => Some((-131_072, 22)),
        Compression::None | Compression::Snappy => None,
    }
}

/// Compresses `input` with `codec` at `level` (`None`: the codec's default).
pub fn compress_with_level(
    codec: Compression,
    level: Option<i32>,
    input: &[u8],
) -> Result<Vec<u8>, CompressionError> {
    let mut plain = Decoder::new(Compression::None, input, usize::MAX)?;
    compress_from(
        codec,
        level,
        &mut plain,
        Vec::with_capacity(input.len() / 2 + 64),
    )
}

/// Reads `input` to its end and appends it to `out` compressed with `codec`
/// at `level` (`None`: the codec's default).
///
/// - gzip: levels 1-9; -1 (or `None`) is zlib's default, 6.
/// - snappy: the xerial framing, 32 KiB blocks; no levels.
/// - lz4: the frame format with independent 64 KiB blocks. `lz4_flex` has a
///   single (fast) compressor, so the level is accepted and not applied.
/// - zstd: any level zstd accepts, default 3.
///
/// Errors from `input` (a corrupt payload, the decompression limit) come
/// back as they are; errors from the encoder as [`CompressionError::Encode`].
pub fn compress_from(
    codec: Compression,
    level: Option<i32>,
    input: &mut Decoder<'_>,
    out: Vec<u8>,
) -> Result<Vec<u8>, CompressionError> {
    let err = |e: std::io::Error| encode_error(codec, e);
    match codec {
        Compression::None => copy(input, out, codec),
        Compression::Gzip => {
            let level = match level {
                Some(l @ 0..=9) => flate2::Compression::new(l.unsigned_abs()),
                _ => flate2::Compression::default(),
            };
            let encoder = flate2::write::GzEncoder::new(out, level);
            copy(input, encoder, codec)?.finish().map_err(err)
        }
        Compression::Snappy => compress_xerial_snappy(input, out),
        Compression::Lz4 => {
            let info = lz4_flex::frame::FrameInfo::new()
                .block_size(lz4_flex::frame::BlockSize::Max64KB)
                .block_mode(lz4_flex::frame::BlockMode::Independent);
            let encoder = lz4_flex::frame::FrameEncoder::with_frame_info(info, out);
            copy(input, encoder, codec)?
                .finish()
                .map_err(|e| encode_error(codec, e))
        }
        Compression::Zstd => {
            let encoder =
                zstd::stream::write::Encoder::new(out, level.unwrap_or(ZSTD_DEFAULT_LEVEL))
                    .map_err(err)?;
            copy(input, encoder, codec)?.finish().map_err(err)
        }
    }
}

/// Pumps `input` into `writer` and returns the writer.
fn copy<W: Write>(
    input: &mut Decoder<'_>,
    mut writer: W,
    codec: Compression,
) -> Result<W, CompressionError> {
    let mut chunk = vec![0u8; READ_CHUNK];
    loop {
        let n = input.read(&mut chunk)?;
        let Some(data) = chunk.get(..n).filter(|d| !d.is_empty()) else {
            return Ok(writer);
        };
        writer.write_all(data).map_err(|e| encode_error(codec, e))?;
    }
}

/// Fills `buf` from `input` as far as it can; returns how much was read.
fn read_full(input: &mut Decoder<'_>, buf: &mut [u8]) -> Result<usize, CompressionError> {
    let mut filled = 0;
    while let Some(rest) = buf.get_mut(filled..).filter(|r| !r.is_empty()) {
        let n = input.read(rest)?;
        if n == 0 {
            break;
        }
        filled += n;
    }
    Ok(filled)
}

fn compress_xerial_snappy(
    input: &mut Decoder<'_>,
    mut out: Vec<u8>,
) -> Result<Vec<u8>, CompressionError> {
    let codec = Compression::Snappy;
    out.reserve(XERIAL_HEADER_LEN);
    out.extend_from_slice(XERIAL_MAGIC);
    out.extend_from_slice(&1u32.to_be_bytes()); // version
    out.extend_from_slice(&1u32.to_be_bytes()); // minimum compatible version
    let mut encoder = snap::raw::Encoder::new();
    let mut block = vec![0u8; XERIAL_BLOCK_LEN];
    let mut compressed = vec![0u8; snap::raw::max_compress_len(XERIAL_BLOCK_LEN)];
    loop {
        let n = read_full(input, &mut block)?;
        let Some(data) = block.get(..n).filter(|d| !d.is_empty()) else {
            return Ok(out);
        };
        let len = encoder
            .compress(data, &mut compressed)
            .map_err(|e| encode_error(codec, e))?;
        let len_field = u32::try_from(len).map_err(|e| encode_error(codec, e))?;
        out.extend_from_slice(&len_field.to_be_bytes());
        out.extend_from_slice(compressed.get(..len).unwrap_or_default());
    }
}
