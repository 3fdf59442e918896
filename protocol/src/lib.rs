//! Sans-io Kafka wire codec for Wharf.
//!
//! Nothing here touches sockets or async runtimes: the broker feeds bytes in
//! and gets bytes or typed values out.
//!
//! - [`frame`]: the 4-byte length prefix and the maximum request size.
//! - [`header`]: request and response header versions.
//! - [`batch`]: the v2 record-batch format (header parsing, CRC-32C
//!   validation, base-offset rewriting). It is also the on-disk format.
//! - [`legacy`]: just enough of Produce v0-v2 to refuse it properly.
//! - [`compression`]: gzip, snappy, lz4 and zstd with Kafka's framing.
//! - [`fetch_response`]: Fetch responses as chunks, records left uncopied.
#![forbid(unsafe_code)]

pub mod batch;
pub mod compression;
pub mod fetch_response;
pub mod frame;
pub mod header;
pub mod legacy;

pub use kafka_protocol;
