//! Streaming decompression with a bound on the output.
//!
//! A [`Decoder`] hands out the decompressed bytes of one records section a
//! piece at a time, so a caller can walk the records of a large batch while
//! holding only a window of it. It refuses to produce more than its limit:
//! the first byte past it is an error, never an allocation.

use std::fmt;
use std::io::{self, Read};

use super::{corrupt, Compression, CompressionError, XERIAL_HEADER_LEN, XERIAL_MAGIC};

/// Largest zstd window (log2) a decoder accepts: zstd's own default cap
/// (128 MiB). Frames declare their window regardless of their content size
/// (the Java client at level 19 declares 8 MiB for a 1 KiB batch), so a
/// lower cap derived from the output limit would refuse real clients.
const ZSTD_MAX_WINDOW_LOG: u32 = 27;

/// Decompresses one payload piece by piece, never producing more than its limit.
pub struct Decoder<'a> {
    codec: Compression,
    source: Source<'a>,
    produced: usize,
    limit: usize,
}

impl fmt::Debug for Decoder<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Decoder")
            .field("codec", &self.codec)
            .field("produced", &self.produced)
            .field("limit", &self.limit)
            .finish_non_exhaustive()
    }
}

enum Source<'a> {
    Plain(&'a [u8]),
    Gzip(Box<flate2::read::MultiGzDecoder<&'a [u8]>>),
    Snappy(SnappyBlocks<'a>),
    Lz4(Box<lz4_flex::frame::FrameDecoder<&'a [u8]>>),
    Zstd {
        reader: Box<zstd::stream::read::Decoder<'static, &'a [u8]>>,
        /// The content size the frames declare, when every frame declares
        /// one: checked at the end, because the streaming reader reports a
        /// frame that ends short of its declared size as a clean end when
        /// the caller reads in pieces smaller than that size.
        declared: Option<u64>,
    },
}

/// The total content size the zstd frames in `input` declare, or `None`
/// when a frame declares none or cannot be parsed (the reader then finds
/// any corruption itself).
fn zstd_declared_size(mut input: &[u8]) -> Option<u64> {
    use zstd::zstd_safe;
    let mut total = 0u64;
    while !input.is_empty() {
        let size = zstd_safe::get_frame_content_size(input).ok()??;
        let frame_len = zstd_safe::find_frame_compressed_size(input).ok()?;
        total = total.checked_add(size)?;
        input = input.get(frame_len..)?;
        if frame_len == 0 {
            return None;
        }
    }
    Some(total)
}

impl<'a> Decoder<'a> {
    /// A decoder of `input` compressed with `codec` that fails with
    /// [`CompressionError::LimitExceeded`] once more than `limit` bytes come out.
    pub fn new(
        codec: Compression,
        input: &'a [u8],
        limit: usize,
    ) -> Result<Decoder<'a>, CompressionError> {
        let source = match codec {
            Compression::None => Source::Plain(input),
            Compression::Gzip => Source::Gzip(Box::new(flate2::read::MultiGzDecoder::new(input))),
            Compression::Snappy => Source::Snappy(SnappyBlocks::new(input)?),
            Compression::Lz4 => Source::Lz4(Box::new(lz4_flex::frame::FrameDecoder::new(input))),
            Compression::Zstd => {
                let mut decoder = zstd::stream::read::Decoder::with_buffer(input)
                    .map_err(|e| corrupt(codec, e))?;
                decoder
                    .window_log_max(ZSTD_MAX_WINDOW_LOG)
                    .map_err(|e| corrupt(codec, e))?;
                Source::Zstd {
                    reader: Box::new(decoder),
                    declared: zstd_declared_size(input),
                }
            }
        };
        Ok(Decoder {
            codec,
            source,
            produced: 0,
            limit,
        })
    }

    /// The codec being decoded.
    pub fn codec(&self) -> Compression {
        self.codec
    }

    /// Bytes produced so far.
    pub fn produced(&self) -> usize {
        self.produced
    }

    /// Fills the start of `buf` with the next decompressed bytes and returns
    /// how many; 0 means the payload has ended (or `buf` is empty).
    pub fn read(&mut self, buf: &mut [u8]) -> Result<usize, CompressionError> {
        // Ask for at most one byte past the limit: getting it proves the excess.
        let allowed = self.limit.saturating_sub(self.produced).saturating_add(1);
        let len = buf.len().min(allowed);
        let Some(buf) = buf.get_mut(..len) else {
            return Ok(0);
        };
        if buf.is_empty() {
            return Ok(0);
        }
        let codec = self.codec;
        let limit = self.limit;
        let remaining = limit.saturating_sub(self.produced);
        let n = match &mut self.source {
            Source::Snappy(blocks) => blocks.read(buf, remaining, limit)?,
            Source::Plain(rest) => take_into(rest, buf),
            Source::Gzip(r) => read_retrying(r, buf).map_err(|e| corrupt(codec, e))?,
            Source::Lz4(r) => read_retrying(r, buf).map_err(|e| corrupt(codec, e))?,
            Source::Zstd { reader, declared } => {
                let n = read_retrying(reader, buf).map_err(|e| corrupt(codec, e))?;
                if n == 0 {
                    if let Some(declared) = *declared {
                        if u64::try_from(self.produced).ok() != Some(declared) {
                            return Err(corrupt(
                                codec,
                                format!(
                                    "frame content ends after {} of the {declared} bytes it declares",
                                    self.produced
                                ),
                            ));
                        }
                    }
                }
                n
            }
        };
        self.account(n)
    }

    fn account(&mut self, n: usize) -> Result<usize, CompressionError> {
        self.produced = self.produced.saturating_add(n);
        if self.produced > self.limit {
            return Err(CompressionError::LimitExceeded {
                codec: self.codec,
                limit: self.limit,
            });
        }
        Ok(n)
    }
}

impl Read for Decoder<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        Decoder::read(self, buf).map_err(io::Error::other)
    }
}

