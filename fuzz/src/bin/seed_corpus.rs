//! Writes the seed corpora: `corpus/request/` (one framed request of every
//! served API at every served version, and a few multi-request sequences),
//! `corpus/request_header/` (the same requests without their size prefix)
//! and `corpus/frame/` (the frame target's layout around a few streams).
//! Each request is first served by the harness, so a seed that a handler
//! refuses or answers badly is reported here rather than found later.
//!
//! Run from `fuzz/`: `cargo run --bin seed_corpus`.

use std::fs;
use std::path::Path;

use bytes::Bytes;
use wharf_fuzz::harness::harness;
use wharf_fuzz::seeds;

fn main() -> std::io::Result<()> {
    let corpus = Path::new("corpus");
    for target in ["request", "request_header", "frame"] {
        fs::create_dir_all(corpus.join(target))?;
    }
    let requests = seeds::all_requests();
    let mut refused = Vec::new();
    for (name, framed) in &requests {
        let frame = Bytes::copy_from_slice(&framed[4..]);
        if harness().serve_frame(frame).is_none() {
            refused.push(name.clone());
        }
        fs::write(corpus.join("request").join(name), framed)?;
        fs::write(corpus.join("request_header").join(name), &framed[4..])?;
    }
    for (name, stream) in seeds::sequences() {
        harness().serve_stream(&stream);
        fs::write(corpus.join("request").join(&name), &stream)?;
    }
    // frame: [max: u16][chunk count][chunk sizes][stream]
    let mut stream = Vec::new();
    for (_, framed) in requests.iter().take(4) {
        stream.extend_from_slice(framed);
    }
    for (name, max, chunks) in [
        ("four-frames-whole", 4096u16, &[][..]),
        ("four-frames-by-3-and-7", 4096, &[3u8, 7][..]),
        ("four-frames-over-max", 40, &[1u8][..]),
    ] {
        let mut input = max.to_be_bytes().to_vec();
        input.push(chunks.len() as u8);
        input.extend_from_slice(chunks);
        input.extend_from_slice(&stream);
        fs::write(corpus.join("frame").join(name), input)?;
    }
    println!("{} requests written", requests.len());
    if !refused.is_empty() {
        println!("refused by the broker (connection closed): {refused:?}");
    }
    Ok(())
}
