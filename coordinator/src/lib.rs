//! Group coordinator for Wharf. Consumer groups arrive with issue 5; this crate
//! holds its place in the dependency order `src -> coordinator -> storage -> protocol`.
