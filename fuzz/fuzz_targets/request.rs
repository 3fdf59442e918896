//! Arbitrary bytes as what one client connection sends: cut into frames by
//! the server's `FrameDecoder`, each frame dispatched through the server's
//! own path (`wharf::server::dispatch`: header, registry lookup, handler)
//! against a real broker on a temporary data directory. No panic, no hang,
//! and every response must be a well-formed frame that decodes with
//! `kafka-protocol` at the request's version (see `wharf_fuzz::check`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use wharf_fuzz::harness::harness;

// The broker's allocator, as the `wharf` binary installs it.
#[global_allocator]
static ALLOCATOR: wharf::alloc::Allocator = wharf::alloc::Allocator::new();

fuzz_target!(|data: &[u8]| {
    harness().serve_stream(data);
});
