//! The broker as a library: the `wharf` binary (`main.rs`) is a thin
//! command-line front on these modules, and the fuzz targets drive the same
//! request path (frame, header, registry, handler) that a connection does.

pub mod alloc;
pub mod broker;
pub mod budget;
pub mod cluster;
pub mod config;
pub mod faults;
pub mod handlers;
pub mod limits;
pub mod logging;
pub mod metrics;
pub mod registry;
pub mod security;
pub mod server;

/// The unit tests run on the broker's allocator too (the binary installs it
/// in `main.rs`), so `alloc`'s tests exercise the real thing.
#[cfg(test)]
#[global_allocator]
static TEST_ALLOCATOR: alloc::Allocator = alloc::Allocator::new();
