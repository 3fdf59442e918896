//! Arbitrary bytes through `FrameDecoder` in arbitrary chunk sizes, as a
//! socket delivers them. Frames never exceed the maximum; the bytes consumed
//! are exactly the frames plus their 4-byte prefixes; `needed` is never zero
//! while a frame is incomplete; and any chunking yields the same frames and
//! the same error as decoding the whole stream at once.
#![no_main]

use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use wharf_protocol::frame::{FrameDecoder, FrameError, SIZE_PREFIX_LEN};

/// Frames and the first error (or the unconsumed rest) of `stream`, fed in
/// chunks of the given sizes (cycled; 0 means one byte).
fn decode(max: usize, stream: &[u8], chunks: &[u8]) -> (Vec<Bytes>, Option<FrameError>, usize) {
    let decoder = FrameDecoder::new(max);
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    let mut fed = 0usize;
    let mut consumed = 0usize;
    let mut sizes = chunks.iter().cycle();
    while fed < stream.len() {
        let size = sizes
            .next()
            .map_or(stream.len(), |&n| usize::from(n).max(1));
        let end = (fed + size).min(stream.len());
        buf.extend_from_slice(&stream[fed..end]);
        fed = end;
        loop {
            let before = buf.len();
            match decoder.decode(&mut buf) {
                Ok(Some(frame)) => {
                    assert!(
                        frame.len() <= max,
                        "frame of {} over max {max}",
                        frame.len()
                    );
                    assert_eq!(before - buf.len(), frame.len() + SIZE_PREFIX_LEN);
                    consumed += frame.len() + SIZE_PREFIX_LEN;
                    frames.push(frame);
                }
                Ok(None) => {
                    assert_eq!(buf.len(), before, "an incomplete frame consumed bytes");
                    let needed = decoder.needed(&buf).expect("decode and needed agree");
                    assert!(needed > 0, "needed 0 with no frame ready");
                    break;
                }
                Err(e) => {
                    assert_eq!(buf.len(), before, "a bad frame consumed bytes");
                    assert_eq!(decoder.needed(&buf), Err(e.clone()));
                    assert_eq!(consumed + buf.len(), fed);
                    return (frames, Some(e), consumed);
                }
            }
        }
    }
    assert_eq!(consumed + buf.len(), stream.len());
    (frames, None, consumed)
}

fuzz_target!(|data: &[u8]| {
    // [max size: 2 bytes][chunk count: 1 byte][chunk sizes][stream]
    let Some((head, rest)) = data.split_first_chunk::<3>() else {
        return;
    };
    let max = usize::from(u16::from_be_bytes([head[0], head[1]]));
    let n = usize::from(head[2] % 16).min(rest.len());
    let (chunks, stream) = rest.split_at(n);
    let whole = decode(max, stream, &[]);
    let chunked = decode(max, stream, chunks);
    assert_eq!(whole, chunked);
    let total: usize = whole.0.iter().map(|f| f.len() + SIZE_PREFIX_LEN).sum();
    assert_eq!(total, whole.2);
});
