//! Kafka's framing: every request and response is a 4-byte big-endian size
//! followed by that many bytes.

use bytes::{Buf, Bytes, BytesMut};

/// Kafka's default `socket.request.max.bytes`: 100 MiB.
pub const DEFAULT_MAX_REQUEST_SIZE: usize = 100 * 1024 * 1024;

/// Length of the size prefix.
pub const SIZE_PREFIX_LEN: usize = 4;

/// Why a stream of bytes is not a valid sequence of frames. Each one means the
/// connection must be closed: the stream cannot be resynchronised.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("frame size {size} exceeds the maximum request size of {max} bytes")]
    TooLarge { size: usize, max: usize },
    #[error("frame size {0} is negative")]
    NegativeSize(i32),
}

/// Splits a byte stream into frames, never buffering more than one frame's
/// worth of data plus the prefix.
#[derive(Debug, Clone)]
pub struct FrameDecoder {
    max_size: usize,
}

impl FrameDecoder {
    pub fn new(max_size: usize) -> Self {
        Self { max_size }
    }

    /// Bytes still needed before `decode` can yield the next frame, given
    /// what `buf` holds. Used to size reads and reserve capacity.
    pub fn needed(&self, buf: &[u8]) -> Result<usize, FrameError> {
        match peek_size(buf, self.max_size)? {
            None => Ok(SIZE_PREFIX_LEN - buf.len()),
            Some(size) => Ok((SIZE_PREFIX_LEN + size).saturating_sub(buf.len())),
        }
    }

    /// Takes one complete frame (without its size prefix) off the front of
    /// `buf`, or returns `None` if more bytes are needed.
    pub fn decode(&self, buf: &mut BytesMut) -> Result<Option<Bytes>, FrameError> {
        let Some(size) = peek_size(buf, self.max_size)? else {
            return Ok(None);
        };
        if buf.len() < SIZE_PREFIX_LEN + size {
            return Ok(None);
        }
        buf.advance(SIZE_PREFIX_LEN);
        Ok(Some(buf.split_to(size).freeze()))
    }
}

fn peek_size(buf: &[u8], max: usize) -> Result<Option<usize>, FrameError> {
    let Some(prefix) = buf.first_chunk::<SIZE_PREFIX_LEN>() else {
        return Ok(None);
    };
    let raw = i32::from_be_bytes(*prefix);
    let size = usize::try_from(raw).map_err(|_| FrameError::NegativeSize(raw))?;
    if size > max {
        return Err(FrameError::TooLarge { size, max });
    }
    Ok(Some(size))
}

/// The 4-byte prefix for a frame whose body is `len` bytes long.
pub fn size_prefix(len: usize) -> [u8; SIZE_PREFIX_LEN] {
    // Responses are bounded far below 2 GiB by the fetch limits; saturate
    // rather than wrap if that ever stops being true.
    i32::try_from(len).unwrap_or(i32::MAX).to_be_bytes()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn framed(body: &[u8]) -> Vec<u8> {
        let mut v = size_prefix(body.len()).to_vec();
        v.extend_from_slice(body);
        v
    }

    #[test]
    fn yields_frames_one_at_a_time_across_partial_reads() {
        let d = FrameDecoder::new(1024);
        let mut stream = framed(b"hello");
        stream.extend(framed(b"world!"));
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        for byte in stream {
            buf.extend_from_slice(&[byte]);
            while let Some(f) = d.decode(&mut buf).unwrap() {
                out.push(f);
            }
        }
        assert_eq!(out, vec![Bytes::from("hello"), Bytes::from("world!")]);
        assert!(buf.is_empty());
    }

    #[test]
    fn rejects_frame_larger_than_maximum() {
        let d = FrameDecoder::new(10);
        let mut buf = BytesMut::from(&framed(&[0u8; 11])[..]);
        assert_eq!(
            d.decode(&mut buf),
            Err(FrameError::TooLarge { size: 11, max: 10 })
        );
        // The check happens on the prefix alone, before the body arrives.
        let mut only_prefix = BytesMut::from(&size_prefix(1 << 30)[..]);
        assert!(d.decode(&mut only_prefix).is_err());
    }

    #[test]
    fn rejects_negative_size() {
        let d = FrameDecoder::new(10);
        let mut buf = BytesMut::from(&(-1i32).to_be_bytes()[..]);
        assert_eq!(d.decode(&mut buf), Err(FrameError::NegativeSize(-1)));
    }

    #[test]
    fn reports_bytes_needed() {
        let d = FrameDecoder::new(100);
        assert_eq!(d.needed(&[]).unwrap(), 4);
        assert_eq!(d.needed(&[0, 0, 0, 5, 1]).unwrap(), 4);
        assert_eq!(d.needed(&framed(b"abc")).unwrap(), 0);
    }

    #[test]
    fn zero_length_frame_is_empty_body() {
        let d = FrameDecoder::new(10);
        let mut buf = BytesMut::from(&framed(b"")[..]);
        assert_eq!(d.decode(&mut buf).unwrap(), Some(Bytes::new()));
    }
}
