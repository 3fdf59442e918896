//! The cluster: the metadata quorum and the active controller.

pub mod controller;
pub mod migration;
