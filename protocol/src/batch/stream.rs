//! Walking the records of a batch without holding its whole decompressed
//! records section.
//!
//! A compressed batch is read through the codec's streaming decoder into a
//! window that holds the record being looked at and the bytes decoded after
//! it. The window grows only to fit the largest record (by doubling, so at
//! most twice what was really decoded), and the decoder refuses to produce
//! more than the caller's limit in total: a decompression bomb fails early
//! without the broker allocating what it claims.

use super::records::{decode_record, record_extent, records, RecordContext};
use super::{BatchError, BatchHeader, Record, HEADER_LEN};
use crate::compression::{Compression, Decoder};

/// Initial window size, and the least the window grows by.
const MIN_WINDOW: usize = 32 * 1024;

/// Calls `f` with each record of the batch `batch` (whose parsed header is
/// `header`), in order. For a compressed batch at most `max_decompressed`
/// bytes are decompressed, through a window rather than a full copy.
///
/// Fails, after calling `f` for the records before the fault, when a record
/// is malformed, fewer or more records are present than recordsCount says,
/// or the payload is corrupt or decompresses past the limit. Errors from `f`
/// stop the walk and are returned as they are.
pub fn for_each_record<F>(
    batch: &[u8],
    header: &BatchHeader,
    max_decompressed: usize,
    mut f: F,
) -> Result<(), BatchError>
where
    F: FnMut(&Record<'_>) -> Result<(), BatchError>,
{
    let body = batch
        .get(HEADER_LEN..header.total_len())
        .ok_or(BatchError::Truncated {
            needed: header.total_len(),
            available: batch.len(),
        })?;
    let codec = header.compression();
    if codec == Compression::None {
        for record in records(header, body) {
            f(&record?)?;
        }
        return Ok(());
    }
    let mut decoder = Decoder::new(codec, body, max_decompressed)?;
    let context = RecordContext::of(header);
    let declared = usize::try_from(header.records_count()).unwrap_or(0);
    let mut window = Window::default();
    for index in 0..declared {
        let extent = loop {
            if let Some(extent) = record_extent(window.data(), index)? {
                break extent;
            }
            if !window.fill(&mut decoder, window.len().saturating_add(1))? {
                return Err(if window.len() == 0 {
                    BatchError::MissingRecords {
                        declared: header.records_count(),
                        found: index,
                    }
                } else {
                    BatchError::CorruptRecord {
                        index,
                        reason: "bad length varint",
                    }
                });
            }
        };
        while window.len() < extent {
            if !window.fill(&mut decoder, extent)? {
                return Err(BatchError::CorruptRecord {
                    index,
                    reason: "length runs past the batch",
                });
            }
        }
        let bytes = window.data().get(..extent).unwrap_or_default();
        let (record, _) = decode_record(bytes, &context, index)?;
        f(&record)?;
        window.consume(extent);
    }
    let mut trailing = window.len();
    if trailing == 0 {
        let mut probe = [0u8; 64];
        trailing = decoder.read(&mut probe)?;
    }
    if trailing > 0 {
        return Err(BatchError::TrailingRecordBytes(trailing));
    }
    Ok(())
}

/// Decoded bytes not yet consumed: `buf[start..end]`.
#[derive(Default)]
struct Window {
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

impl Window {
    fn data(&self) -> &[u8] {
        self.buf.get(self.start..self.end).unwrap_or_default()
    }

    fn len(&self) -> usize {
        self.end.saturating_sub(self.start)
    }

    fn consume(&mut self, n: usize) {
        self.start = self.start.saturating_add(n).min(self.end);
    }

    /// Reads once more from `decoder`, making room so that the window can
    /// hold `want` bytes; false at the end of the payload.
    fn fill(&mut self, decoder: &mut Decoder<'_>, want: usize) -> Result<bool, BatchError> {
        let full = self.end >= self.buf.len();
        let short = self.buf.len().saturating_sub(self.start) < want;
        if self.start > 0 && (full || short) {
            self.buf.copy_within(self.start..self.end, 0);
            self.end = self.len();
            self.start = 0;
        }
        if self.end >= self.buf.len() {
            // Full of unconsumed bytes: double, so the window stays within
            // twice the bytes really decoded.
            let new_len = self.buf.len().saturating_mul(2).max(MIN_WINDOW);
            self.buf.resize(new_len, 0);
        }
        let spare = self.buf.get_mut(self.end..).unwrap_or_default();
        let n = decoder.read(spare)?;
        self.end = self.end.saturating_add(n);
        Ok(n > 0)
    }
}
