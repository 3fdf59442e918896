//! What the fuzz targets share: a broker opened once per fuzz process and
//! served through the connection's own dispatch path (`harness`), the check
//! that every response it produces is well-formed (`check`), and the seed
//! requests the corpus starts from (`seeds`).

pub mod check;
pub mod harness;
pub mod seeds;
