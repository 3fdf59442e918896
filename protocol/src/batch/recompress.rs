//! Re-encoding a batch's records section with another codec.

use super::{
    validate_batch, write_field, BatchError, ATTRIBUTES_AT, BATCH_LENGTH_AT, COMPRESSION_MASK,
    CRC_AT, HEADER_LEN, LOG_OVERHEAD,
};
use crate::compression::{self, Compression, Decoder};

/// Returns the batch `batch` with its records section compressed with
/// `target` at `level` (`None`: the codec's default) instead of its own codec.
///
/// The batch is first validated in full (CRC-32C, record count, every record,
/// at most `max_decompressed` bytes decompressed). The records' bytes are
/// kept exactly, so offsets, timestamps, keys, values and headers are those
/// the producer sent; every header field is kept except batchLength, the
/// codec bits of the attributes and the CRC, which is recomputed. The old
/// payload is streamed into the new codec without being held whole.
///
/// A batch already in `target` comes back unchanged (still validated).
pub fn recompress(
    batch: &[u8],
    target: Compression,
    level: Option<i32>,
    max_decompressed: usize,
) -> Result<Vec<u8>, BatchError> {
    let header = validate_batch(batch, max_decompressed)?.header;
    if header.compression() == target {
        return Ok(batch.to_vec());
    }
    let truncated = BatchError::Truncated {
        needed: header.total_len(),
        available: batch.len(),
    };
    let head = batch.get(..HEADER_LEN).ok_or(BatchError::Truncated {
        needed: HEADER_LEN,
        available: batch.len(),
    })?;
    let body = batch.get(HEADER_LEN..header.total_len()).ok_or(truncated)?;
    // Only decompression can outgrow the input; uncompressed records are
    // already bounded by the request that carried them.
    let limit = match header.compression() {
        Compression::None => usize::MAX,
        _ => max_decompressed,
    };
    let mut decoder = Decoder::new(header.compression(), body, limit)?;
    let mut out = Vec::with_capacity(batch.len().saturating_add(HEADER_LEN));
    out.extend_from_slice(head);
    let mut out = compression::compress_from(target, level, &mut decoder, out)?;

    let batch_length = i32::try_from(out.len().saturating_sub(LOG_OVERHEAD))
        .map_err(|_| BatchError::Unencodable("recompressed batch exceeds 2 GiB"))?;
    write_field(&mut out, BATCH_LENGTH_AT, &batch_length.to_be_bytes())?;
    let attributes = (header.attributes() & !COMPRESSION_MASK) | i16::from(target.id());
    write_field(&mut out, ATTRIBUTES_AT, &attributes.to_be_bytes())?;
    let crc = crc32c::crc32c(out.get(ATTRIBUTES_AT..).unwrap_or_default());
    write_field(&mut out, CRC_AT, &crc.to_be_bytes())?;
    Ok(out)
}
