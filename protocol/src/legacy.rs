//! Produce v0-v2, which carry message formats v0/v1. Wharf stores only v2
//! batches, so it refuses these requests, but it must still parse them to
//! answer each partition with UNSUPPORTED_VERSION, as Apache Kafka 4 does.
//!
//! Request v0-v2: acks i16, timeout i32, [topic: string, [partition i32,
//! records bytes]]. Response: [topic: string, [partition i32, error i16,
//! base_offset i64, (v2+) log_append_time i64]], (v1+) throttle_time i32.

use bytes::{Buf, BufMut, BytesMut};

#[derive(Debug, thiserror::Error)]
#[error("malformed Produce v{version} request: {reason}")]
pub struct LegacyError {
    version: i16,
    reason: &'static str,
}

/// UNSUPPORTED_VERSION.
const UNSUPPORTED_VERSION: i16 = 35;

/// The response body refusing every partition of a Produce v0-v2 request,
/// or `None` when acks=0 (the client reads no response).
pub fn unsupported_produce_response(
    mut body: &[u8],
    version: i16,
) -> Result<Option<BytesMut>, LegacyError> {
    let err = |reason| LegacyError { version, reason };
    let acks = get_i16(&mut body).ok_or(err("no acks"))?;
    get_i32(&mut body).ok_or(err("no timeout"))?;
    let topics = get_count(&mut body).ok_or(err("bad topic count"))?;
    let mut out = BytesMut::new();
    out.put_i32(topics as i32);
    for _ in 0..topics {
        let name_len = get_i16(&mut body)
            .and_then(|n| usize::try_from(n).ok())
            .ok_or(err("bad topic name"))?;
        let name = body.get(..name_len).ok_or(err("truncated topic name"))?;
        out.put_i16(name_len as i16);
        out.put_slice(name);
        body.advance(name_len);
        let partitions = get_count(&mut body).ok_or(err("bad partition count"))?;
        out.put_i32(partitions as i32);
        for _ in 0..partitions {
            let index = get_i32(&mut body).ok_or(err("no partition index"))?;
            let size = get_i32(&mut body).ok_or(err("no records size"))?;
            // -1 is a null records field.
            if let Ok(size) = usize::try_from(size) {
                if body.len() < size {
                    return Err(err("truncated records"));
                }
                body.advance(size);
            }
            out.put_i32(index);
            out.put_i16(UNSUPPORTED_VERSION);
            out.put_i64(-1);
            if version >= 2 {
                out.put_i64(-1);
            }
        }
    }
    if version >= 1 {
        out.put_i32(0);
    }
    Ok((acks != 0).then_some(out))
}

fn get_i16(buf: &mut &[u8]) -> Option<i16> {
    (buf.len() >= 2).then(|| buf.get_i16())
}

fn get_i32(buf: &mut &[u8]) -> Option<i32> {
    (buf.len() >= 4).then(|| buf.get_i32())
}

/// An array count, which must be plausible for the bytes left (every element
/// takes at least 4 bytes), so no input makes us allocate for a huge count.
fn get_count(buf: &mut &[u8]) -> Option<usize> {
    let n = usize::try_from(get_i32(buf)?).ok()?;
    (n <= buf.len() / 4).then_some(n)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn request(acks: i16) -> Vec<u8> {
        let mut b = BytesMut::new();
        b.put_i16(acks);
        b.put_i32(1000);
        b.put_i32(1);
        b.put_i16(1);
        b.put_slice(b"t");
        b.put_i32(2);
        for p in [0, 5] {
            b.put_i32(p);
            b.put_i32(3);
            b.put_slice(b"abc");
        }
        b.to_vec()
    }

    #[test]
    fn refuses_every_partition_with_unsupported_version() {
        let out = unsupported_produce_response(&request(1), 2)
            .unwrap()
            .unwrap();
        let mut r = &out[..];
        assert_eq!(r.get_i32(), 1);
        assert_eq!(r.get_i16(), 1);
        assert_eq!(r.get_u8(), b't');
        assert_eq!(r.get_i32(), 2);
        for p in [0, 5] {
            assert_eq!(r.get_i32(), p);
            assert_eq!(r.get_i16(), UNSUPPORTED_VERSION);
            assert_eq!(r.get_i64(), -1);
            assert_eq!(r.get_i64(), -1);
        }
        assert_eq!(r.get_i32(), 0);
        assert!(r.is_empty());
    }

    #[test]
    fn acks_zero_gets_no_response_and_garbage_is_an_error() {
        assert!(unsupported_produce_response(&request(0), 0)
            .unwrap()
            .is_none());
        assert!(unsupported_produce_response(&[0, 1, 0], 0).is_err());
        let mut huge = request(1);
        huge[6..10].copy_from_slice(&i32::MAX.to_be_bytes());
        assert!(unsupported_produce_response(&huge, 1).is_err());
    }
}
