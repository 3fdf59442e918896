//! Arbitrary bytes through every codec's bounded streaming decoder: no
//! panic, never more output than the limit, and the whole-buffer and
//! piece-by-piece paths agree.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wharf_protocol::compression::{decompress, Compression, Decoder};

const LIMIT: usize = 1 << 18;

fuzz_target!(|data: &[u8]| {
    let Some((&pick, input)) = data.split_first() else {
        return;
    };
    let codec = Compression::ALL[usize::from(pick) % Compression::ALL.len()];
    let whole = decompress(codec, input, LIMIT);
    if let Ok(out) = &whole {
        assert!(out.len() <= LIMIT);
    }
    let Ok(mut decoder) = Decoder::new(codec, input, LIMIT) else {
        assert!(whole.is_err());
        return;
    };
    let mut pieces = Vec::new();
    let mut buf = [0u8; 113];
    let streamed = loop {
        match decoder.read(&mut buf) {
            Ok(0) => break Ok(pieces),
            Ok(n) => pieces.extend_from_slice(&buf[..n]),
            Err(e) => break Err(e),
        }
    };
    match (&whole, &streamed) {
        (Ok(a), Ok(b)) => assert_eq!(a, b),
        (Err(_), Err(_)) => {}
        _ => panic!("whole and streamed decoding disagree: {whole:?} vs {streamed:?}"),
    }
});