/// `Read::read`, retried when interrupted.
fn read_retrying(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match reader.read(buf) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

/// Moves as many bytes as fit from the front of `rest` into `buf`.
fn take_into(rest: &mut &[u8], buf: &mut [u8]) -> usize {
    let n = rest.len().min(buf.len());
    let (head, tail) = rest.split_at(n);
    if let Some(dest) = buf.get_mut(..n) {
        dest.copy_from_slice(head);
    }
    *rest = tail;
    n
}

/// Snappy as Kafka clients write it: raw snappy (librdkafka) is one block;
/// the xerial framing (the Java client, kafka-python) is a header and then
/// length-prefixed raw blocks. Blocks are decompressed one at a time.
struct SnappyBlocks<'a> {
    /// Compressed bytes not yet decompressed: the blocks still to come.
    rest: &'a [u8],
    /// Whether `rest` is xerial blocks (else one raw block).
    xerial: bool,
    /// The current decompressed block.
    block: Vec<u8>,
    /// How much of `block` has been handed out.
    pos: usize,
}

impl<'a> SnappyBlocks<'a> {
    fn new(input: &'a [u8]) -> Result<SnappyBlocks<'a>, CompressionError> {
        let (rest, xerial) = if input.starts_with(XERIAL_MAGIC) {
            let rest = input
                .get(XERIAL_HEADER_LEN..)
                .ok_or_else(|| corrupt(Compression::Snappy, "truncated xerial header"))?;
            (rest, true)
        } else {
            if input.is_empty() {
                return Err(corrupt(Compression::Snappy, "empty raw snappy payload"));
            }
            (input, false)
        };
        Ok(SnappyBlocks {
            rest,
            xerial,
            block: Vec::new(),
            pos: 0,
        })
    }

    /// Copies decompressed bytes into `buf`, decoding the next block when the
    /// current one is used up. `remaining` bounds the size of a new block.
    fn read(
        &mut self,
        buf: &mut [u8],
        remaining: usize,
        limit: usize,
    ) -> Result<usize, CompressionError> {
        while self.pos >= self.block.len() {
            if self.rest.is_empty() {
                return Ok(0);
            }
            self.next_block(remaining, limit)?;
        }
        let mut available = self.block.get(self.pos..).unwrap_or_default();
        let n = take_into(&mut available, buf);
        self.pos = self.pos.saturating_add(n);
        Ok(n)
    }

    fn next_block(&mut self, remaining: usize, limit: usize) -> Result<(), CompressionError> {
        let codec = Compression::Snappy;
        let compressed = if self.xerial {
            let (len_bytes, tail) = self
                .rest
                .split_first_chunk::<4>()
                .ok_or_else(|| corrupt(codec, "truncated xerial block length"))?;
            let len = u32::from_be_bytes(*len_bytes) as usize;
            let block = tail
                .get(..len)
                .ok_or_else(|| corrupt(codec, "xerial block longer than the payload"))?;
            self.rest = tail.get(len..).unwrap_or_default();
            block
        } else {
            std::mem::take(&mut self.rest)
        };
        let len = snap::raw::decompress_len(compressed).map_err(|e| corrupt(codec, e))?;
        if len > remaining {
            return Err(CompressionError::LimitExceeded { codec, limit });
        }
        self.block.clear();
        self.block.resize(len, 0);
        let written = snap::raw::Decoder::new()
            .decompress(compressed, &mut self.block)
            .map_err(|e| corrupt(codec, e))?;
        self.block.truncate(written);
        self.pos = 0;
        Ok(())
    }
}
